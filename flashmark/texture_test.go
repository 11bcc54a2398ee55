package flashmark

import (
	"math"
	"math/rand/v2"
	"testing"
)

// topLit is a face's ambient light over its blocks: brighter at the brow.
func topLit(u, v float64) float64 { return 0.5 - 0.3*v }

// textureBlocks lays out the fine grid with an ambient level per block
// (a face's texture over the smooth light amb) and a response made by
// resp.
func textureBlocks(rng *rand.Rand, amb func(u, v float64) float64, resp func(a, u, v float64) float64) []blockResponse {
	var out []blockResponse
	for j := 0; j < numFine; j++ {
		u := (float64(j%fineCols)+0.5)/fineCols - 0.5
		v := (float64(j/fineCols)+0.5)/fineRows - 0.5
		a := amb(u, v) * (0.6 + 0.8*rng.Float64()) // brows, eyes, lips, skin
		const se = 0.002
		b := resp(a, u, v) + se*rng.NormFloat64()
		out = append(out, blockResponse{u: u, v: v, a: a, b: b, se: se, valid: true})
	}
	return out
}

func TestTextureFit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Skin: the response is the ambient level times a smooth factor.
	skin := textureBlocks(rng, topLit, func(a, u, v float64) float64 { return a * (0.1 + 0.03*v) })
	share, se := textureFit(skin)
	if math.Abs(share-1) > 0.1 || !(se < 0.1) {
		t.Errorf("skin: share %.3f ± %.3f, want about 1", share, se)
	}
	// Skin 30 cm from the screen: the relief's shading varies the
	// response threefold from brow to chin, and the brow, lit more by
	// the room, is where the screen's light falls least. A multiple of
	// the ambient level plus a smooth surface read 0.87 here.
	near := textureBlocks(rng, topLit, func(a, u, v float64) float64 { return a * 0.1 * (1 + 1.2*v - 0.6*u) })
	if share, se = textureFit(near); math.Abs(share-1) > 0.05 {
		t.Errorf("close skin, strong shading: share %.3f ± %.3f, want about 1", share, se)
	}
	// Glass: a smooth glare, whatever the picture shows.
	glass := textureBlocks(rng, topLit, func(a, u, v float64) float64 { return 0.05 + 0.02*u - 0.01*v })
	share, se = textureFit(glass)
	if math.Abs(share) > 0.1 || !(se < 0.1) {
		t.Errorf("glass: share %.3f ± %.3f, want about 0", share, se)
	}
	// Glass close to the camera: the kiosk screen's glare is a lobe in
	// the middle of the face, where the picture is brighter than at the
	// hairline. A plane cannot follow the lobe, and what it leaves
	// followed the picture's brightness (share 1.4 here).
	centreBright := func(u, v float64) float64 { return 0.6 - 1.2*(u*u+v*v) }
	lobe := textureBlocks(rng, centreBright, func(a, u, v float64) float64 {
		return 0.05 * math.Exp(-(u*u+v*v)/(2*0.25*0.25))
	})
	if share, se = textureFit(lobe); math.Abs(share) > 0.15 {
		t.Errorf("glare lobe: share %.3f ± %.3f, want about 0", share, se)
	}
	// Half and half.
	mixed := textureBlocks(rng, topLit, func(a, u, v float64) float64 { return 0.05*a/0.5 + 0.05 })
	if share, _ = textureFit(mixed); math.Abs(share-0.5) > 0.1 {
		t.Errorf("half glare: share %.3f, want about 0.5", share)
	}
	// Not measurable: too few blocks, no response.
	few := append([]blockResponse(nil), skin...)
	for i := minTextureBlocks - 1; i < len(few); i++ {
		few[i].valid = false
	}
	if share, se = textureFit(few); !math.IsNaN(share) || !math.IsNaN(se) {
		t.Errorf("%d blocks: %v ± %v, want NaN", minTextureBlocks-1, share, se)
	}
	dark := textureBlocks(rng, topLit, func(a, u, v float64) float64 { return -0.01 })
	if share, _ = textureFit(dark); !math.IsNaN(share) {
		t.Errorf("negative response: share %v, want NaN", share)
	}
}

func TestFitLinear(t *testing.T) {
	// y = 2 + 3x exactly: the fit finds it with no residual.
	var x [][]float64
	var y, w []float64
	for i := 0; i < 6; i++ {
		x = append(x, []float64{1, float64(i)})
		y = append(y, 2+3*float64(i))
		w = append(w, 1)
	}
	f, ok := fitLinear(x, y, w)
	if !ok || math.Abs(f.p[0]-2) > 1e-9 || math.Abs(f.p[1]-3) > 1e-9 || f.chi2 > 1e-18 {
		t.Errorf("fit %+v ok %v, want p = [2 3], χ² 0", f, ok)
	}
	if _, ok := fitLinear(x[:2], y[:2], w[:2]); ok {
		t.Error("two rows for two coefficients: want no fit")
	}
	for i := range x {
		x[i][1] = 1 // collinear
	}
	if _, ok := fitLinear(x, y, w); ok {
		t.Error("collinear regressors fitted")
	}
}
