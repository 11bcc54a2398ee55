package device

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// DefaultTPMPath is the kernel's TPM 2.0 resource manager: it multiplexes
// the TPM between processes and flushes transient objects of a process that
// dies, so glintd never leaks TPM memory on a crash.
const DefaultTPMPath = "/dev/tpmrm0"

// tpmKeyLabel seeds the unique field of the key template. A primary key
// is derived from the owner hierarchy's seed and the template, so the same
// TPM always re-derives the same key (nothing is stored on disk, and
// nothing to lose), while another application's primary key with an
// otherwise identical template is a different key.
const tpmKeyLabel = "glint device identity v1"

// TPMKey is the device identity held in a TPM 2.0: an ECDSA P-256 primary
// key under the owner hierarchy, created fixedTPM and sensitiveDataOrigin,
// so the private key is generated inside the TPM and can never be exported.
// Signing sends only a SHA-256 digest to the TPM. Safe for concurrent use
// (TPM commands are serialised).
type TPMKey struct {
	mu     sync.Mutex
	tpm    transport.TPMCloser
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	pub    PublicKey
	kid    string
	closed bool
}

// tpmKeyTemplate is the public template of the device key.
func tpmKeyTemplate() tpm2.TPMTPublic {
	label := sha256.Sum256([]byte(tpmKeyLabel))
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true, // never leaves this TPM
			FixedParent:         true,
			SensitiveDataOrigin: true, // generated inside the TPM
			UserWithAuth:        true,
			SignEncrypt:         true,
			// No dictionary-attack lockout: the key has an empty
			// authorisation value (the process holding the TPM device is
			// the authority) and a lockout would stop every result.
			NoDA: true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: label[:]},
			Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		}),
	}
}

// OpenTPM opens a TPM character device (DefaultTPMPath when path is empty).
func OpenTPM(path string) (transport.TPMCloser, error) {
	if path == "" {
		path = DefaultTPMPath
	}
	t, err := linuxtpm.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open TPM %s: %w", path, err)
	}
	return t, nil
}

// NewTPMKey derives the device key in tpm (CreatePrimary) and takes
// ownership of tpm: Close flushes the key and closes it.
func NewTPMKey(tpm transport.TPMCloser) (*TPMKey, error) {
	rsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpmKeyTemplate())}.Execute(tpm)
	if err != nil {
		tpm.Close()
		return nil, fmt.Errorf("TPM: create device key: %w", err)
	}
	k := &TPMKey{tpm: tpm, handle: rsp.ObjectHandle, name: rsp.Name}
	fail := func(err error) (*TPMKey, error) { k.Close(); return nil, fmt.Errorf("TPM: device key: %w", err) }
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		return fail(err)
	}
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		return fail(err)
	}
	point, err := pub.Unique.ECC()
	if err != nil {
		return fail(err)
	}
	epub, err := tpm2.ECDSAPub(parms, point)
	if err != nil {
		return fail(err)
	}
	if k.pub, err = P256Public(epub); err != nil {
		return fail(err)
	}
	k.kid = k.pub.KeyID()
	return k, nil
}

// KeyID implements Signer.
func (k *TPMKey) KeyID() string { return k.kid }

// Algorithm implements Signer: AlgES256.
func (k *TPMKey) Algorithm() Alg { return AlgES256 }

// PublicKey implements Signer.
func (k *TPMKey) PublicKey() PublicKey { return k.pub }

// ECDSAPublic returns the public key as *ecdsa.PublicKey.
func (k *TPMKey) ECDSAPublic() *ecdsa.PublicKey {
	e, _ := k.pub.ECDSA() // checked in NewTPMKey
	return e
}

// SignMessage implements Signer: the TPM signs SHA-256(msg); the result is
// the fixed-width r||s COSE uses.
func (k *TPMKey) SignMessage(msg []byte) ([]byte, error) {
	digest := sha256.Sum256(msg)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, errors.New("TPM key closed")
	}
	rsp, err := tpm2.Sign{
		KeyHandle: tpm2.AuthHandle{Handle: k.handle, Name: k.name, Auth: tpm2.PasswordAuth(nil)},
		Digest:    tpm2.TPM2BDigest{Buffer: digest[:]},
		InScheme: tpm2.TPMTSigScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256}),
		},
		// A null ticket: allowed for an unrestricted signing key.
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck},
	}.Execute(k.tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM sign: %w", err)
	}
	sig, err := rsp.Signature.Signature.ECDSA()
	if err != nil {
		return nil, fmt.Errorf("TPM sign: %w", err)
	}
	r, s := sig.SignatureR.Buffer, sig.SignatureS.Buffer
	if len(r) > 32 || len(s) > 32 {
		return nil, fmt.Errorf("TPM sign: r/s of %d/%d bytes", len(r), len(s))
	}
	out := make([]byte, SignatureSize)
	copy(out[32-len(r):32], r)
	copy(out[64-len(s):], s)
	return out, nil
}

// Close flushes the key from the TPM and closes the TPM connection.
func (k *TPMKey) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	_, ferr := tpm2.FlushContext{FlushHandle: k.handle}.Execute(k.tpm)
	cerr := k.tpm.Close()
	if ferr != nil {
		return fmt.Errorf("TPM flush: %w", ferr)
	}
	return cerr
}

var _ Signer = (*TPMKey)(nil)

// nopClose is OpenSigner's close function for the key file, which holds
// no resource.
func nopClose() error { return nil }

// OpenSigner returns the device identity: with tpmPath set, the TPM key
// (the state directory then holds no private key at all); otherwise the
// Ed25519 key file in stateDir (device.key, created 0600 on first use,
// refused when readable by others). The returned close function releases
// the TPM.
func OpenSigner(stateDir, tpmPath string) (Signer, func() error, error) {
	if tpmPath != "" {
		t, err := OpenTPM(tpmPath)
		if err != nil {
			return nil, nil, err
		}
		k, err := NewTPMKey(t)
		if err != nil {
			return nil, nil, err
		}
		return k, k.Close, nil
	}
	k, err := LoadOrCreateKey(filepath.Join(stateDir, KeyFile))
	if err != nil {
		return nil, nil, err
	}
	return k, nopClose, nil
}
