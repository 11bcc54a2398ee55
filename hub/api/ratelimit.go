package api

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// addrLimiter bounds the requests one client address may make to the
// unauthenticated provisioning routes: a token bucket per address, refilled
// at perMinute/60 per second up to perMinute. Claim tokens are random and
// single use, so guessing is hopeless anyway; the limit keeps a misbehaving
// client from loading the store with signature checks and lookups.
type addrLimiter struct {
	perMinute float64
	now       func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxTrackedAddrs bounds the table; past it, full buckets are forgotten.
const maxTrackedAddrs = 10000

func newAddrLimiter(perMinute int, now func() time.Time) *addrLimiter {
	return &addrLimiter{perMinute: float64(perMinute), now: now, buckets: map[string]*bucket{}}
}

// allow takes one token for addr, or says how long until one is there.
func (l *addrLimiter) allow(addr string) (bool, time.Duration) {
	now := l.now()
	rate := l.perMinute / 60 // tokens per second
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[addr]
	if !ok {
		if len(l.buckets) >= maxTrackedAddrs {
			l.forgetFull(now, rate)
		}
		b = &bucket{tokens: l.perMinute, at: now}
		l.buckets[addr] = b
	}
	b.tokens = math.Min(l.perMinute, b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// forgetFull drops the addresses whose bucket has refilled: they carry no
// state worth keeping.
func (l *addrLimiter) forgetFull(now time.Time, rate float64) {
	for a, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*rate >= l.perMinute {
			delete(l.buckets, a)
		}
	}
}

// limit wraps h: over the limit, 429 with Retry-After (whole seconds).
func (l *addrLimiter) limit(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		if ok, wait := l.allow(host); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeCode(w, http.StatusTooManyRequests, "rate_limited", "too many provisioning requests from this address; retry later")
			return
		}
		h(w, r)
	}
}
