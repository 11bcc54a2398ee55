package sim

import (
	"math/rand/v2"
	"os"
	"path/filepath"
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
