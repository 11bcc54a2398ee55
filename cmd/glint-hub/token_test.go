package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/store"
)

// TestTokenCommand: token create prints a token whose hash is stored for
// the site, a provisioning link that parses back, and a QR code PNG; list
// shows it without the token; usage errors exit 2.
func TestTokenCommand(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "hub.db")
	p := writeConfig(t, "state_dir: DIR\nstore:\n  path: "+dsn+"\nprovision:\n  hub_url: https://hub.example:8780\n")
	s, err := store.Open(context.Background(), store.SQLite, dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	policy := filepath.Join(t.TempDir(), "policy.json")
	os.WriteFile(policy, []byte(`{"liveness_min": 80}`), 0o600)
	qrFile := filepath.Join(t.TempDir(), "token.png")
	run := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := realMain(append([]string{"token"}, args...), &out, &errb); code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	o := run(exitOK, "create", "--config", p, "--site", "bank-12", "--ttl", "20m", "--note", "kiosk by the door", "--qr", qrFile, "--policy", policy)
	t.Logf("\n%s", o)
	tok := regexp.MustCompile(`(?m)^token:\s+(\S+)$`).FindStringSubmatch(o)
	link := regexp.MustCompile(`(?m)^link:\s+(\S+)$`).FindStringSubmatch(o)
	if tok == nil || link == nil {
		t.Fatalf("output:\n%s", o)
	}
	l, err := device.ParseProvisionLink(link[1])
	if err != nil || l.Token != tok[1] || l.Hub != "https://hub.example:8780" {
		t.Fatalf("link %q: %+v %v", link[1], l, err)
	}
	f, err := os.Open(qrFile)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("QR PNG: %v", err)
	}
	s, err = store.Open(context.Background(), store.SQLite, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k, _ := device.GenerateKey()
	res, err := s.Provision(context.Background(), store.ProvisionParams{TokenHash: store.HashToken(tok[1]), DeviceID: "kiosk-1", Key: k.PublicKey(), Now: time.Now()})
	if err != nil || res.SiteID != "bank-12" || !strings.Contains(string(res.Policy), `"liveness_min": 80`) {
		t.Fatalf("the printed token does not provision: %+v %v", res, err)
	}
	o = run(exitOK, "list", "--config", p)
	if !strings.Contains(o, "bank-12") || !strings.Contains(o, "kiosk-1 at ") || strings.Contains(o, tok[1]) {
		t.Fatalf("list:\n%s", o)
	}
	run(exitConfig, "create", "--config", p)                                    // no site
	run(exitConfig, "create", "--config", p, "--site", "s", "--ttl", "720h")    // too long
	run(exitConfig, "create", "--config", p, "--site", "s", "--hub", "ftp://x") // not http(s)
	run(exitConfig, "create", "--config", p, "--site", "s", "--hub-ca", policy) // not a certificate
	run(exitConfig, "frobnicate")
}
