package capture

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"testing"
)

// refLimited is the floating-point BT.601 limited-range conversion the fixed
// point code must match.
func refLimited(y, u, v byte) [3]float64 {
	c := 1.164 * (float64(y) - 16)
	d := float64(u) - 128
	e := float64(v) - 128
	cl := func(x float64) float64 { return math.Max(0, math.Min(255, x)) }
	return [3]float64{cl(c + 1.596*e), cl(c - 0.392*d - 0.813*e), cl(c + 2.017*d)}
}

func checkClose(t *testing.T, what string, got []byte, want [3]float64) {
	t.Helper()
	for i := 0; i < 3; i++ {
		if math.Abs(float64(got[i])-want[i]) > 1.01 {
			t.Fatalf("%s: channel %d = %d, want %.1f", what, i, got[i], want[i])
		}
	}
}

func TestYUYVToRGBMatchesReference(t *testing.T) {
	const w, h = 64, 8
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]byte, w*h*2)
	for i := range src {
		src[i] = byte(rng.IntN(256))
	}
	// Known anchors: black, white, and saturated colours in studio swing.
	copy(src, []byte{16, 128, 235, 128, 82, 90, 82, 240})
	rgb, err := YUYVToRGB(nil, src, w, h)
	if err != nil {
		t.Fatal(err)
	}
	if rgb[0] != 0 || rgb[1] != 0 || rgb[2] != 0 {
		t.Errorf("Y=16 should be black, got %v", rgb[:3])
	}
	if rgb[3] != 255 || rgb[4] != 255 || rgb[5] != 255 {
		t.Errorf("Y=235 should be white, got %v", rgb[3:6])
	}
	if rgb[6] < 250 || rgb[7] > 5 || rgb[8] > 5 {
		t.Errorf("Y=82 U=90 V=240 should be red, got %v", rgb[6:9])
	}
	for p := 0; p < w*h; p++ {
		pair := src[(p/2)*4:]
		checkClose(t, "yuyv", rgb[3*p:], refLimited(src[2*p], pair[1], pair[3]))
	}
	luma, err := YUYVToLuma(nil, src, w, h)
	if err != nil {
		t.Fatal(err)
	}
	for p := range luma {
		if luma[p] != src[2*p] {
			t.Fatalf("luma[%d]=%d want %d", p, luma[p], src[2*p])
		}
	}
}

func TestNV12ToRGBMatchesReference(t *testing.T) {
	const w, h = 32, 16
	rng := rand.New(rand.NewPCG(3, 4))
	src := make([]byte, w*h*3/2)
	for i := range src {
		src[i] = byte(rng.IntN(256))
	}
	rgb, err := NV12ToRGB(nil, src, w, h)
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			uv := w*h + (y/2)*w + (x/2)*2
			checkClose(t, "nv12", rgb[3*(y*w+x):], refLimited(src[y*w+x], src[uv], src[uv+1]))
		}
	}
	luma, err := NV12ToLuma(nil, src, w, h)
	if err != nil || !bytes.Equal(luma, src[:w*h]) {
		t.Fatalf("NV12 luma mismatch: %v", err)
	}
}

func testJPEG(t testing.TB, w, h int) ([]byte, *image.RGBA) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y) % 256), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), img
}

func TestMJPEGToRGBMatchesStdlib(t *testing.T) {
	data, _ := testJPEG(t, 96, 64)
	rgb, w, h, err := MJPEGToRGB(nil, data)
	if err != nil {
		t.Fatal(err)
	}
	if w != 96 || h != 64 {
		t.Fatalf("size %dx%d", w, h)
	}
	ref, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, b, _ := ref.At(x, y).RGBA()
			want := [3]float64{float64(r >> 8), float64(g >> 8), float64(b >> 8)}
			checkClose(t, "mjpeg", rgb[3*(y*w+x):], want)
		}
	}
	luma, lw, lh, err := MJPEGToLuma(nil, data)
	if err != nil || lw != w || lh != h {
		t.Fatalf("luma: %v %dx%d", err, lw, lh)
	}
	yc := ref.(*image.YCbCr)
	if luma[5*w+7] != yc.Y[5*yc.YStride+7] {
		t.Fatalf("luma differs from the decoded Y plane")
	}
}

func TestConversionRejectsBadInput(t *testing.T) {
	cases := []struct {
		name string
		f    Frame
	}{
		{"yuyv short", Frame{Format: FormatYUYV, Width: 4, Height: 2, Data: make([]byte, 10)}},
		{"yuyv odd width", Frame{Format: FormatYUYV, Width: 3, Height: 2, Data: make([]byte, 12)}},
		{"nv12 short", Frame{Format: FormatNV12, Width: 4, Height: 2, Data: make([]byte, 8)}},
		{"zero size", Frame{Format: FormatYUYV, Width: 0, Height: 0}},
		{"mjpeg garbage", Frame{Format: FormatMJPEG, Width: 4, Height: 4, Data: []byte{0xFF, 0xD8, 1, 2, 3}}},
		{"rgb short", Frame{Format: FormatRGB24, Width: 4, Height: 4, Data: make([]byte, 5)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.f.RGB(nil); !errors.Is(err, ErrBadFrame) {
				t.Errorf("RGB: err = %v, want ErrBadFrame", err)
			}
			if _, err := c.f.Luma(nil); err == nil {
				t.Errorf("Luma: no error")
			}
		})
	}
	unknown := Frame{Format: Fourcc("H264"), Width: 2, Height: 2, Data: make([]byte, 100)}
	if _, err := unknown.RGB(nil); !errors.Is(err, ErrFormatUnsupported) {
		t.Errorf("unknown format: %v", err)
	}
}

func TestFrameRGBReusesBuffer(t *testing.T) {
	f := Frame{Format: FormatYUYV, Width: 4, Height: 2, Data: bytes.Repeat([]byte{128, 128}, 8)}
	buf := make([]byte, 0, 1024)
	out, err := f.RGB(buf)
	if err != nil {
		t.Fatal(err)
	}
	if &out[0] != &buf[:1][0] || len(out) != 24 {
		t.Fatalf("buffer not reused (len %d)", len(out))
	}
}

// yuyvFrame builds a synthetic YUYV frame for benchmarks.
func yuyvFrame(w, h int) []byte {
	b := make([]byte, w*h*2)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

var benchSizes = []struct {
	name string
	w, h int
}{{"640x480", 640, 480}, {"1280x720", 1280, 720}}

func BenchmarkYUYVToRGB(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			src := yuyvFrame(s.w, s.h)
			dst := make([]byte, s.w*s.h*3)
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := YUYVToRGB(dst, src, s.w, s.h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkYUYVToLuma(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			src := yuyvFrame(s.w, s.h)
			dst := make([]byte, s.w*s.h)
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := YUYVToLuma(dst, src, s.w, s.h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkNV12ToRGB(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			src := yuyvFrame(s.w, s.h)[:s.w*s.h*3/2]
			dst := make([]byte, s.w*s.h*3)
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := NV12ToRGB(dst, src, s.w, s.h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkNV12ToLuma(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			src := yuyvFrame(s.w, s.h)[:s.w*s.h*3/2]
			dst := make([]byte, s.w*s.h)
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := NV12ToLuma(dst, src, s.w, s.h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMJPEGToRGB(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			src, _ := testJPEG(b, s.w, s.h)
			dst := make([]byte, s.w*s.h*3)
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, _, _, err := MJPEGToRGB(dst, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMJPEGToLuma(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			src, _ := testJPEG(b, s.w, s.h)
			dst := make([]byte, s.w*s.h)
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, _, _, err := MJPEGToLuma(dst, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
