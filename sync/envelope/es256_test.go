package envelope

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/veraison/go-cose"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/result"
)

// p256Signer is a software ES256 device.Signer (what a TPM key does, with
// the private key in memory), for tests.
type p256Signer struct {
	k   *ecdsa.PrivateKey
	pub device.PublicKey
}

func newP256(t testing.TB) *p256Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := device.P256Public(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return &p256Signer{k: k, pub: pub}
}

func (s *p256Signer) KeyID() string               { return s.pub.KeyID() }
func (s *p256Signer) Algorithm() device.Alg       { return device.AlgES256 }
func (s *p256Signer) PublicKey() device.PublicKey { return s.pub }
func (s *p256Signer) SignMessage(msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	r, ss, err := ecdsa.Sign(rand.Reader, s.k, d[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	ss.FillBytes(out[32:])
	return out, nil
}

func TestES256Record(t *testing.T) {
	k := newP256(t)
	r, _ := result.Synthetic("dev-tpm", "site-a", 3, time.Now())
	b, err := SignRecord(k, r)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Alg != device.AlgES256 || e.KID != k.KeyID() {
		t.Fatalf("alg %s kid %s", e.Alg, e.KID)
	}
	got, err := OpenRecordKey(b, k.PublicKey())
	if err != nil || got.ID != r.ID {
		t.Fatalf("open: %v", err)
	}
	// go-cose's own ES256 verifier accepts it: the signature is standard
	// COSE ES256, not a private format.
	v, _ := cose.NewVerifier(cose.AlgorithmES256, &k.k.PublicKey)
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(b); err != nil || msg.Verify(nil, v) != nil {
		t.Fatal("go-cose rejects the ES256 envelope")
	}

	ed := testKey(t)
	other := newP256(t)
	edSigner, _ := cose.NewSigner(cose.AlgorithmEdDSA, ed.Private)
	// An EdDSA envelope claiming the P-256 device's kid: alg pinned by the
	// registry, refused before any signature check.
	edAsP256 := coseWith(t, cose.AlgorithmEdDSA, edSigner,
		map[any]any{cose.HeaderLabelKeyID: []byte(k.KeyID()), cose.HeaderLabelContentType: ContentTypeRecord}, nil, e.Payload)
	es384Key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	es384, _ := cose.NewSigner(cose.AlgorithmES384, es384Key)
	tampered := append([]byte(nil), b...)
	tampered[len(tampered)-5] ^= 1
	for _, tt := range []struct {
		name string
		in   []byte
		pub  device.PublicKey
		want error
	}{
		{"other P-256 key", b, other.PublicKey(), ErrKeyID},
		{"Ed25519 key", b, ed.PublicKey(), ErrKeyID},
		{"EdDSA envelope for ES256 kid", edAsP256, k.PublicKey(), ErrAlgorithm},
		{"ES384", coseWith(t, cose.AlgorithmES384, es384, map[any]any{cose.HeaderLabelKeyID: []byte(k.KeyID()), cose.HeaderLabelContentType: ContentTypeRecord}, nil, e.Payload), k.PublicKey(), ErrAlgorithm},
		{"tampered signature", tampered, k.PublicKey(), ErrSignature},
		{"invalid registered key", b, device.PublicKey{Alg: device.AlgES256, Raw: make([]byte, 65)}, ErrKeyID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenRecordKey(tt.in, tt.pub)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestGuardReport(t *testing.T) {
	for _, k := range []device.Signer{testKey(t), newP256(t)} {
		t.Run(string(k.Algorithm()), func(t *testing.T) {
			rep := device.Report{CheckedAt: time.Now(), Risk: device.SeverityCritical, Signals: []device.Signal{
				{Code: device.SignalCameraVirtual, Severity: device.SeverityCritical, Message: "v4l2 loopback", Evidence: map[string]string{"driver": "v4l2 loopback"}},
			}}
			b, err := SignGuard(k, NewGuardReport("dev-1", rep, time.Now()))
			if err != nil {
				t.Fatal(err)
			}
			g, err := OpenGuard(b, k.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			if g.DeviceID != "dev-1" || g.Risk != "critical" || len(g.Signals) != 1 || g.Signals[0].Evidence["driver"] != "v4l2 loopback" {
				t.Fatalf("%+v", g)
			}
			// A guard report is not a record and the reverse.
			if _, err := OpenRecordKey(b, k.PublicKey()); !errors.Is(err, ErrContentType) {
				t.Fatalf("guard as record: %v", err)
			}
			rb, _ := SignRecord(k, mustSynthetic(t))
			if _, err := OpenGuard(rb, k.PublicKey()); !errors.Is(err, ErrContentType) {
				t.Fatalf("record as guard: %v", err)
			}
			junk, _ := Sign(k, ContentTypeGuard, []byte{0xa1, 0x61, 0x76, 0x02})
			if _, err := OpenGuard(junk, k.PublicKey()); !errors.Is(err, ErrPayload) {
				t.Fatalf("bad payload: %v", err)
			}
		})
	}
}

func mustSynthetic(t *testing.T) *result.Record {
	r, err := result.Synthetic("dev-1", "s", 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// BenchmarkOpenRecordES256 is BenchmarkOpenRecord for a TPM device's
// envelope: the hub's verification cost per ES256 result.
func BenchmarkOpenRecordES256(b *testing.B) {
	k := newP256(b)
	r, _ := result.Synthetic("dev-1", "site-a", 7, time.Now())
	env, err := SignRecord(k, r)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenRecordKey(env, k.PublicKey()); err != nil {
			b.Fatal(err)
		}
	}
}
