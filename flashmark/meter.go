package flashmark

import (
	"fmt"
	"image"
	"time"

	"github.com/glintdev/glint/capture"
)

// Face-priority exposure. A camera's auto exposure meters the middle of the
// frame; a fair or shiny face under bright light can sit at full scale,
// and then the flash has no headroom: its reflection clips and the cells
// lose the response being measured. Before the challenge the exposure is
// metered on the face itself and lowered (never raised: more exposure is
// more motion blur) until the face's highlights leave room for the flash.

// HighlightTarget is the face highlight (linear light, 0..1) that metering
// aims for: the flash adds up to about a fifth on top at kiosk distance, so
// 0.7 keeps the face's bright skin below full scale during the challenge.
const HighlightTarget = 0.7

// highlightQuantile is the fraction of the face ellipse's pixels at or
// below the highlight: specular glints on a forehead or nose tip may clip,
// skin should not.
const highlightQuantile = 0.98

// FaceMeter is one reading of the face's brightness.
type FaceMeter struct {
	// Highlight is the highlightQuantile of the pixels' brightest channel,
	// in linear light (1 = full scale).
	Highlight float64
	// Clipped is the fraction of the face's pixels with a channel at full
	// scale.
	Clipped float64
}

// MeterFace reads the face ellipse inside box of frame f.
func MeterFace(f *capture.Frame, box image.Rectangle) (FaceMeter, error) {
	box = box.Intersect(image.Rect(0, 0, f.Width, f.Height))
	if box.Dx() < 2*gridCols || box.Dy() < 2*gridRows {
		return FaceMeter{}, fmt.Errorf("%w: face box %v too small to meter", ErrAnalysis, box)
	}
	rgb, err := f.RGB(nil)
	if err != nil {
		return FaceMeter{}, fmt.Errorf("%w: meter frame %d: %v", ErrAnalysis, f.Seq, err)
	}
	var hist [256]int
	n := 0
	for y := box.Min.Y; y < box.Max.Y; y++ {
		x0, x1 := ellipseSpan(box, box, y)
		for x := x0; x < x1; x++ {
			o := (y*f.Width + x) * 3
			hist[max(rgb[o], rgb[o+1], rgb[o+2])]++
			n++
		}
	}
	if n == 0 {
		return FaceMeter{}, fmt.Errorf("%w: face box %v has no pixels to meter", ErrAnalysis, box)
	}
	m := FaceMeter{Clipped: float64(hist[255]) / float64(n)}
	below, want := 0, highlightQuantile*float64(n)
	for v, k := range hist {
		below += k
		if float64(below) >= want {
			m.Highlight = srgbLinear[v]
			break
		}
	}
	return m, nil
}

// HeadroomExposure returns the exposure that brings the face's highlight
// down to HighlightTarget, and whether that is a change. It only ever
// shortens the exposure. A clipped highlight only says the face is at
// least that bright, so metering repeats on the next frame until the face
// is below the target.
func HeadroomExposure(current time.Duration, m FaceMeter) (time.Duration, bool) {
	if current <= 0 || m.Highlight <= HighlightTarget {
		return current, false
	}
	next := time.Duration(float64(current) * HighlightTarget / m.Highlight)
	if next >= current {
		return current, false
	}
	return next, true
}

// MeterRounds is how many readings FaceExposure takes at most.
const MeterRounds = 3

// ExposureUnit is the unit of capture.Controls.SetExposure (V4L2's
// exposure_time_absolute).
const ExposureUnit = 100 * time.Microsecond

// FaceExposure shortens a locked exposure until the face has headroom for
// the flash: it meters the face that next returns, sets the shorter
// exposure through set (in ExposureUnit), and meters again, at most
// MeterRounds times. next must return a frame taken after the previous
// setting took effect, and an empty box when it saw no face (metering
// stops there). It returns the exposure in force.
func FaceExposure(current time.Duration, set func(units int32) error, next func() (*capture.Frame, image.Rectangle, error)) (time.Duration, error) {
	for range MeterRounds {
		f, box, err := next()
		if err != nil {
			return current, err
		}
		if box.Empty() {
			return current, nil
		}
		m, err := MeterFace(f, box)
		if err != nil {
			return current, err
		}
		e, change := HeadroomExposure(current, m)
		if !change {
			return current, nil
		}
		units := max(1, int32(e/ExposureUnit))
		if err := set(units); err != nil {
			return current, fmt.Errorf("set exposure %v: %w", e, err)
		}
		current = time.Duration(units) * ExposureUnit
	}
	return current, nil
}
