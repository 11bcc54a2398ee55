package geom

import (
	"image"
	"math"
	"testing"
)

func TestIoU(t *testing.T) {
	a := image.Rect(0, 0, 10, 10)
	for _, tc := range []struct {
		b    image.Rectangle
		want float64
	}{
		{image.Rect(0, 0, 10, 10), 1},
		{image.Rect(5, 0, 15, 10), 50.0 / 150},
		{image.Rect(20, 20, 30, 30), 0},
		{image.Rectangle{}, 0},
	} {
		if got := IoU(a, tc.b); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("IoU(%v, %v) = %v, want %v", a, tc.b, got, tc.want)
		}
	}
}
