package flashmark

import (
	"math"
	"testing"
)

// cellsOf spreads a per-cell pattern over three channels with a colour
// cast and uniform noise level se.
func cellsOf(pattern func(k int) float64, se float64) (gc, sec [numCells][3]float64) {
	cast := [3]float64{0.011, 0.008, 0.014}
	for k := 0; k < numCells; k++ {
		for c := 0; c < 3; c++ {
			gc[k][c] = cast[c] * pattern(k)
			sec[k][c] = cast[c] * se
		}
	}
	return gc, sec
}

func TestTemplateFit(t *testing.T) {
	var modeMean float64
	for _, v := range faceTemplateMode {
		modeMean += v / numCells
	}
	plane := func(k int) float64 {
		x := cellRegressors(k)
		return 1 + 0.3*x[1] - 0.4*x[2] // a tilted print
	}
	for _, c := range []struct {
		name    string
		pattern func(k int) float64
		want    float64
	}{
		{"face", func(k int) float64 { return faceTemplate[k] }, 1},
		{"tilted face", func(k int) float64 { return faceTemplate[k] + plane(k) - 1 }, 1},
		{"half relief", func(k int) float64 { return 0.5*faceTemplate[k] + 0.5 }, 0.5},
		// A face whose own shape departs from the typical one along
		// faceTemplateMode, as far as the seed-7 faces that depart most
		// (the mode's mean taken out: the fit sees responses relative to
		// their mean).
		{"face of its own shape", func(k int) float64 { return faceTemplate[k] - 0.4*(faceTemplateMode[k]-modeMean) }, 1},
		{"tilted print", plane, 0},
		{"flat", func(int) float64 { return 1 }, 0},
	} {
		gc, sec := cellsOf(c.pattern, 0.01)
		coef, se, misfit := templateFit(gc, sec)
		if math.Abs(coef-c.want) > 0.02 || !(se > 0 && se < 0.2) || misfit > 0.01 {
			t.Errorf("%s: coefficient %.3f ± %.3f (misfit %.3f), want %.2f and no misfit", c.name, coef, se, misfit, c.want)
		}
	}
	// A pattern the plane and the template cannot explain (a glint in
	// one cell) widens the standard error by the fit's χ.
	glint := func(k int) float64 {
		if k == 4 {
			return faceTemplate[k] + 2
		}
		return faceTemplate[k]
	}
	gc, sec := cellsOf(glint, 0.01)
	if _, se, misfit := templateFit(gc, sec); se < 0.1 || misfit < 0.3 {
		t.Errorf("glint: standard error %.3f, misfit %.3f; want both widened", se, misfit)
	}
	// Unusable cells: no estimate.
	var zero [numCells][3]float64
	if _, se, misfit := templateFit(zero, zero); !math.IsInf(se, 1) || !math.IsInf(misfit, 1) {
		t.Errorf("no response: standard error %v, misfit %v; want +Inf", se, misfit)
	}
}

func TestInvert(t *testing.T) {
	a := [][]float64{{4, 1, 0, 2}, {1, 3, 1, 0}, {0, 1, 5, 1}, {2, 0, 1, 6}}
	inv, ok := invert(a)
	if !ok {
		t.Fatal("invertible matrix reported singular")
	}
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			var v float64
			for k := 0; k < 4; k++ {
				v += a[i][k] * inv[k][j]
			}
			want := 0.0
			if i == j {
				want = 1
			}
			if math.Abs(v-want) > 1e-12 {
				t.Fatalf("A·A⁻¹[%d][%d] = %v", i, j, v)
			}
		}
	}
	a[3] = a[0] // singular
	if _, ok := invert(a); ok {
		t.Error("singular matrix inverted")
	}
}
