package hub

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/api"
	"github.com/glintdev/glint/hub/broker"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/sync/ingest"
	"github.com/glintdev/glint/sync/link"
)

// KeyFile is the hub's receipt-signing key inside the state directory.
const KeyFile = "hub.key"

// ShareGroup is the shared-subscription group all replicas join.
const ShareGroup = "glint-hub"

// Config configures a Hub. cmd/glint-hub fills it from YAML.
type Config struct {
	// StateDir holds hub.key (created 0600 on first start).
	StateDir string
	// Dialect and DSN select the store (SQLite file path, or a PostgreSQL
	// URL).
	Dialect store.Dialect
	DSN     string
	// BrokerURL is an external broker (Mosquitto, EMQX); empty starts the
	// embedded broker on EmbeddedAddr.
	BrokerURL      string
	BrokerUsername string
	BrokerPassword string
	BrokerTLS      *tls.Config
	EmbeddedAddr   string
	EmbeddedTLS    *tls.Config
	Prefix         string
	// ClientID is this replica's MQTT client ID (persistent session); it
	// must differ between replicas. Default "glint-hub-<hostname>".
	ClientID string
	// APIAddr is the HTTP API's listen address; empty disables it.
	APIAddr string
	APIKeys []string
	// Ingest tuning (zero: the ingest package's defaults).
	BatchSize     int
	BatchWait     time.Duration
	MaxFutureSkew time.Duration
	// Provision configures device provisioning on the API
	// (docs/provisioning.md).
	Provision ProvisionConfig
	Logger    *slog.Logger
}

// ProvisionConfig is what provisioning tells devices.
type ProvisionConfig struct {
	// Disabled turns POST /api/v1/provision off.
	Disabled bool
	// HubURL is the API's public URL (put into provisioning links; a
	// registration signed for another hub is refused). Empty: not checked,
	// and links need --hub.
	HubURL string
	// BrokerURL is the broker as devices reach it; empty: BrokerURL()
	// (the embedded broker's loopback address, or the external broker).
	BrokerURL string
	// BrokerCA is the PEM CA devices pin for an ssl:// broker.
	BrokerCA []byte
}

// Hub is glint-hub.
type Hub struct {
	cfg                   Config
	log                   *slog.Logger
	store                 *store.Store
	key                   *device.Key
	registry              *prometheus.Registry
	ingest                *ingest.Ingest
	broker                *broker.Broker
	brokerRun             func(context.Context) error
	apiLn                 net.Listener
	brokerURL, user, pass string
	internalURL           string // embedded: the hub's own loopback listener

	statusCh chan statusMsg
	guardCh  chan statusMsg
	guards   *prometheus.CounterVec
	mu       sync.Mutex
	client   paho.Client
	ran      bool // Run was called: it owns the embedded broker's shutdown
}

type statusMsg struct {
	topic   string
	payload []byte
}

// New opens the store, loads (or creates) the hub key, binds the embedded
// broker and API listeners, and returns a hub ready to Run.
func New(ctx context.Context, cfg Config) (*Hub, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Prefix == "" {
		cfg.Prefix = link.DefaultPrefix
	}
	if cfg.ClientID == "" {
		host, _ := os.Hostname()
		cfg.ClientID = "glint-hub-" + host
	}
	if cfg.StateDir == "" {
		return nil, errors.New("hub: no state directory")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	key, err := device.LoadOrCreateKey(filepath.Join(cfg.StateDir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("hub key: %w", err)
	}
	st, err := store.Open(ctx, cfg.Dialect, cfg.DSN)
	if err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, log: log, store: st, key: key, registry: prometheus.NewRegistry(), statusCh: make(chan statusMsg, 1024), guardCh: make(chan statusMsg, 1024),
		guards: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "glint_hub_guard_reports_total", Help: "Guard reports received, by outcome (stored, stale, rejected)."}, []string{"outcome"})}
	h.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), h.guards)
	fail := func(err error) (*Hub, error) {
		h.Close()
		return nil, err
	}
	h.brokerURL, h.user, h.pass = cfg.BrokerURL, cfg.BrokerUsername, cfg.BrokerPassword
	if cfg.BrokerURL == "" {
		var buf [24]byte
		if _, err := rand.Read(buf[:]); err != nil {
			return fail(err)
		}
		h.user, h.pass = "glint-hub", hex.EncodeToString(buf[:])
		h.broker, err = broker.New(broker.Config{Addr: cfg.EmbeddedAddr, TLS: cfg.EmbeddedTLS, Prefix: cfg.Prefix, Devices: st,
			HubUser: h.user, HubPassword: h.pass, Logger: log})
		if err != nil {
			return fail(err)
		}
		if h.brokerRun, err = h.broker.Listen(); err != nil {
			return fail(err)
		}
		// The hub's client uses the plain loopback listener; devices the
		// configured one (BrokerURL reports it, for tests and tools).
		h.internalURL = "tcp://" + h.broker.InternalAddr().String()
		port := h.broker.Addr().(*net.TCPAddr).Port
		scheme := "tcp"
		if cfg.EmbeddedTLS != nil {
			scheme = "ssl"
		}
		h.brokerURL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
	}
	h.ingest, err = ingest.New(ingest.Config{Store: st, Publisher: h, HubKey: key, Prefix: cfg.Prefix,
		BatchSize: cfg.BatchSize, BatchWait: cfg.BatchWait, MaxFutureSkew: cfg.MaxFutureSkew, Registerer: h.registry, Logger: log})
	if err != nil {
		return fail(err)
	}
	if cfg.APIAddr != "" {
		if h.apiLn, err = net.Listen("tcp", cfg.APIAddr); err != nil {
			return fail(fmt.Errorf("hub: api listen: %w", err))
		}
	}
	log.Info("hub ready", "kid", key.ID, "store", string(cfg.Dialect), "broker", h.brokerURL, "embedded", h.broker != nil)
	return h, nil
}

// Store returns the hub's store.
func (h *Hub) Store() *store.Store { return h.store }

// Key returns the hub's receipt-signing key.
func (h *Hub) Key() *device.Key { return h.key }

// BrokerURL is the broker devices use: the external URL, or the embedded
// broker's device-facing listener as a loopback URL (ssl:// with TLS).
func (h *Hub) BrokerURL() string { return h.brokerURL }

// BrokerAddr is the embedded broker's bound address, nil when external.
func (h *Hub) BrokerAddr() net.Addr {
	if h.broker == nil {
		return nil
	}
	return h.broker.Addr()
}

// APIAddr is the API's bound address, nil when disabled.
func (h *Hub) APIAddr() net.Addr {
	if h.apiLn == nil {
		return nil
	}
	return h.apiLn.Addr()
}

// Registry is the hub's Prometheus registry.
func (h *Hub) Registry() *prometheus.Registry { return h.registry }

// Publish implements ingest.Publisher: QoS 1, not waited for (the device
// redelivers when a receipt is lost).
func (h *Hub) Publish(topic string, payload []byte) error {
	h.mu.Lock()
	c := h.client
	h.mu.Unlock()
	if c == nil || !c.IsConnectionOpen() {
		return errors.New("not connected to the broker")
	}
	c.Publish(topic, 1, false, payload)
	return nil
}

// Run runs broker, MQTT client, ingest, status updates and API until ctx
// is done.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	h.ran = true
	h.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	start := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	brokerCtx, stopBroker := context.WithCancel(context.Background())
	brokerDone := make(chan error, 1)
	if h.brokerRun != nil {
		go func() { brokerDone <- h.brokerRun(brokerCtx) }()
	} else {
		brokerDone <- nil
	}
	start("ingest", h.ingest.Run)
	start("status", h.runStatus)
	start("guard", h.runGuard)
	if h.apiLn != nil {
		a, err := api.New(api.Config{Store: h.store, Keys: h.cfg.APIKeys, HubKey: h.key.Public(), Gatherer: h.registry, Logger: h.log, Provision: h.provisionConfig()})
		if err != nil {
			cancel()
			wg.Wait()
			stopBroker()
			<-brokerDone
			return err
		}
		srv := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
		start("api", func(ctx context.Context) error {
			return api.Serve(ctx, srv, func() error { return srv.Serve(h.apiLn) })
		})
	}
	if err := h.connect(ctx); err != nil {
		cancel()
		wg.Wait()
		stopBroker()
		<-brokerDone
		return err
	}
	<-ctx.Done()
	// Stop taking messages first, let ingest finish its batch (it commits
	// and receipts on the way out), then close the client and broker.
	h.mu.Lock()
	c := h.client
	h.mu.Unlock()
	c.Unsubscribe(h.shareTopic(), h.cfg.Prefix+"/+/status", h.guardTopic()).WaitTimeout(time.Second)
	wg.Wait()
	c.Disconnect(250)
	stopBroker()
	err := <-brokerDone
	close(errc)
	for e := range errc {
		err = errors.Join(err, e)
	}
	return err
}

func (h *Hub) shareTopic() string { return "$share/" + ShareGroup + "/" + h.cfg.Prefix + "/+/result" }

// guardTopic is shared too: one replica handles each report (storing one
// twice would be harmless: the newest sent_at wins).
func (h *Hub) guardTopic() string { return "$share/" + ShareGroup + "/" + h.cfg.Prefix + "/+/guard" }

// provisionConfig is the API's provisioning settings (nil: disabled).
func (h *Hub) provisionConfig() *api.ProvisionConfig {
	pc := h.cfg.Provision
	if pc.Disabled {
		return nil
	}
	auth := "token"
	if h.broker == nil {
		auth = "password" // an external broker: Mosquitto or EMQX with password files
	}
	broker := pc.BrokerURL
	if broker == "" {
		broker = h.brokerURL
		if strings.Contains(broker, "://127.0.0.1:") {
			h.log.Warn("provisioning hands devices a loopback broker URL; set provision.broker_url", "broker", broker)
		}
	}
	return &api.ProvisionConfig{HubURL: pc.HubURL, BrokerURL: broker, Prefix: h.cfg.Prefix, Auth: auth, BrokerCA: pc.BrokerCA, MaxSkew: 10 * time.Minute}
}

func (h *Hub) connect(ctx context.Context) error {
	url, tlsCfg := h.brokerURL, h.cfg.BrokerTLS
	if h.internalURL != "" {
		url, tlsCfg = h.internalURL, nil
	}
	o := paho.NewClientOptions().AddBroker(url).SetClientID(h.cfg.ClientID).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(10 * time.Second).
		SetKeepAlive(30 * time.Second).SetOrderMatters(true).SetStore(newCopyingStore())
	if h.user != "" {
		o.SetUsername(h.user).SetPassword(h.pass)
	}
	if tlsCfg != nil {
		o.SetTLSConfig(tlsCfg)
	}
	route := func(_ paho.Client, m paho.Message) {
		switch {
		case strings.HasSuffix(m.Topic(), "/result"):
			// Blocks while ingest's queue is full: backpressure on the
			// broker connection. PUBACK follows; the receipt is the proof.
			_ = h.ingest.Submit(ctx, m.Topic(), m.Payload())
		case strings.HasSuffix(m.Topic(), "/status"):
			select {
			case h.statusCh <- statusMsg{m.Topic(), append([]byte(nil), m.Payload()...)}:
			default: // status is refreshed by the device; dropping is harmless
			}
		case strings.HasSuffix(m.Topic(), "/guard"):
			if len(m.Payload()) == 0 {
				return // a cleared retained message
			}
			select {
			case h.guardCh <- statusMsg{m.Topic(), append([]byte(nil), m.Payload()...)}:
			default: // the device republishes at least every guard_refresh
				h.guards.WithLabelValues("dropped").Inc()
			}
		}
	}
	o.SetDefaultPublishHandler(route)
	o.SetOnConnectHandler(func(c paho.Client) {
		t := c.SubscribeMultiple(map[string]byte{h.shareTopic(): 1, h.cfg.Prefix + "/+/status": 1, h.guardTopic(): 1}, route)
		if t.WaitTimeout(10*time.Second) && t.Error() == nil {
			h.log.Info("subscribed", "results", h.shareTopic())
		} else {
			h.log.Error("subscribe failed", "err", t.Error())
		}
	})
	o.SetConnectionLostHandler(func(_ paho.Client, err error) { h.log.Warn("broker connection lost; reconnecting", "err", err) })
	c := paho.NewClient(o)
	h.mu.Lock()
	h.client = c
	h.mu.Unlock()
	t := c.Connect() // with ConnectRetry, keeps trying in the background
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("hub: connect %s: %w", url, err)
		}
	case <-time.After(2 * time.Second):
		h.log.Warn("broker not reachable yet; retrying in the background", "broker", url)
	case <-ctx.Done():
	}
	return nil
}

// runStatus stores device status messages (online/offline, queue depth).
func (h *Hub) runStatus(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-h.statusCh:
			parts := strings.Split(m.topic, "/")
			if len(parts) < 2 || len(m.payload) == 0 {
				continue
			}
			dev := parts[len(parts)-2]
			var s link.StatusMessage
			if err := json.Unmarshal(m.payload, &s); err != nil || s.DeviceID != dev {
				continue
			}
			var depth int64
			if s.Queue != nil {
				depth = s.Queue.Depth
			}
			at := s.At
			if at.IsZero() || at.After(time.Now().Add(time.Minute)) {
				at = time.Now()
			}
			if err := h.store.SetDeviceStatus(ctx, dev, s.State == "online", depth, m.payload, at); err != nil {
				h.log.Warn("device status not stored", "device", dev, "err", err)
			}
		}
	}
}

// runGuard verifies guard reports and stores the newest per device;
// rejected ones go to the quarantine table with a guard_… reason.
func (h *Hub) runGuard(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-h.guardCh:
			g, q, err := h.ingest.VerifyGuard(ctx, m.topic, m.payload)
			if err != nil {
				h.guards.WithLabelValues("registry_error").Inc()
				h.log.Warn("guard report not verified: registry unavailable", "topic", m.topic, "err", err)
				continue
			}
			if q != nil {
				h.guards.WithLabelValues("rejected").Inc()
				h.log.Warn("guard report rejected", "topic", m.topic, "reason", q.Reason, "detail", q.Detail)
				if err := h.store.Quarantine(ctx, []store.Quarantined{*q}); err != nil {
					h.log.Warn("guard report not quarantined", "err", err)
				}
				continue
			}
			js, _ := json.Marshal(g) // plain struct
			stored, err := h.store.SetGuardReport(ctx, store.GuardRow{DeviceID: g.DeviceID, SentAt: g.SentAt, CheckedAt: g.CheckedAt,
				ReceivedAt: time.Now(), Risk: g.Risk, Report: js, Envelope: m.payload})
			switch {
			case err != nil:
				h.log.Warn("guard report not stored", "device", g.DeviceID, "err", err)
			case stored:
				h.guards.WithLabelValues("stored").Inc()
				if g.Risk == "critical" {
					h.log.Warn("device guard critical", "device", g.DeviceID, "signals", len(g.Signals))
				}
			default:
				h.guards.WithLabelValues("stale").Inc()
			}
		}
	}
}

// Close releases the store and listeners (call after Run returned, or
// instead of Run).
func (h *Hub) Close() error {
	if h.apiLn != nil {
		h.apiLn.Close()
	}
	h.mu.Lock()
	ran := h.ran
	h.mu.Unlock()
	if h.broker != nil && !ran {
		h.broker.Close()
	}
	return h.store.Close()
}
