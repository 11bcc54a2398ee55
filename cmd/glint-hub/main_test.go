package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glintdev/glint/sync/testsvc"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "glint-hub.yaml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(body, "DIR", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheck(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keys, []byte("0123456789abcdef0123\n"), 0o600)
	tests := []struct {
		name, body string
		code       int
		msg        string
	}{
		{"minimal", "state_dir: DIR\napi:\n  keys_file: " + keys + "\n", exitOK, "OK"},
		{"unknown key", "state_dir: DIR\nstroe: {}\n", exitConfig, `unknown key "stroe"`},
		{"postgres without dsn", "state_dir: DIR\nstore:\n  driver: postgres\napi:\n  addr: \"\"\n", exitConfig, "store.dsn"},
		{"bad driver", "state_dir: DIR\nstore:\n  driver: mysql\n", exitConfig, "store.driver"},
		{"missing keys file", "state_dir: DIR\napi:\n  keys_file: /nonexistent\n", exitConfig, "api.keys_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := realMain([]string{"config", "check", writeConfig(t, tt.body)}, &out, &errb)
			if code != tt.code || !strings.Contains(out.String()+errb.String(), tt.msg) {
				t.Fatalf("code %d, out %q, err %q", code, out.String(), errb.String())
			}
		})
	}
}

func TestKeyCommand(t *testing.T) {
	p := writeConfig(t, "state_dir: DIR\n")
	var out1, out2, errb bytes.Buffer
	if code := realMain([]string{"key", "--config", p}, &out1, &errb); code != exitOK {
		t.Fatalf("key: %d %s", code, errb.String())
	}
	realMain([]string{"key", "--config", p}, &out2, &errb)
	if !strings.Contains(out1.String(), "BEGIN PUBLIC KEY") || out1.String() != out2.String() {
		t.Fatalf("key output unstable:\n%s\n%s", out1.String(), out2.String())
	}
}

// TestRunServes starts the hub from a configuration file with the embedded
// broker and SQLite, and checks the API answers.
func TestRunServes(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keys, []byte("0123456789abcdef0123\n"), 0o600)
	apiPort, mqttPort := testsvc.FreePort(t), testsvc.FreePort(t)
	p := writeConfig(t, fmt.Sprintf("state_dir: DIR\nlog:\n  level: warn\nmqtt:\n  embedded_addr: 127.0.0.1:%d\napi:\n  addr: 127.0.0.1:%d\n  keys_file: %s\n", mqttPort, apiPort, keys))
	cfg, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := hubConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, hc, false, newLogger(cfg.Log, os.Stderr)) }()
	addr := fmt.Sprintf("127.0.0.1:%d", apiPort)
	testsvc.WaitListen(t, addr, 10*time.Second)
	testsvc.WaitListen(t, fmt.Sprintf("127.0.0.1:%d", mqttPort), 10*time.Second)
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/devices", nil)
	req.Header.Set("X-API-Key", "0123456789abcdef0123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("devices: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "hub.db")); err != nil {
		t.Fatalf("no SQLite database in the state dir: %v", err)
	}
}

// TestConfigDocFresh: docs/hub.md ends with the generated configuration
// reference.
func TestConfigDocFresh(t *testing.T) {
	doc, err := os.ReadFile("../../docs/hub.md")
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := realMain([]string{"config", "defaults", "--markdown"}, &out, &errb); code != exitOK {
		t.Fatalf("%d %s", code, errb.String())
	}
	if !strings.HasSuffix(string(doc), out.String()) {
		t.Fatal("docs/hub.md's configuration reference is stale: regenerate it with `glint-hub config defaults --markdown`")
	}
}
