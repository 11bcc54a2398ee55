package flashmark

import "math"

// unexplainedChange is the face-wide colour change that the emitted
// sequence does not explain, as a share of the change it does explain.
//
// Every row band is fitted with a full colour matrix, v(i) = m(i)·a +
// M·(e(i) − ē): the camera's channels overlap in wavelength, so the red
// channel also sees the screen's green, and a channel whose own emission
// hardly changed still follows the others'. What the fit leaves of a live
// face is sensor noise, independent from band to band. A replayed video
// carries the flashes of the session it recorded: the whole face changes
// colour together at the old steps' times, which no matrix of the live
// sequence reproduces. The bands' residuals then agree, and the power of
// their sum exceeds the sum of their powers by that common part; noise
// leaves the two equal.
//
// se is the excess's standard error were the residuals independent, in
// the same units. ok is false when a band's fit is degenerate.
func unexplainedChange(res lagResult, w []float64) (share, se float64, ok bool) {
	n := len(res.bandV[0])
	var resid [gridRows][][3]float64
	signal := make([][3]float64, n)
	for b := 0; b < gridRows; b++ {
		r, s, fitted := colourMatrixFit(res.bandV[b], res.bandE[b], res.fits[b].m, w)
		if !fitted {
			return math.NaN(), math.NaN(), false
		}
		resid[b] = r
		for i := range s {
			for c := 0; c < 3; c++ {
				signal[i][c] += s[i][c]
			}
		}
	}
	var common, separate, explained, nullVar float64
	for c := 0; c < 3; c++ {
		var mean, sw float64
		for i := 0; i < n; i++ {
			var sum, s2, s4 float64
			for b := 0; b < gridRows; b++ {
				r := resid[b][i][c]
				sum += r
				s2 += r * r
				s4 += r * r * r * r
			}
			common += weight(w, i) * sum * sum
			separate += weight(w, i) * s2
			// Var(Σ_{b≠b'} r_b r_b') for independent residuals.
			nullVar += weight(w, i) * weight(w, i) * 2 * (s2*s2 - s4)
			mean += weight(w, i) * signal[i][c]
			sw += weight(w, i)
		}
		mean /= sw
		for i := 0; i < n; i++ {
			d := signal[i][c] - mean
			explained += weight(w, i) * d * d
		}
	}
	if !(explained > 0) {
		return math.NaN(), math.NaN(), false
	}
	return (common - separate) / explained, math.Sqrt(nullVar) / explained, true
}

// colourMatrixFit fits v_c(i) ≈ a_c·m(i) + Σ_k M_ck·(e_k(i) − ē_k) per
// channel c, with m given and the frames weighted by w (nil: alike), and
// returns the residuals and the fitted screen part M·(e − ē). The
// palette's colours share one luminance, so the centred emissions nearly
// lie in a plane; a ridge of a millionth of their power keeps M defined
// without moving the fit.
func colourMatrixFit(v, e [][3]float64, m, w []float64) (resid, signal [][3]float64, ok bool) {
	n := len(v)
	var mean [3]float64
	var sw float64
	for i := 0; i < n; i++ {
		for k := 0; k < 3; k++ {
			mean[k] += weight(w, i) * e[i][k]
		}
		sw += weight(w, i)
	}
	if !(sw > 0) {
		return nil, nil, false
	}
	var power float64
	x := make([][]float64, n+3)
	rowW := make([]float64, n+3)
	for i := 0; i < n; i++ {
		x[i] = []float64{m[i], e[i][0] - mean[0]/sw, e[i][1] - mean[1]/sw, e[i][2] - mean[2]/sw}
		rowW[i] = weight(w, i)
		for k := 1; k < 4; k++ {
			power += rowW[i] * x[i][k] * x[i][k]
		}
	}
	ridge := math.Sqrt(1e-6 * power)
	for k := 0; k < 3; k++ {
		x[n+k] = make([]float64, 4)
		x[n+k][1+k] = ridge
		rowW[n+k] = 1
	}
	resid, signal = make([][3]float64, n), make([][3]float64, n)
	y := make([]float64, n+3)
	for c := 0; c < 3; c++ {
		for i := 0; i < n; i++ {
			y[i] = v[i][c]
		}
		f, fitted := fitLinear(x, y, rowW)
		if !fitted {
			return nil, nil, false
		}
		for i := 0; i < n; i++ {
			s := f.p[1]*x[i][1] + f.p[2]*x[i][2] + f.p[3]*x[i][3]
			signal[i][c] = s
			resid[i][c] = v[i][c] - f.p[0]*m[i] - s
		}
	}
	return resid, signal, true
}
