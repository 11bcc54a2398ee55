package capture

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestMonotonicClockWaitUntil(t *testing.T) {
	var c MonotonicClock
	target := c.Now() + 5*time.Millisecond
	if err := c.WaitUntil(context.Background(), target); err != nil {
		t.Fatal(err)
	}
	if now := c.Now(); now < target {
		t.Fatalf("woke at %v, before %v", now, target)
	}
	// A time already passed returns at once, unless ctx is done.
	if err := c.WaitUntil(context.Background(), target); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.WaitUntil(ctx, c.Now()+time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	if err := c.WaitUntil(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait for the past: %v", err)
	}
}
