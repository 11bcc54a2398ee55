package sim

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadConditions(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, wantErr string
	}{
		{"empty file keeps defaults", "", ""},
		{"override", "ambient_lux: [100, 200]\nrelight_latency_ms: 0\n", ""},
		{"unknown key", "ambient_luxx: [1, 2]\n", "ambient_luxx"},
		{"not yaml", "ambient_lux: [1, 2\n", "conditions"},
		{"min > max", "distance_m: [0.8, 0.3]\n", "distance_m: min 0.8 > max 0.3"},
		{"out of range", "ambient_kelvin: [100, 200]\n", "ambient_kelvin"},
		{"three values", "ambient_lux: [1, 2, 3]\n", "[min, max]"},
		{"bad probability", "blink_probability: 2\n", "blink_probability"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := LoadConditions(path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.name == "override" && (c.AmbientLux != Range{100, 200} || c.RelightLatencyMs != Range{0, 0}) {
					t.Fatalf("override not applied: %v %v", c.AmbientLux, c.RelightLatencyMs)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestDrawWithinConditions(t *testing.T) {
	c := DefaultConditions()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		sp := AttackSpecies[i%len(AttackSpecies)]
		p := c.Draw(rng, sp)
		if err := p.Validate(); err != nil {
			t.Fatalf("draw %d: %v", i, err)
		}
		if p.AmbientLux < c.AmbientLux[0] || p.AmbientLux > c.AmbientLux[1] || p.DistanceM < c.DistanceM[0] || p.DistanceM > c.DistanceM[1] {
			t.Fatalf("draw %d outside ranges: %+v", i, p)
		}
	}
}

func TestLoadFacesErrors(t *testing.T) {
	dir := t.TempDir()
	// A folder with a non-image and a blank image: no usable face.
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	blank := drawnBlankPNG(t, filepath.Join(dir, "wall.png"))
	_ = blank
	_, err := LoadFaces([]string{dir})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "no usable face") {
		t.Fatalf("error %v, want one naming %s and 'no usable face'", err, dir)
	}
	if _, err := LoadFaces([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("missing folder: no error")
	}
}

// TestConditionsDocumented: every conditions key appears in
// docs/eval-conditions.md.
func TestConditionsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "eval-conditions.md"))
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeOf(Conditions{})
	for i := 0; i < typ.NumField(); i++ {
		key := strings.Split(typ.Field(i).Tag.Get("yaml"), ",")[0]
		if !strings.Contains(string(doc), "`"+key+"`") {
			t.Errorf("conditions key %q is not documented in docs/eval-conditions.md", key)
		}
	}
}

// TestExtremeConditionsRender: attempts drawn at the limits of every range
// build and render without failing.
func TestExtremeConditionsRender(t *testing.T) {
	c := DefaultConditions()
	c.Width, c.Height = 48, 36
	c.AmbientLux, c.DistanceM, c.MotionPx, c.RotationDeg = Range{0, 100000}, Range{0.15, 2}, Range{0, 40}, Range{0, 20}
	c.FaceOffset, c.ExposureMs, c.ReadoutMs, c.FrameJitterMs = Range{-0.3, 0.3}, Range{0.1, 1000}, Range{0, 100}, Range{0, 20}
	c.FlickerProbability, c.BlinkProb, c.FlickerDepth = 1, 1, Range{1, 1}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	face := drawnFace()
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 28; i++ {
		sp := append([]Species{BonaFide}, AttackSpecies...)[i%7]
		p := c.Draw(rng, sp)
		p.AutoExposure = i%2 == 0
		a := newTestAttempt(t, face, p, uint64(i))
		for k := 0; k < 3; k++ {
			if _, err := a.Camera.ReadFrame(context.Background()); err != nil {
				t.Fatalf("attempt %d (%s): %v", i, sp, err)
			}
		}
	}
}
