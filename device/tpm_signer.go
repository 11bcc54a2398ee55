package device

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// This file holds the seam between the two kinds of device identity: the
// Ed25519 key file in the state directory (Key) and a P-256 key held in a
// TPM 2.0 (TPMKey). Both implement Signer; the envelope, the MQTT auth token
// and the provisioning registration sign through it, and the hub's registry
// stores a PublicKey (algorithm + raw bytes) per device.

// Alg is a device key's signature algorithm, named as in COSE (RFC 9053).
type Alg string

// Algorithms. TPM 2.0 has no EdDSA (neither the reference simulator nor
// the TPMs fielded today implement it), so a TPM-held key is ECDSA P-256
// with SHA-256: COSE ES256.
const (
	AlgEdDSA Alg = "EdDSA" // Ed25519, COSE -8
	AlgES256 Alg = "ES256" // ECDSA P-256 + SHA-256, COSE -7
)

// ErrAlgorithm is wrapped by errors about unsupported or mismatched
// algorithms and malformed keys.
var ErrAlgorithm = errors.New("unsupported key algorithm")

// Signer is a device identity that can sign: the Ed25519 key file (*Key)
// or a TPM-held P-256 key (*TPMKey), whose private half never leaves the
// TPM.
type Signer interface {
	// KeyID is PublicKey().KeyID(): the COSE kid.
	KeyID() string
	// Algorithm is AlgEdDSA or AlgES256.
	Algorithm() Alg
	// PublicKey is the public half with its algorithm.
	PublicKey() PublicKey
	// SignMessage signs msg (the whole message, not a digest) and returns
	// the signature in COSE form: 64 bytes for both algorithms (Ed25519's
	// R||S; for ES256 the fixed-width big-endian r||s of ECDSA over
	// SHA-256(msg), RFC 9053 §2.1).
	SignMessage(msg []byte) ([]byte, error)
}

// SignatureSize is the size of every signature SignMessage returns.
const SignatureSize = 64

// PublicKey is a device public key as the hub registers it: the algorithm
// and the raw key bytes (32 bytes for Ed25519; the 65-byte uncompressed
// SEC 1 point 0x04||X||Y for P-256).
type PublicKey struct {
	Alg Alg
	Raw []byte
}

// Ed25519Public wraps an Ed25519 public key.
func Ed25519Public(pub ed25519.PublicKey) PublicKey {
	return PublicKey{Alg: AlgEdDSA, Raw: []byte(pub)}
}

// P256Public wraps an ECDSA P-256 public key.
func P256Public(pub *ecdsa.PublicKey) (PublicKey, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return PublicKey{}, fmt.Errorf("%w: not a P-256 key", ErrAlgorithm)
	}
	raw, err := pub.Bytes()
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: %v", ErrAlgorithm, err)
	}
	return PublicKey{Alg: AlgES256, Raw: raw}, nil
}

// NewPublicKey checks raw for alg and returns the key. It rejects a P-256
// point that is not on the curve, so a stored key is always usable.
func NewPublicKey(alg Alg, raw []byte) (PublicKey, error) {
	p := PublicKey{Alg: alg, Raw: append([]byte(nil), raw...)}
	if err := p.Check(); err != nil {
		return PublicKey{}, err
	}
	return p, nil
}

// Check validates the key bytes for the algorithm.
func (p PublicKey) Check() error {
	switch p.Alg {
	case AlgEdDSA:
		if len(p.Raw) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 key is %d bytes, want %d", ErrAlgorithm, len(p.Raw), ed25519.PublicKeySize)
		}
		return nil
	case AlgES256:
		if len(p.Raw) != 65 || p.Raw[0] != 4 {
			return fmt.Errorf("%w: P-256 key must be a 65-byte uncompressed point", ErrAlgorithm)
		}
		if _, err := ecdh.P256().NewPublicKey(p.Raw); err != nil {
			return fmt.Errorf("%w: P-256 point: %v", ErrAlgorithm, err)
		}
		return nil
	}
	return fmt.Errorf("%w: %q", ErrAlgorithm, p.Alg)
}

// KeyID derives the COSE kid: the lowercase hex of the first 16 bytes of
// SHA-256 over Raw. For Ed25519 this is KeyID(pub), unchanged; for P-256 it
// is the hash of the 65-byte uncompressed point. The two raw forms differ
// in length, so no key of one algorithm can share a kid with a key of the
// other except by a SHA-256 collision.
func (p PublicKey) KeyID() string {
	sum := sha256.Sum256(p.Raw)
	return hex.EncodeToString(sum[:16])
}

// Equal reports whether p and q are the same key.
func (p PublicKey) Equal(q PublicKey) bool {
	return p.Alg == q.Alg && string(p.Raw) == string(q.Raw)
}

// ECDSA returns a P-256 key as *ecdsa.PublicKey.
func (p PublicKey) ECDSA() (*ecdsa.PublicKey, error) {
	if p.Alg != AlgES256 {
		return nil, fmt.Errorf("%w: %s key is not ECDSA", ErrAlgorithm, p.Alg)
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), p.Raw)
	if err != nil {
		return nil, fmt.Errorf("%w: P-256 point: %v", ErrAlgorithm, err)
	}
	return k, nil
}

// Verify checks a COSE-form signature (see Signer.SignMessage) over msg.
func (p PublicKey) Verify(msg, sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	switch p.Alg {
	case AlgEdDSA:
		return len(p.Raw) == ed25519.PublicKeySize && ed25519.Verify(ed25519.PublicKey(p.Raw), msg, sig)
	case AlgES256:
		pub, err := p.ECDSA()
		if err != nil {
			return false
		}
		d := sha256.Sum256(msg)
		return ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	}
	return false
}

// MarshalPEM returns the key as PKIX PEM (what POST /api/v1/devices and
// the provisioning registration carry).
func (p PublicKey) MarshalPEM() ([]byte, error) {
	var k any
	switch p.Alg {
	case AlgEdDSA:
		if err := p.Check(); err != nil {
			return nil, err
		}
		k = ed25519.PublicKey(p.Raw)
	case AlgES256:
		e, err := p.ECDSA()
		if err != nil {
			return nil, err
		}
		k = e
	default:
		return nil, fmt.Errorf("%w: %q", ErrAlgorithm, p.Alg)
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKey parses a PKIX PEM public key of either algorithm
// (ParsePublicKeyPEM accepts only Ed25519).
func ParsePublicKey(b []byte) (PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return PublicKey{}, errors.New("parse public key: no PUBLIC KEY PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return PublicKey{}, fmt.Errorf("parse public key: %w", err)
	}
	switch k := k.(type) {
	case ed25519.PublicKey:
		return Ed25519Public(k), nil
	case *ecdsa.PublicKey:
		return P256Public(k)
	}
	return PublicKey{}, fmt.Errorf("parse public key: %w: %T", ErrAlgorithm, k)
}

// KeyID implements Signer (the same value as the ID field).
func (k *Key) KeyID() string { return k.ID }

// Algorithm implements Signer: AlgEdDSA.
func (k *Key) Algorithm() Alg { return AlgEdDSA }

// PublicKey implements Signer.
func (k *Key) PublicKey() PublicKey { return Ed25519Public(k.Public()) }

// SignMessage implements Signer: a plain Ed25519 signature.
func (k *Key) SignMessage(msg []byte) ([]byte, error) {
	return ed25519.Sign(k.Private, msg), nil
}

var _ Signer = (*Key)(nil)
