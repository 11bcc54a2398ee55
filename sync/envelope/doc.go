// Package envelope signs and verifies glint's wire objects as COSE_Sign1
// (RFC 9052) messages with Ed25519 (COSE algorithm EdDSA, -8), via
// github.com/veraison/go-cose.
//
// An envelope's protected header carries exactly: alg = EdDSA, kid = the
// signer's key ID (device.KeyID: hex of the first 16 bytes of SHA-256 over
// the raw public key) and content type naming what the payload is (a result
// record or a hub receipt), so that a receipt can never be passed off as a
// record or the reverse. The payload is the object's deterministic CBOR.
//
// Verification pins the algorithm: anything but EdDSA in the protected
// header is rejected before any key is used, and the unprotected header must
// not carry an algorithm at all. The verifier also checks that the key it was
// given hashes to the envelope's kid. Envelopes are limited to MaxSize bytes,
// checked before any decoding.
package envelope
