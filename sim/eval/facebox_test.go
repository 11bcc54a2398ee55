package eval

import (
	"image"
	"testing"

	"github.com/glintdev/glint/flashmark"
)

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
