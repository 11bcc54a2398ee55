package eval

import (
	"image"
	"math"
	"testing"

	"github.com/glintdev/glint/flashmark"
)

func TestBoxIoU(t *testing.T) {
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
		if got := boxIoU(a, tc.b); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("boxIoU(%v, %v) = %v, want %v", a, tc.b, got, tc.want)
		}
	}
}

func TestMedianBoxSkipsFramesWithoutFace(t *testing.T) {
	obs := []flashmark.Observation{
		{Face: image.Rect(10, 10, 50, 60)},
		{},
		{Face: image.Rect(12, 8, 52, 58)},
		{Face: image.Rect(100, 100, 140, 150)}, // one outlier does not move the median
	}
	if got, want := medianBox(obs), image.Rect(12, 10, 52, 60); got != want {
		t.Errorf("medianBox = %v, want %v", got, want)
	}
	if got := medianBox([]flashmark.Observation{{}, {}}); !got.Empty() {
		t.Errorf("medianBox without faces = %v, want empty", got)
	}
}
