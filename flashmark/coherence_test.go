package flashmark

import (
	"math"
	"math/rand/v2"
	"testing"
)

// paletteSequence is one emission per frame: the default palette's
// colours in linear light, each held for 4 frames, in the order rng draws.
func paletteSequence(rng *rand.Rand, frames int) [][3]float64 {
	pal := DefaultPalette()
	e := make([][3]float64, frames)
	var cur [3]float64
	for i := range e {
		if i%4 == 0 {
			cur[0], cur[1], cur[2] = pal[rng.IntN(len(pal))].Linear()
		}
		e[i] = cur
	}
	return e
}

// bandsSeeing builds the row bands of a face lit by the ambient light and
// by emission through a colour matrix with crosstalk (each camera channel
// sees a fifth of its neighbours' light), plus extra (a common colour
// change) and independent noise.
func bandsSeeing(rng *rand.Rand, emission, extra [][3]float64, noise float64) lagResult {
	n := len(emission)
	var res lagResult
	mix := [3][3]float64{{0.06, 0.012, 0.004}, {0.012, 0.05, 0.01}, {0.004, 0.01, 0.04}}
	ambient := [3]float64{0.4, 0.35, 0.3}
	for b := 0; b < gridRows; b++ {
		v := make([][3]float64, n)
		m := make([]float64, n)
		shade := 1 - 0.1*float64(b) // bands respond differently (relief)
		for i := range v {
			m[i] = 1 + 0.02*math.Sin(float64(i)/5) // ambient drift
			for c := 0; c < 3; c++ {
				var s float64
				for k := 0; k < 3; k++ {
					s += mix[c][k] * emission[i][k]
				}
				v[i][c] = m[i]*ambient[c] + shade*s + noise*rng.NormFloat64()
				if extra != nil {
					v[i][c] += shade * extra[i][c]
				}
			}
		}
		res.bandV[b], res.bandE[b] = v, emission
		res.fits[b] = fitBand(v, emission, nil)
	}
	return res
}

func TestUnexplainedChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const frames = 45
	live := paletteSequence(rng, frames)
	face := bandsSeeing(rng, live, nil, 0.0005)
	share, se, ok := unexplainedChange(face, nil)
	if !ok || math.Abs(share) > 0.01 || math.Abs(share) > 4*se {
		t.Errorf("live face: unexplained %.4f ± %.4f (ok %v), want about 0", share, se, ok)
	}
	// A replay: the recorded face also changes colour with an older
	// sequence, about half as strongly as with the live one.
	old := paletteSequence(rng, frames)
	baked := make([][3]float64, frames)
	for i := range baked {
		for c := 0; c < 3; c++ {
			baked[i][c] = 0.03 * old[i][c]
		}
	}
	replay := bandsSeeing(rng, live, baked, 0.0005)
	share, se, ok = unexplainedChange(replay, nil)
	if !ok || share < 0.1 || share < 4*se {
		t.Errorf("replay: unexplained %.4f ± %.4f (ok %v), want well above 0.1", share, se, ok)
	}
	// Noise alone, however strong, is not a common change.
	noisy := bandsSeeing(rng, live, nil, 0.01)
	if share, se, _ = unexplainedChange(noisy, nil); math.Abs(share) > 4*se+0.02 {
		t.Errorf("noisy live face: unexplained %.4f ± %.4f, want within noise of 0", share, se)
	}
}

func TestUnexplainedChangeDegenerate(t *testing.T) {
	// A constant emission explains nothing: not measurable, no panic.
	const frames = 30
	e := make([][3]float64, frames)
	for i := range e {
		e[i] = [3]float64{0.2, 0.2, 0.2}
	}
	res := bandsSeeing(rand.New(rand.NewPCG(5, 6)), e, nil, 0.001)
	if share, _, ok := unexplainedChange(res, nil); ok {
		t.Errorf("constant emission: unexplained %.4f reported as measured", share)
	}
}
