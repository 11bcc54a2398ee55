// Package envelope signs and verifies glint's wire objects as COSE_Sign1
// (RFC 9052) messages, via github.com/veraison/go-cose.
//
// Two algorithms are accepted, one per kind of device key: EdDSA (Ed25519,
// COSE -8) for the key file in the state directory, and ES256 (ECDSA
// P-256 with SHA-256, COSE -7, signature r||s as RFC 9053 fixes it) for a
// key held in a TPM 2.0, which has no EdDSA. Signing goes through
// device.Signer, so the private key of a TPM device is never in memory.
//
// An envelope's protected header carries exactly: alg, kid = the signer's
// key ID (device.PublicKey.KeyID: hex of the first 16 bytes of SHA-256
// over the raw public key — the 32-byte Ed25519 key, or the 65-byte
// uncompressed P-256 point) and content type naming what the payload is (a
// result record, a hub receipt or a guard report), so that no object can be
// passed off as another. The payload is the object's deterministic CBOR.
//
// Verification pins the algorithm: anything but EdDSA or ES256 in the
// protected header is rejected before any key is used, the unprotected
// header must not carry an algorithm at all, and the envelope's algorithm
// must be the one the verifying key is registered with (the hub stores it
// per device), so an envelope cannot choose how it is checked. The verifier
// also checks that the key it was given hashes to the envelope's kid.
// Envelopes are limited to MaxSize bytes, checked before any decoding.
package envelope
