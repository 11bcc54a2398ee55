package sim

import (
	"context"
	"sync"
	"time"

	"github.com/glintdev/glint/capture"
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

// RealClock is CLOCK_MONOTONIC, the clock V4L2 stamps buffers with (and
// glintd's live timeline): the simulated camera on it paces frames in real
// time.
type RealClock = capture.MonotonicClock

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
