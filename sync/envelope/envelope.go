package envelope

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/veraison/go-cose"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/result"
)

// MaxSize is the largest envelope accepted, in bytes: 64 KiB, enough for a
// record with a retained evidence frame of about 55 KiB (a 640x480 JPEG at
// moderate quality), small enough that a hub holds thousands in flight.
// Records larger than result.MaxEncodedSize are refused when signing.
const MaxSize = 64 << 10

// Content types carried in the protected header.
const (
	ContentTypeRecord  = "application/vnd.glint.result.v1+cbor"
	ContentTypeReceipt = "application/vnd.glint.receipt.v1+cbor"
	ContentTypeGuard   = "application/vnd.glint.guard.v1+cbor"
)

// Errors callers branch on; every decode or verify failure wraps exactly one
// of them (Reason names it for metrics and the quarantine table).
var (
	ErrTooLarge    = errors.New("envelope too large")
	ErrMalformed   = errors.New("malformed envelope")
	ErrAlgorithm   = errors.New("algorithm not allowed")
	ErrKeyID       = errors.New("key id mismatch")
	ErrSignature   = errors.New("signature invalid")
	ErrContentType = errors.New("unexpected content type")
	ErrPayload     = errors.New("invalid payload")
)

// Reason maps an error from this package to a short stable code ("", when
// err is nil; "other" when it is not one of ours).
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrAlgorithm):
		return "bad_algorithm"
	case errors.Is(err, ErrKeyID):
		return "wrong_kid"
	case errors.Is(err, ErrSignature):
		return "bad_signature"
	case errors.Is(err, ErrContentType):
		return "bad_content_type"
	case errors.Is(err, ErrPayload):
		return "invalid_record"
	}
	return "other"
}

// Envelope is a decoded, not yet verified, COSE_Sign1 message.
type Envelope struct {
	// Alg is the protected algorithm: device.AlgEdDSA or device.AlgES256.
	Alg device.Alg
	// KID is the signer's key ID from the protected header.
	KID string
	// ContentType is the protected content type.
	ContentType string
	// Payload is the signed payload (deterministic CBOR).
	Payload []byte

	msg *cose.Sign1Message
}

// coseAlg maps a device key algorithm to its COSE identifier.
func coseAlg(a device.Alg) (cose.Algorithm, error) {
	switch a {
	case device.AlgEdDSA:
		return cose.AlgorithmEdDSA, nil
	case device.AlgES256:
		return cose.AlgorithmES256, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrAlgorithm, a)
}

// coseSigner adapts a device.Signer (key file or TPM) to go-cose: the
// signer returns COSE-form signatures already.
type coseSigner struct {
	s   device.Signer
	alg cose.Algorithm
}

func (c coseSigner) Algorithm() cose.Algorithm { return c.alg }

func (c coseSigner) Sign(_ io.Reader, content []byte) ([]byte, error) {
	return c.s.SignMessage(content)
}

// coseVerifier checks signatures with a registered device.PublicKey.
type coseVerifier struct {
	pub device.PublicKey
	alg cose.Algorithm
}

func (c coseVerifier) Algorithm() cose.Algorithm { return c.alg }

func (c coseVerifier) Verify(content, sig []byte) error {
	if !c.pub.Verify(content, sig) {
		return errors.New("verification failed")
	}
	return nil
}

// Sign wraps payload in a COSE_Sign1 signed with key: EdDSA for the
// Ed25519 key file (*device.Key), ES256 for a TPM key.
func Sign(key device.Signer, contentType string, payload []byte) ([]byte, error) {
	alg, err := coseAlg(key.Algorithm())
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(alg)
	msg.Headers.Protected[cose.HeaderLabelKeyID] = []byte(key.KeyID())
	msg.Headers.Protected[cose.HeaderLabelContentType] = contentType
	msg.Payload = payload
	if err := msg.Sign(rand.Reader, nil, coseSigner{s: key, alg: alg}); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	b, err := msg.MarshalCBOR()
	if err != nil {
		return nil, fmt.Errorf("sign: encode: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("sign: %w: %d bytes > %d", ErrTooLarge, len(b), MaxSize)
	}
	return b, nil
}

// SignRecord encodes r deterministically and signs it with the device key.
func SignRecord(key device.Signer, r *result.Record) ([]byte, error) {
	r.Normalize()
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("sign record: %w", err)
	}
	p, err := result.Marshal(r)
	if err != nil {
		return nil, err
	}
	if len(p) > result.MaxEncodedSize {
		return nil, fmt.Errorf("sign record: %w: record %d bytes > %d", ErrTooLarge, len(p), result.MaxEncodedSize)
	}
	return Sign(key, ContentTypeRecord, p)
}

// Decode parses b as a tagged COSE_Sign1 with the pinned algorithm, a kid
// and a content type in the protected header. It does not verify the
// signature (the verifier needs the kid to find the key).
func Decode(b []byte) (*Envelope, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, len(b), MaxSize)
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAlgorithm, err)
	}
	var dalg device.Alg
	switch alg {
	case cose.AlgorithmEdDSA:
		dalg = device.AlgEdDSA
	case cose.AlgorithmES256:
		dalg = device.AlgES256
	default:
		return nil, fmt.Errorf("%w: %v", ErrAlgorithm, alg)
	}
	if _, ok := msg.Headers.Unprotected[cose.HeaderLabelAlgorithm]; ok {
		return nil, fmt.Errorf("%w: algorithm in unprotected header", ErrAlgorithm)
	}
	kid, ok := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	if !ok || len(kid) == 0 || len(kid) > 64 {
		return nil, fmt.Errorf("%w: protected kid missing or invalid", ErrMalformed)
	}
	ct, ok := msg.Headers.Protected[cose.HeaderLabelContentType].(string)
	if !ok {
		return nil, fmt.Errorf("%w: protected content type missing", ErrMalformed)
	}
	if msg.Payload == nil {
		return nil, fmt.Errorf("%w: detached payload", ErrMalformed)
	}
	if len(msg.Signature) != device.SignatureSize {
		return nil, fmt.Errorf("%w: signature is %d bytes", ErrSignature, len(msg.Signature))
	}
	return &Envelope{Alg: dalg, KID: string(kid), ContentType: ct, Payload: msg.Payload, msg: &msg}, nil
}

// Verify checks the signature with an Ed25519 key pub, which must hash to
// the envelope's kid, and that the content type is want. (VerifyKey takes
// a key of either algorithm.)
func (e *Envelope) Verify(pub ed25519.PublicKey, want string) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key is %d bytes", ErrKeyID, len(pub))
	}
	return e.VerifyKey(device.Ed25519Public(pub), want)
}

// VerifyKey checks the signature with pub, the key registered for the
// envelope's kid: pub must hash to the kid, and its algorithm must be the
// envelope's (the registry pins the algorithm per key, so an envelope
// cannot choose how it is verified), and the content type must be want.
func (e *Envelope) VerifyKey(pub device.PublicKey, want string) error {
	if err := pub.Check(); err != nil {
		return fmt.Errorf("%w: %v", ErrKeyID, err)
	}
	if pub.KeyID() != e.KID {
		return fmt.Errorf("%w: envelope kid %q, key %q", ErrKeyID, e.KID, pub.KeyID())
	}
	if pub.Alg != e.Alg {
		return fmt.Errorf("%w: envelope %s, key registered for %s", ErrAlgorithm, e.Alg, pub.Alg)
	}
	if e.ContentType != want {
		return fmt.Errorf("%w: %q, want %q", ErrContentType, e.ContentType, want)
	}
	alg, err := coseAlg(pub.Alg)
	if err != nil {
		return err
	}
	if err := e.msg.Verify(nil, coseVerifier{pub: pub, alg: alg}); err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return nil
}

// Record decodes the payload as a result record (call after Verify).
func (e *Envelope) Record() (*result.Record, error) {
	if e.ContentType != ContentTypeRecord {
		return nil, fmt.Errorf("%w: %q", ErrContentType, e.ContentType)
	}
	r, err := result.Unmarshal(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	return r, nil
}

// OpenRecord decodes and verifies a record envelope with an Ed25519 key
// in one step.
func OpenRecord(b []byte, pub ed25519.PublicKey) (*result.Record, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key is %d bytes", ErrKeyID, len(pub))
	}
	return OpenRecordKey(b, device.Ed25519Public(pub))
}

// OpenRecordKey is OpenRecord with a key of either algorithm.
func OpenRecordKey(b []byte, pub device.PublicKey) (*result.Record, error) {
	e, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if err := e.VerifyKey(pub, ContentTypeRecord); err != nil {
		return nil, err
	}
	return e.Record()
}
