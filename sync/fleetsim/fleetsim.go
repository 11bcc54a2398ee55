// Package fleetsim simulates a fleet of glint devices for load and fault
// tests (glintctl fleet-sim, the fault-injection suite, the ingest
// benchmarks): each simulated device has its own Ed25519 key, its own bbolt
// outbox and its own MQTT link, exactly the components glintd runs, and
// publishes real signed records.
package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
	"github.com/glintdev/glint/sync/link"
	"github.com/glintdev/glint/sync/outbox"
)

// Registrar registers a simulated device's public key with the hub.
type Registrar interface {
	Register(ctx context.Context, deviceID, siteID string, key *device.Key) error
}

// Config configures a simulation.
type Config struct {
	// Broker is the MQTT broker URL.
	Broker string
	// Prefix is the topic prefix; default link.DefaultPrefix.
	Prefix string
	// Devices is the number of simulated devices; IDPrefix names them
	// <IDPrefix>-<n>.
	Devices  int
	IDPrefix string
	// Rate is the total results per second across the fleet; Duration how
	// long results are produced. Rate 0 produces nothing (drain only).
	Rate     float64
	Duration time.Duration
	// Preload puts this many results in every outbox before the links
	// start (the "days offline" case).
	Preload int
	// DrainTimeout bounds the wait for every outbox to empty after
	// production stops. Default 60s.
	DrainTimeout time.Duration
	// Dir holds keys and outboxes (<Dir>/<device>/); reused when present,
	// so a killed simulation resumes where it stopped.
	Dir string
	// HubKey is the pinned hub key.
	HubKey *device.Key
	// HubPublic is used when HubKey is nil.
	HubPublic []byte
	// Auth is "token" (the embedded broker's signed tokens) or "none".
	Auth string
	// Register, if set, registers each device before it starts.
	Register Registrar
	// Window and RedeliverAfter tune the links (zero: link defaults).
	Window         int
	RedeliverAfter time.Duration
	// OnTold, if set, is called after each durable Put (the moment a
	// kiosk would be told) from the producing goroutines, concurrently.
	OnTold func(deviceID string, e outbox.Entry)
	Logger *slog.Logger
}

// Report is the outcome of a simulation.
type Report struct {
	Devices   int   `json:"devices"`
	Produced  int64 `json:"produced"`
	Refused   int64 `json:"refused"`
	Receipted int64 `json:"receipted"`
	Pending   int64 `json:"pending"`
	// Published counts publications, Redelivered those repeated after
	// RedeliverAfter without a receipt.
	Published   int64         `json:"published"`
	Redelivered int64         `json:"redelivered"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	// Produce is how long production took, Drain the time after it until
	// every outbox was empty.
	Produce time.Duration `json:"produce_ns"`
	Drain   time.Duration `json:"drain_ns"`
	// Latency from Put returning to the receipt deleting the entry.
	P50, P99, Max time.Duration
	// PutP50 and PutP99 are the device-side sign + enqueue (fsync) costs.
	PutP50, PutP99 time.Duration
}

func (r Report) String() string {
	return fmt.Sprintf("devices=%d produced=%d refused=%d receipted=%d pending=%d published=%d redelivered=%d elapsed=%s produce=%s drain=%s throughput=%.0f/s latency p50=%s p99=%s max=%s put p50=%s p99=%s",
		r.Devices, r.Produced, r.Refused, r.Receipted, r.Pending, r.Published, r.Redelivered, r.Elapsed.Round(time.Millisecond), r.Produce.Round(time.Millisecond), r.Drain.Round(time.Millisecond),
		float64(r.Receipted)/max(r.Elapsed.Seconds(), 1e-9), r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond),
		r.PutP50.Round(time.Microsecond), r.PutP99.Round(time.Microsecond))
}

// Sim is one simulated device.
type Sim struct {
	ID  string
	Key *device.Key
	Box *outbox.Outbox
	lk  *link.Link
}

// OpenDevice opens (or creates) device id's key and outbox under dir.
func OpenDevice(dir, id string) (*Sim, error) {
	d := filepath.Join(dir, id)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, fmt.Errorf("fleetsim: %w", err)
	}
	k, err := device.LoadOrCreateKey(filepath.Join(d, device.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("fleetsim: %w", err)
	}
	ob, err := outbox.Open(outbox.Config{Path: filepath.Join(d, "outbox.db"), MaxBytes: 1 << 30})
	if err != nil {
		return nil, fmt.Errorf("fleetsim: %w", err)
	}
	return &Sim{ID: id, Key: k, Box: ob}, nil
}

// Put signs and queues one synthetic record.
func (s *Sim) Put() (outbox.Entry, error) {
	r, err := result.Synthetic(s.ID, "sim-site", 0, time.Now())
	if err != nil {
		return outbox.Entry{}, err
	}
	return s.Box.PutRecord(s.Key, r)
}

type latencies struct {
	mu   sync.Mutex
	told map[string]time.Time // device/seq → when Put returned
	lat  []time.Duration
	put  []time.Duration
}

func key(dev string, seq uint64) string { return fmt.Sprintf("%s/%d", dev, seq) }

// Run simulates the fleet: register, preload, start the links, produce at
// Rate for Duration, then wait until every outbox is empty (or
// DrainTimeout). It returns the report; an error only for setup failures.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.Devices <= 0 || cfg.Broker == "" || cfg.Dir == "" {
		return Report{}, errors.New("fleetsim: devices, broker and dir are required")
	}
	if cfg.IDPrefix == "" {
		cfg.IDPrefix = "sim"
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 60 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hubPub := cfg.HubPublic
	if cfg.HubKey != nil {
		hubPub = cfg.HubKey.Public()
	}
	lat := &latencies{told: map[string]time.Time{}}
	sims := make([]*Sim, cfg.Devices)
	defer func() {
		for _, s := range sims {
			if s != nil {
				s.Box.Close()
			}
		}
	}()
	for i := range sims {
		s, err := OpenDevice(cfg.Dir, fmt.Sprintf("%s-%d", cfg.IDPrefix, i))
		if err != nil {
			return Report{}, err
		}
		sims[i] = s
		if cfg.Register != nil {
			if err := cfg.Register.Register(ctx, s.ID, "sim-site", s.Key); err != nil {
				return Report{}, fmt.Errorf("fleetsim: register %s: %w", s.ID, err)
			}
		}
	}
	// Preload in parallel: each device fsyncs its own file.
	perr := make(chan error, len(sims))
	for _, s := range sims {
		go func() {
			for j := 0; j < cfg.Preload; j++ {
				e, err := s.Put()
				if err != nil {
					perr <- err
					return
				}
				if cfg.OnTold != nil {
					cfg.OnTold(s.ID, e)
				}
			}
			perr <- nil
		}()
	}
	for range sims {
		if err := <-perr; err != nil {
			return Report{}, fmt.Errorf("fleetsim: preload: %w", err)
		}
	}
	start := time.Now()
	lctx, stopLinks := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() { stopLinks(); wg.Wait() }()
	for _, s := range sims {
		lc := link.Config{Broker: cfg.Broker, DeviceID: s.ID, Prefix: cfg.Prefix, Queue: s.Box, HubKey: hubPub,
			Window: cfg.Window, RedeliverAfter: cfg.RedeliverAfter, MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second,
			Logger: log, Version: "fleet-sim"}
		if cfg.Auth == "token" {
			k, id := s.Key, s.ID
			lc.Username = id
			lc.PasswordFunc = func() string { return link.AuthToken(k, id, time.Now()) }
		}
		dev := s.ID
		lc.OnReceipt = func(rc *envelope.Receipt) {
			now := time.Now()
			lat.mu.Lock()
			for _, it := range rc.Items {
				if t, ok := lat.told[key(dev, it.Seq)]; ok {
					lat.lat = append(lat.lat, now.Sub(t))
					delete(lat.told, key(dev, it.Seq))
				}
			}
			lat.mu.Unlock()
		}
		l, err := link.New(lc)
		if err != nil {
			return Report{}, err
		}
		s.lk = l
		wg.Add(1)
		go func() { defer wg.Done(); l.Run(lctx) }()
	}

	var rep Report
	rep.Devices = cfg.Devices
	var mu sync.Mutex
	if cfg.Rate > 0 && cfg.Duration > 0 {
		per := cfg.Rate / float64(cfg.Devices)
		interval := time.Duration(float64(time.Second) / per)
		pctx, cancel := context.WithTimeout(ctx, cfg.Duration)
		var pwg sync.WaitGroup
		for _, s := range sims {
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				next := time.Now()
				for {
					next = next.Add(interval)
					if d := time.Until(next); d > 0 {
						select {
						case <-pctx.Done():
							return
						case <-time.After(d):
						}
					} else if pctx.Err() != nil {
						return
					}
					t0 := time.Now()
					e, err := s.Put()
					t1 := time.Now()
					mu.Lock()
					if err != nil {
						rep.Refused++
					} else {
						rep.Produced++
					}
					mu.Unlock()
					if err != nil {
						log.Warn("put refused", "device", s.ID, "err", err)
						continue
					}
					lat.mu.Lock()
					lat.told[key(s.ID, e.Seq)] = t1
					lat.put = append(lat.put, t1.Sub(t0))
					lat.mu.Unlock()
					if cfg.OnTold != nil {
						cfg.OnTold(s.ID, e)
					}
				}
			}()
		}
		pwg.Wait()
		cancel()
	}
	rep.Produce = time.Since(start)
	deadline := time.Now().Add(cfg.DrainTimeout)
	for {
		var pending int64
		for _, s := range sims {
			pending += s.Box.Stats().Depth
		}
		rep.Pending = pending
		if pending == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	rep.Elapsed = time.Since(start)
	rep.Drain = rep.Elapsed - rep.Produce
	for _, s := range sims {
		st := s.lk.Status()
		rep.Receipted += int64(st.Receipts)
		rep.Published += int64(st.Published)
		rep.Redelivered += int64(st.Redelivered)
	}
	lat.mu.Lock()
	rep.P50, rep.P99, rep.Max = percentiles(lat.lat)
	rep.PutP50, rep.PutP99, _ = percentiles(lat.put)
	lat.mu.Unlock()
	return rep, nil
}

func percentiles(d []time.Duration) (p50, p99, mx time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)], s[len(s)-1]
}
