// Package broker is glint-hub's embedded MQTT broker
// (github.com/mochi-mqtt/server/v2), used when no external broker URL is
// configured: one box runs broker, ingest and store.
//
// Authentication is per device without provisioned secrets: the username is
// the device ID, the client ID must equal it, and the password is a token
// signed by the device key (sync/link.AuthToken) checked against the key
// registered for that device; revoked devices are refused. The hub's own
// client uses a random credential generated at start. The ACL confines a
// device to its own subtree <prefix>/<device>/#, for publishing and
// subscribing alike, so device A can neither publish as B nor read B's
// receipts.
package broker

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/sync/link"
)

// DefaultAddr is the embedded broker's default listen address: not 1883,
// so that it never collides with a system Mosquitto.
const DefaultAddr = ":18830"

// Devices resolves a device ID to its registered public key.
type Devices interface {
	DevicePublicKey(ctx context.Context, deviceID string) (pub device.PublicKey, revoked bool, err error)
}

// Config configures the broker.
type Config struct {
	// Addr is the TCP listen address; default DefaultAddr.
	Addr string
	// TLS, when set, makes the listener TLS.
	TLS *tls.Config
	// Prefix is the topic prefix; default link.DefaultPrefix.
	Prefix string
	// Devices authenticates devices.
	Devices Devices
	// HubUser and HubPassword are the hub's own credentials (full access).
	HubUser, HubPassword string
	// AuthSkew is the accepted clock difference for device tokens; default
	// 10m.
	AuthSkew time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Broker is the embedded broker.
type Broker struct {
	cfg      Config
	srv      *mqtt.Server
	addr     net.Addr
	internal net.Addr
	log      *slog.Logger
}

// New checks cfg and prepares the broker (not yet listening).
func New(cfg Config) (*Broker, error) {
	if cfg.Devices == nil || cfg.HubUser == "" || cfg.HubPassword == "" {
		return nil, errors.New("broker: device registry and hub credentials are required")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Prefix == "" {
		cfg.Prefix = link.DefaultPrefix
	}
	if cfg.AuthSkew <= 0 {
		cfg.AuthSkew = 10 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "broker")
	srv := mqtt.New(&mqtt.Options{
		InlineClient: false,
		// mochi logs every connection at info; keep its warnings only.
		Logger: slog.New(log.Handler()).With("mochi", true),
	})
	srv.Options.Capabilities.MaximumSessionExpiryInterval = 7 * 24 * 3600 // a week offline keeps its session
	b := &Broker{cfg: cfg, srv: srv, log: log}
	if err := srv.AddHook(&authHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return b, nil
}

// Run listens and serves until ctx is done.
func (b *Broker) Run(ctx context.Context) error {
	run, err := b.Listen()
	if err != nil {
		return err
	}
	return run(ctx)
}

// Listen binds the listeners now (so that the addresses are known before
// Run) and returns a Run function serving on them: the configured one for
// devices (TLS when configured) and a plain one on a random loopback port
// for the hub's own client, so that the hub never needs the device-facing
// certificate to name 127.0.0.1.
func (b *Broker) Listen() (run func(ctx context.Context) error, err error) {
	ln, err := net.Listen("tcp", b.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", b.cfg.Addr, err)
	}
	b.addr = ln.Addr()
	if b.cfg.TLS != nil {
		ln = tls.NewListener(ln, b.cfg.TLS)
	}
	in, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: internal listener: %w", err)
	}
	b.internal = in.Addr()
	if err := b.srv.AddListener(listeners.NewNet("glint", ln)); err != nil {
		ln.Close()
		in.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := b.srv.AddListener(listeners.NewNet("glint-internal", in)); err != nil {
		ln.Close()
		in.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	return func(ctx context.Context) error {
		if err := b.srv.Serve(); err != nil {
			return fmt.Errorf("broker: serve: %w", err)
		}
		b.log.Info("embedded MQTT broker listening", "addr", b.addr.String(), "tls", b.cfg.TLS != nil)
		<-ctx.Done()
		if err := b.srv.Close(); err != nil {
			return fmt.Errorf("broker: close: %w", err)
		}
		return nil
	}, nil
}

// Close releases the listeners of a broker whose Run function was never
// called (Run closes them itself when its context ends).
func (b *Broker) Close() error { return b.srv.Close() }

// InternalAddr is the loopback listener for the hub's own client.
func (b *Broker) InternalAddr() net.Addr { return b.internal }

// Addr is the bound address (after Listen or Run started).
func (b *Broker) Addr() net.Addr { return b.addr }

type authHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *authHook) ID() string { return "glint-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (h *authHook) isHub(cl *mqtt.Client, pk packets.Packet) bool {
	return string(cl.Properties.Username) == h.b.cfg.HubUser &&
		subtle.ConstantTimeCompare(pk.Connect.Password, []byte(h.b.cfg.HubPassword)) == 1
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(cl.Properties.Username)
	if user == h.b.cfg.HubUser {
		ok := h.isHub(cl, pk)
		if !ok {
			h.b.log.Warn("hub credential refused", "remote", cl.Net.Remote)
		}
		return ok
	}
	if user == "" || cl.ID != user || strings.ContainsAny(user, "/+#") {
		h.b.log.Warn("device refused: username must equal the client ID", "client", cl.ID, "user", user, "remote", cl.Net.Remote)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pub, revoked, err := h.b.cfg.Devices.DevicePublicKey(ctx, user)
	if err != nil || revoked {
		h.b.log.Warn("device refused: unknown or revoked", "device", user, "err", err, "revoked", revoked)
		return false
	}
	if err := link.VerifyAuthTokenKey(string(pk.Connect.Password), user, pub, time.Now(), h.b.cfg.AuthSkew); err != nil {
		h.b.log.Warn("device refused", "device", user, "err", err)
		return false
	}
	return true
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	if user == h.b.cfg.HubUser {
		return true // authenticated as the hub in OnConnectAuthenticate
	}
	return strings.HasPrefix(topic, h.b.cfg.Prefix+"/"+user+"/")
}
