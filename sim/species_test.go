package sim

import (
	"context"
	"image"
	"testing"
	"time"
)

// TestSpeciesResponse: how each presentation answers a black→white flash of
// the kiosk screen, relative to its own brightness.
func TestSpeciesResponse(t *testing.T) {
	face := drawnFace()
	for _, tc := range []struct {
		species  Species
		min, max float64
	}{
		{BonaFide, 0.05, 10},
		{Print, 0.05, 10},
		{Mask, 0.05, 10},
		{Screen, 0, 0.05},    // emissive: the flash barely adds to its own light
		{Injection, 0, 1e-3}, // no physical loop at all
	} {
		t.Run(string(tc.species), func(t *testing.T) {
			p := DefaultParams()
			p.Species = tc.species
			p.Width, p.Height = 160, 120
			p.AmbientLux, p.AmbientDrift = 150, 0
			a := newTestAttempt(t, face, p, 4)
			r := relResponses(t, a, map[string]image.Rectangle{"face": a.Scene.Face}, 1)["face"]
			t.Logf("%s: relative response %.4f", tc.species, r)
			if r < tc.min || r > tc.max {
				t.Errorf("%s: relative response %.4f outside %.3f..%.3f", tc.species, r, tc.min, tc.max)
			}
		})
	}
}

// TestRelightLatency: the deepfake answers the flash only L after it.
func TestRelightLatency(t *testing.T) {
	p := DefaultParams()
	p.Species = Relight
	p.Width, p.Height = 160, 120
	p.AmbientDrift = 0
	p.Attack.RelightLag = 300 * time.Millisecond
	a := newTestAttempt(t, drawnFace(), p, 6)
	ctx := context.Background()
	base := frameAfter(t, a, black)
	pres, err := a.Display.Show(ctx, white)
	if err != nil {
		t.Fatal(err)
	}
	lum := func(tOff time.Duration) float64 {
		for {
			f, err := a.Camera.ReadFrame(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if f.Timestamp-p.Exposure > pres.Presented+tOff {
				m, err := MeanLinear(f, a.Scene.Face)
				if err != nil {
					t.Fatal(err)
				}
				return luminance(m)
			}
		}
	}
	b, err := MeanLinear(base, a.Scene.Face)
	if err != nil {
		t.Fatal(err)
	}
	early, late := lum(50*time.Millisecond)/luminance(b)-1, lum(400*time.Millisecond)/luminance(b)-1
	t.Logf("relight L=300ms: response %.4f at +50 ms, %.4f at +400 ms", early, late)
	if early > 0.01 || late < 0.02 {
		t.Errorf("relight response %.4f before L (want ~0), %.4f after (want > 0.02)", early, late)
	}
}
