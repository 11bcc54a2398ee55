package ingest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/sync/envelope"
)

// p256Key is a software ES256 signer standing in for a TPM key.
type p256Key struct {
	k   *ecdsa.PrivateKey
	pub device.PublicKey
}

func newP256(t *testing.T) *p256Key {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, err := device.P256Public(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return &p256Key{k, pub}
}
func (p *p256Key) KeyID() string               { return p.pub.KeyID() }
func (p *p256Key) Algorithm() device.Alg       { return device.AlgES256 }
func (p *p256Key) PublicKey() device.PublicKey { return p.pub }
func (p *p256Key) SignMessage(m []byte) ([]byte, error) {
	d := sha256.Sum256(m)
	r, s, err := ecdsa.Sign(rand.Reader, p.k, d[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

// TestES256Device: a device registered with a P-256 key has its ES256
// results stored and receipted; an EdDSA envelope under its kid is not.
func TestES256Device(t *testing.T) {
	f := setup(t, store.SQLite)
	k := newP256(t)
	if _, err := f.st.RegisterDeviceKey(context.Background(), "dev-tpm", "site", k.PublicKey()); err != nil {
		t.Fatal(err)
	}
	r := record(t, "dev-tpm", 1)
	env, err := envelope.SignRecord(k, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.in.Submit(context.Background(), "glint/v1/dev-tpm/result", env); err != nil {
		t.Fatal(err)
	}
	waitCount(t, f, 1, 0)
	items := f.pub.waitReceipts(t, "glint/v1/dev-tpm/receipt", f.hub, 1)
	if len(items) != 1 || items[0].Status != envelope.ReceiptStored {
		t.Fatalf("%+v", items)
	}
}

func TestVerifyGuard(t *testing.T) {
	f := setup(t, store.SQLite)
	ctx := context.Background()
	k := newP256(t)
	if _, err := f.st.RegisterDeviceKey(ctx, "dev-tpm", "site", k.PublicKey()); err != nil {
		t.Fatal(err)
	}
	rep := device.Report{CheckedAt: time.Now(), Risk: device.SeverityWarn, Signals: []device.Signal{{Code: "X", Severity: device.SeverityWarn}}}
	sign := func(key device.Signer, dev string, at time.Time) []byte {
		b, err := envelope.SignGuard(key, envelope.NewGuardReport(dev, rep, at))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	now := time.Now()
	stranger, _ := device.GenerateKey()
	rb, _ := envelope.SignRecord(f.dev, record(t, "dev-1", 1))
	for _, tt := range []struct {
		name, topic string
		env         []byte
		reason      string
	}{
		{"ok ed25519", "glint/v1/dev-1/guard", sign(f.dev, "dev-1", now), ""},
		{"ok es256", "glint/v1/dev-tpm/guard", sign(k, "dev-tpm", now), ""},
		{"other device's topic", "glint/v1/dev-tpm/guard", sign(f.dev, "dev-1", now), "guard_device_mismatch"},
		{"about another device", "glint/v1/dev-1/guard", sign(f.dev, "dev-tpm", now), "guard_device_mismatch"},
		{"unknown key", "glint/v1/dev-1/guard", sign(stranger, "dev-1", now), "guard_unknown_device"},
		{"revoked", "glint/v1/dev-r/guard", sign(f.revoked, "dev-r", now), "guard_revoked_device"},
		{"a result on the guard topic", "glint/v1/dev-1/guard", rb, "guard_bad_content_type"},
		{"future", "glint/v1/dev-1/guard", sign(f.dev, "dev-1", now.Add(time.Hour)), "guard_clock_skew"},
		{"bad topic", "glint/v1/dev-1/result", sign(f.dev, "dev-1", now), "guard_bad_topic"},
		{"garbage", "glint/v1/dev-1/guard", []byte("garbage"), "guard_malformed"},
	} {
		g, q, err := f.in.VerifyGuard(ctx, tt.topic, tt.env)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		switch {
		case tt.reason == "" && (g == nil || q != nil || g.Risk != "warn"):
			t.Errorf("%s: %+v %+v", tt.name, g, q)
		case tt.reason != "" && (g != nil || q == nil || q.Reason != tt.reason):
			t.Errorf("%s: %+v, want %s", tt.name, q, tt.reason)
		}
	}
}
