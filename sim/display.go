package sim

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/glintdev/glint/flashmark"
)

// DisplayConfig describes the simulated kiosk screen.
type DisplayConfig struct {
	// RefreshHz is the vsync rate (default 60).
	RefreshHz float64
	// LatencyFrames is how many refreshes pass between Show and the
	// presentation: 1 means the next vsync (compositor + panel, 1–3 on real
	// kiosks; default 2).
	LatencyFrames int
	// Phase offsets the vsync grid from time 0, so that vsync and camera
	// frames are not artificially aligned.
	Phase time.Duration
}

func (c DisplayConfig) withDefaults() DisplayConfig {
	if c.RefreshHz == 0 {
		c.RefreshHz = 60
	}
	if c.LatencyFrames == 0 {
		c.LatencyFrames = 2
	}
	return c
}

// Display is the simulated screen. It implements flashmark.Display and keeps
// the timeline of what it emitted, which the simulated camera integrates over
// each row's exposure: that is the closed loop.
type Display struct {
	cfg    DisplayConfig
	clock  Clock
	period time.Duration

	mu   sync.Mutex
	segs []segment // presentation-ordered colour changes
}

// segment: from at on, the panel scans out lin (linear RGB, 0..1 of white).
type segment struct {
	at  time.Duration
	rgb flashmark.RGB
	lin [3]float64
}

// NewDisplay makes a screen showing initial since long before the clock's
// current time.
func NewDisplay(cfg DisplayConfig, clock Clock, initial flashmark.RGB) (*Display, error) {
	cfg = cfg.withDefaults()
	if cfg.RefreshHz < 1 || cfg.RefreshHz > 1000 {
		return nil, fmt.Errorf("sim display: refresh %.1f Hz out of range", cfg.RefreshHz)
	}
	if cfg.LatencyFrames < 1 || cfg.LatencyFrames > 10 {
		return nil, fmt.Errorf("sim display: latency %d frames out of range 1..10", cfg.LatencyFrames)
	}
	d := &Display{cfg: cfg, clock: clock, period: time.Duration(float64(time.Second) / cfg.RefreshHz)}
	d.segs = []segment{{at: -1 << 62, rgb: initial, lin: linearOf(initial)}}
	return d, nil
}

func linearOf(c flashmark.RGB) [3]float64 {
	return [3]float64{float64(srgbToLinear[c.R]), float64(srgbToLinear[c.G]), float64(srgbToLinear[c.B])}
}

// Show schedules c for the vsync LatencyFrames refreshes ahead and returns
// that presentation time without blocking (it lies in the future).
func (d *Display) Show(ctx context.Context, c flashmark.RGB) (flashmark.Presentation, error) {
	if err := ctx.Err(); err != nil {
		return flashmark.Presentation{}, err
	}
	now := d.clock.Now()
	// Next vsync strictly after now, then LatencyFrames-1 more.
	k := (now-d.cfg.Phase)/d.period + 1
	at := d.cfg.Phase + (k+time.Duration(d.cfg.LatencyFrames-1))*d.period
	d.mu.Lock()
	defer d.mu.Unlock()
	// A later request never overtakes an earlier one.
	if last := d.segs[len(d.segs)-1].at; at < last {
		at = last
	}
	d.segs = append(d.segs, segment{at: at, rgb: c, lin: linearOf(c)})
	d.prune(now)
	return flashmark.Presentation{Color: c, Requested: now, Presented: at}, nil
}

// prune drops segments that ended more than a second ago, so a long demo
// does not grow the timeline without bound.
func (d *Display) prune(now time.Duration) {
	i := 0
	for i+1 < len(d.segs) && d.segs[i+1].at < now-time.Second {
		i++
	}
	if i > 0 {
		d.segs = append(d.segs[:0], d.segs[i:]...)
	}
}

// ColorAt returns the colour whose scan-out had started at t.
func (d *Display) ColorAt(t time.Duration) flashmark.RGB {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.segs[0].rgb
	for _, s := range d.segs {
		if s.at <= t {
			c = s.rgb
		}
	}
	return c
}

// MeanEmission is the panel's mean linear RGB emission (1 = full white)
// over [t0, t1]. A new colour reaches the panel's area linearly during
// one refresh (top-to-bottom scan-out), which is what a face lit by the
// whole screen sees.
func (d *Display) MeanEmission(t0, t1 time.Duration) [3]float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return meanEmission(d.segs, d.period, t0, t1)
}

func meanEmission(segs []segment, period, t0, t1 time.Duration) [3]float64 {
	out := segs[0].lin
	span := float64(t1 - t0)
	p := float64(period)
	for i := 1; i < len(segs); i++ {
		s := segs[i]
		var f float64 // mean of the ramp over [t0, t1]
		if span <= 0 {
			f = clamp01(float64(t0-s.at) / p)
		} else {
			f = (rampIntegral(float64(t1-s.at), p) - rampIntegral(float64(t0-s.at), p)) / span
		}
		if f == 0 {
			continue
		}
		prev := segs[i-1].lin
		for c := range out {
			out[c] += (s.lin[c] - prev[c]) * f
		}
	}
	return out
}

// rampIntegral is ∫ clamp(τ/p, 0, 1) dτ from -∞ to x.
func rampIntegral(x, p float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x < p:
		return x * x / (2 * p)
	}
	return p/2 + (x - p)
}

var _ flashmark.Display = (*Display)(nil)

// ShowAt is Show as if called at time at: a driver on a virtual clock
// schedules a whole challenge without stepping the clock for each colour.
func (d *Display) ShowAt(at time.Duration, c flashmark.RGB) flashmark.Presentation {
	k := (at-d.cfg.Phase)/d.period + 1
	pt := d.cfg.Phase + (k+time.Duration(d.cfg.LatencyFrames-1))*d.period
	d.mu.Lock()
	defer d.mu.Unlock()
	if last := d.segs[len(d.segs)-1].at; pt < last {
		pt = last
	}
	d.segs = append(d.segs, segment{at: pt, rgb: c, lin: linearOf(c)})
	return flashmark.Presentation{Color: c, Requested: at, Presented: pt}
}
