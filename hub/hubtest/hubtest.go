// Package hubtest runs a real glint-hub inside a test process: SQLite in a
// temporary directory, the embedded MQTT broker and (with API keys) the
// HTTP API on 127.0.0.1 ephemeral ports, stopped when the test ends.
package hubtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/glintdev/glint/hub"
	"github.com/glintdev/glint/hub/store"
)

// Start runs a hub until t ends. With apiKeys the HTTP API serves too
// (h.APIAddr()), authenticating those keys.
func Start(t testing.TB, apiKeys ...string) *hub.Hub {
	t.Helper()
	cfg := hub.Config{StateDir: t.TempDir(), Dialect: store.SQLite, DSN: filepath.Join(t.TempDir(), "hub.db"), EmbeddedAddr: "127.0.0.1:0"}
	if len(apiKeys) > 0 {
		cfg.APIAddr, cfg.APIKeys = "127.0.0.1:0", apiKeys
	}
	h, err := hub.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("hubtest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hubtest: hub stopped with %v", err)
		}
		h.Close()
	})
	return h
}
