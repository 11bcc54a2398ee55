package flashmark

import "math"

// The face's texture in its response. Skin (and paper) reflect the screen
// as they reflect the room, through their albedo: every small block of the
// face responds in proportion to its ambient brightness, times a factor
// that follows the relief's angle to the screen. Brows, eyes and lips are
// as visible in the response as in the picture. A display showing a face
// does not reflect the screen through the picture: its glass reflects the
// same light whatever the pixels show, so its response is a smooth glare
// that carries none of the face's texture.

// minFineFrac is the least fraction of a whole block's pixels inside the
// face ellipse for the block to be measured: corner slivers are mostly
// hair and background.
const minFineFrac = 0.5

// minTextureBlocks is the fewest measured blocks textureFit works with.
const minTextureBlocks = 12

// maxTextureSE is the largest standard error of textureFit's share for
// the texture check to run: beyond it the face shows too little texture
// (at the camera's resolution) to tell a glass's glare from skin, and the
// check scores textureUnmeasuredScore. Live faces inside the operating
// distance measure 0.03–0.16 (seeds 7, 11 and the close-range seed 101,
// 1,100 attempts); a faint glare can read a share of 0.3 ± 0.22
// (docs/liveness.md).
const maxTextureSE = 0.2

// blockResponse is one fine block's ambient level and response to the
// screen, channels summed, with the response's standard error.
type blockResponse struct {
	u, v  float64 // block centre in face-box units (±0.5 at the edges)
	a, b  float64
	se    float64
	valid bool
}

// fineBlocks fits every fine block's frames at lag with its own ambient
// multiplier, as the cells are fitted.
func (m *measurement) fineBlocks(lag float64) []blockResponse {
	n := len(m.frames)
	if n == 0 {
		return nil
	}
	out := make([]blockResponse, 0, numFine)
	v := make([][3]float64, n)
	e := make([][3]float64, n)
	for j := 0; j < numFine; j++ {
		fr, fc := j/fineCols, j%fineCols
		bl := blockResponse{u: (float64(fc)+0.5)/fineCols - 0.5, v: (float64(fr)+0.5)/fineRows - 0.5}
		// The block's least coverage of the ellipse over the frames
		// decides whether it is face at all.
		minW := math.Inf(1)
		for i := range m.frames {
			f := &m.frames[i]
			minW = math.Min(minW, f.fineW[j])
			v[i] = f.fine[j]
			e[i] = m.emission(f.t, f.fineRo[fr], lag)
		}
		if minW >= minCellPixels && minW >= minFineFrac*m.frames[0].fineArea {
			bf := fitBand(v, e, m.w)
			a, b, se := fitFixed(v, e, bf.m, m.w)
			var s2 float64
			for c := 0; c < 3; c++ {
				bl.a += a[c]
				bl.b += b[c]
				s2 += se[c] * se[c]
			}
			bl.se = math.Sqrt(s2)
			bl.valid = bl.a > 0 && bl.se > 0 && !math.IsInf(bl.se, 0) && !math.IsNaN(bl.b)
		}
		out = append(out, bl)
	}
	return out
}

// textureFit fits the blocks' responses as the ambient level times a
// plane in the block position (light reflected through the albedo: the
// ambient level carries the face's texture, the plane the relief's
// shading across the face) plus a smooth quadratic surface (the glare of
// a glass, or anything else the albedo does not modulate), weighted by
// precision, and returns the share of the mean response that the first
// term carries, with its standard error (scaled up by the fit's reduced χ
// when the residuals exceed the noise): about 1 on skin or paper, about 0
// on a display's glass. Skin reflects the screen's light through its
// albedo times the relief's angle to the screen, a product: until session
// 9 the fit had one multiple of the ambient level, and the shading of a
// face 30 cm from the screen leaked into the smooth term (live faces read
// as little as 0.27 at 30 cm; a quadratic shading surface lets close
// displays' glare read up to 0.48, docs/liveness.md). The glare surface
// is quadratic, not a plane, because a glossy glass reflects the kiosk
// screen as a lobe (a bump as wide as the face from 30 cm), and a picture
// is brighter in the face's middle than at its hairline: with a plane,
// the lobe's curvature followed the picture's brightness. NaN when fewer
// than minTextureBlocks blocks were measured or the mean response is not
// positive.
func textureFit(blocks []blockResponse) (share, se float64) {
	var am, bm float64
	var used []blockResponse
	for _, bl := range blocks {
		if bl.valid {
			am += bl.a
			bm += bl.b
			used = append(used, bl)
		}
	}
	if len(used) < minTextureBlocks {
		return math.NaN(), math.NaN()
	}
	am /= float64(len(used))
	bm /= float64(len(used))
	if !(bm > 0) {
		return math.NaN(), math.NaN()
	}
	// In units of the mean ambient level. Columns 0–2: the ambient level
	// times the shading plane's terms; 3–8: the glare surface.
	const terms = 3
	x := make([][]float64, len(used))
	y := make([]float64, len(used))
	w := make([]float64, len(used))
	var meanAlbedo [terms]float64 // the albedo columns' means
	for i, bl := range used {
		u, v := bl.u, bl.v
		row := []float64{bl.a / am, bl.a / am * u, bl.a / am * v, 1, u, v, u * u, v * v, u * v}
		for k := 0; k < terms; k++ {
			meanAlbedo[k] += row[k] / float64(len(used))
		}
		x[i] = row
		y[i] = bl.b / am
		w[i] = am * am / (bl.se * bl.se)
	}
	f, ok := fitLinear(x, y, w)
	if !ok {
		return math.NaN(), math.NaN()
	}
	// share = Σ_k meanAlbedo_k·p_k, over the mean response (bm/am).
	var albedoShare, variance float64
	for k := 0; k < terms; k++ {
		albedoShare += meanAlbedo[k] * f.p[k]
		for l := 0; l < terms; l++ {
			variance += meanAlbedo[k] * f.cov[k][l] * meanAlbedo[l]
		}
	}
	scale := am / bm
	return albedoShare * scale, math.Sqrt(math.Max(0, variance)*math.Max(1, f.chi2)) * scale
}
