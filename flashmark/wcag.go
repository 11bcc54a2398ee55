package flashmark

import (
	"fmt"
	"math"
	"time"
)

// Photosensitive safety: an implementation of WCAG 2.2 success criterion
// 2.3.1 (Three Flashes or Below Threshold) for a full-screen colour sequence.
//
// The kiosk flash fills the screen, far more than 25% of any 10° visual field,
// so the area exemption never applies: the sequence passes only if no one-second
// window holds more than three general flashes and no more than three red
// flashes. Definitions, from WCAG 2.2 ("general flash and red flash
// thresholds", "relative luminance") and its Understanding document:
//
//   - relative luminance L = 0.2126 R + 0.7152 G + 0.0722 B on linearised sRGB
//     (c ≤ 0.04045 ? c/12.92 : ((c+0.055)/1.055)^2.4);
//   - a general transition is a change of L by 0.1 or more (10% of the maximum
//     relative luminance) where the darker side is below 0.8; a general flash
//     is a pair of opposing transitions (up then down, or down then up);
//   - a saturated red is a colour with R/(R+G+B) ≥ 0.8 (linear values); a red
//     transition is a change of the red measure max(0, (R−G−B)·320) by more
//     than 20 involving a saturated red; a red flash is a pair of opposing red
//     transitions.
//
// Changes accumulate: a ramp over several steps in one direction counts as one
// transition once its total reaches the threshold, so slicing a flash into
// small steps does not hide it. Flashes in a window are counted as
// transitions / 2 (each flash is a pair), the usual reading of the criterion
// by automated flash analysers.

// MaxFlashesPerSecond is WCAG 2.3.1's limit.
const MaxFlashesPerSecond = 3

// RGB is an 8-bit sRGB colour as the screen shows it.
type RGB struct{ R, G, B uint8 }

func (c RGB) String() string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// linear converts one sRGB channel to linear light (WCAG 2.2's formula).
func linear(v uint8) float64 {
	c := float64(v) / 255
	if c <= 0.04045 {
		return c / 12.92
	}
	return math.Pow((c+0.055)/1.055, 2.4)
}

// Linear returns the colour's channels in linear light.
func (c RGB) Linear() (r, g, b float64) { return linear(c.R), linear(c.G), linear(c.B) }

// RelativeLuminance is WCAG's relative luminance, 0 (black) to 1 (white).
func (c RGB) RelativeLuminance() float64 {
	r, g, b := c.Linear()
	return 0.2126*r + 0.7152*g + 0.0722*b
}

// SaturatedRed reports whether WCAG counts the colour as a saturated red.
func (c RGB) SaturatedRed() bool {
	r, g, b := c.Linear()
	sum := r + g + b
	return sum > 0 && r/sum >= 0.8
}

// redMeasure is the red-flash measure; zero for colours that are not a
// saturated red, so that only transitions involving one count.
func (c RGB) redMeasure() float64 {
	if !c.SaturatedRed() {
		return 0
	}
	r, g, b := c.Linear()
	return math.Max(0, (r-g-b)*320)
}

// Step is one colour shown for a duration.
type Step struct {
	Color    RGB
	Duration time.Duration
}

// FlashReport is the checker's verdict on a sequence.
type FlashReport struct {
	// MaxGeneralFlashes and MaxRedFlashes are the most flashes found in any
	// one-second window.
	MaxGeneralFlashes float64
	MaxRedFlashes     float64
	// WorstWindowStart is where the worst window begins.
	WorstWindowStart time.Duration
	// Safe is true when neither count exceeds MaxFlashesPerSecond.
	Safe bool
}

// transition is a threshold-crossing change at a time.
type transition struct {
	at time.Duration
	up bool
}

// CheckFlashes evaluates a sequence, preceded by the colour the screen shows
// before it (the idle screen) and followed by the same colour after it, since
// the change into and out of the sequence can flash too.
func CheckFlashes(idle RGB, steps []Step) FlashReport {
	colours := make([]RGB, 0, len(steps)+2)
	starts := make([]time.Duration, 0, len(steps)+2)
	colours = append(colours, idle)
	starts = append(starts, 0)
	t := time.Duration(0)
	for _, s := range steps {
		colours = append(colours, s.Color)
		starts = append(starts, t)
		t += s.Duration
	}
	colours = append(colours, idle)
	starts = append(starts, t)

	general := findTransitions(colours, starts, func(c RGB) float64 { return c.RelativeLuminance() }, 0.1, true)
	red := findTransitions(colours, starts, RGB.redMeasure, 20, false)
	rep := FlashReport{}
	rep.MaxGeneralFlashes, rep.WorstWindowStart = maxInWindow(general, time.Second)
	var redStart time.Duration
	rep.MaxRedFlashes, redStart = maxInWindow(red, time.Second)
	if rep.MaxRedFlashes > rep.MaxGeneralFlashes {
		rep.WorstWindowStart = redStart
	}
	rep.Safe = rep.MaxGeneralFlashes <= MaxFlashesPerSecond && rep.MaxRedFlashes <= MaxFlashesPerSecond
	return rep
}

// findTransitions walks the measure's extrema. Before the first transition
// it watches the lowest and highest values seen; after one, it follows the
// extremum in that direction (so a ramp accumulates into a single change)
// and registers the opposite transition once the measure has come back by
// threshold. With darkLimit (luminance), the darker side must be below 0.8.
func findTransitions(colours []RGB, starts []time.Duration, measure func(RGB) float64, threshold float64, darkLimit bool) []transition {
	var out []transition
	first := measure(colours[0])
	lo, hi, ref := first, first, first
	dir := 0 // 0 none yet, +1 last transition up, -1 down
	darkOK := func(darker float64) bool { return !darkLimit || darker < 0.8 }
	add := func(i int, up bool) {
		out = append(out, transition{at: starts[i], up: up})
	}
	for i := 1; i < len(colours); i++ {
		v := measure(colours[i])
		switch dir {
		case 0:
			switch {
			case v-lo >= threshold && darkOK(lo):
				add(i, true)
				dir, ref = 1, v
			case hi-v >= threshold && darkOK(v):
				add(i, false)
				dir, ref = -1, v
			default:
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		case 1:
			if v > ref {
				ref = v
			} else if ref-v >= threshold && darkOK(v) {
				add(i, false)
				dir, ref = -1, v
			}
		case -1:
			if v < ref {
				ref = v
			} else if v-ref >= threshold && darkOK(ref) {
				add(i, true)
				dir, ref = 1, v
			}
		}
	}
	return out
}

// maxInWindow returns the most flashes (transitions / 2) in any window of the
// given length, and where that window starts.
func maxInWindow(ts []transition, window time.Duration) (float64, time.Duration) {
	best, bestStart := 0, time.Duration(0)
	j := 0
	for i := range ts {
		for ts[i].at-ts[j].at >= window {
			j++
		}
		if n := i - j + 1; n > best {
			best, bestStart = n, ts[j].at
		}
	}
	return float64(best) / 2, bestStart
}
