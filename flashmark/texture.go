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
// distance measure 0.03–0.14 (seeds 7, 11 and the close-range seed 101,
// 1,100 attempts); a few screens measure 0.2–0.22 with a share of about
// 0.3 (docs/liveness.md).
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

// textureFit fits the blocks' responses with a multiple of their ambient
// levels plus a smooth quadratic surface in the block position (the glare
// of a glass, or anything else the albedo does not modulate), weighted by
// precision, and returns the share of the mean response that the
// albedo-proportional term carries, with its standard error (scaled up by
// the fit's reduced χ when the residuals exceed the noise): about 1 on
// skin or paper, about 0 on a display's glass. The surface is quadratic,
// not a plane, because a glossy glass reflects the kiosk screen as a lobe
// (a bump as wide as the face from 30 cm), and a picture is brighter in
// the face's middle than at its hairline: with a plane, the lobe's
// curvature followed the picture's brightness and close screens measured
// up to 0.8 (docs/liveness.md, session 7). The relief's shading varies
// the blocks too (the room lights the brow, the screen below the chin)
// and pulls the share down where the face shows little texture at the
// camera's resolution; the standard error is then large. NaN when fewer
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
	// In units of the mean ambient level.
	x := make([][]float64, len(used))
	y := make([]float64, len(used))
	w := make([]float64, len(used))
	for i, bl := range used {
		x[i] = []float64{bl.a / am, 1, bl.u, bl.v, bl.u * bl.u, bl.v * bl.v, bl.u * bl.v}
		y[i] = bl.b / am
		w[i] = am * am / (bl.se * bl.se)
	}
	f, ok := fitLinear(x, y, w)
	if !ok {
		return math.NaN(), math.NaN()
	}
	scale := am / bm
	return f.p[0] * scale, math.Sqrt(f.cov[0][0]*math.Max(1, f.chi2)) * scale
}
