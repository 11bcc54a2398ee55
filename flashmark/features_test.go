package flashmark

import (
	"math"
	"testing"
)

// TestBackgroundRatio: the background's response over the face's is
// pooled over row bands and channels by precision, so one band whose
// estimate is poor (strips over something the fit cannot explain) does
// not decide it; bands that were not measured do not count; with no band
// measured there is no ratio.
func TestBackgroundRatio(t *testing.T) {
	faceG := [3]float64{0.1, 0.1, 0.1}
	faceSE := [3]float64{0.001, 0.001, 0.001}
	var g, se [gridRows][3]float64
	var geo [gridRows]float64
	for r := 0; r < gridRows; r++ {
		geo[r] = 0.8
		for c := 0; c < 3; c++ {
			// A background at 0.4 of the face's response after the
			// angle correction.
			g[r][c], se[r][c] = 0.4*0.1*0.8, 0.002
		}
	}
	// Band 1 is wild and says so.
	for c := 0; c < 3; c++ {
		g[1][c], se[1][c] = 0.5, 0.3
	}
	ratio, rse, gBg := backgroundRatio(g, se, geo, faceG, faceSE)
	if math.Abs(ratio-0.4) > 0.02 {
		t.Errorf("ratio %.3f, want 0.4 (the noisy band outweighed)", ratio)
	}
	if !(rse > 0 && rse < 0.05) {
		t.Errorf("standard error %v", rse)
	}
	if math.Abs(gBg-0.032) > 0.002 {
		t.Errorf("background response %.4f, want 0.032", gBg)
	}
	// The ratio of the summed responses, the old estimate, would be
	// dragged far off by that band.
	var sb float64
	for r := 0; r < gridRows; r++ {
		sb += g[r][0]
	}
	if naive := sb / gridRows / 0.1 / 0.8; math.Abs(naive-0.4) < 0.5 {
		t.Fatalf("test band not wild enough: ratio of sums %.2f", naive)
	}
	// Unmeasured bands (geo 0) are skipped.
	geo[1] = 0
	for c := 0; c < 3; c++ {
		g[1][c], se[1][c] = 100, 0.0001
	}
	if ratio, _, _ := backgroundRatio(g, se, geo, faceG, faceSE); math.Abs(ratio-0.4) > 0.01 {
		t.Errorf("ratio %.3f with an unmeasured band, want 0.4", ratio)
	}
	var none [gridRows]float64
	if ratio, rse, gBg := backgroundRatio(g, se, none, faceG, faceSE); !math.IsNaN(ratio) || !math.IsNaN(rse) || !math.IsNaN(gBg) {
		t.Errorf("no band measured: %v %v %v, want NaN", ratio, rse, gBg)
	}
}

// TestFacingCells: the reference for the background is the half of the
// face cells that respond most, channel by channel, with the standard
// error of their mean.
func TestFacingCells(t *testing.T) {
	var g, se [numCells][3]float64
	for k := range g {
		v := 0.05 // turned away
		if k%2 == 0 {
			v = 0.1 // facing the screen
		}
		for c := 0; c < 3; c++ {
			g[k][c], se[k][c] = v*float64(c+1), 0.006
		}
	}
	top, tse := facingCells(g, se)
	for c := 0; c < 3; c++ {
		if want := 0.1 * float64(c+1); math.Abs(top[c]-want) > 1e-12 {
			t.Errorf("channel %d: %v, want %v", c, top[c], want)
		}
		if want := 0.006 / math.Sqrt(numCells/2); math.Abs(tse[c]-want) > 1e-12 {
			t.Errorf("channel %d: standard error %v, want %v", c, tse[c], want)
		}
	}
}
