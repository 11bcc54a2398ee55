package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/hub/store/storetest"
)

// TestMosquittoConfigCommand runs glint-hub mosquitto-config against a
// registry on each store engine: the first run issues secrets, the second
// none, --rotate one; bad usage and unusable paths are clear errors.
func TestMosquittoConfigCommand(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			var p string
			if d == store.SQLite {
				p = writeConfig(t, "state_dir: DIR\nstore:\n  path: "+dsn+"\n")
			} else {
				p = writeConfig(t, "state_dir: DIR\nstore:\n  driver: postgres\n  dsn: "+dsn+"\n")
			}
			s, err := store.Open(context.Background(), d, dsn)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"kiosk-1", "gate-2"} {
				k, _ := device.GenerateKey()
				if _, err := s.RegisterDevice(context.Background(), id, "site", k.Public()); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			outDir := filepath.Join(t.TempDir(), "mosq")
			run := func(want int, extra ...string) string {
				t.Helper()
				var out, errb bytes.Buffer
				code := realMain(append([]string{"mosquitto-config", "--config", p, "--out", outDir}, extra...), &out, &errb)
				if code != want {
					t.Fatalf("%v: exit %d, want %d\n%s%s", extra, code, want, out.String(), errb.String())
				}
				return out.String() + errb.String()
			}
			o := run(exitOK, "--port", "8883", "--certfile", "/etc/mosquitto/server.pem", "--keyfile", "/etc/mosquitto/server.key")
			if !strings.Contains(o, "wrote ACL for 2 devices to "+filepath.Join(outDir, "glint.acl")) || !strings.Contains(o, "3 new secrets") {
				t.Fatalf("first run:\n%s", o)
			}
			conf, _ := os.ReadFile(filepath.Join(outDir, "glint.conf"))
			if !strings.Contains(string(conf), "listener 8883\n") || !strings.Contains(string(conf), "certfile /etc/mosquitto/server.pem\n") ||
				!strings.Contains(string(conf), "allow_anonymous false\n") {
				t.Fatalf("glint.conf:\n%s", conf)
			}
			if o := run(exitOK); !strings.Contains(o, "no new secrets") {
				t.Fatalf("second run:\n%s", o)
			}
			if o := run(exitOK, "--rotate", "gate-2"); !strings.Contains(o, "1 new secrets") || !strings.Contains(o, "gate-2") {
				t.Fatalf("rotate:\n%s", o)
			}
			if o := run(exitConfig, "--rotate", "nope"); !strings.Contains(o, `rotate "nope"`) {
				t.Fatalf("rotate unknown:\n%s", o)
			}
		})
	}
}

func TestMosquittoConfigErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	noStore := writeConfig(t, "state_dir: DIR\n")
	dsn := storetest.DSN(t, store.SQLite)
	s, err := store.Open(context.Background(), store.SQLite, dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	withStore := writeConfig(t, "state_dir: DIR\nstore:\n  path: "+dsn+"\n")
	for _, tt := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no --out", []string{"--config", withStore}, exitConfig, "--out DIR is required"},
		{"no store", []string{"--config", noStore, "--out", t.TempDir()}, exitFailure, "has the hub run"},
		{"bad driver", []string{"--config", writeConfig(t, "state_dir: DIR\nstore:\n  driver: mysql\n"), "--out", t.TempDir()}, exitConfig, "store.driver"},
		{"unwritable out", []string{"--config", withStore, "--out", filepath.Join(file, "x")}, exitFailure, "output directory"},
		{"cert without key", []string{"--config", withStore, "--out", t.TempDir(), "--certfile", "c.pem"}, exitConfig, "certificate and a key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := realMain(append([]string{"mosquitto-config"}, tt.args...), &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.msg) {
				t.Fatalf("exit %d, out %q, err %q", code, out.String(), errb.String())
			}
		})
	}
}
