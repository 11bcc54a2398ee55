package device

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"
)

// simTPM is a transport over the go-tpm-tools simulator (the Microsoft
// reference TPM 2.0 compiled in with cgo). Only one simulator exists per
// process: tests using it do not run in parallel.
type simTPM struct{ s *simulator.Simulator }

func (t simTPM) Send(cmd []byte) ([]byte, error) {
	if _, err := t.s.Write(cmd); err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	n, err := t.s.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func (t simTPM) Close() error { return t.s.Close() }

// openSimTPM starts a simulator with a fixed seed: the same seed gives the
// same owner hierarchy, i.e. the same device, across restarts.
func openSimTPM(t testing.TB, seed int64) transport.TPMCloser {
	t.Helper()
	s, err := simulator.GetWithFixedSeedInsecure(seed)
	if err != nil {
		t.Fatalf("TPM simulator: %v", err)
	}
	return simTPM{s}
}

func TestTPMKeySignsES256(t *testing.T) {
	k, err := NewTPMKey(openSimTPM(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	pub := k.PublicKey()
	if k.Algorithm() != AlgES256 || pub.Alg != AlgES256 || len(pub.Raw) != 65 || k.KeyID() != pub.KeyID() || len(k.KeyID()) != 32 {
		t.Fatalf("key %s %x kid %s", pub.Alg, pub.Raw, k.KeyID())
	}
	msg := []byte("glint result payload")
	sig, err := k.SignMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) != SignatureSize || !pub.Verify(msg, sig) {
		t.Fatalf("TPM signature does not verify: %x", sig)
	}
	// Independently with crypto/ecdsa: r||s over SHA-256(msg).
	d := sha256.Sum256(msg)
	if !ecdsa.Verify(k.ECDSAPublic(), d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("crypto/ecdsa rejects the TPM signature")
	}
	if pub.Verify([]byte("other message"), sig) {
		t.Fatal("signature verifies over another message")
	}
	bad := append([]byte(nil), sig...)
	bad[10] ^= 1
	if pub.Verify(msg, bad) {
		t.Fatal("tampered signature verifies")
	}
	// ECDSA is randomised: two signatures differ and both verify.
	sig2, _ := k.SignMessage(msg)
	if string(sig2) == string(sig) || !pub.Verify(msg, sig2) {
		t.Fatal("second signature")
	}
	pemBytes, err := pub.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePublicKey(pemBytes)
	if err != nil || !back.Equal(pub) {
		t.Fatalf("PEM round trip: %v", err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := k.SignMessage(msg); err == nil {
		t.Fatal("signed after Close")
	}

	// The same TPM (same seed) re-derives the same key after a restart;
	// another TPM derives another one.
	again, err := NewTPMKey(openSimTPM(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	same := again.PublicKey()
	again.Close()
	other, err := NewTPMKey(openSimTPM(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	diff := other.PublicKey()
	other.Close()
	if !same.Equal(pub) {
		t.Fatal("the same TPM derived a different key")
	}
	if diff.Equal(pub) {
		t.Fatal("another TPM derived the same key")
	}
}

func TestPublicKeyChecks(t *testing.T) {
	k, _ := GenerateKey()
	if k.PublicKey().KeyID() != KeyID(k.Public()) {
		t.Fatal("Ed25519 kid changed")
	}
	sig, _ := k.SignMessage([]byte("m"))
	if !k.PublicKey().Verify([]byte("m"), sig) {
		t.Fatal("Ed25519 verify")
	}
	// A signature of one algorithm never verifies under the other.
	if (PublicKey{Alg: AlgES256, Raw: k.PublicKey().Raw}).Verify([]byte("m"), sig) {
		t.Fatal("cross-algorithm verify")
	}
	notOnCurve := make([]byte, 65)
	notOnCurve[0] = 4
	notOnCurve[64] = 1
	for _, p := range []PublicKey{
		{Alg: AlgEdDSA, Raw: make([]byte, 31)},
		{Alg: AlgES256, Raw: make([]byte, 64)},
		{Alg: AlgES256, Raw: notOnCurve},
		{Alg: "RS256", Raw: make([]byte, 32)},
	} {
		if err := p.Check(); !errors.Is(err, ErrAlgorithm) {
			t.Fatalf("%s %d bytes: %v", p.Alg, len(p.Raw), err)
		}
		if _, err := NewPublicKey(p.Alg, p.Raw); err == nil {
			t.Fatal("NewPublicKey accepted a bad key")
		}
	}
	if _, err := ParsePublicKey([]byte("junk")); err == nil {
		t.Fatal("parsed junk")
	}
}
