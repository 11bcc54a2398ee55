package link

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/glintdev/glint/sync/envelope"
	"github.com/glintdev/glint/sync/outbox"
)

// DefaultPrefix is the topic prefix when none is configured.
const DefaultPrefix = "glint/v1"

// Queue is what the link needs from the outbox.
type Queue interface {
	Pending(after uint64, max int) ([]outbox.Entry, error)
	AckMany(acks []outbox.Entry) (int, error)
	Stats() outbox.Stats
	Notify() <-chan struct{}
}

// Config configures a Link.
type Config struct {
	// Broker is the broker URL: tcp://host:port, or ssl://host:port with
	// TLS.
	Broker string
	// DeviceID is the MQTT client ID and the device's topic segment.
	DeviceID string
	// Prefix is the topic prefix; default DefaultPrefix.
	Prefix string
	// TLS, when set, is used for ssl:// brokers (see TLSConfig: pinned CA,
	// optional client certificate).
	TLS *tls.Config
	// Username and Password authenticate to the broker. PasswordFunc, when
	// set, is called on every connect instead of Password (the embedded
	// broker's signed tokens expire).
	Username     string
	Password     string
	PasswordFunc func() string
	// Queue is the outbox to drain.
	Queue Queue
	// HubKey is the pinned hub public key that receipts must verify with.
	HubKey ed25519.PublicKey
	// Window bounds results published and awaiting a receipt. Default 64.
	Window int
	// RedeliverAfter is how long a published result may wait for its
	// receipt before it is published again. Default 30s.
	RedeliverAfter time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay. Defaults 500ms
	// and 60s.
	MinBackoff, MaxBackoff time.Duration
	// ConnectTimeout bounds one connection attempt. Default 10s.
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive. Default 30s.
	KeepAlive time.Duration
	// StatusInterval is how often the online status is refreshed. Default
	// 60s.
	StatusInterval time.Duration
	// Version is reported in the status message.
	Version string
	// OnReceipt, if set, is called from Run's goroutine for every verified
	// receipt after its entry left the outbox (simulators measure latency
	// with it). It must return quickly.
	OnReceipt func(*envelope.Receipt)
	// Registerer receives the link metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Topics for one device under a prefix.
type Topics struct{ Result, Receipt, Status, Guard, Config string }

// DeviceTopics returns the topics of device under prefix.
func DeviceTopics(prefix, device string) Topics {
	b := prefix + "/" + device + "/"
	return Topics{Result: b + "result", Receipt: b + "receipt", Status: b + "status", Guard: b + "guard", Config: b + "config"}
}

// StatusMessage is the JSON on the retained status topic.
type StatusMessage struct {
	State    string        `json:"state"` // "online" or "offline"
	DeviceID string        `json:"device_id"`
	At       time.Time     `json:"at"`
	Version  string        `json:"version,omitempty"`
	Queue    *outbox.Stats `json:"queue,omitempty"`
	InFlight int           `json:"in_flight"`
}

// Status is a snapshot of the link for health endpoints.
type Status struct {
	Connected   bool
	Since       time.Time
	LastError   string
	Reconnects  uint64
	Published   uint64
	Redelivered uint64
	Receipts    uint64
	InFlight    int
}

// Link is the device's MQTT connection. Create with New, run with Run.
type Link struct {
	cfg    Config
	log    *slog.Logger
	topics Topics
	m      metrics

	receipts chan []byte
	lost     chan error
	recent   []*envelope.Receipt // receipts of the current ack batch (Run's goroutine)

	guardCh chan struct{} // SetGuard → session: a new guard report

	mu    sync.Mutex // guards st and guard
	st    Status
	guard []byte // latest signed guard report, published retained
}

type metrics struct {
	connected                                           prometheus.Gauge
	inflight                                            prometheus.Gauge
	reconnects, published, redelivered, dropped, badRct prometheus.Counter
	guards                                              prometheus.Counter
	receipts                                            *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		connected:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "glint_link_connected", Help: "1 while connected to the broker."}),
		inflight:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "glint_link_inflight", Help: "Results published and awaiting the hub's receipt."}),
		reconnects:  prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_link_connects_total", Help: "Connection attempts."}),
		published:   prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_link_published_total", Help: "Result publications, first deliveries and redeliveries."}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_link_redelivered_total", Help: "Results published again after RedeliverAfter without a receipt."}),
		dropped:     prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_link_receipts_dropped_total", Help: "Receipts dropped because the link goroutine was behind (they cause a redelivery)."}),
		badRct:      prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_link_receipts_invalid_total", Help: "Receipts that failed verification or named another device."}),
		guards:      prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_link_guard_published_total", Help: "Signed guard reports published (retained)."}),
		receipts:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "glint_link_receipts_total", Help: "Verified receipts by status."}, []string{"status"}),
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.inflight, m.reconnects, m.published, m.redelivered, m.dropped, m.badRct, m.guards, m.receipts)
	}
	return m
}

// New checks cfg and returns a link ready to Run.
func New(cfg Config) (*Link, error) {
	switch {
	case cfg.Broker == "":
		return nil, errors.New("link: no broker URL")
	case cfg.DeviceID == "":
		return nil, errors.New("link: no device ID")
	case cfg.Queue == nil:
		return nil, errors.New("link: no queue")
	case len(cfg.HubKey) != ed25519.PublicKeySize:
		return nil, errors.New("link: no hub public key to verify receipts")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Window <= 0 {
		cfg.Window = 64
	}
	if cfg.RedeliverAfter <= 0 {
		cfg.RedeliverAfter = 30 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(60*time.Second, cfg.MinBackoff)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = 60 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Link{
		cfg:      cfg,
		log:      log.With("component", "link", "device", cfg.DeviceID),
		topics:   DeviceTopics(cfg.Prefix, cfg.DeviceID),
		m:        newMetrics(cfg.Registerer),
		receipts: make(chan []byte, 4096),
		lost:     make(chan error, 1),
		guardCh:  make(chan struct{}, 1),
	}, nil
}

// SetGuard hands the link a signed guard report (envelope.SignGuard) for
// <prefix>/<device>/guard. It is published retained with QoS 1 at once
// when connected and again after every reconnect, so the broker always
// holds the device's latest report for whoever subscribes (the hub after a
// restart). Only the latest report is kept: an unsent older one is
// superseded, never queued. Safe for concurrent use.
func (l *Link) SetGuard(env []byte) {
	l.mu.Lock()
	l.guard = append([]byte(nil), env...)
	l.mu.Unlock()
	select {
	case l.guardCh <- struct{}{}:
	default:
	}
}

func (l *Link) currentGuard() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.guard
}

// Status returns a snapshot; safe for concurrent use.
func (l *Link) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

func (l *Link) update(f func(*Status)) {
	l.mu.Lock()
	f(&l.st)
	l.mu.Unlock()
}

// backoff returns the delay before attempt n (1-based): MinBackoff doubled
// per attempt up to MaxBackoff, ±20 % jitter from u in [0,1).
func backoff(minD, maxD time.Duration, n int, u float64) time.Duration {
	d := minD
	for i := 1; i < n && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	return time.Duration(float64(d) * (0.8 + 0.4*u))
}

func (l *Link) statusPayload(state string, inflight int) []byte {
	msg := StatusMessage{State: state, DeviceID: l.cfg.DeviceID, At: time.Now().UTC(), Version: l.cfg.Version, InFlight: inflight}
	if state == "online" {
		st := l.cfg.Queue.Stats()
		msg.Queue = &st
	}
	b, _ := json.Marshal(msg) // plain struct; cannot fail
	return b
}

func (l *Link) options() *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	o.AddBroker(l.cfg.Broker)
	o.SetClientID(l.cfg.DeviceID)
	o.SetCleanSession(false)
	o.SetAutoReconnect(false) // Run reconnects, with jitter and a fresh client
	o.SetConnectRetry(false)
	o.SetOrderMatters(false)
	o.SetKeepAlive(l.cfg.KeepAlive)
	o.SetPingTimeout(l.cfg.KeepAlive / 2)
	o.SetConnectTimeout(l.cfg.ConnectTimeout)
	o.SetWriteTimeout(l.cfg.ConnectTimeout)
	o.SetBinaryWill(l.topics.Status, l.statusPayload("offline", 0), 1, true)
	if l.cfg.TLS != nil {
		o.SetTLSConfig(l.cfg.TLS)
	}
	if l.cfg.Username != "" {
		o.SetUsername(l.cfg.Username)
	}
	if l.cfg.PasswordFunc != nil {
		user, pf := l.cfg.Username, l.cfg.PasswordFunc
		o.SetCredentialsProvider(func() (string, string) { return user, pf() })
	} else if l.cfg.Password != "" {
		o.SetPassword(l.cfg.Password)
	}
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		select {
		case l.lost <- err:
		default:
		}
	})
	// Receipts queued in the persistent session may arrive before
	// Subscribe returns; they reach the default handler.
	o.SetDefaultPublishHandler(l.onReceipt)
	return o
}

// onReceipt runs on paho's goroutines: copy and hand off, never block.
func (l *Link) onReceipt(_ mqtt.Client, msg mqtt.Message) {
	if msg.Topic() != l.topics.Receipt {
		return
	}
	p := append([]byte(nil), msg.Payload()...)
	select {
	case l.receipts <- p:
	default:
		l.m.dropped.Inc()
	}
}

// Run connects and drains the queue until ctx is done, reconnecting after
// failures. On the way out it publishes "offline" and disconnects cleanly.
// It returns nil once ctx is done: network failures are states, not errors.
func (l *Link) Run(ctx context.Context) error {
	attempt := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		l.m.reconnects.Inc()
		client := mqtt.NewClient(l.options())
		err := l.connect(ctx, client)
		if err == nil {
			attempt = 0
			err = l.session(ctx, client)
		}
		if ctx.Err() != nil {
			return nil
		}
		attempt++
		delay := backoff(l.cfg.MinBackoff, l.cfg.MaxBackoff, attempt, rand.Float64())
		l.log.Warn("broker connection failed; retrying", "err", err, "in", delay.Round(time.Millisecond), "attempt", attempt)
		l.update(func(s *Status) {
			s.Connected, s.LastError, s.Since = false, err.Error(), time.Now()
			s.Reconnects++
		})
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (l *Link) connect(ctx context.Context, c mqtt.Client) error {
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("connect %s: %w", l.cfg.Broker, err)
	}
	st := c.Subscribe(l.topics.Receipt, 1, l.onReceipt)
	if !st.WaitTimeout(l.cfg.ConnectTimeout) || st.Error() != nil {
		c.Disconnect(0)
		return fmt.Errorf("subscribe %s: %v", l.topics.Receipt, st.Error())
	}
	if sub, ok := st.(*mqtt.SubscribeToken); ok {
		for _, qos := range sub.Result() {
			if qos == 0x80 { // broker refused (ACL)
				c.Disconnect(0)
				return fmt.Errorf("subscribe %s: refused by broker", l.topics.Receipt)
			}
		}
	}
	return nil
}

type inflight struct {
	e      outbox.Entry
	sentAt time.Time
}

// session drains the queue over one connection; it returns when the
// connection is lost (error) or ctx is done (nil after a clean disconnect).
func (l *Link) session(ctx context.Context, c mqtt.Client) error {
	defer l.m.connected.Set(0)
	// Drop stale loss notifications from an earlier client.
	select {
	case <-l.lost:
	default:
	}
	l.m.connected.Set(1)
	l.update(func(s *Status) { s.Connected, s.Since, s.LastError = true, time.Now(), "" })
	l.log.Info("connected to broker", "broker", l.cfg.Broker)

	var (
		pending   = map[uint64]*inflight{}
		cursor    uint64 // highest seq published on this connection
		lastAlarm = l.cfg.Queue.Stats().Alarm
	)
	publishStatus := func() {
		c.Publish(l.topics.Status, 1, true, l.statusPayload("online", len(pending)))
	}
	publishStatus()
	publishGuard := func() {
		if g := l.currentGuard(); g != nil {
			c.Publish(l.topics.Guard, 1, true, g)
			l.m.guards.Inc()
		}
	}
	publishGuard()
	publish := func(f *inflight) {
		f.sentAt = time.Now()
		// The token is not waited for: only the receipt counts.
		c.Publish(l.topics.Result, 1, false, f.e.Envelope)
		l.m.published.Inc()
		l.update(func(s *Status) { s.Published++ })
	}
	fill := func() error {
		for len(pending) < l.cfg.Window {
			es, err := l.cfg.Queue.Pending(cursor, l.cfg.Window-len(pending))
			if err != nil {
				return fmt.Errorf("read outbox: %w", err)
			}
			if len(es) == 0 {
				break
			}
			for _, e := range es {
				f := &inflight{e: e}
				pending[e.Seq] = f
				publish(f)
				cursor = e.Seq
			}
		}
		l.m.inflight.Set(float64(len(pending)))
		return nil
	}
	if err := fill(); err != nil {
		return err
	}

	tick := time.NewTicker(min(time.Second, l.cfg.RedeliverAfter/2))
	defer tick.Stop()
	lastStatus := time.Now()
	acks := make([]outbox.Entry, 0, 1024)
	for {
		select {
		case <-ctx.Done():
			c.Publish(l.topics.Status, 1, true, l.statusPayload("offline", len(pending))).WaitTimeout(time.Second)
			c.Disconnect(250)
			l.update(func(s *Status) { s.Connected, s.Since = false, time.Now() })
			return nil
		case err := <-l.lost:
			l.m.inflight.Set(0)
			if err == nil {
				err = errors.New("connection lost")
			}
			return err
		case <-l.cfg.Queue.Notify():
			if err := fill(); err != nil {
				return err
			}
		case <-l.guardCh:
			publishGuard()
		case p := <-l.receipts:
			acks, l.recent = acks[:0], l.recent[:0]
			acks = l.collect(p, acks)
			// Take whatever else is already waiting: one fsync for many.
		more:
			for len(acks) < 1024 {
				select {
				case p := <-l.receipts:
					acks = l.collect(p, acks)
				default:
					break more
				}
			}
			if len(acks) > 0 {
				if _, err := l.cfg.Queue.AckMany(acks); err != nil {
					return fmt.Errorf("ack outbox: %w", err)
				}
				for _, a := range acks {
					delete(pending, a.Seq)
				}
				if l.cfg.OnReceipt != nil {
					for _, rc := range l.recent {
						l.cfg.OnReceipt(rc)
					}
				}
				n := uint64(len(acks))
				l.update(func(s *Status) { s.Receipts += n })
			}
			if err := fill(); err != nil {
				return err
			}
		case now := <-tick.C:
			n := 0
			for _, f := range pending {
				if now.Sub(f.sentAt) >= l.cfg.RedeliverAfter {
					publish(f)
					n++
				}
			}
			if n > 0 {
				l.update(func(s *Status) { s.Redelivered += uint64(n) })
				l.m.redelivered.Add(float64(n))
				l.log.Info("redelivering results without receipt", "count", n)
			}
			alarm := l.cfg.Queue.Stats().Alarm
			if alarm != lastAlarm || now.Sub(lastStatus) >= l.cfg.StatusInterval {
				if alarm && !lastAlarm {
					l.log.Warn("outbox alarm: 80% full")
				}
				lastAlarm, lastStatus = alarm, now
				publishStatus()
			}
			// Entries may have been queued while the window was full and
			// the notification consumed.
			if err := fill(); err != nil {
				return err
			}
			l.update(func(s *Status) { s.InFlight = len(pending) })
		}
	}
}

// collect verifies one receipt and appends its acks.
func (l *Link) collect(p []byte, acks []outbox.Entry) []outbox.Entry {
	rc, err := envelope.OpenReceipt(p, l.cfg.HubKey)
	if err != nil || rc.DeviceID != l.cfg.DeviceID {
		l.m.badRct.Inc()
		l.log.Warn("receipt rejected", "err", err)
		return acks
	}
	l.recent = append(l.recent, rc)
	for _, it := range rc.Items {
		l.m.receipts.WithLabelValues(it.Status).Inc()
		if it.Status == envelope.ReceiptRejected {
			l.log.Warn("hub quarantined a result", "seq", it.Seq, "id", it.RecordID, "reason", it.Reason)
		}
		acks = append(acks, outbox.Entry{Seq: it.Seq, RecordID: it.RecordID})
	}
	return acks
}
