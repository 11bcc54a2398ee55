package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/hubtest"
	"github.com/glintdev/glint/internal/config"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults (offline)", func(*Config) {}, true},
		{"broker without device", func(c *Config) { c.BrokerURL = "tcp://h:1883"; c.HubKeyFile = "k" }, false},
		{"broker without hub key", func(c *Config) { c.BrokerURL = "tcp://h:1883"; c.DeviceID = "d" }, false},
		{"ssl without CA", func(c *Config) { c.BrokerURL = "ssl://h:8883"; c.DeviceID = "d"; c.HubKeyFile = "k" }, false},
		{"password without file", func(c *Config) {
			c.BrokerURL = "tcp://h:1883"
			c.DeviceID = "d"
			c.HubKeyFile = "k"
			c.Auth = "password"
		}, false},
		{"complete", func(c *Config) { c.BrokerURL = "ssl://h:8883"; c.DeviceID = "d"; c.HubKeyFile = "k"; c.CAFile = "ca" }, true},
	}
	for _, tt := range tests {
		c := Defaults()
		tt.mod(&c)
		err := c.Validate()
		if tt.ok != (err == nil) {
			t.Errorf("%s: %v", tt.name, err)
		}
		var ke *config.KeyError
		if err != nil && !errors.As(err, &ke) {
			t.Errorf("%s: %v is not a config.KeyError (glintd's loader reports it with the key)", tt.name, err)
		}
	}
}

func TestKeyPermissionsRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := device.LoadOrCreateKey(filepath.Join(dir, device.KeyFile)); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, device.KeyFile), 0o644)
	if _, err := New(dir, Defaults(), "test", nil, nil); !errors.Is(err, device.ErrKeyPermissions) {
		t.Fatalf("err = %v, want ErrKeyPermissions", err)
	}
}

// TestAgentToHub: an agent configured like glintd delivers to a hub with
// the embedded broker.
func TestAgentToHub(t *testing.T) {
	h := hubtest.Start(t)

	dir := t.TempDir()
	pemKey, _ := device.PublicKeyPEM(h.Key().Public())
	hubKeyFile := filepath.Join(dir, "hub.pem")
	os.WriteFile(hubKeyFile, pemKey, 0o644)
	cfg := Defaults()
	cfg.DeviceID, cfg.SiteID, cfg.BrokerURL, cfg.HubKeyFile = "kiosk-9", "site-x", h.BrokerURL(), hubKeyFile
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(filepath.Join(dir, "state"), cfg, "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := h.Store().RegisterDevice(context.Background(), "kiosk-9", "site-x", a.Key().Public()); err != nil {
		t.Fatal(err)
	}
	if err := a.Admit(); err != nil {
		t.Fatal(err)
	}
	r, _ := result.Synthetic("", "", 0, time.Now())
	e, err := a.Record(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := envelope.OpenRecord(e.Envelope, a.Key().Public()); err != nil || got.DeviceID != "kiosk-9" || got.SiteID != "site-x" {
		t.Fatalf("queued %+v %v", got, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(15 * time.Second)
	for a.Outbox().Stats().Depth != 0 {
		if time.Now().After(deadline) {
			t.Fatal("result not receipted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if _, err := h.Store().Result(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
}
