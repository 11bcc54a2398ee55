package eval

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/internal/testenv"
	"github.com/glintdev/glint/sim"
)

// TestFlashmarkScorer: the pipeline with ground-truth boxes accepts a bona
// fide face under the realism tests' conditions and rejects a relighting
// deepfake for its lag, with reasons and the attempt's conditions in the
// evidence. A registry photo: the drawn face has too little texture for
// the texture check to measure, which STANDARD does not accept.
func TestFlashmarkScorer(t *testing.T) {
	dir := testenv.Require(t, filepath.Join(testenv.Root(t), ".cache", "faces"), "registry photos")
	faces, err := sim.LoadFace(filepath.Join(dir, "skimage", "astronaut.png"))
	if err != nil {
		t.Fatal(err)
	}
	face := faces[0]
	s := Flashmark{}
	if s.Name() != "flashmark" || s.Threshold() != flashmark.LevelStandard.Threshold() {
		t.Fatalf("name %q threshold %v", s.Name(), s.Threshold())
	}
	for _, tc := range []struct {
		species sim.Species
		live    bool
		reason  string
	}{
		{sim.BonaFide, true, ""},
		{sim.Relight, false, flashmark.ReasonLagOutOfWindow},
		{sim.Injection, false, flashmark.ReasonCorrelationLow},
	} {
		p := sim.DefaultParams()
		p.Species = tc.species
		p.Width, p.Height = 320, 240
		a, err := sim.NewAttempt(face, p, sim.NewVirtualClock(time.Second), 4)
		if err != nil {
			t.Fatal(err)
		}
		d, err := s.ScoreDetail(context.Background(), a, rand.New(rand.NewPCG(4, 4)))
		if err != nil {
			t.Fatal(err)
		}
		if live := d.Score >= s.Threshold(); live != tc.live {
			t.Errorf("%s: score %.1f (reasons %v), want live %v", tc.species, d.Score, d.Reasons, tc.live)
		}
		if tc.reason != "" && !slices.Contains(d.Reasons, tc.reason) {
			t.Errorf("%s: reasons %v lack %s", tc.species, d.Reasons, tc.reason)
		}
		if d.Evidence["sim_distance_m"] != p.DistanceM {
			t.Errorf("%s: evidence lacks the conditions: %v", tc.species, d.Evidence)
		}
	}
}

// TestRunVariants: a variant is reported as its own species, under its
// own conditions, and a malformed one is refused.
func TestRunVariants(t *testing.T) {
	faces := testFaces(t)
	cond := smallConditions()
	late := cond
	late.RelightLatencyMs = sim.Range{33, 33}
	r, err := Run(context.Background(), Config{
		Faces: faces, Seed: 1, BonaFide: 1, AttacksPerSpecies: 2, Species: []sim.Species{sim.Relight},
		Variants:   []Variant{{Name: "relight-33ms", Species: sim.Relight, Conditions: late}},
		Conditions: cond, Scorer: Baseline{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := r.Species["relight-33ms"]; st == nil || st.Attempts != 2 {
		t.Fatalf("variant stats %+v", st)
	}
	if len(r.Attempts) != 5 || r.Attempts[4].Species != "relight-33ms" {
		t.Fatalf("attempts %+v", r.Attempts)
	}
	var md strings.Builder
	r.WriteMarkdown(&md)
	if !strings.Contains(md.String(), "| relight-33ms |") {
		t.Errorf("report.md lacks the variant:\n%s", md.String())
	}
	for _, v := range []Variant{{Name: "", Species: sim.Relight, Conditions: late}, {Name: "x", Species: sim.BonaFide, Conditions: late}} {
		if _, err := Run(context.Background(), Config{Faces: faces, BonaFide: 1, AttacksPerSpecies: 1, Variants: []Variant{v}, Conditions: cond, Scorer: Baseline{}}); err == nil {
			t.Errorf("variant %+v accepted", v)
		}
	}
}
