package device

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyFile is the device key's file name inside the state directory.
const KeyFile = "device.key"

// ErrKeyPermissions means the key file is readable or writable by group or
// others; glintd refuses to start rather than sign with a key that may have
// leaked.
var ErrKeyPermissions = errors.New("key file accessible by group or others")

// Key is an Ed25519 signing key with its key ID.
type Key struct {
	Private ed25519.PrivateKey
	// ID is KeyID(Public()).
	ID string
}

// Public returns the public half.
func (k *Key) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// KeyID derives the key ID (COSE kid) of an Ed25519 public key: the
// lowercase hex of the first 16 bytes of SHA-256 over the 32-byte raw public
// key (32 characters). Anyone holding the public key can recompute it, so a
// kid never needs to be trusted on its own: the verifier looks the key up by
// kid and checks that the key hashes back to it.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// NewKey wraps a private key.
func NewKey(priv ed25519.PrivateKey) *Key {
	k := &Key{Private: priv}
	k.ID = KeyID(k.Public())
	return k
}

// GenerateKey returns a fresh random key (simulators and tests; devices use
// LoadOrCreateKey).
func GenerateKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return NewKey(priv), nil
}

// LoadOrCreateKey loads the key at path (PKCS#8 PEM), creating it with mode
// 0600 when the file does not exist. It fails with ErrKeyPermissions when
// the existing file's mode grants any access to group or others. Creation
// writes a temporary file, fsyncs it and renames it into place, then fsyncs
// the directory, so a power cut leaves either no key or a whole one.
func LoadOrCreateKey(path string) (*Key, error) {
	k, err := LoadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k, err = GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := writeKey(path, k); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadKey loads an existing key file, checking its permissions first.
func LoadKey(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s mode %04o: %w (want 0600)", path, st.Mode().Perm(), ErrKeyPermissions)
	}
	buf := make([]byte, 4096)
	n, err := f.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	return ParseKey(buf[:n])
}

// ParseKey parses a PKCS#8 PEM Ed25519 private key.
func ParseKey(pemBytes []byte) (*Key, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("parse key: no PRIVATE KEY PEM block")
	}
	anyKey, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	priv, ok := anyKey.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse key: %T is not Ed25519", anyKey)
	}
	return NewKey(priv), nil
}

// MarshalKey returns k as PKCS#8 PEM.
func MarshalKey(k *Key) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func writeKey(path string, k *Key) error {
	b, err := MarshalKey(k)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".device.key-*")
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod key: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close key: %w", err)
	}
	// Link, not rename: never replaces a key another process created
	// meanwhile.
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("install key %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("sync key dir: %w", err)
		}
	}
	return nil
}

// PublicKeyPEM returns the public key as PKIX PEM, the form
// POST /api/v1/devices accepts.
func PublicKeyPEM(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKeyPEM parses a PKIX PEM Ed25519 public key.
func ParsePublicKeyPEM(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("parse public key: no PUBLIC KEY PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("parse public key: %T is not Ed25519", k)
	}
	return pub, nil
}
