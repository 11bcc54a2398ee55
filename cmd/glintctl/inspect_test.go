package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
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

// p256Signer is a software stand-in for a TPM-held P-256 device key.
type p256Signer struct{ k *ecdsa.PrivateKey }

func (s p256Signer) PublicKey() device.PublicKey {
	p, err := device.P256Public(&s.k.PublicKey)
	if err != nil {
		panic(err) // a P-256 key made by the test itself
	}
	return p
}
func (s p256Signer) KeyID() string         { return s.PublicKey().KeyID() }
func (s p256Signer) Algorithm() device.Alg { return device.AlgES256 }
func (s p256Signer) SignMessage(msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	r, ss, err := ecdsa.Sign(rand.Reader, s.k, h[:])
	if err != nil {
		return nil, err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	return sig, nil
}

// TestInspectES256 verifies a TPM device's (ES256) result with its P-256
// public key, and refuses it with an Ed25519 key.
func TestInspectES256(t *testing.T) {
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := p256Signer{k}
	r, _ := result.Synthetic("kiosk-tpm", "site", 1, time.Now())
	env, err := envelope.SignRecord(s, r)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := s.PublicKey().MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	ed, _ := device.GenerateKey()
	edPEM, _ := device.PublicKeyPEM(ed.Public())
	envFile, keyFile, edFile := filepath.Join(dir, "r.cose"), filepath.Join(dir, "p256.pem"), filepath.Join(dir, "ed.pem")
	for p, b := range map[string][]byte{envFile: env, keyFile: pemBytes, edFile: edPEM} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runCmd(t, "inspect", "--pubkey", keyFile, envFile)
	if code != 0 || !strings.Contains(out, `"algorithm": "ES256"`) || !strings.Contains(out, `"verified": true`) {
		t.Fatalf("P-256 key: code %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if code, out, errOut := runCmd(t, "inspect", "--pubkey", edFile, envFile); code != 1 {
		t.Fatalf("Ed25519 key accepted an ES256 envelope: code %d\nstdout %s\nstderr %s", code, out, errOut)
	}
}
