package sim

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/flashmark"
)

func TestDisplayLatency(t *testing.T) {
	period := time.Second / 60
	for _, lat := range []int{1, 2, 3} {
		clock := NewVirtualClock(time.Second + 5*time.Millisecond)
		d, err := NewDisplay(DisplayConfig{LatencyFrames: lat}, clock, flashmark.RGB{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := d.Show(context.Background(), flashmark.RGB{R: 255})
		if err != nil {
			t.Fatal(err)
		}
		// Vsyncs fall on multiples of the period (phase 0): the next after
		// now, then lat-1 more.
		next := (clock.Now()/period + 1) * period
		if want := next + time.Duration(lat-1)*period; p.Presented != want {
			t.Errorf("latency %d: presented %v, want %v", lat, p.Presented, want)
		}
		if p.Latency() <= 0 || p.Latency() > time.Duration(lat)*period {
			t.Errorf("latency %d: %v", lat, p.Latency())
		}
		if got := d.ColorAt(p.Presented - time.Millisecond); got != (flashmark.RGB{}) {
			t.Errorf("before presentation the screen shows %v", got)
		}
		// Over the refresh after presentation the panel ramps to red: the
		// mean over that refresh is half-way, after it full.
		half := d.MeanEmission(p.Presented, p.Presented+period)
		full := d.MeanEmission(p.Presented+period, p.Presented+2*period)
		if math.Abs(half[0]-0.5) > 1e-9 || math.Abs(full[0]-1) > 1e-9 || full[1] != 0 {
			t.Errorf("latency %d: emission over the scan-out %v, after %v", lat, half, full)
		}
	}
	if _, err := NewDisplay(DisplayConfig{LatencyFrames: 11}, NewVirtualClock(0), flashmark.RGB{}); err == nil {
		t.Error("latency 11: no error")
	}
}

func TestCameraMJPEG(t *testing.T) {
	p := DefaultParams()
	p.Width, p.Height, p.MJPEGQuality = 64, 48, 85
	a := newTestAttempt(t, drawnFace(), p, 2)
	f, err := a.Camera.ReadFrame(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.Format != capture.FormatMJPEG {
		t.Fatalf("format %v, want MJPEG", f.Format)
	}
	rgb, err := f.RGB(nil)
	if err != nil || len(rgb) != 64*48*3 {
		t.Fatalf("decode: %v (%d bytes)", err, len(rgb))
	}
}
