package flashmark

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fakeFB is a regular file standing in for /dev/fb0, sized for g.
func fakeFB(t *testing.T, g FBGeometry) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fb0")
	if err := os.WriteFile(p, make([]byte, g.Stride*(g.YOffset+g.Height)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	xrgb8888 = FBGeometry{Width: 8, Height: 4, Stride: 8 * 4, BitsPerPixel: 32, RedOffset: 16, RedLength: 8, GreenOffset: 8, GreenLength: 8, BlueOffset: 0, BlueLength: 8}
	rgb565   = FBGeometry{Width: 6, Height: 3, Stride: 16, BitsPerPixel: 16, RedOffset: 11, RedLength: 5, GreenOffset: 5, GreenLength: 6, BlueOffset: 0, BlueLength: 5}
	bgr888   = FBGeometry{Width: 5, Height: 2, Stride: 5 * 3, BitsPerPixel: 24, RedOffset: 0, RedLength: 8, GreenOffset: 8, GreenLength: 8, BlueOffset: 16, BlueLength: 8}
	// A visible window panned inside a larger virtual buffer.
	panned = FBGeometry{Width: 2, Height: 2, Stride: 6 * 4, XOffset: 3, YOffset: 1, BitsPerPixel: 32, RedOffset: 16, RedLength: 8, GreenOffset: 8, GreenLength: 8, BlueOffset: 0, BlueLength: 8}
)

func TestFramebufferFillsEveryVisiblePixel(t *testing.T) {
	colour := RGB{0xd1, 0x5c, 0x5c}
	cases := []struct {
		name string
		g    FBGeometry
		want []byte
	}{
		{"XRGB8888", xrgb8888, []byte{0x5c, 0x5c, 0xd1, 0x00}},
		// RGB565: r 0xd1>>3=26, g 0x5c>>2=23, b 0x5c>>3=11 → 26<<11|23<<5|11 = 0xd2eb.
		{"RGB565", rgb565, []byte{0xeb, 0xd2}},
		{"BGR888", bgr888, []byte{0xd1, 0x5c, 0x5c}},
		{"panned", panned, []byte{0x5c, 0x5c, 0xd1, 0x00}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := c.g
			path := fakeFB(t, g)
			fb, err := OpenFramebuffer(FramebufferConfig{Path: path, Geometry: &g})
			if err != nil {
				t.Fatal(err)
			}
			if fb.VSync() {
				t.Fatal("a regular file cannot wait for vsync")
			}
			p, err := fb.Show(context.Background(), colour)
			if err != nil {
				t.Fatal(err)
			}
			if p.Color != colour || p.Presented <= p.Requested {
				t.Fatalf("presentation %+v", p)
			}
			// Without vsync, presentation is one refresh (60 Hz) after the write.
			if lat := p.Latency(); lat < 16_000_000 || lat > 1_000_000_000 {
				t.Fatalf("latency %v", lat)
			}
			if err := fb.Close(); err != nil {
				t.Fatal(err)
			}
			mem, _ := os.ReadFile(path)
			bpp := g.BitsPerPixel / 8
			for y := 0; y < g.YOffset+g.Height; y++ {
				for x := 0; x < g.Stride/bpp; x++ {
					px := mem[y*g.Stride+x*bpp : y*g.Stride+(x+1)*bpp]
					visible := y >= g.YOffset && x >= g.XOffset && x < g.XOffset+g.Width
					if visible && string(px) != string(c.want) {
						t.Fatalf("pixel (%d,%d) = % x, want % x", x, y, px, c.want)
					}
					if !visible && string(px) != string(make([]byte, bpp)) {
						t.Fatalf("pixel (%d,%d) outside the visible area was written: % x", x, y, px)
					}
				}
			}
		})
	}
}

func TestFramebufferErrors(t *testing.T) {
	g := xrgb8888
	path := fakeFB(t, g)
	if _, err := OpenFramebuffer(FramebufferConfig{Path: path}); !errors.Is(err, ErrNotFramebuffer) {
		t.Fatalf("regular file without geometry: %v", err)
	}
	if _, err := OpenFramebuffer(FramebufferConfig{Path: filepath.Join(t.TempDir(), "fb9")}); err == nil {
		t.Fatal("missing device opened")
	}
	bad := []FBGeometry{
		{Width: 4, Height: 4, Stride: 16, BitsPerPixel: 8, RedLength: 3, GreenLength: 3, BlueLength: 2},
		{Width: 4, Height: 4, Stride: 8, BitsPerPixel: 32, RedOffset: 16, RedLength: 8, GreenOffset: 8, GreenLength: 8, BlueLength: 8},
		{Width: 4, Height: 4, Stride: 16, BitsPerPixel: 32, RedOffset: 30, RedLength: 8, GreenOffset: 8, GreenLength: 8, BlueLength: 8},
		{Width: 0, Height: 4, Stride: 16, BitsPerPixel: 32},
	}
	for i, b := range bad {
		b := b
		if _, err := OpenFramebuffer(FramebufferConfig{Path: path, Geometry: &b}); err == nil {
			t.Errorf("bad geometry %d accepted", i)
		}
	}
	fb, err := OpenFramebuffer(FramebufferConfig{Path: path, Geometry: &g})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fb.Show(ctx, RGB{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Show: %v", err)
	}
	fb.Close()
	if _, err := fb.Show(context.Background(), RGB{}); err == nil {
		t.Fatal("Show after Close succeeded")
	}
	if err := fb.Close(); err != nil {
		t.Fatal("second Close failed")
	}
}

func BenchmarkFramebufferShow1080p(b *testing.B) {
	g := FBGeometry{Width: 1920, Height: 1080, Stride: 1920 * 4, BitsPerPixel: 32, RedOffset: 16, RedLength: 8, GreenOffset: 8, GreenLength: 8, BlueLength: 8}
	p := filepath.Join(b.TempDir(), "fb0")
	os.WriteFile(p, make([]byte, g.Stride*g.Height), 0o600)
	fb, err := OpenFramebuffer(FramebufferConfig{Path: p, Geometry: &g})
	if err != nil {
		b.Fatal(err)
	}
	defer fb.Close()
	colours := DefaultPalette()
	i := 0
	for b.Loop() {
		if _, err := fb.Show(context.Background(), colours[i%len(colours)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
