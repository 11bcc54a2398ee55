package eval

import (
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/glintdev/glint/sim"
)

// testFaces writes a drawn portrait (skin oval, eyes, mouth on a grey wall)
// that the skin detector finds, and loads it.
func testFaces(t *testing.T) []*sim.Face { return drawnFaces(t) }

func drawnFaces(t testing.TB) []*sim.Face {
	t.Helper()
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 200, 200))
	for y := 0; y < 200; y++ {
		for x := 0; x < 200; x++ {
			c := color.RGBA{110, 115, 120, 255}
			du, dv := float64(x-100)/40, float64(y-100)/52
			if du*du+dv*dv < 1 {
				c = color.RGBA{210, 155, 130, 255}
				if math.Abs(math.Abs(float64(x-100))-16) < 6 && math.Abs(float64(y-90)) < 3 {
					c = color.RGBA{40, 30, 30, 255}
				}
			}
			img.Set(x, y, c)
		}
	}
	f, err := os.Create(filepath.Join(dir, "face.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	faces, err := sim.LoadFaces([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	return faces
}

func smallConditions() sim.Conditions {
	c := sim.DefaultConditions()
	c.Width, c.Height = 64, 48
	return c
}

// TestRunDeterministic: the report is a function of the seed, whatever the
// number of workers.
func TestRunDeterministic(t *testing.T) {
	faces := testFaces(t)
	run := func(workers int) *Report {
		r, err := Run(context.Background(), Config{
			Faces: faces, Seed: 42, BonaFide: 3, AttacksPerSpecies: 1, Species: sim.AttackSpecies,
			Conditions: smallConditions(), Scorer: Baseline{}, Workers: workers,
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := run(1), run(2)
	scores := func(r *Report) []float64 {
		var s []float64
		for _, at := range r.Attempts {
			s = append(s, at.Score)
		}
		return s
	}
	if !reflect.DeepEqual(scores(a), scores(b)) {
		t.Fatalf("scores differ between 1 and 2 workers:\n%v\n%v", scores(a), scores(b))
	}
	if a.BonaFide.Attempts != 3 || len(a.Species) != len(sim.AttackSpecies) {
		t.Fatalf("counts: %+v, %d species", a.BonaFide, len(a.Species))
	}
	dir := t.TempDir()
	if err := a.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	b1, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b1, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"seed", "bona_fide", "bpcer", "species", "apcer_max", "attempt_ms", "bpcer20", "bpcer100"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report.json lacks %q", k)
		}
	}
	sp := m["species"].(map[string]any)["print"].(map[string]any)
	for _, k := range []string{"attempts", "accepted", "apcer"} {
		if _, ok := sp[k]; !ok {
			t.Errorf("report.json species.print lacks %q", k)
		}
	}
	for _, f := range []string{"report.md", "det.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestMetrics(t *testing.T) {
	mk := func(sp sim.Species, scores ...float64) []Attempt {
		var out []Attempt
		for _, s := range scores {
			out = append(out, Attempt{Species: sp, Score: s, Accepted: s >= 5})
		}
		return out
	}
	var res []Attempt
	res = append(res, mk(sim.BonaFide, 1, 6, 7, 8, 9, 10, 11, 12, 13, 14)...)
	res = append(res, mk(sim.Print, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)...)
	res = append(res, mk(sim.Mask, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20)...)
	r := newReport(Config{Scorer: Baseline{}, Species: []sim.Species{sim.Print, sim.Mask}}, res)
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"bpcer", r.BPCER, 0.1},
		{"apcer print", r.Species["print"].APCER, 0.5},
		{"apcer mask", r.Species["mask"].APCER, 0.1},
		{"apcer_max", r.APCERMax, 0.5},
		// APCER ≤ 5% of 10 attacks means none accepted: threshold above
		// print's 9 and mask's 20, so every bona fide is rejected.
		{"bpcer20", r.BPCER20, 1},
		{"bpcer20 print", r.Species["print"].BPCER20, 0.5}, // bona fide 1,6,7,8,9 fall below a threshold just above 9
	} {
		if math.Abs(tc.got-tc.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if r.APCERMaxSpecies != "print" {
		t.Errorf("apcer_max species %q", r.APCERMaxSpecies)
	}
}

// BenchmarkBaselineAttempt is one whole bona fide attempt at 640x480: scene
// build, warm-up, a flashmark challenge, scoring.
func BenchmarkBaselineAttempt(b *testing.B) {
	face := drawnFaces(b)
	c := sim.DefaultConditions()
	for i := 0; b.Loop(); i++ {
		if _, err := runAttempt(context.Background(), Config{Faces: face, Conditions: c, Scorer: Baseline{}}, job{index: i, species: sim.BonaFide, seed: uint64(i)}); err != nil {
			b.Fatal(err)
		}
	}
}
