package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glintdev/glint/hub"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/internal/config"
	"github.com/glintdev/glint/sync/link"
)

// envPrefix prefixes environment overrides: GLINT_HUB_STORE_DRIVER=postgres.
const envPrefix = "GLINT_HUB"

const defaultConfigPath = "/etc/glint-hub/glint-hub.yaml"

// Config is glint-hub's configuration file.
type Config struct {
	Log       LogConfig       `yaml:"log" doc:"Logging to stderr (the journal under systemd)."`
	StateDir  string          `yaml:"state_dir" required:"true" doc:"Directory for the hub key (hub.key, created 0600) and the default SQLite database; systemd's StateDirectory."`
	Store     StoreConfig     `yaml:"store" doc:"The central database."`
	MQTT      MQTTConfig      `yaml:"mqtt" doc:"The broker: embedded (default) or external (Mosquitto, EMQX)."`
	API       APIConfig       `yaml:"api" doc:"The HTTP API."`
	Ingest    IngestConfig    `yaml:"ingest" doc:"Verification and batching of incoming results."`
	Provision ProvisionConfig `yaml:"provision" doc:"Field provisioning of devices with one-time claim tokens (docs/provisioning.md)."`
	Service   ServiceCfg      `yaml:"service" doc:"Interaction with the service manager (systemd)."`
}

// ProvisionConfig configures provisioning.
type ProvisionConfig struct {
	Enabled      bool   `yaml:"enabled" doc:"Serve POST /api/v1/provision and /api/v1/provision/report on the API (no API key: a claim token, or a registered device's signature, authorises them)."`
	HubURL       string `yaml:"hub_url" doc:"The API's URL as devices reach it (https://hub.example:8780), written into provisioning links and QR codes; registrations signed for another URL are refused. Empty: not checked; 'token create' then needs --hub."`
	BrokerURL    string `yaml:"broker_url" doc:"The broker URL handed to devices (tcp:// or ssl://, their view of it); empty: mqtt.broker_url, or the embedded broker on this host's loopback (only useful for tests)."`
	BrokerCAFile string `yaml:"broker_ca_file" doc:"CA certificate (PEM) of an ssl:// broker, handed to devices with its SHA-256 fingerprint to pin."`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level" enum:"debug|info|warn|error" doc:"Minimum level logged."`
	Format string `yaml:"format" enum:"auto|json|text" doc:"auto: JSON under systemd, text otherwise."`
}

// StoreConfig selects the database.
type StoreConfig struct {
	Driver  string `yaml:"driver" enum:"sqlite|postgres" doc:"sqlite (modernc.org/sqlite, WAL; one box) or postgres (pgx; a fleet with N hub replicas)."`
	Path    string `yaml:"path" doc:"SQLite database file; empty: hub.db in state_dir."`
	DSN     string `yaml:"dsn" doc:"PostgreSQL URL without a password (peer or trust auth), e.g. postgres://glint@127.0.0.1:5432/glint; prefer dsn_file when it holds a password."`
	DSNFile string `yaml:"dsn_file" doc:"File holding the PostgreSQL URL (secret); relative names are looked up in $CREDENTIALS_DIRECTORY."`
}

// Validate requires a DSN for PostgreSQL.
func (c *StoreConfig) Validate() error {
	if c.Driver == "postgres" && c.DSN == "" && c.DSNFile == "" {
		return config.Invalid("dsn", "store.dsn or store.dsn_file must be set for postgres")
	}
	return nil
}

// MQTTConfig configures the broker side.
type MQTTConfig struct {
	BrokerURL        string `yaml:"broker_url" doc:"External broker, tcp://host:1883 or ssl://host:8883; empty starts the embedded broker."`
	Username         string `yaml:"username" doc:"Username at the external broker."`
	PasswordFile     string `yaml:"password_file" doc:"File holding the external broker password; relative names are looked up in $CREDENTIALS_DIRECTORY."`
	CAFile           string `yaml:"ca_file" doc:"CA certificate pinned for ssl:// brokers (the system roots are not used)."`
	CertFile         string `yaml:"cert_file" doc:"Client certificate for the external broker (optional)."`
	KeyFile          string `yaml:"key_file" doc:"Client certificate key for the external broker (optional)."`
	Prefix           string `yaml:"prefix" required:"true" doc:"Topic prefix: <prefix>/<device>/result etc."`
	ClientID         string `yaml:"client_id" doc:"This replica's MQTT client ID (a persistent session); must differ between replicas; empty: glint-hub-<hostname>."`
	EmbeddedAddr     string `yaml:"embedded_addr" doc:"Listen address of the embedded broker (not 1883, so it never collides with a system broker)."`
	EmbeddedCertFile string `yaml:"embedded_cert_file" doc:"TLS certificate of the embedded broker; empty serves plain TCP."`
	EmbeddedKeyFile  string `yaml:"embedded_key_file" doc:"TLS key of the embedded broker."`
}

// APIConfig configures the HTTP API.
type APIConfig struct {
	Addr     string `yaml:"addr" doc:"Listen address of the HTTP API; empty disables it."`
	KeysFile string `yaml:"keys_file" doc:"File with the accepted API keys, one per line (≥ 16 characters each); relative names are looked up in $CREDENTIALS_DIRECTORY."`
}

// Validate requires keys when the API listens.
func (c *APIConfig) Validate() error {
	if c.Addr != "" && c.KeysFile == "" {
		return config.Invalid("keys_file", "must be set when api.addr is set")
	}
	return nil
}

// IngestConfig tunes ingest.
type IngestConfig struct {
	BatchSize     int           `yaml:"batch_size" min:"1" max:"10000" doc:"Most results committed in one transaction."`
	BatchWait     time.Duration `yaml:"batch_wait" min:"0s" max:"1s" doc:"How long a batch waits for more results after its first."`
	MaxFutureSkew time.Duration `yaml:"max_future_skew" min:"1s" max:"24h" doc:"Results dated further ahead of the hub's clock are quarantined (clock_skew)."`
}

// ServiceCfg configures systemd interaction.
type ServiceCfg struct {
	Watchdog bool `yaml:"watchdog" doc:"Ping systemd's watchdog at half of WatchdogSec."`
}

func defaultConfig() Config {
	return Config{
		Log:       LogConfig{Level: "info", Format: "auto"},
		StateDir:  "/var/lib/glint-hub",
		Store:     StoreConfig{Driver: "sqlite"},
		MQTT:      MQTTConfig{Prefix: link.DefaultPrefix, EmbeddedAddr: ":18830"},
		API:       APIConfig{Addr: "127.0.0.1:8780", KeysFile: "api-keys"},
		Ingest:    IngestConfig{BatchSize: 256, BatchWait: 5 * time.Millisecond, MaxFutureSkew: 5 * time.Minute},
		Provision: ProvisionConfig{Enabled: true},
		Service:   ServiceCfg{Watchdog: true},
	}
}

func loadConfig(path string) (Config, error) {
	return config.Load(path, defaultConfig(), config.Options{EnvPrefix: envPrefix})
}

// readSecret reads a secret file; a relative name is looked up in
// $CREDENTIALS_DIRECTORY (systemd LoadCredential=).
func readSecret(key, path string) (string, error) {
	if !filepath.IsAbs(path) {
		dir := os.Getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return "", fmt.Errorf("%s %q is relative and $CREDENTIALS_DIRECTORY is not set", key, path)
		}
		path = filepath.Join(dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s %s is empty", key, path)
	}
	return s, nil
}

// storeSource returns the configured database engine and data source,
// reading store.dsn_file.
func storeSource(c Config) (store.Dialect, string, error) {
	switch c.Store.Driver {
	case "sqlite":
		if c.Store.Path == "" {
			return store.SQLite, filepath.Join(c.StateDir, "hub.db"), nil
		}
		return store.SQLite, c.Store.Path, nil
	case "postgres":
		if c.Store.DSNFile != "" {
			dsn, err := readSecret("store.dsn_file", c.Store.DSNFile)
			return store.Postgres, dsn, err
		}
		return store.Postgres, c.Store.DSN, nil
	}
	return "", "", fmt.Errorf("store.driver %q: unknown (sqlite or postgres)", c.Store.Driver)
}

// hubConfig turns the file into the hub's runtime configuration, reading
// secrets and certificates.
func hubConfig(c Config) (hub.Config, error) {
	h := hub.Config{
		StateDir: c.StateDir, Prefix: c.MQTT.Prefix, ClientID: c.MQTT.ClientID,
		BrokerURL: c.MQTT.BrokerURL, BrokerUsername: c.MQTT.Username, EmbeddedAddr: c.MQTT.EmbeddedAddr,
		APIAddr: c.API.Addr, BatchSize: c.Ingest.BatchSize, BatchWait: c.Ingest.BatchWait, MaxFutureSkew: c.Ingest.MaxFutureSkew,
	}
	var err error
	if h.Dialect, h.DSN, err = storeSource(c); err != nil {
		return h, err
	}
	h.Provision = hub.ProvisionConfig{Disabled: !c.Provision.Enabled, HubURL: c.Provision.HubURL, BrokerURL: c.Provision.BrokerURL}
	if h.Provision.BrokerURL == "" {
		h.Provision.BrokerURL = c.MQTT.BrokerURL
	}
	if c.Provision.BrokerCAFile != "" {
		if h.Provision.BrokerCA, err = os.ReadFile(c.Provision.BrokerCAFile); err != nil {
			return h, fmt.Errorf("provision.broker_ca_file: %w", err)
		}
	}
	if c.MQTT.PasswordFile != "" {
		p, err := readSecret("mqtt.password_file", c.MQTT.PasswordFile)
		if err != nil {
			return h, err
		}
		h.BrokerPassword = p
	}
	if c.MQTT.CAFile != "" {
		t, err := link.TLSConfig(c.MQTT.CAFile, c.MQTT.CertFile, c.MQTT.KeyFile)
		if err != nil {
			return h, fmt.Errorf("mqtt: %w", err)
		}
		h.BrokerTLS = t
	}
	if c.MQTT.EmbeddedCertFile != "" || c.MQTT.EmbeddedKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.MQTT.EmbeddedCertFile, c.MQTT.EmbeddedKeyFile)
		if err != nil {
			return h, fmt.Errorf("mqtt.embedded_cert_file: %w", err)
		}
		h.EmbeddedTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if c.API.Addr != "" {
		keys, err := readSecret("api.keys_file", c.API.KeysFile)
		if err != nil {
			return h, err
		}
		for _, k := range strings.Fields(keys) {
			if len(k) < 16 {
				return h, errors.New("api.keys_file: every key must be at least 16 characters")
			}
			h.APIKeys = append(h.APIKeys, k)
		}
	}
	return h, nil
}
