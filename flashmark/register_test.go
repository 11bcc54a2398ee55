package flashmark

import (
	"image"
	"math"
	"testing"
)

// texture renders a smooth random-looking pattern (a sum of sinusoids)
// shifted by (sx, sy), scaled by gain, as sRGB bytes.
func texture(w, h, sx, sy int, gain float64) []byte {
	rgb := make([]byte, w*h*3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			u, v := float64(x-sx), float64(y-sy)
			l := 0.5 + 0.2*math.Sin(u/5.3+v/9.1) + 0.15*math.Sin(v/3.7-u/11.2) + 0.1*math.Cos(u/2.9+v/4.3)
			for c := 0; c < 3; c++ {
				rgb[(y*w+x)*3+c] = byte(math.Max(0, math.Min(255, 200*gain*l*(1-0.1*float64(c)))))
			}
		}
	}
	return rgb
}

func TestRegisterFindsShift(t *testing.T) {
	const w, h = 160, 120
	box := image.Rect(50, 30, 110, 100)
	p, ok := newFacePatch(texture(w, h, 0, 0, 1), w, h, box)
	if !ok {
		t.Fatal("no patch on a textured frame")
	}
	for _, c := range []struct {
		shift, prior image.Point
		gain         float64
	}{
		{image.Pt(2, -1), image.Pt(0, 0), 1},
		{image.Pt(-3, 3), image.Pt(0, 0), 1.08}, // the flash brightens the face
		{image.Pt(5, 1), image.Pt(4, 0), 0.93},  // the tracker's prior brings it in range
	} {
		got, ok := p.register(texture(w, h, c.shift.X, c.shift.Y, c.gain), w, h, c.prior)
		if !ok || got != c.shift {
			t.Errorf("shift %v (prior %v, gain %.2f): got %v, ok %v", c.shift, c.prior, c.gain, got, ok)
		}
	}
	// Out of the search range: no shift matches well enough to move the
	// cells.
	if got, ok := p.register(texture(w, h, 9, 0, 1), w, h, image.Pt(0, 0)); ok {
		t.Errorf("shift 9 px, radius %d: matched at %v", registerRadius, got)
	}
}

func TestRegisterNeedsTexture(t *testing.T) {
	const w, h = 64, 64
	flat := make([]byte, w*h*3)
	for i := range flat {
		flat[i] = 128
	}
	if _, ok := newFacePatch(flat, w, h, image.Rect(10, 10, 50, 50)); ok {
		t.Error("patch on a uniform frame: want none")
	}
	if _, ok := newFacePatch(flat, w, h, image.Rect(60, 60, 64, 64)); ok {
		t.Error("patch on a 4-px box: want none")
	}
}
