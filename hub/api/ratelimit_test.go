package api

import (
	"fmt"
	"testing"
	"time"
)

// TestAddrLimiterForgets: the table stays bounded; addresses whose bucket
// has refilled are dropped when it is full, busy ones are kept.
func TestAddrLimiterForgets(t *testing.T) {
	now := time.Unix(0, 0)
	l := newAddrLimiter(2, func() time.Time { return now })
	for i := range maxTrackedAddrs {
		l.allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	now = now.Add(time.Minute) // every bucket has refilled
	l.allow("busy")
	l.allow("busy")
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d addresses tracked after the refill, want only the new one", n)
	}
	if ok, wait := l.allow("busy"); ok || wait != 30*time.Second {
		t.Fatalf("third request: ok %v wait %v, want refused for 30 s", ok, wait)
	}
}
