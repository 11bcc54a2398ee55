package flashmark

import (
	"image"
	"math"
)

// Face registration. A head sways by a few pixels during a challenge, and
// a detector's box follows it only roughly (it jitters by as much, and
// smoothing it lags). Facial features (brows, eyes, nostrils) sliding
// across the cell borders then change each cell's light by more than the
// flash does: on the simulator, sway of up to 3 px more than doubles the
// cells' measurement error (docs/liveness.md). So every frame's face is
// registered to one reference frame's by its texture, and the cells
// follow the texture to the pixel.

// registerRadius is how far (pixels) around the tracker's box offset the
// registration searches: the smoothed box lags a swaying head by a few
// pixels at most.
const registerRadius = 3

// registerStep subsamples the patch (every 2nd pixel both ways): a face's
// features are larger than two pixels, and it quarters the cost.
const registerStep = 2

// registerMinNCC is the weakest match that moves the cells; below it the
// tracker's box stands (a frame the texture does not resemble, such as one
// with the face turned away or occluded).
const registerMinNCC = 0.6

// facePatch is a reference frame's face texture: luma at every
// registerStep-th pixel of the face box's central part.
type facePatch struct {
	box    image.Rectangle // the reference frame's face box
	inner  image.Rectangle // the sampled region, frame pixels
	luma   []int32         // samples, row-major over inner by registerStep
	mean   float64
	stddev float64
}

// luma8 is a cheap luma of an sRGB pixel (0..1020, integer so that the
// correlation's sums are exact and fast); the correlation is normalised,
// so neither the flash's gain nor the transfer curve matters.
func luma8(rgb []byte, o int) int32 {
	return int32(rgb[o]) + 2*int32(rgb[o+1]) + int32(rgb[o+2])
}

// newFacePatch samples the central part of box (the middle 70% of its
// width and height: eyes, nose, mouth; not the hairline and the cheeks'
// edges, which show the background when the head turns).
func newFacePatch(rgb []byte, w, h int, box image.Rectangle) (*facePatch, bool) {
	mx, my := box.Dx()*15/100, box.Dy()*15/100
	inner := image.Rect(box.Min.X+mx, box.Min.Y+my, box.Max.X-mx, box.Max.Y-my).Intersect(image.Rect(0, 0, w, h))
	if inner.Dx() < 4*registerStep || inner.Dy() < 4*registerStep {
		return nil, false
	}
	p := &facePatch{box: box, inner: inner}
	var s, s2 float64
	for y := inner.Min.Y; y < inner.Max.Y; y += registerStep {
		for x := inner.Min.X; x < inner.Max.X; x += registerStep {
			v := luma8(rgb, (y*w+x)*3)
			p.luma = append(p.luma, v)
			s += float64(v)
			s2 += float64(v) * float64(v)
		}
	}
	n := float64(len(p.luma))
	p.mean = s / n
	p.stddev = math.Sqrt(math.Max(0, s2/n-p.mean*p.mean))
	if p.stddev < 1 {
		return nil, false // no texture to register on
	}
	return p, true
}

// register finds the integer shift of the patch's texture in a frame,
// searching registerRadius around prior (the tracker's box offset from the
// reference box), by normalised cross-correlation, which the flash's
// change of brightness and colour does not move. ok is false when no shift
// inside the frame correlates by registerMinNCC.
func (p *facePatch) register(rgb []byte, w, h int, prior image.Point) (shift image.Point, ok bool) {
	best := -2.0
	n := float64(len(p.luma))
	for dy := prior.Y - registerRadius; dy <= prior.Y+registerRadius; dy++ {
		for dx := prior.X - registerRadius; dx <= prior.X+registerRadius; dx++ {
			r := p.inner.Add(image.Pt(dx, dy))
			if r.Min.X < 0 || r.Min.Y < 0 || r.Max.X > w || r.Max.Y > h {
				continue
			}
			// Integer sums: exact, and at most 1020² per sample.
			var sf, sff, spf int64
			i := 0
			for y := r.Min.Y; y < r.Max.Y; y += registerStep {
				row := rgb[(y*w+r.Min.X)*3 : (y*w+r.Max.X)*3]
				for o := 0; o+2 < len(row); o += 3 * registerStep {
					f := int64(luma8(row, o))
					sf += f
					sff += f * f
					spf += int64(p.luma[i]) * f
					i++
				}
			}
			mf := float64(sf) / n
			vf := float64(sff)/n - mf*mf
			if !(vf > 0) {
				continue
			}
			ncc := (float64(spf)/n - p.mean*mf) / (p.stddev * math.Sqrt(vf))
			if ncc > best {
				best, shift = ncc, image.Pt(dx, dy)
			}
		}
	}
	return shift, best >= registerMinNCC
}
