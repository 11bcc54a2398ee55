package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
)

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	k, _ := device.GenerateKey()
	other, _ := device.GenerateKey()
	r, _ := result.Synthetic("kiosk-7", "site", 3, time.Now())
	env, err := envelope.SignRecord(k, r)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pem, _ := device.PublicKeyPEM(k.Public())
	otherPEM, _ := device.PublicKeyPEM(other.Public())
	apiJSON, _ := json.Marshal(map[string]any{"id": r.ID, "envelope": env})
	keyFile, otherFile := write("dev.pem", pem), write("other.pem", otherPEM)
	forged := append([]byte{}, env...)
	forged[len(forged)-1] ^= 1

	tests := []struct {
		name     string
		args     []string
		code     int
		verified bool
		want     string
	}{
		{"raw verified", []string{"inspect", "--pubkey", keyFile, write("raw.cose", env)}, 0, true, `"device_id": "kiosk-7"`},
		{"base64", []string{"inspect", "--pubkey", keyFile, write("b64", []byte(base64.StdEncoding.EncodeToString(env)+"\n"))}, 0, true, `"seq": 3`},
		{"hex", []string{"inspect", "--pubkey", keyFile, write("hex", []byte(hex.EncodeToString(env)))}, 0, true, `"canonical_payload": true`},
		{"hub API JSON", []string{"inspect", "--pubkey", keyFile, write("api.json", apiJSON)}, 0, true, r.ID},
		{"no key", []string{"inspect", write("raw2.cose", env)}, 0, false, "not verified"},
		{"wrong key", []string{"inspect", "--pubkey", otherFile, write("raw3.cose", env)}, 1, false, "key id mismatch"},
		{"forged", []string{"inspect", "--pubkey", keyFile, write("forged.cose", forged)}, 1, false, "signature invalid"},
		{"garbage", []string{"inspect", write("garbage", []byte("hello"))}, 1, false, "not a valid envelope"},
		{"no file", []string{"inspect"}, exitUsage, false, "exactly one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Fatalf("code %d (want %d)\nstdout %s\nstderr %s", code, tt.code, out, errOut)
			}
			if out != "" {
				var ins inspection
				if err := json.Unmarshal([]byte(out), &ins); err != nil {
					t.Fatal(err)
				}
				if ins.Verified != tt.verified {
					t.Fatalf("verified = %v", ins.Verified)
				}
			}
		})
	}
}

func TestInspectReceipt(t *testing.T) {
	hub, _ := device.GenerateKey()
	b, _ := envelope.SignReceipt(hub, &envelope.Receipt{DeviceID: "d", StoredAt: time.Now(), Items: []envelope.ReceiptItem{{Seq: 9, RecordID: "x", Status: "stored"}}})
	dir := t.TempDir()
	p := filepath.Join(dir, "rc")
	os.WriteFile(p, b, 0o600)
	pem, _ := device.PublicKeyPEM(hub.Public())
	kp := filepath.Join(dir, "hub.pem")
	os.WriteFile(kp, pem, 0o600)
	code, out, errOut := runCmd(t, "inspect", "--pubkey", kp, p)
	if code != 0 || !strings.Contains(out, `"seq": 9`) || !strings.Contains(out, envelope.ContentTypeReceipt) {
		t.Fatalf("%d %s %s", code, out, errOut)
	}
}

func TestInspectStdin(t *testing.T) {
	k, _ := device.GenerateKey()
	r, _ := result.Synthetic("kiosk-8", "site", 1, time.Now())
	env, _ := envelope.SignRecord(k, r)
	var out, errb strings.Builder
	if err := runInspect([]string{"-"}, strings.NewReader(string(env)), &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"device_id": "kiosk-8"`) {
		t.Fatalf("%s", out.String())
	}
}
