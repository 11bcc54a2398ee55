package sim

import (
	"context"
	"fmt"
	"image"
	"math"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/flashmark"
)

// Recording is what a challenge run captured.
type Recording struct {
	Frames        []*capture.Frame
	Presentations []flashmark.Presentation
	// Start and End bound the challenge (first request, end of last step).
	Start, End time.Duration
}

// nextFrameDone is when the next frame will have been read out (nominal,
// without jitter).
func (c *Camera) nextFrameDone() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	ro := c.p.Readout
	if c.scene.Virtual {
		ro = 0
	}
	return c.start + time.Duration(c.seq)*c.period() + c.st.Exposure + ro
}

// Drive runs a challenge through the attempt on its (virtual) clock: lead of
// idle screen, the steps, then tail, reading every frame. Each step is
// requested at its planned time. The camera must be open.
func Drive(ctx context.Context, a *Attempt, steps []flashmark.Step, lead, tail time.Duration) (*Recording, error) {
	rec := &Recording{Start: a.Clock.Now() + lead}
	planned := make([]time.Duration, len(steps))
	t := rec.Start
	for i, s := range steps {
		planned[i] = t
		t += s.Duration
	}
	rec.End = t
	next := 0
	for {
		done := a.Camera.nextFrameDone()
		for next < len(steps) && planned[next] <= done {
			rec.Presentations = append(rec.Presentations, a.Display.ShowAt(planned[next], steps[next].Color))
			next++
		}
		f, err := a.Camera.ReadFrame(ctx)
		if err != nil {
			return nil, fmt.Errorf("sim drive: frame %d: %w", len(rec.Frames), err)
		}
		rec.Frames = append(rec.Frames, f)
		if next == len(steps) && f.Timestamp > rec.End+tail {
			return rec, nil
		}
		if len(rec.Frames) > 10000 {
			return nil, fmt.Errorf("sim drive: challenge did not end after 10000 frames")
		}
	}
}

// MeanLinear is the mean linear RGB of a frame region (8-bit sRGB decoded).
func MeanLinear(f *capture.Frame, r image.Rectangle) ([3]float64, error) {
	rgb, err := f.RGB(nil)
	if err != nil {
		return [3]float64{}, err
	}
	r = r.Intersect(image.Rect(0, 0, f.Width, f.Height))
	if r.Empty() {
		return [3]float64{}, fmt.Errorf("sim: region outside the frame")
	}
	var s [3]float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		o := (y*f.Width + r.Min.X) * 3
		for x := r.Min.X; x < r.Max.X; x++ {
			s[0] += float64(srgbToLinear[rgb[o]])
			s[1] += float64(srgbToLinear[rgb[o+1]])
			s[2] += float64(srgbToLinear[rgb[o+2]])
			o += 3
		}
	}
	n := float64(r.Dx() * r.Dy())
	return [3]float64{s[0] / n, s[1] / n, s[2] / n}, nil
}

// ChromaResponse measures, per frame of a recording inside the challenge,
// the face region's mean colour and the colour the screen emitted during
// that region's exposure, both in linear RGB. The emitted colour is what an
// analyser can know: the presented colours weighted by their overlap with
// the exposure window, from the presentation and frame timestamps (not the
// panel's scan-out). exposure and readout are the camera's.
func ChromaResponse(rec *Recording, face image.Rectangle, exposure, readout time.Duration, height int) (measured, emitted [][3]float64, err error) {
	midRow := float64(face.Min.Y+face.Max.Y) / 2 / float64(height)
	for _, f := range rec.Frames {
		// Timestamp is the end of row 0's exposure.
		t := f.Timestamp - exposure/2 + time.Duration(midRow*float64(readout))
		if t < rec.Start || t > rec.End {
			continue
		}
		m, err := MeanLinear(f, face)
		if err != nil {
			return nil, nil, err
		}
		// What the region saw: the presented colours weighted by their
		// overlap with its exposure window (the analyser knows the
		// presentation timestamps, not the panel's scan-out).
		w0, w1 := t-exposure/2, t+exposure/2
		var mix [3]float64
		prev := linearOf(flashmark.IdleColor())
		from := w0
		for _, p := range rec.Presentations {
			if p.Presented <= w0 {
				prev = linearOf(p.Color)
				continue
			}
			if p.Presented >= w1 {
				break
			}
			addScaled(&mix, prev, float64(p.Presented-from)/float64(exposure))
			prev, from = linearOf(p.Color), p.Presented
		}
		addScaled(&mix, prev, float64(w1-from)/float64(exposure))
		shown := mix
		measured = append(measured, m)
		emitted = append(emitted, shown)
	}
	if len(measured) < 3 {
		return nil, nil, fmt.Errorf("sim: only %d frames inside the challenge", len(measured))
	}
	return measured, emitted, nil
}

// Correlation is the mean over the three colour channels of Pearson's r
// between the face's response and the emitted light, per channel: the
// chroma response of docs/sim.md. With an isoluminant challenge it is the
// colour, not the brightness, that carries the signal.
func Correlation(measured, emitted [][3]float64) float64 {
	var sum float64
	for ch := 0; ch < 3; ch++ {
		x := make([]float64, len(measured))
		y := make([]float64, len(measured))
		for i := range measured {
			x[i], y[i] = measured[i][ch], emitted[i][ch]
		}
		sum += pearson(x, y)
	}
	return sum / 3
}

func pearson(x, y []float64) float64 {
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}

func addScaled(dst *[3]float64, c [3]float64, w float64) {
	for k := range dst {
		dst[k] += c[k] * w
	}
}
