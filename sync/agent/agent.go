// Package agent is the device side of the wire assembled for glintd: the
// device key from the state directory, the durable outbox and the MQTT link,
// behind one Config (glintd's `sync:` section) and one component with
// New/Run/Close.
//
// glintd's contract with it: call Admit before starting a session (a full
// outbox refuses new sessions with ErrFull), call Record once the session has
// decided and tell the kiosk the verdict only after Record returned nil (the
// signed result is then on disk and will reach the hub). Beside Run, glintd
// runs RunGuard with its device.Monitor: the signed guard report on
// <prefix>/<device>/guard. The identity is the key file in the state
// directory or, with tpm_device, a TPM-held key (device.Signer).
package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/internal/config"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
	"github.com/glintdev/glint/sync/link"
	"github.com/glintdev/glint/sync/outbox"
)

// ErrFull is outbox.ErrFull: the kiosk must refuse new sessions.
var ErrFull = outbox.ErrFull

// Config is glintd's `sync:` configuration section.
type Config struct {
	DeviceID       string        `yaml:"device_id" doc:"This device's ID (MQTT client ID and topic segment); empty disables sync: results are still signed and queued."`
	SiteID         string        `yaml:"site_id" doc:"Site the device is provisioned to, written into every result."`
	BrokerURL      string        `yaml:"broker_url" doc:"MQTT broker: tcp://host:port or ssl://host:port; empty keeps results queued (offline)."`
	Prefix         string        `yaml:"prefix" doc:"Topic prefix."`
	HubKeyFile     string        `yaml:"hub_key_file" doc:"The hub's receipt public key (PEM, from 'glint-hub key'); required with broker_url."`
	CAFile         string        `yaml:"ca_file" doc:"CA pinned for ssl:// brokers (the system roots are not used)."`
	CertFile       string        `yaml:"cert_file" doc:"Client certificate (optional)."`
	KeyFile        string        `yaml:"key_file" doc:"Client certificate key (optional)."`
	Auth           string        `yaml:"auth" enum:"token|password|none" doc:"token: signed with the device key (glint-hub's embedded broker); password: password_file (Mosquitto, EMQX); none."`
	PasswordFile   string        `yaml:"password_file" doc:"Broker password for auth: password; relative names are looked up in $CREDENTIALS_DIRECTORY."`
	OutboxMaxMiB   int           `yaml:"outbox_max_mib" min:"2" max:"65536" doc:"Bound of the outbox (signed results awaiting the hub's receipt); full: new sessions are refused, nothing is dropped; alarm from 80%."`
	Window         int           `yaml:"window" min:"1" max:"1024" doc:"Results published and awaiting a receipt."`
	RedeliverAfter time.Duration `yaml:"redeliver_after" min:"1s" max:"1h" doc:"Publish again a result whose receipt has not come after this long."`
	TPMDevice      string        `yaml:"tpm_device" doc:"TPM 2.0 device holding the device key (e.g. /dev/tpmrm0): an ECDSA P-256 key that never leaves the TPM, envelopes signed ES256. Empty: the Ed25519 key file device.key in the state directory (EdDSA)."`
	GuardRefresh   time.Duration `yaml:"guard_refresh" min:"10s" max:"24h" doc:"The signed guard report is published (retained) on <prefix>/<device>/guard at start, on every change, and at least this often."`
}

// Defaults returns the packaged defaults.
func Defaults() Config {
	return Config{Prefix: link.DefaultPrefix, Auth: "token", OutboxMaxMiB: 256, Window: 64, RedeliverAfter: 30 * time.Second, GuardRefresh: 5 * time.Minute}
}

// Validate checks cross-field rules.
func (c *Config) Validate() error {
	var errs []error
	if c.BrokerURL != "" {
		if c.DeviceID == "" {
			errs = append(errs, config.Invalid("device_id", "must be set with sync.broker_url"))
		}
		if c.HubKeyFile == "" {
			errs = append(errs, config.Invalid("hub_key_file", "must be set with sync.broker_url (receipts are verified with it)"))
		}
		if strings.HasPrefix(c.BrokerURL, "ssl://") && c.CAFile == "" {
			errs = append(errs, config.Invalid("ca_file", "must be set for an ssl:// broker (the CA is pinned)"))
		}
		if c.Auth == "password" && c.PasswordFile == "" {
			errs = append(errs, config.Invalid("password_file", "must be set with sync.auth: password"))
		}
	}
	return errors.Join(errs...)
}

// Agent owns the device key, the outbox and the link.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	signer   device.Signer
	key      *device.Key // the key file; nil with a TPM key
	closeKey func() error
	box      *outbox.Outbox
	lk       *link.Link // nil when sync is disabled

	guardMu   sync.Mutex // guards lastGuard (PublishGuard may be called from any goroutine)
	lastGuard []string   // signal codes of the last published report
}

// New loads (or creates) the device key in stateDir — refusing one readable
// by others (device.ErrKeyPermissions) — or, with cfg.TPMDevice, derives
// the key in the TPM; opens the outbox there and prepares the link.
func New(stateDir string, cfg Config, version string, reg prometheus.Registerer, log *slog.Logger) (*Agent, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	signer, closeKey, err := device.OpenSigner(stateDir, cfg.TPMDevice)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	a, err := newAgent(stateDir, cfg, signer, closeKey, version, reg, log)
	if err != nil {
		closeKey()
	}
	return a, err
}

// NewWithSigner is New with the identity given (tests, tools); Close does
// not close it.
func NewWithSigner(stateDir string, cfg Config, signer device.Signer, version string, reg prometheus.Registerer, log *slog.Logger) (*Agent, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	return newAgent(stateDir, cfg, signer, func() error { return nil }, version, reg, log)
}

func newAgent(stateDir string, cfg Config, signer device.Signer, closeKey func() error, version string, reg prometheus.Registerer, log *slog.Logger) (*Agent, error) {
	key, _ := signer.(*device.Key)
	box, err := outbox.Open(outbox.Config{Path: filepath.Join(stateDir, "outbox.db"), MaxBytes: int64(cfg.OutboxMaxMiB) << 20, Registerer: reg, Logger: log})
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: log, signer: signer, key: key, closeKey: closeKey, box: box}
	if cfg.BrokerURL == "" || cfg.DeviceID == "" {
		return a, nil
	}
	fail := func(err error) (*Agent, error) { box.Close(); return nil, err }
	pemKey, err := os.ReadFile(cfg.HubKeyFile)
	if err != nil {
		return fail(fmt.Errorf("sync.hub_key_file: %w", err))
	}
	hubKey, err := device.ParsePublicKeyPEM(pemKey)
	if err != nil {
		return fail(fmt.Errorf("sync.hub_key_file: %w", err))
	}
	lc := link.Config{Broker: cfg.BrokerURL, DeviceID: cfg.DeviceID, Prefix: cfg.Prefix, Queue: box, HubKey: ed25519.PublicKey(hubKey),
		Window: cfg.Window, RedeliverAfter: cfg.RedeliverAfter, Version: version, Registerer: reg, Logger: log}
	if cfg.CAFile != "" {
		var t *tls.Config
		if t, err = link.TLSConfig(cfg.CAFile, cfg.CertFile, cfg.KeyFile); err != nil {
			return fail(fmt.Errorf("sync: %w", err))
		}
		lc.TLS = t
	}
	switch cfg.Auth {
	case "token":
		lc.Username = cfg.DeviceID
		lc.PasswordFunc = func() string { return link.AuthToken(signer, cfg.DeviceID, time.Now()) }
	case "password":
		p, err := readSecret(cfg.PasswordFile)
		if err != nil {
			return fail(err)
		}
		lc.Username, lc.Password = cfg.DeviceID, p
	}
	if a.lk, err = link.New(lc); err != nil {
		return fail(err)
	}
	return a, nil
}

func readSecret(path string) (string, error) {
	if !filepath.IsAbs(path) {
		dir := os.Getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return "", fmt.Errorf("sync.password_file %q is relative and $CREDENTIALS_DIRECTORY is not set", path)
		}
		path = filepath.Join(dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("sync.password_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Key returns the device key file's key; nil when the key is in a TPM (use
// Signer).
func (a *Agent) Key() *device.Key { return a.key }

// Signer returns the device identity (its public key is what the hub
// registers).
func (a *Agent) Signer() device.Signer { return a.signer }

// Outbox returns the outbox (stats for health endpoints).
func (a *Agent) Outbox() *outbox.Outbox { return a.box }

// Admit reports whether a new session may start (ErrFull when not).
func (a *Agent) Admit() error { return a.box.Admit() }

// Record stamps r with the device and site IDs, signs it, and queues it
// durably. Tell the kiosk the verdict only after it returns nil.
func (a *Agent) Record(r *result.Record) (outbox.Entry, error) {
	if r.DeviceID == "" {
		r.DeviceID = a.cfg.DeviceID
	}
	if r.SiteID == "" {
		r.SiteID = a.cfg.SiteID
	}
	return a.box.Put(func(seq uint64) (outbox.Entry, error) {
		r.Seq = seq
		env, err := envelope.SignRecord(a.signer, r)
		if err != nil {
			return outbox.Entry{}, err
		}
		return outbox.Entry{RecordID: r.ID, Envelope: env}, nil
	})
}

// GuardSource is what the agent reads the device guard's state from
// (device.Monitor).
type GuardSource interface{ Last() device.Report }

// PublishGuard signs rep as a guard report and hands it to the link, which
// publishes it retained on <prefix>/<device>/guard now (when connected)
// and after every reconnect. Without sync it only signs (the signing path
// is still exercised) and returns the envelope.
func (a *Agent) PublishGuard(rep device.Report) ([]byte, error) {
	env, err := envelope.SignGuard(a.signer, envelope.NewGuardReport(a.cfg.DeviceID, rep, time.Now()))
	if err != nil {
		return nil, fmt.Errorf("guard report: %w", err)
	}
	a.guardMu.Lock()
	a.lastGuard = rep.Summary().Codes
	a.guardMu.Unlock()
	if a.lk != nil {
		a.lk.SetGuard(env)
	}
	return env, nil
}

// guardCheckEvery is how often RunGuard looks at the monitor's latest
// report for a change (a mutex and a copy: cheap).
const guardCheckEvery = time.Second

// RunGuard publishes src's report at once, again within a second of every
// change of its set of signals, and at least every cfg.GuardRefresh (the
// hub sees a fresh sent_at, i.e. that the device is still checking),
// until ctx is done. glintd runs it beside Run with its device.Monitor.
func (a *Agent) RunGuard(ctx context.Context, src GuardSource) {
	if a.cfg.DeviceID == "" {
		return // nothing to publish under
	}
	refresh := a.cfg.GuardRefresh
	if refresh <= 0 {
		refresh = Defaults().GuardRefresh
	}
	publish := func(rep device.Report) time.Time {
		if _, err := a.PublishGuard(rep); err != nil {
			a.log.Error("guard report not published", "err", err)
		}
		return time.Now()
	}
	last := publish(src.Last())
	t := time.NewTicker(min(guardCheckEvery, refresh))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			rep := src.Last()
			a.guardMu.Lock()
			changed := !slices.Equal(a.lastGuard, rep.Summary().Codes)
			a.guardMu.Unlock()
			if changed || now.Sub(last) >= refresh {
				last = publish(rep)
			}
		}
	}
}

// Status is the link's status; Connected false when sync is disabled.
func (a *Agent) Status() link.Status {
	if a.lk == nil {
		return link.Status{}
	}
	return a.lk.Status()
}

// Run drains the outbox to the hub until ctx is done. Without a broker it
// only waits: results stay queued.
func (a *Agent) Run(ctx context.Context) error {
	if a.lk == nil {
		a.log.Warn("sync disabled (no sync.broker_url or sync.device_id): results are signed and queued, not sent")
		<-ctx.Done()
		return nil
	}
	return a.lk.Run(ctx)
}

// Close closes the outbox and releases the key (after Run and RunGuard
// returned).
func (a *Agent) Close() error { return errors.Join(a.box.Close(), a.closeKey()) }
