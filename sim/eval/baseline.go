package eval

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/sim"
)

// Baseline is the deliberately trivial scorer used until the flashmark
// analysis lands: it shows a flashmark challenge and accepts any face whose
// colour changes while the screen flashes, without asking whether the
// change follows the challenge, comes on time, or has a face's shape. It
// exists to prove the harness can fail: replays, relighting deepfakes and
// anything reflective pass it.
type Baseline struct{}

// Name implements Scorer.
func (Baseline) Name() string { return "baseline-trivial" }

// Threshold implements Scorer: a colour variation of 0.1% of the face's
// chromaticity.
func (Baseline) Threshold() float64 { return 1.0 }

// Score warms the camera up with auto exposure, locks exposure and white
// balance, runs a default flashmark challenge, and returns the standard
// deviation of the face region's chromaticity over the challenge, in
// thousandths. The face region is the simulator's ground-truth box (there
// is no face detector in the loop yet).
func (Baseline) Score(ctx context.Context, a *sim.Attempt, rng *rand.Rand) (float64, error) {
	if _, err := a.Camera.Open(ctx); err != nil {
		return 0, err
	}
	defer a.Camera.Close()
	for i := 0; i < 20; i++ {
		if _, err := a.Camera.ReadFrame(ctx); err != nil {
			return 0, err
		}
	}
	if err := a.Camera.SetAutoExposure(false); err != nil {
		return 0, err
	}
	if err := a.Camera.SetAutoWhiteBalance(false); err != nil {
		return 0, err
	}
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	ch, err := flashmark.NewChallenge(flashmark.ChallengeConfig{}, rand.NewChaCha8(seed))
	if err != nil {
		return 0, fmt.Errorf("challenge: %w", err)
	}
	rec, err := sim.Drive(ctx, a, ch.Steps, 200*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		return 0, err
	}
	st := a.Camera.State()
	measured, _, err := sim.ChromaResponse(rec, a.Scene.Face, st.Exposure, a.Params.Readout, a.Params.Height)
	if err != nil {
		return 0, err
	}
	var sd float64
	for c := 0; c < 3; c++ {
		var m, m2 float64
		for _, v := range measured {
			s := v[0] + v[1] + v[2] + 1e-9
			x := v[c] / s
			m += x
			m2 += x * x
		}
		n := float64(len(measured))
		m /= n
		sd += math.Sqrt(math.Max(0, m2/n-m*m))
	}
	return 1000 * sd / 3, nil
}
