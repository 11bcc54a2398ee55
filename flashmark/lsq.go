package flashmark

import "math"

// invert inverts a square matrix by Gauss-Jordan elimination with partial
// pivoting; a stays unchanged. ok is false for a singular matrix.
func invert(a [][]float64) (inv [][]float64, ok bool) {
	n := len(a)
	w := make([][]float64, n)
	inv = make([][]float64, n)
	for i := range a {
		w[i] = append([]float64(nil), a[i]...)
		inv[i] = make([]float64, n)
		inv[i][i] = 1
	}
	for col := 0; col < n; col++ {
		piv := col
		for r := col + 1; r < n; r++ {
			if math.Abs(w[r][col]) > math.Abs(w[piv][col]) {
				piv = r
			}
		}
		if !(math.Abs(w[piv][col]) > 1e-12) {
			return nil, false
		}
		w[col], w[piv] = w[piv], w[col]
		inv[col], inv[piv] = inv[piv], inv[col]
		d := w[col][col]
		for j := 0; j < n; j++ {
			w[col][j] /= d
			inv[col][j] /= d
		}
		for r := 0; r < n; r++ {
			if r == col {
				continue
			}
			f := w[r][col]
			for j := 0; j < n; j++ {
				w[r][j] -= f * w[col][j]
				inv[r][j] -= f * inv[col][j]
			}
		}
	}
	return inv, true
}

// linearFit is a weighted least-squares fit.
type linearFit struct {
	p   []float64   // coefficients
	cov [][]float64 // (XᵀWX)⁻¹: their covariance when the weights are 1/σ²
	// chi2 is the weighted residual sum of squares over the degrees of
	// freedom (the reduced χ² when the weights are 1/σ²).
	chi2 float64
}

// fitLinear fits y ≈ X·p with weights w (rows of X are the regressors).
// ok is false when the regressors are degenerate or there are no more
// rows than coefficients.
func fitLinear(x [][]float64, y, w []float64) (f linearFit, ok bool) {
	if len(x) == 0 || len(x) <= len(x[0]) {
		return f, false
	}
	k := len(x[0])
	xtx := make([][]float64, k)
	for i := range xtx {
		xtx[i] = make([]float64, k)
	}
	xty := make([]float64, k)
	for r, row := range x {
		for i := 0; i < k; i++ {
			for j := 0; j < k; j++ {
				xtx[i][j] += w[r] * row[i] * row[j]
			}
			xty[i] += w[r] * row[i] * y[r]
		}
	}
	if f.cov, ok = invert(xtx); !ok {
		return f, false
	}
	f.p = make([]float64, k)
	for i := 0; i < k; i++ {
		for j := 0; j < k; j++ {
			f.p[i] += f.cov[i][j] * xty[j]
		}
	}
	for r, row := range x {
		d := y[r]
		for i, v := range row {
			d -= f.p[i] * v
		}
		f.chi2 += w[r] * d * d
	}
	f.chi2 /= float64(len(x) - k)
	return f, true
}
