package sim

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Clock is the timeline the simulated camera and screen share. The real clock
// paces a live demo; the virtual clock lets an evaluation run many times
// faster than real time while keeping every timestamp consistent.
type Clock interface {
	// Now is the current time on the CLOCK_MONOTONIC-like timeline.
	Now() time.Duration
	// WaitUntil returns once Now() >= t (a virtual clock jumps there).
	WaitUntil(ctx context.Context, t time.Duration) error
}

// RealClock reads CLOCK_MONOTONIC, the clock V4L2 stamps buffers with.
type RealClock struct{}

// Now reads CLOCK_MONOTONIC.
func (RealClock) Now() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// WaitUntil sleeps until t or ctx is done.
func (c RealClock) WaitUntil(ctx context.Context, t time.Duration) error {
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

// VirtualClock is a manually advanced clock: WaitUntil jumps forward
// instead of sleeping. Safe for concurrent use.
type VirtualClock struct {
	mu  sync.Mutex
	now time.Duration
}

// NewVirtualClock starts a virtual clock at start.
func NewVirtualClock(start time.Duration) *VirtualClock { return &VirtualClock{now: start} }

// Now returns the virtual time.
func (c *VirtualClock) Now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// WaitUntil advances the clock to t if it is behind.
func (c *VirtualClock) WaitUntil(ctx context.Context, t time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(t - c.Now())
	return nil
}

// Advance moves the clock forward by d (never backwards).
func (c *VirtualClock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.now += d
	c.mu.Unlock()
}
