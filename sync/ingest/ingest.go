package ingest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
)

// ErrUnknownDevice is returned by Store.DeviceByKID for an unregistered kid.
var ErrUnknownDevice = errors.New("unknown device")

// Device is what ingest needs to know about a registered device.
type Device struct {
	DeviceID string
	// Key is the registered key with its algorithm (EdDSA or ES256); when
	// its Alg is empty, PublicKey (Ed25519) is used.
	Key       device.PublicKey
	PublicKey ed25519.PublicKey
	Revoked   bool
}

// VerifyKey returns the key envelopes of d must verify with.
func (d *Device) VerifyKey() device.PublicKey {
	if d.Key.Alg != "" {
		return d.Key
	}
	return device.Ed25519Public(d.PublicKey)
}

// Item is one verified envelope to store.
type Item struct {
	Record     *result.Record
	Envelope   []byte
	KID        string
	Topic      string
	ReceivedAt time.Time
	// Canonical is whether the payload was the deterministic encoding.
	Canonical bool
}

// Outcome is what the store did with one item.
type Outcome int

// Outcomes.
const (
	// Stored: inserted by this commit.
	Stored Outcome = iota
	// Duplicate: a result with the same ID was already stored.
	Duplicate
	// SeqReused: another record of the device holds this seq; quarantined.
	SeqReused
	// SeqTooOld: seq is more than the reorder window below the newest seq
	// stored for the device, and the ID is unknown; quarantined.
	SeqTooOld
)

func (o Outcome) String() string {
	switch o {
	case Stored:
		return "stored"
	case Duplicate:
		return "duplicate"
	case SeqReused:
		return "seq_reused"
	case SeqTooOld:
		return "seq_too_old"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Quarantined is rejected input kept for inspection.
type Quarantined struct {
	ID         int64     `json:"qid"`
	ReceivedAt time.Time `json:"received_at"`
	Topic      string    `json:"topic"`
	DeviceID   string    `json:"device_id"`
	KID        string    `json:"kid"`
	RecordID   string    `json:"record_id"`
	Reason     string    `json:"reason"`
	Detail     string    `json:"detail"`
	Envelope   []byte    `json:"envelope"`
}

// Store is the hub database as ingest sees it (hub/store implements it).
type Store interface {
	// LookupDevice returns the device owning kid, ErrUnknownDevice if none.
	LookupDevice(ctx context.Context, kid string) (*Device, error)
	// Commit stores items and quarantine rows in one transaction and
	// returns one outcome per item; it returns only once durable.
	Commit(ctx context.Context, items []Item, quarantine []Quarantined, reorderWindow uint64) ([]Outcome, error)
}

// Publisher sends receipts (QoS 1).
type Publisher interface {
	Publish(topic string, payload []byte) error
}

// Config configures an Ingest.
type Config struct {
	Store     Store
	Publisher Publisher
	// HubKey signs receipts.
	HubKey device.Signer
	// Prefix is the topic prefix, default "glint/v1".
	Prefix string
	// BatchSize is the most records per transaction. Default 256.
	BatchSize int
	// BatchWait is how long a batch stays open for more records after its
	// first one. Default 5ms: a lone result is receipted within a few
	// milliseconds, a burst is committed 256 at a time.
	BatchWait time.Duration
	// QueueSize bounds envelopes waiting for Run; Submit blocks beyond it,
	// which pushes back on the broker connection. Default 8192.
	QueueSize int
	// MaxFutureSkew is how far ahead of the hub's clock created_at may be.
	// Default 5m. (Past timestamps are fine: devices are offline for days.)
	MaxFutureSkew time.Duration
	// ReorderWindow: see Store.Commit. Default 4096 (far more than a
	// device's in-flight window times the number of hub replicas).
	ReorderWindow uint64
	// DeviceCacheTTL is how long a registry lookup is reused; revoking a
	// device takes effect within it. Default 5s.
	DeviceCacheTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Registerer receives the ingest metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

type msg struct {
	topic   string
	payload []byte
	at      time.Time
}

// Ingest verifies, stores and receipts envelopes. Submit may be called from
// any goroutine; Run owns the batch.
type Ingest struct {
	cfg Config
	log *slog.Logger
	in  chan msg
	m   metrics

	cacheMu sync.Mutex
	cache   map[string]cached
}

type cached struct {
	d   *Device
	err error
	at  time.Time
}

type metrics struct {
	received, stored, duplicates, receiptErrs prometheus.Counter
	rejected                                  *prometheus.CounterVec
	batchSize, commitSeconds                  prometheus.Histogram
	queue                                     prometheus.GaugeFunc
}

func (in *Ingest) newMetrics(reg prometheus.Registerer) {
	in.m = metrics{
		received:    prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_ingest_received_total", Help: "Envelopes received."}),
		stored:      prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_ingest_stored_total", Help: "Results committed."}),
		duplicates:  prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_ingest_duplicates_total", Help: "Redelivered results already stored (receipted again)."}),
		receiptErrs: prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_ingest_receipt_errors_total", Help: "Receipts that could not be signed or published."}),
		rejected:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "glint_ingest_rejected_total", Help: "Envelopes rejected and quarantined, by reason."}, []string{"reason"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "glint_ingest_batch_size", Help: "Records per commit.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "glint_ingest_commit_seconds", Help: "Batch commit latency.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		queue: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "glint_ingest_queue", Help: "Envelopes waiting for verification."},
			func() float64 { return float64(len(in.in)) }),
	}
	if reg != nil {
		reg.MustRegister(in.m.received, in.m.stored, in.m.duplicates, in.m.receiptErrs, in.m.rejected, in.m.batchSize, in.m.commitSeconds, in.m.queue)
	}
}

// New checks cfg and returns an Ingest ready to Run.
func New(cfg Config) (*Ingest, error) {
	if cfg.Store == nil || cfg.Publisher == nil || cfg.HubKey == nil {
		return nil, errors.New("ingest: store, publisher and hub key are required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "glint/v1"
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 5 * time.Millisecond
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 8192
	}
	if cfg.MaxFutureSkew <= 0 {
		cfg.MaxFutureSkew = 5 * time.Minute
	}
	if cfg.ReorderWindow == 0 {
		cfg.ReorderWindow = 4096
	}
	if cfg.DeviceCacheTTL <= 0 {
		cfg.DeviceCacheTTL = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	in := &Ingest{cfg: cfg, log: log.With("component", "ingest"), in: make(chan msg, cfg.QueueSize), cache: map[string]cached{}}
	in.newMetrics(cfg.Registerer)
	return in, nil
}

// Submit queues one envelope received on topic. It copies payload. It
// blocks while the queue is full (backpressure) until ctx is done.
func (in *Ingest) Submit(ctx context.Context, topic string, payload []byte) error {
	m := msg{topic: topic, payload: append([]byte(nil), payload...), at: in.cfg.Now()}
	select {
	case in.in <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// verdict is a worker's decision about one envelope.
type verdict struct {
	item         *Item
	receiptTopic string
	quarantine   *Quarantined
	// rejected is set for verified envelopes quarantined before the batch
	// (clock skew): they get a "rejected" receipt after the commit.
	rejected *envelope.ReceiptItem
}

// Run processes envelopes until ctx is done: GOMAXPROCS workers verify
// (signature checks dominate the CPU cost), one goroutine batches and
// commits. A batch being assembled when ctx ends is committed first, with
// its receipts.
func (in *Ingest) Run(ctx context.Context) error {
	verified := make(chan verdict, 2*in.cfg.BatchSize)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-in.in:
					verified <- in.verify(ctx, m)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(verified) }()

	b := &batch{}
	var timer *time.Timer
	var timerC <-chan time.Time
	for {
		select {
		case v, ok := <-verified:
			if !ok {
				if b.size() > 0 {
					in.flush(ctx, b)
				}
				return nil
			}
			b.add(v)
			// Take what is already verified without waiting.
		drain:
			for len(b.items) < in.cfg.BatchSize {
				select {
				case v, ok := <-verified:
					if !ok {
						break drain
					}
					b.add(v)
				default:
					break drain
				}
			}
			if len(b.items) >= in.cfg.BatchSize {
				in.flush(ctx, b)
				break
			}
			if b.size() > 0 && timerC == nil {
				timer = time.NewTimer(in.cfg.BatchWait)
				timerC = timer.C
			}
			continue
		case <-timerC:
			in.flush(ctx, b)
		}
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
	}
}

type batch struct {
	items      []Item
	receipts   []string // receipt topic per item
	quarantine []Quarantined
	rejected   []verdict
}

func (b *batch) size() int { return len(b.items) + len(b.quarantine) }

func (b *batch) add(v verdict) {
	if v.item != nil {
		b.items = append(b.items, *v.item)
		b.receipts = append(b.receipts, v.receiptTopic)
	}
	if v.quarantine != nil {
		b.quarantine = append(b.quarantine, *v.quarantine)
	}
	if v.rejected != nil {
		b.rejected = append(b.rejected, v)
	}
}

// topicDevice returns the <device> segment of <prefix>/<device>/result.
func (in *Ingest) topicDevice(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, in.cfg.Prefix+"/")
	if !ok {
		return "", false
	}
	dev, kind, ok := strings.Cut(rest, "/")
	return dev, ok && kind == "result" && dev != ""
}

func (in *Ingest) lookup(ctx context.Context, kid string) (*Device, error) {
	now := in.cfg.Now()
	in.cacheMu.Lock()
	c, ok := in.cache[kid]
	in.cacheMu.Unlock()
	if ok && now.Sub(c.at) < in.cfg.DeviceCacheTTL {
		return c.d, c.err
	}
	d, err := in.cfg.Store.LookupDevice(ctx, kid)
	if err != nil && !errors.Is(err, ErrUnknownDevice) {
		return nil, err // a database problem, not the device's: not cached
	}
	in.cacheMu.Lock()
	if len(in.cache) > 100000 {
		clear(in.cache) // bounded: unknown kids are attacker-chosen
	}
	in.cache[kid] = cached{d: d, err: err, at: now}
	in.cacheMu.Unlock()
	return d, err
}

// verify decides about one envelope; safe for concurrent use.
func (in *Ingest) verify(ctx context.Context, m msg) verdict {
	in.m.received.Inc()
	q := Quarantined{ReceivedAt: m.at, Topic: m.topic, Envelope: m.payload}
	reject := func(reason, detail string) verdict {
		in.m.rejected.WithLabelValues(reason).Inc()
		q.Reason, q.Detail = reason, detail
		if len(q.Envelope) > envelope.MaxSize {
			q.Envelope = q.Envelope[:envelope.MaxSize] // keep evidence, bounded
		}
		in.log.Debug("envelope rejected", "reason", reason, "detail", detail, "topic", m.topic)
		return verdict{quarantine: &q}
	}
	topicDev, ok := in.topicDevice(m.topic)
	q.DeviceID = topicDev
	if !ok {
		return reject("bad_topic", m.topic)
	}
	e, err := envelope.Decode(m.payload)
	if err != nil {
		return reject(envelope.Reason(err), err.Error())
	}
	q.KID = e.KID
	d, err := in.lookup(ctx, e.KID)
	switch {
	case errors.Is(err, ErrUnknownDevice):
		return reject("unknown_device", "kid "+e.KID)
	case err != nil:
		// The registry is unreachable: not the envelope's fault. Keep it
		// out of quarantine; the device redelivers.
		in.m.rejected.WithLabelValues("registry_error").Inc()
		in.log.Error("device registry lookup failed", "err", err)
		return verdict{}
	case d.Revoked:
		return reject("revoked_device", "device "+d.DeviceID)
	}
	if err := e.VerifyKey(d.VerifyKey(), envelope.ContentTypeRecord); err != nil {
		return reject(envelope.Reason(err), err.Error())
	}
	r, err := e.Record()
	if err != nil {
		return reject(envelope.Reason(err), err.Error())
	}
	q.RecordID = r.ID
	if r.DeviceID != d.DeviceID || topicDev != d.DeviceID {
		return reject("device_mismatch", fmt.Sprintf("record %q, key %q, topic %q", r.DeviceID, d.DeviceID, topicDev))
	}
	receiptTopic := in.cfg.Prefix + "/" + d.DeviceID + "/receipt"
	if ahead := r.CreatedAt.Sub(m.at); ahead > in.cfg.MaxFutureSkew {
		v := reject("clock_skew", fmt.Sprintf("created_at %s is %s ahead of the hub", r.CreatedAt.Format(time.RFC3339Nano), ahead.Round(time.Second)))
		v.receiptTopic = receiptTopic
		v.rejected = &envelope.ReceiptItem{Seq: r.Seq, RecordID: r.ID, Status: envelope.ReceiptRejected, Reason: "clock_skew"}
		return v
	}
	// Canonical: re-encoding the decoded record gives the signed bytes.
	again, err := result.Marshal(r)
	canonical := err == nil && bytes.Equal(again, e.Payload)
	return verdict{item: &Item{Record: r, Envelope: m.payload, KID: e.KID, Topic: m.topic, ReceivedAt: m.at, Canonical: canonical}, receiptTopic: receiptTopic}
}

// flush commits the batch, retrying while the store fails (the envelopes
// were already acknowledged to the broker), then sends the receipts.
//
// A commit is never cancelled half-way (the database call runs without
// ctx's cancellation), but once ctx is done a failed commit is not retried:
// shutdown must not hang on a dead database.
func (in *Ingest) flush(ctx context.Context, b *batch) {
	defer func() {
		b.items, b.receipts, b.quarantine, b.rejected = nil, nil, nil, nil
	}()
	dbctx := context.WithoutCancel(ctx)
	var outs []Outcome
	delay := 100 * time.Millisecond
	for {
		start := time.Now()
		var err error
		outs, err = in.cfg.Store.Commit(dbctx, b.items, b.quarantine, in.cfg.ReorderWindow)
		if err == nil {
			in.m.commitSeconds.Observe(time.Since(start).Seconds())
			break
		}
		in.log.Error("commit failed; retrying", "err", err, "records", len(b.items), "in", delay)
		select {
		case <-ctx.Done():
			// Not stored, not receipted: the devices redeliver.
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
	in.m.batchSize.Observe(float64(len(b.items)))
	// One receipt per device and batch, in arrival order.
	now := in.cfg.Now()
	byTopic := map[string]*envelope.Receipt{}
	var order []string
	addItem := func(topic, deviceID string, it envelope.ReceiptItem) {
		rc := byTopic[topic]
		if rc == nil {
			rc = &envelope.Receipt{DeviceID: deviceID, StoredAt: now}
			byTopic[topic] = rc
			order = append(order, topic)
		}
		rc.Items = append(rc.Items, it)
	}
	for i, o := range outs {
		r := b.items[i].Record
		it := envelope.ReceiptItem{Seq: r.Seq, RecordID: r.ID}
		switch o {
		case Stored:
			in.m.stored.Inc()
			it.Status = envelope.ReceiptStored
		case Duplicate:
			in.m.duplicates.Inc()
			it.Status = envelope.ReceiptDuplicate
		default:
			in.m.rejected.WithLabelValues(o.String()).Inc()
			it.Status, it.Reason = envelope.ReceiptRejected, o.String()
		}
		addItem(b.receipts[i], r.DeviceID, it)
	}
	for _, v := range b.rejected {
		addItem(v.receiptTopic, v.quarantine.DeviceID, *v.rejected)
	}
	for _, topic := range order {
		rc := byTopic[topic]
		items := rc.Items
		for len(items) > 0 {
			n := min(len(items), envelope.MaxReceiptItems)
			in.sendReceipt(topic, &envelope.Receipt{DeviceID: rc.DeviceID, StoredAt: now, Items: items[:n]})
			items = items[n:]
		}
	}
}

func (in *Ingest) sendReceipt(topic string, rc *envelope.Receipt) {
	p, err := envelope.SignReceipt(in.cfg.HubKey, rc)
	if err == nil {
		err = in.cfg.Publisher.Publish(topic, p)
	}
	if err != nil {
		in.m.receiptErrs.Inc()
		in.log.Warn("receipt not sent; the device will redeliver", "topic", topic, "err", err)
	}
}

// Metrics exposes the counters tests and benchmarks read.
type Metrics struct {
	Received, Stored, Duplicates prometheus.Counter
	Rejected                     *prometheus.CounterVec
}

// Metrics returns the ingest's counters.
func (in *Ingest) Metrics() Metrics {
	return Metrics{Received: in.m.received, Stored: in.m.stored, Duplicates: in.m.duplicates, Rejected: in.m.rejected}
}

// VerifyGuard checks a guard report received on topic
// (<prefix>/<device>/guard): signed by the registered, unrevoked key of
// the device the topic names, about that device, and not dated further
// ahead of the hub's clock than MaxFutureSkew. It returns the report, or
// the quarantine row describing the refusal (err is only for a registry
// that cannot be reached: not the report's fault, nothing to quarantine).
func (in *Ingest) VerifyGuard(ctx context.Context, topic string, payload []byte) (*envelope.GuardReport, *Quarantined, error) {
	now := in.cfg.Now()
	q := &Quarantined{ReceivedAt: now, Topic: topic, Envelope: payload}
	reject := func(reason, detail string) (*envelope.GuardReport, *Quarantined, error) {
		in.m.rejected.WithLabelValues("guard_" + reason).Inc()
		q.Reason, q.Detail = "guard_"+reason, detail
		if len(q.Envelope) > envelope.MaxSize {
			q.Envelope = q.Envelope[:envelope.MaxSize]
		}
		return nil, q, nil
	}
	rest, ok := strings.CutPrefix(topic, in.cfg.Prefix+"/")
	dev, kind, _ := strings.Cut(rest, "/")
	q.DeviceID = dev
	if !ok || kind != "guard" || dev == "" {
		return reject("bad_topic", topic)
	}
	e, err := envelope.Decode(payload)
	if err != nil {
		return reject(envelope.Reason(err), err.Error())
	}
	q.KID = e.KID
	d, err := in.lookup(ctx, e.KID)
	switch {
	case errors.Is(err, ErrUnknownDevice):
		return reject("unknown_device", "kid "+e.KID)
	case err != nil:
		return nil, nil, err
	case d.Revoked:
		return reject("revoked_device", "device "+d.DeviceID)
	}
	if err := e.VerifyKey(d.VerifyKey(), envelope.ContentTypeGuard); err != nil {
		return reject(envelope.Reason(err), err.Error())
	}
	g, err := e.Guard()
	if err != nil {
		return reject(envelope.Reason(err), err.Error())
	}
	if g.DeviceID != d.DeviceID || dev != d.DeviceID {
		return reject("device_mismatch", fmt.Sprintf("report %q, key %q, topic %q", g.DeviceID, d.DeviceID, dev))
	}
	if ahead := g.SentAt.Sub(now); ahead > in.cfg.MaxFutureSkew {
		return reject("clock_skew", fmt.Sprintf("sent_at %s is %s ahead of the hub", g.SentAt.Format(time.RFC3339Nano), ahead.Round(time.Second)))
	}
	return g, nil, nil
}
