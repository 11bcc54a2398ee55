package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
)

// ErrFull means the outbox cannot take another result (see the package doc's
// full policy). Nothing was stored.
var ErrFull = errors.New("outbox full")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("outbox closed")

// AlarmRatio is the fill level from which the alarm is raised.
const AlarmRatio = 0.8

// Config configures an Outbox.
type Config struct {
	// Path is the database file (created 0600 if missing).
	Path string
	// MaxBytes bounds the stored envelopes' total size. Default 256 MiB
	// (about 250,000 results of 1 KiB: weeks offline for a busy kiosk).
	MaxBytes int64
	// Headroom is the space Admit keeps free for results of sessions that
	// are already running. Default 16 × envelope.MaxSize (1 MiB).
	Headroom int64
	// Registerer receives the outbox metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger

	// noSync disables fsync; only the benchmark that measures the fsync
	// share sets it. Never exported: a glintd outbox always syncs.
	noSync bool
}

// Entry is one queued envelope.
type Entry struct {
	Seq      uint64
	RecordID string
	Envelope []byte
}

// Stats is a snapshot of the queue.
type Stats struct {
	// Depth is the number of entries, Bytes their envelopes' total size.
	Depth int64 `json:"depth"`
	Bytes int64 `json:"bytes"`
	// MaxBytes is the configured bound.
	MaxBytes int64 `json:"max_bytes"`
	// LastSeq is the last seq allocated (0 before the first Put).
	LastSeq uint64 `json:"last_seq"`
	// Alarm is true from AlarmRatio of MaxBytes.
	Alarm bool `json:"alarm"`
	// Full is true when Admit refuses new sessions.
	Full bool `json:"full"`
}

var (
	bucketEntries = []byte("entries")
	bucketMeta    = []byte("meta")
	keyLastSeq    = []byte("last_seq")
	keyBytes      = []byte("bytes")
	keyDepth      = []byte("depth")
)

// Outbox is the durable queue. Its methods are safe for concurrent use;
// bbolt serialises writers.
type Outbox struct {
	cfg    Config
	db     *bolt.DB
	log    *slog.Logger
	notify chan struct{}
	m      metrics

	mu     sync.Mutex // guards st and closed
	st     Stats
	closed bool
}

type metrics struct {
	depth, bytes, maxBytes, alarm prometheus.Gauge
	puts, acks                    prometheus.Counter
	refused                       *prometheus.CounterVec
	putSeconds                    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		depth:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "glint_outbox_depth", Help: "Signed results waiting for the hub's receipt."}),
		bytes:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "glint_outbox_bytes", Help: "Total size of the queued envelopes."}),
		maxBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "glint_outbox_max_bytes", Help: "Configured bound of glint_outbox_bytes."}),
		alarm:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "glint_outbox_alarm", Help: "1 when the outbox is at least 80% full."}),
		puts:     prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_outbox_puts_total", Help: "Results durably queued."}),
		acks:     prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_outbox_acks_total", Help: "Results deleted on the hub's receipt."}),
		refused:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "glint_outbox_refused_total", Help: "Sessions (admit) or results (put) refused because the outbox is full."}, []string{"op"}),
		putSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "glint_outbox_put_seconds", Help: "Put latency including signing and fsync.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
	}
	if reg != nil {
		reg.MustRegister(m.depth, m.bytes, m.maxBytes, m.alarm, m.puts, m.acks, m.refused, m.putSeconds)
	}
	return m
}

// Open opens (creating if needed) the outbox at cfg.Path.
func Open(cfg Config) (*Outbox, error) {
	if cfg.Path == "" {
		return nil, errors.New("outbox: no path")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 256 << 20
	}
	if cfg.Headroom <= 0 {
		cfg.Headroom = 16 * envelope.MaxSize
	}
	if cfg.Headroom >= cfg.MaxBytes {
		return nil, fmt.Errorf("outbox: headroom %d must be below max bytes %d", cfg.Headroom, cfg.MaxBytes)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: cfg.noSync})
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", cfg.Path, err)
	}
	o := &Outbox{cfg: cfg, db: db, log: log, notify: make(chan struct{}, 1), m: newMetrics(cfg.Registerer)}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketEntries); err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		o.st.LastSeq = getU64(meta, keyLastSeq)
		o.st.Bytes = int64(getU64(meta, keyBytes))
		o.st.Depth = int64(getU64(meta, keyDepth))
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: init %s: %w", cfg.Path, err)
	}
	o.st.MaxBytes = cfg.MaxBytes
	o.publishLocked()
	return o, nil
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putU64(b *bolt.Bucket, k []byte, v uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return b.Put(k, buf[:])
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// value layout: 1 byte record-ID length, the ID, then the envelope.
func encodeValue(e Entry) []byte {
	v := make([]byte, 0, 1+len(e.RecordID)+len(e.Envelope))
	v = append(v, byte(len(e.RecordID)))
	v = append(v, e.RecordID...)
	return append(v, e.Envelope...)
}

func decodeValue(seq uint64, v []byte) (Entry, error) {
	if len(v) < 1 || len(v) < 1+int(v[0]) {
		return Entry{}, fmt.Errorf("outbox: entry %d corrupt", seq)
	}
	n := int(v[0])
	env := make([]byte, len(v)-1-n)
	copy(env, v[1+n:])
	return Entry{Seq: seq, RecordID: string(v[1 : 1+n]), Envelope: env}, nil
}

// publishLocked updates derived state and gauges; mu held (or not yet shared).
func (o *Outbox) publishLocked() {
	o.st.Alarm = float64(o.st.Bytes) >= AlarmRatio*float64(o.cfg.MaxBytes)
	o.st.Full = o.cfg.MaxBytes-o.st.Bytes < o.cfg.Headroom
	o.m.depth.Set(float64(o.st.Depth))
	o.m.bytes.Set(float64(o.st.Bytes))
	o.m.maxBytes.Set(float64(o.cfg.MaxBytes))
	if o.st.Alarm {
		o.m.alarm.Set(1)
	} else {
		o.m.alarm.Set(0)
	}
}

// Stats returns a snapshot.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.st
}

// Admit reports whether a new session may start: ErrFull when less than the
// headroom is free.
func (o *Outbox) Admit() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	if o.st.Full {
		o.m.refused.WithLabelValues("admit").Inc()
		return fmt.Errorf("%w: %d of %d bytes used, new sessions refused until the hub catches up", ErrFull, o.st.Bytes, o.cfg.MaxBytes)
	}
	return nil
}

// Notify is signalled (without blocking) after each successful Put.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// Put allocates the next seq, calls build with it (build signs the record
// and returns the entry; it runs inside the write transaction, so it must be
// quick and must not call the outbox), stores the entry and fsyncs. When Put
// returns nil the entry is durable.
func (o *Outbox) Put(build func(seq uint64) (Entry, error)) (Entry, error) {
	start := time.Now()
	var e Entry
	var size int64
	err := o.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		seq := getU64(meta, keyLastSeq) + 1
		var err error
		e, err = build(seq)
		if err != nil {
			return fmt.Errorf("build entry %d: %w", seq, err)
		}
		e.Seq = seq
		if len(e.RecordID) > 255 {
			return fmt.Errorf("record id longer than 255 bytes")
		}
		size = int64(len(e.Envelope))
		used := int64(getU64(meta, keyBytes))
		if used+size > o.cfg.MaxBytes {
			o.m.refused.WithLabelValues("put").Inc()
			return fmt.Errorf("%w: %d + %d bytes exceeds %d", ErrFull, used, size, o.cfg.MaxBytes)
		}
		if err := tx.Bucket(bucketEntries).Put(seqKey(seq), encodeValue(e)); err != nil {
			return err
		}
		if err := putU64(meta, keyLastSeq, seq); err != nil {
			return err
		}
		if err := putU64(meta, keyBytes, uint64(used+size)); err != nil {
			return err
		}
		return putU64(meta, keyDepth, getU64(meta, keyDepth)+1)
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
			return Entry{}, ErrClosed
		}
		return Entry{}, fmt.Errorf("outbox put: %w", err)
	}
	o.mu.Lock()
	o.st.LastSeq = e.Seq
	o.st.Bytes += size
	o.st.Depth++
	o.publishLocked()
	o.mu.Unlock()
	o.m.puts.Inc()
	o.m.putSeconds.Observe(time.Since(start).Seconds())
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return e, nil
}

// PutRecord sets r's seq, signs it with key and queues it: the call glintd
// makes once a session has decided. It returns the entry (seq and record
// ID) once durable.
func (o *Outbox) PutRecord(key *device.Key, r *result.Record) (Entry, error) {
	return o.Put(func(seq uint64) (Entry, error) {
		r.Seq = seq
		env, err := envelope.SignRecord(key, r)
		if err != nil {
			return Entry{}, err
		}
		return Entry{RecordID: r.ID, Envelope: env}, nil
	})
}

// Pending returns up to max entries with seq > after, in seq order.
func (o *Outbox) Pending(after uint64, max int) ([]Entry, error) {
	var out []Entry
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEntries).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			e, err := decodeValue(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("outbox pending: %w", err)
	}
	return out, nil
}

// Ack deletes entry seq if it holds recordID, reporting whether it did. An
// unknown seq (already acknowledged) is not an error: receipts may repeat.
func (o *Outbox) Ack(seq uint64, recordID string) (bool, error) {
	n, err := o.AckMany([]Entry{{Seq: seq, RecordID: recordID}})
	return n == 1, err
}

// AckMany deletes the given entries (Seq and RecordID set) in one
// transaction and returns how many it deleted. Entries already gone are
// skipped; an entry whose record ID differs from the queued one is kept and
// logged (a receipt can only name what the device signed, so this means a
// hub bug, and keeping the entry is the safe side).
func (o *Outbox) AckMany(acks []Entry) (int, error) {
	var size, n int64
	err := o.db.Update(func(tx *bolt.Tx) error {
		size, n = 0, 0
		b := tx.Bucket(bucketEntries)
		for _, a := range acks {
			v := b.Get(seqKey(a.Seq))
			if v == nil {
				continue
			}
			e, err := decodeValue(a.Seq, v)
			if err != nil {
				return err
			}
			if e.RecordID != a.RecordID {
				o.log.Warn("outbox: receipt names another record; entry kept", "seq", a.Seq, "receipt_record", a.RecordID, "queued_record", e.RecordID)
				continue
			}
			if err := b.Delete(seqKey(a.Seq)); err != nil {
				return err
			}
			size += int64(len(e.Envelope))
			n++
		}
		if n == 0 {
			return nil
		}
		meta := tx.Bucket(bucketMeta)
		if err := putU64(meta, keyBytes, getU64(meta, keyBytes)-uint64(size)); err != nil {
			return err
		}
		return putU64(meta, keyDepth, getU64(meta, keyDepth)-uint64(n))
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
			return 0, ErrClosed
		}
		return 0, fmt.Errorf("outbox ack: %w", err)
	}
	if n > 0 {
		o.mu.Lock()
		o.st.Bytes -= size
		o.st.Depth -= n
		o.publishLocked()
		o.mu.Unlock()
		o.m.acks.Add(float64(n))
	}
	return int(n), nil
}

// Close closes the database.
func (o *Outbox) Close() error {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	if err := o.db.Close(); err != nil {
		return fmt.Errorf("outbox close: %w", err)
	}
	return nil
}
