package capture

import (
	"errors"
	"testing"

	"github.com/blackjack/webcam"
)

func TestNearestSize(t *testing.T) {
	discrete := []webcam.FrameSize{
		{MinWidth: 320, MaxWidth: 320, MinHeight: 240, MaxHeight: 240},
		{MinWidth: 640, MaxWidth: 640, MinHeight: 480, MaxHeight: 480},
		{MinWidth: 1280, MaxWidth: 1280, MinHeight: 720, MaxHeight: 720},
	}
	stepwise := []webcam.FrameSize{{MinWidth: 16, MaxWidth: 1920, StepWidth: 16, MinHeight: 16, MaxHeight: 1080, StepHeight: 8}}
	cases := []struct {
		name   string
		sizes  []webcam.FrameSize
		w, h   int
		ww, wh int
	}{
		{"exact", discrete, 640, 480, 640, 480},
		{"nearest", discrete, 800, 600, 640, 480},
		{"large", discrete, 1920, 1080, 1280, 720},
		{"stepwise snaps", stepwise, 641, 479, 640, 480},
		{"stepwise clamps", stepwise, 4000, 3000, 1920, 1080},
		{"none offered", nil, 640, 480, 640, 480},
		{"default size", discrete, 0, 0, 640, 480},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, h := nearestSize(c.sizes, c.w, c.h)
			if w != c.ww || h != c.wh {
				t.Fatalf("got %dx%d want %dx%d", w, h, c.ww, c.wh)
			}
		})
	}
}

func TestNearestRate(t *testing.T) {
	rates := []webcam.FrameRate{
		{MinNumerator: 1, MaxNumerator: 1, MinDenominator: 30, MaxDenominator: 30},
		{MinNumerator: 1, MaxNumerator: 1, MinDenominator: 15, MaxDenominator: 15},
	}
	if got := nearestRate(rates, 25); got != 30 {
		t.Fatalf("nearest to 25 = %v, want 30", got)
	}
	if got := nearestRate(nil, 25); got != 25 {
		t.Fatalf("no rates offered: %v", got)
	}
	step := []webcam.FrameRate{{MinNumerator: 1, MaxNumerator: 1, MinDenominator: 60, MaxDenominator: 1, StepNumerator: 1, StepDenominator: 1}}
	if got := nearestRate(step, 25); got != 25 {
		t.Fatalf("stepwise: %v", got)
	}
}

func TestCopyPlaneHonoursStride(t *testing.T) {
	data := []byte{1, 2, 9, 9, 3, 4, 9, 9}
	got := copyPlane(data, 2, 4, 2)
	if string(got) != string([]byte{1, 2, 3, 4}) {
		t.Fatalf("got %v", got)
	}
	if copyPlane(data[:5], 2, 4, 2) != nil {
		t.Fatal("short buffer accepted")
	}
}

func TestPixelFormatString(t *testing.T) {
	if FormatYUYV.String() != "YUYV" || Fourcc("MJPG") != FormatMJPEG {
		t.Fatal("fourcc round trip")
	}
	if PixelFormat(1).String() != "0x00000001" {
		t.Fatalf("non-printable fourcc: %s", PixelFormat(1))
	}
}

func TestOpenMissingDevice(t *testing.T) {
	src := NewV4L2Source(V4L2Config{Device: "/dev/video-glint-missing"})
	_, err := src.Open(t.Context())
	if err == nil {
		t.Fatal("no error for a missing device")
	}
	if !errors.Is(err, ErrNoDevice) {
		t.Fatalf("err = %v, want ErrNoDevice", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}
