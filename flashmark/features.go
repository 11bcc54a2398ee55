package flashmark

import (
	"math"
	"sort"
	"time"
)

// features are the measured quantities the score is made of.
type features struct {
	frames     int
	lag        float64    // seconds, best over the whole search range
	r          [3]float64 // per-channel correlation at lag
	corr       float64    // mean of r
	corrIn     float64    // best pooled correlation with the lag inside the window
	lagIn      float64    // its lag
	gFace      float64    // face response relative to its ambient level
	gFaceSE    float64
	gBg        float64 // background response, same measure; NaN when not measurable
	bgRatio    float64 // background response over the face's; NaN when not measurable
	bgRatioSE  float64
	shading    float64 // non-planar spread of the cells' responses, relative to their mean
	shadingZ   float64 // the same spread in units of its measurement noise
	curv       float64 // middle column's response over the side columns', relative to the mean
	curvSE     float64
	tmpl       float64 // multiple of faceTemplate in the cells' pattern, beyond a plane
	tmplSE     float64
	tmplMisfit float64 // RMS of what the plane and the template leave, relative to the mean
	texture    float64 // share of the response that follows the face's texture (textureFit)
	textureSE  float64
	clipped    float64 // mean fraction of the face's pixels at full scale
	faceWidth  float64 // face box width over the focal length (measurement.faceWidth)
	registered float64 // fraction of the frames registered to the reference face
	// unexplained is the face-wide colour change the sequence does not
	// explain over what it explains (unexplainedChange); NaN when the fit
	// was degenerate.
	unexplained, unexplainedSE float64
}

// measure runs the lag search and the region fits.
func (m *measurement) measure(win [2]time.Duration) features {
	ft := features{frames: len(m.frames), gBg: math.NaN(), bgRatio: math.NaN(), faceWidth: m.faceWidth}
	for i := range m.frames {
		ft.clipped += m.frames[i].clipped / float64(len(m.frames))
	}
	if len(m.frames) > 0 {
		ft.registered = float64(m.registered) / float64(len(m.frames))
	}
	lo, hi := win[0].Seconds(), win[1].Seconds()
	m.w = nil
	m.searchLag(&ft, lo, hi)
	// Second pass: frames the best fit cannot explain (a blink moves
	// the eyes' colour for 150 ms) are down-weighted, and the lag is
	// searched again with those weights.
	m.w = m.frameWeights(m.faceAt(ft.lag))
	m.searchLag(&ft, lo, hi)
	res := m.faceAt(ft.lag)
	ft.r, ft.corr = res.r, res.mean
	ft.unexplained, ft.unexplainedSE, _ = unexplainedChange(res, m.w)
	return m.measureRest(ft, res)
}

// frameWeights are Tukey's biweights of the frames' residuals from a face
// fit: 1 for frames the model explains, falling to 0 at three times the
// median residual.
func (m *measurement) frameWeights(res lagResult) []float64 {
	n := len(m.frames)
	norm := make([]float64, n)
	for r := 0; r < gridRows; r++ {
		f := res.fits[r]
		for i := 0; i < n; i++ {
			for c := 0; c < 3; c++ {
				if !(f.a[c] > 0) {
					continue
				}
				d := (res.bandV[r][i][c] - f.m[i]*f.a[c] - f.b[c]*res.bandE[r][i][c]) / f.a[c]
				norm[i] += d * d
			}
		}
	}
	s := append([]float64(nil), norm...)
	sort.Float64s(s)
	med := s[n/2]
	w := make([]float64, n)
	for i, v := range norm {
		// norm is squared: compare with (3·median)² = 9·median².
		if u := v / (9 * med); u < 1 && med > 0 {
			w[i] = (1 - u) * (1 - u)
		} else if med == 0 {
			w[i] = 1
		}
	}
	return w
}

func (m *measurement) searchLag(ft *features, lo, hi float64) {
	var lags []float64
	var corrs []float64
	best, bestIn := -1, -1
	for d := lagSearchMin; d <= lagSearchMax; d += lagSearchStep {
		res := m.faceAt(d.Seconds())
		lags = append(lags, res.lag)
		corrs = append(corrs, res.pooled)
		i := len(corrs) - 1
		if best < 0 || res.pooled > corrs[best] {
			best = i
		}
		if res.lag >= lo-1e-9 && res.lag <= hi+1e-9 && (bestIn < 0 || res.pooled > corrs[bestIn]) {
			bestIn = i
		}
	}
	ft.lag = refine(lags, corrs, best)
	if bestIn >= 0 {
		ft.corrIn, ft.lagIn = corrs[bestIn], lags[bestIn]
	} else {
		ft.corrIn, ft.lagIn = -1, math.NaN()
	}
}

// measureRest is measure after the lag search.
func (m *measurement) measureRest(ft features, res lagResult) features {
	// Response strength per cell, face and background, at that lag with
	// each band's ambient multiplier, channel by channel: G_c = β_c/a_c is
	// the screen's irradiance over the ambient irradiance, which does not
	// depend on the surface's colour (albedo cancels).
	n := len(m.frames)
	var cellG, cellSE [numCells][3]float64
	var faceB, faceA, faceVar [3]float64
	// Background, per row band and channel: response, standard error,
	// angle correction (geo 0: band not measured).
	var bandG, bandSE [gridRows][3]float64
	var bandGeo [gridRows]float64
	for r := 0; r < gridRows; r++ {
		mm := res.fits[r].m
		a, b, se := fitFixed(res.bandV[r], res.bandE[r], mm, m.w)
		for c := 0; c < 3; c++ {
			faceA[c] += a[c]
			faceB[c] += b[c]
			faceVar[c] += se[c] * se[c]
		}
		for col := 0; col < gridCols; col++ {
			k := r*gridCols + col
			v := make([][3]float64, n)
			e := make([][3]float64, n)
			for i := range m.frames {
				f := &m.frames[i]
				v[i] = f.cell[k]
				e[i] = m.emission(f.t, f.cellRo[k], ft.lag)
			}
			// Each cell gets its own ambient multiplier: head motion
			// slides features (brows, eyes) across cell borders, which
			// scales a cell's light in all channels at once.
			cf := fitBand(v, e, m.w)
			a, b, se := fitFixed(v, e, cf.m, m.w)
			for c := 0; c < 3; c++ {
				cellG[k][c] = b[c] / a[c]
				cellSE[k][c] = se[c] / math.Abs(a[c])
			}
		}
		// Background band: only when every frame measured it.
		v := make([][3]float64, n)
		e := make([][3]float64, n)
		ok := true
		for i := range m.frames {
			f := &m.frames[i]
			if f.bgW[r] == 0 {
				ok = false
				break
			}
			v[i] = f.bg[r]
			e[i] = m.emission(f.t, f.bgRo[r], ft.lag)
		}
		if ok {
			for i := range m.frames {
				bandGeo[r] += m.frames[i].bgGeo[r] / float64(n)
			}
			// Its own ambient multiplier, as for the cells: the
			// background's texture slides with the camera's or the
			// scene's motion too.
			bf := fitBand(v, e, m.w)
			a, b, se := fitFixed(v, e, bf.m, m.w)
			for c := 0; c < 3; c++ {
				bandG[r][c] = b[c] / a[c]
				bandSE[r][c] = se[c] / math.Abs(a[c])
			}
		}
	}
	// Face response: channels combined by their signal-to-noise ratio.
	var gw, gs, gv float64
	var faceG, faceSE [3]float64
	for c := 0; c < 3; c++ {
		faceG[c] = faceB[c] / faceA[c]
		faceSE[c] = math.Sqrt(faceVar[c]) / math.Abs(faceA[c])
		w := 1 / (faceSE[c]*faceSE[c] + 1e-30)
		gw += w
		gs += w * faceG[c]
	}
	gv = 1 / gw
	ft.gFace, ft.gFaceSE = gs/gw, math.Sqrt(gv)
	topG, topSE := facingCells(cellG, cellSE)
	ft.bgRatio, ft.bgRatioSE, ft.gBg = backgroundRatio(bandG, bandSE, bandGeo, topG, topSE)
	ft.shading, ft.shadingZ = shadingSpread(cellG, cellSE)
	ft.curv, ft.curvSE = curvature(cellG, cellSE)
	ft.tmpl, ft.tmplSE, ft.tmplMisfit = templateFit(cellG, cellSE)
	ft.texture, ft.textureSE = textureFit(m.fineBlocks(ft.lag))
	return ft
}

// facingCells is the mean response, per channel, of the half of the face
// cells that respond most, and its standard error. Those face the screen,
// as the background does: the cheeks and the sides of the forehead turn
// away from it, so the whole face's mean response is lower than that of
// a surface facing the screen at the same depth, which makes a face in
// front of a nearby wall look as flat as a print. On a print or a screen every cell faces the
// same way and the half that responds most differs from the mean only by
// the noise.
func facingCells(cellG, cellSE [numCells][3]float64) (g, se [3]float64) {
	type cell struct {
		k int
		g float64
	}
	cells := make([]cell, 0, numCells)
	for k := range cellG {
		var w, s float64
		for c := 0; c < 3; c++ {
			wc := 1 / (cellSE[k][c]*cellSE[k][c] + 1e-30)
			w += wc
			s += wc * cellG[k][c]
		}
		v := s / w
		if math.IsNaN(v) {
			v = math.Inf(-1)
		}
		cells = append(cells, cell{k, v})
	}
	sort.SliceStable(cells, func(i, j int) bool { return cells[i].g > cells[j].g })
	const half = numCells / 2
	for _, cl := range cells[:half] {
		for c := 0; c < 3; c++ {
			g[c] += cellG[cl.k][c] / half
			se[c] += cellSE[cl.k][c] * cellSE[cl.k][c]
		}
	}
	for c := 0; c < 3; c++ {
		se[c] = math.Sqrt(se[c]) / half
	}
	return g, se
}

// backgroundRatio is the background's response over the face's, each
// row band's strips corrected for their angle off the axis (so that a
// flat surface at the face's depth measures 1), pooled over the row bands
// and channels by precision, with its standard error, and the pooled
// background response itself. Every band and channel is its own estimate
// of the same ratio: pooling the ratios, rather than taking the ratio of
// the bands' summed responses, lets a band whose strips hold something
// that moves or a texture the fit cannot explain (its standard error
// says so) count for little instead of dragging the ratio of sums. NaN
// when no band was measured.
func backgroundRatio(bandG, bandSE [gridRows][3]float64, bandGeo [gridRows]float64, faceG, faceSE [3]float64) (ratio, se, gBg float64) {
	var rw, rs, bs float64
	for r := 0; r < gridRows; r++ {
		geo := bandGeo[r]
		if !(geo > 0) {
			continue
		}
		for c := 0; c < 3; c++ {
			gb, seb := bandG[r][c], bandSE[r][c]
			if !(faceG[c] != 0) || math.IsNaN(gb) || math.IsNaN(seb) || math.IsInf(seb, 0) {
				continue
			}
			q := gb / faceG[c] / geo
			qse := math.Hypot(seb/faceG[c], gb*faceSE[c]/(faceG[c]*faceG[c])) / geo
			w := 1 / (qse*qse + 1e-30)
			rw += w
			rs += w * q
			bs += w * gb
		}
	}
	if !(rw > 0) {
		return math.NaN(), math.NaN(), math.NaN()
	}
	return rs / rw, math.Sqrt(1 / rw), bs / rw
}

// refine places the peak of corrs at i on a parabola through its
// neighbours.
func refine(lags, corrs []float64, i int) float64 {
	if i <= 0 || i >= len(corrs)-1 {
		return lags[i]
	}
	a, b, c := corrs[i-1], corrs[i], corrs[i+1]
	den := a - 2*b + c
	if !(den < 0) {
		return lags[i]
	}
	off := 0.5 * (a - c) / den
	return lags[i] + off*(lags[i+1]-lags[i])
}

// shadingSpread normalises each channel's cell responses by their mean,
// combines the channels by precision, fits a plane g = p0 + p1·u + p2·v to
// the cells (u, v: cell centres in face-box units) and returns the
// residual's RMS (the responses are relative to their mean, so this is a
// fraction), and the same RMS in units of the cells' measurement noise. A
// flat surface lit by a distant screen responds as a smooth gradient,
// which the plane absorbs; a face's relief (nose, eye sockets, cheeks
// turning away) does not fit a plane.
func shadingSpread(gc, sec [numCells][3]float64) (rel, z float64) {
	g, se, ok := combineCells(gc, sec)
	if !ok {
		return 0, 0
	}
	// The plane, unweighted: every cell's shape counts alike.
	x := make([][]float64, numCells)
	w := make([]float64, numCells)
	var gm, noise float64
	for k := range x {
		r := cellRegressors(k)
		x[k], w[k] = r[:3], 1
		gm += g[k] / numCells
		noise += se[k] * se[k]
	}
	f, ok := fitLinear(x, g[:], w)
	if !ok || !(math.Abs(gm) > 0) {
		return 0, 0
	}
	rms := math.Sqrt(f.chi2) // residual RMS over the degrees of freedom
	rel = rms / math.Abs(gm)
	if noise > 0 {
		z = rms / math.Sqrt(noise/numCells)
	}
	if math.IsNaN(rel) || math.IsInf(rel, 0) {
		rel = 0
	}
	if math.IsNaN(z) || math.IsInf(z, 0) {
		z = 0
	}
	return rel, z
}

// curvature is how much more the middle column of cells (nose, mouth)
// responds than the two side columns (cheeks), relative to the mean
// response: a face's cheeks turn away from the screen, a flat or slightly
// bent surface's do not. Comparing the middle with the mean of both sides
// cancels any left-right gradient (a tilted print). Channels are combined
// per cell as in shadingSpread.
func curvature(gc, sec [numCells][3]float64) (curv, se float64) {
	g, e, ok := combineCells(gc, sec)
	if !ok {
		return 0, math.Inf(1)
	}
	var w, s float64
	for r := 0; r < gridRows; r++ {
		l, m, rt := r*gridCols, r*gridCols+1, r*gridCols+2
		d := g[m] - (g[l]+g[rt])/2
		v := e[m]*e[m] + (e[l]*e[l]+e[rt]*e[rt])/4
		wr := 1 / (v + 1e-30)
		w += wr
		s += wr * d
	}
	return s / w, math.Sqrt(1 / w)
}

// solve3 solves a 3x3 linear system by Cramer's rule.
func solve3(a [3][3]float64, b [3]float64) ([3]float64, bool) {
	det := func(m [3][3]float64) float64 {
		return m[0][0]*(m[1][1]*m[2][2]-m[1][2]*m[2][1]) -
			m[0][1]*(m[1][0]*m[2][2]-m[1][2]*m[2][0]) +
			m[0][2]*(m[1][0]*m[2][1]-m[1][1]*m[2][0])
	}
	d := det(a)
	if !(math.Abs(d) > 1e-12) {
		return [3]float64{}, false
	}
	var x [3]float64
	for i := 0; i < 3; i++ {
		m := a
		for r := 0; r < 3; r++ {
			m[r][i] = b[r]
		}
		x[i] = det(m) / d
	}
	return x, true
}
