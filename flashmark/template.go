package flashmark

import "math"

// faceTemplate is the typical pattern of a live face's response across
// the 4x3 cells (row by row from the brow; each cell's G over the mean of
// all cells, channels combined by precision): low on the brow and the
// upper cheeks, which face up and away from a screen below the camera, and
// high on the nose, the mouth and the chin, which face it. It is the median
// over the bona fide attempts of simulator seed 7 (the calibration seed,
// never the evaluation seed; docs/liveness.md), with the left and right
// columns averaged (a face is symmetric and the screen is centred below
// the camera). A print or a screen has the plane's gradient of its tilt
// but not this relief. A device whose screen sits elsewhere relative to
// the camera needs its own template.
var faceTemplate = [numCells]float64{
	0.817, 0.872, 0.817,
	0.791, 0.963, 0.791,
	0.990, 1.311, 0.990,
	1.059, 1.480, 1.059,
}

// faceTemplateMode is how live faces differ from one another beyond
// faceTemplate (row by row, unit length): the first principal component
// of what the plane and faceTemplate leave in the cells of the bona fide
// attempts of simulator seed 7 (48% of that residual variance; the
// calibration seed again, docs/liveness.md). A face's own shape (brow
// height, the nose's length, the photo's pose) sets how much of it a face
// shows, steadily from session to session, and either sign occurs; it is
// not left-right symmetric because yaw is part of it. Fitting it as a
// free multiple keeps those faces' misfit and template multiple where
// other faces' are (seed 11: bona fide attempts scoring under 70 fell from
// 10 to 4 of 500), and it does not describe a glint in one cell or a
// print's flat response, so the checks built on the fit still see those.
var faceTemplateMode = [numCells]float64{
	0.280, 0.110, 0.404,
	-0.189, -0.380, -0.055,
	0.212, -0.408, -0.144,
	0.511, 0.213, 0.157,
}

// templateFit fits the cells' normalised responses with a plane (a tilted
// or bent print's gradient, the screen's own angle) plus a multiple of
// faceTemplate and one of faceTemplateMode, weighted by the cells'
// precision, and returns the multiple of faceTemplate with its standard
// error (scaled up by the fit's reduced χ when the residuals exceed the
// noise), and the misfit: the residuals' RMS relative to the cells' mean.
// The multiple is about 1 on a face and about 0 on a flat surface,
// whatever its tilt; the misfit is small on a face (what the template,
// its mode and the plane leave is the face's own variation) and large
// where a glint or a display's own light lands in some cells.
func templateFit(gc, sec [numCells][3]float64) (coef, se, misfit float64) {
	g, e, ok := combineCells(gc, sec)
	if !ok {
		return 0, math.Inf(1), math.Inf(1)
	}
	x := make([][]float64, numCells)
	w := make([]float64, numCells)
	for k := range x {
		r := cellRegressors(k)
		x[k] = r[:]
		w[k] = 1 / (e[k]*e[k] + 1e-30)
	}
	f, ok := fitLinear(x, g[:], w)
	if !ok {
		return 0, math.Inf(1), math.Inf(1)
	}
	var rss, mean float64
	for k := 0; k < numCells; k++ {
		r := g[k]
		for i, v := range x[k] {
			r -= f.p[i] * v
		}
		rss += r * r
		mean += g[k] / numCells
	}
	misfit = math.Sqrt(rss/numCells) / math.Abs(mean)
	if math.IsNaN(misfit) {
		misfit = math.Inf(1)
	}
	return f.p[3], math.Sqrt(f.cov[3][3] * math.Max(1, f.chi2)), misfit
}

// cellRegressors are cell k's plane terms (1, u, v: the cell centre in box
// units, ±0.5 at the edges), its template value and its template mode
// value.
func cellRegressors(k int) [5]float64 {
	u := (float64(k%gridCols)+0.5)/gridCols - 0.5
	v := (float64(k/gridCols)+0.5)/gridRows - 0.5
	return [5]float64{1, u, v, faceTemplate[k], faceTemplateMode[k]}
}

// combineCells normalises every channel's cell responses by their mean
// over the cells (which cancels the ambient light's colour) and combines
// the channels per cell by precision.
func combineCells(gc, sec [numCells][3]float64) (g, se [numCells]float64, ok bool) {
	var mean [3]float64
	for k := range gc {
		for c := 0; c < 3; c++ {
			mean[c] += gc[k][c] / numCells
		}
	}
	for k := range gc {
		var w, s float64
		for c := 0; c < 3; c++ {
			if !(math.Abs(mean[c]) > 0) {
				continue
			}
			ec := sec[k][c] / math.Abs(mean[c])
			wc := 1 / (ec*ec + 1e-30)
			w += wc
			s += wc * gc[k][c] / mean[c]
		}
		if !(w > 0) || math.IsNaN(s) {
			return g, se, false
		}
		g[k], se[k] = s/w, math.Sqrt(1/w)
	}
	return g, se, true
}
