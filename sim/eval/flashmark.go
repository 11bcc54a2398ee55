package eval

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/internal/geom"
	"github.com/glintdev/glint/sim"
)

// FaceLocator finds the face in a frame: the primary face's box and how
// many faces there are. inference.Locator is the real one; GroundTruth
// reads the simulator's scene for fast tests.
type FaceLocator interface {
	Locate(f *capture.Frame) (box image.Rectangle, faces int, err error)
}

// PassiveModel scores a frame's face with a passive anti-spoof model: live
// probability in [0, 1].
type PassiveModel interface {
	Passive(f *capture.Frame, box image.Rectangle) (float64, error)
}

// Detail is what a DetailScorer knows about an attempt besides its score.
type Detail struct {
	Score    float64
	Reasons  []string
	Evidence map[string]float64
}

// DetailScorer is a Scorer that also explains its scores; the report then
// carries each attempt's reasons and evidence and counts reasons per
// species.
type DetailScorer interface {
	Scorer
	ScoreDetail(ctx context.Context, a *sim.Attempt, rng *rand.Rand) (Detail, error)
}

// Flashmark is glint's liveness pipeline on a simulated attempt: warm-up
// with auto exposure and white balance, lock both, draw a flashmark
// challenge from the attempt's random stream, show it (sim.Drive), find the
// face in every frame, run the passive model on the last idle frame before
// the challenge, and flashmark.Analyze.
type Flashmark struct {
	// Analysis is the operating point and latency window (defaults:
	// STANDARD, flashmark.DefaultLatencyMin/Max).
	Analysis flashmark.AnalysisConfig
	// NewLocator makes the face locator for one attempt (trackers keep
	// state between frames); nil uses GroundTruth.
	NewLocator func(a *sim.Attempt) FaceLocator
	// Passive, if set, scores the idle frame before the challenge.
	Passive PassiveModel
	// Label names the scorer in reports (default "flashmark").
	Label string
}

// GroundTruth is the simulator's own face box, for fast tests: the scene's
// box at rest (heads sway by a few pixels around it).
type GroundTruth struct{ Scene *sim.Scene }

// Locate implements FaceLocator.
func (g GroundTruth) Locate(*capture.Frame) (image.Rectangle, int, error) {
	return g.Scene.Face, 1, nil
}

// Warm-up and challenge framing of a simulated session.
const (
	warmupFrames  = 20
	challengeLead = 200 * time.Millisecond
	challengeTail = 100 * time.Millisecond
)

// Name implements Scorer.
func (s Flashmark) Name() string {
	if s.Label != "" {
		return s.Label
	}
	return "flashmark"
}

func (s Flashmark) level() flashmark.Level {
	if s.Analysis.Level == "" {
		return flashmark.LevelStandard
	}
	return s.Analysis.Level
}

// Threshold implements Scorer: the level's threshold.
func (s Flashmark) Threshold() float64 { return s.level().Threshold() }

// Score implements Scorer.
func (s Flashmark) Score(ctx context.Context, a *sim.Attempt, rng *rand.Rand) (float64, error) {
	d, err := s.ScoreDetail(ctx, a, rng)
	return d.Score, err
}

// ScoreDetail implements DetailScorer. An input the analysis cannot use
// (too few frames with a face) is a rejection with the reason
// NO_FACE_FRAMES, as a session would decline it; other errors abort.
func (s Flashmark) ScoreDetail(ctx context.Context, a *sim.Attempt, rng *rand.Rand) (Detail, error) {
	in, err := s.Record(ctx, a, rng)
	if err != nil {
		return Detail{}, err
	}
	res, err := flashmark.Analyze(*in, s.Analysis)
	if errors.Is(err, flashmark.ErrAnalysis) {
		return Detail{Score: 0, Reasons: []string{ReasonNoFaceFrames}, Evidence: map[string]float64{"passive": in.Passive}}, nil
	}
	if err != nil {
		return Detail{}, err
	}
	ev := res.Evidence
	if ev == nil {
		ev = map[string]float64{}
	}
	// The attempt's conditions, for reading failures in report.json.
	p := a.Params
	ev["sim_distance_m"], ev["sim_background_m"], ev["sim_lux"] = p.DistanceM, p.BackgroundM, p.AmbientLux
	ev["sim_screen_nits"], ev["sim_screen_diag_in"] = p.ScreenNits, math.Hypot(p.ScreenWM, p.ScreenHM)/0.0254
	ev["sim_exposure_ms"] = float64(in.Exposure) / 1e6
	// IoU with the scene's own box tells a face the locator missed or
	// misplaced from a face the analysis rejected.
	ev["sim_face_iou"] = geom.IoU(medianBox(in.Observations), a.Scene.Face)
	return Detail{Score: res.Score, Reasons: res.Reasons, Evidence: ev}, nil
}

// medianBox is the located face box with the median corners over the
// observations that have one (empty: none).
func medianBox(obs []flashmark.Observation) image.Rectangle {
	var x0, y0, x1, y1 []int
	for _, o := range obs {
		if !o.Face.Empty() {
			x0, y0 = append(x0, o.Face.Min.X), append(y0, o.Face.Min.Y)
			x1, y1 = append(x1, o.Face.Max.X), append(y1, o.Face.Max.Y)
		}
	}
	if len(x0) == 0 {
		return image.Rectangle{}
	}
	med := func(v []int) int { slices.Sort(v); return v[len(v)/2] }
	return image.Rect(med(x0), med(y0), med(x1), med(y1))
}

// ReasonNoFaceFrames: the analysis had too few frames with a face.
const ReasonNoFaceFrames = "NO_FACE_FRAMES"

// Record runs the simulated session up to the analysis and returns its
// input.
func (s Flashmark) Record(ctx context.Context, a *sim.Attempt, rng *rand.Rand) (*flashmark.Input, error) {
	if _, err := a.Camera.Open(ctx); err != nil {
		return nil, err
	}
	defer a.Camera.Close()
	for i := 0; i < warmupFrames; i++ {
		if _, err := a.Camera.ReadFrame(ctx); err != nil {
			return nil, err
		}
	}
	if err := a.Camera.SetAutoExposure(false); err != nil {
		return nil, err
	}
	if err := a.Camera.SetAutoWhiteBalance(false); err != nil {
		return nil, err
	}
	var loc FaceLocator = GroundTruth{a.Scene}
	if s.NewLocator != nil {
		loc = s.NewLocator(a)
	}
	// Face-priority exposure, as the session runner does after
	// positioning.
	_, err := flashmark.FaceExposure(a.Camera.State().Exposure, a.Camera.SetExposure, func() (*capture.Frame, image.Rectangle, error) {
		f, err := a.Camera.ReadFrame(ctx)
		if err != nil {
			return nil, image.Rectangle{}, err
		}
		box, n, err := loc.Locate(f)
		if err != nil || n == 0 {
			return f, image.Rectangle{}, err
		}
		return f, box, nil
	})
	if err != nil {
		return nil, fmt.Errorf("face exposure: %w", err)
	}
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	ch, err := flashmark.NewChallenge(flashmark.ChallengeConfig{}, rand.NewChaCha8(seed))
	if err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	rec, err := sim.Drive(ctx, a, ch.Steps, challengeLead, challengeTail)
	if err != nil {
		return nil, err
	}
	in := &flashmark.Input{
		Challenge: ch, Presentations: rec.Presentations,
		Exposure: a.Camera.State().Exposure, Readout: a.Params.Readout, Passive: -1,
	}
	// The passive model looks at the last frame before the challenge (the
	// idle screen), right after the locator saw it, so that a locator
	// that is also a PassiveModel (inference.Locator) reuses its
	// detection.
	lastIdle := -1
	for i, f := range rec.Frames {
		if f.Timestamp < rec.Start {
			lastIdle = i
		}
	}
	passive := s.Passive
	if pm, ok := loc.(PassiveModel); ok {
		passive = pm
	}
	for i, f := range rec.Frames {
		box, n, err := loc.Locate(f)
		if err != nil {
			return nil, fmt.Errorf("locate face in frame %d: %w", f.Seq, err)
		}
		if n == 0 {
			box = image.Rectangle{}
		}
		in.Observations = append(in.Observations, flashmark.Observation{Frame: f, Face: box})
		if i == lastIdle && passive != nil && !box.Empty() {
			p, err := passive.Passive(f, box)
			if err != nil {
				return nil, fmt.Errorf("passive anti-spoof: %w", err)
			}
			in.Passive = p
		}
	}
	return in, nil
}

var _ DetailScorer = Flashmark{}
