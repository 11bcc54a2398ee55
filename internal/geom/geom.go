// Package geom owns the small pixel-rectangle arithmetic that the session
// runner and the evaluation harness share.
package geom

import "image"

// IoU is the intersection over union of two rectangles: 0 when they do
// not overlap or either is empty.
func IoU(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	i := float64(in.Dx() * in.Dy())
	return i / (float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - i)
}
