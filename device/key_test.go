package device

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", st.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Private.Equal(k2.Private) || k1.ID != k2.ID || len(k1.ID) != 32 {
		t.Fatalf("second load differs or bad kid %q", k2.ID)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".device.key-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

func TestKeyPermissions(t *testing.T) {
	tests := []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o640, false}, {0o604, false}, {0o644, false}, {0o660, false},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), KeyFile)
			if _, err := LoadOrCreateKey(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateKey(path)
			if tt.ok != (err == nil) {
				t.Fatalf("mode %04o: err = %v", tt.mode, err)
			}
			if !tt.ok && !errors.Is(err, ErrKeyPermissions) {
				t.Fatalf("err = %v, want ErrKeyPermissions", err)
			}
		})
	}
}

func TestKeyIDAndPEM(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p, err := PublicKeyPEM(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	if KeyID(pub) != k.ID {
		t.Fatal("kid changes through PEM")
	}
	// Known answer: the kid of the all-zero public key, so that the
	// derivation documented in docs/result-record.md stays fixed.
	if got := KeyID(make([]byte, 32)); got != "66687aadf862bd776c8fc18b8e9f8e20" {
		t.Fatalf("KeyID(zero) = %s", got)
	}
	if _, err := ParseKey([]byte("garbage")); err == nil {
		t.Fatal("garbage parsed")
	}
	if _, err := ParsePublicKeyPEM([]byte("garbage")); err == nil {
		t.Fatal("garbage parsed")
	}
}
