package capture

import (
	"context"
	"time"

	"github.com/glintdev/glint/internal/linuxsys"
)

// monotonicNow reads CLOCK_MONOTONIC, the clock V4L2 stamps buffers with, so
// that driver and glint timestamps share one timeline.
func monotonicNow() time.Duration { return linuxsys.Monotonic() }

// MonotonicClock is the live timeline of frames and screen presentations:
// CLOCK_MONOTONIC. The simulator's virtual clock has the same methods, so
// code that paces itself (a challenge player, the simulated camera) takes
// either.
type MonotonicClock struct{}

// Now reads CLOCK_MONOTONIC.
func (MonotonicClock) Now() time.Duration { return monotonicNow() }

// WaitUntil sleeps until the clock reaches t or ctx is done.
func (c MonotonicClock) WaitUntil(ctx context.Context, t time.Duration) error {
	d := t - c.Now()
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}
