package mosquittoconf

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mosquitto's password hash (mosquitto_passwd since 2.0): PBKDF2-HMAC-SHA512
// over the password with a random 12-byte salt, 64 bytes of output, written
// as $7$<iterations>$<base64 salt>$<base64 hash> (standard base64 with
// padding).
const (
	// Iterations is mosquitto_passwd's default count. The secrets this
	// package generates carry 192 random bits, so the work factor is not
	// what protects them; a higher count would only make every CONNECT of
	// a fleet reconnecting at once cost more broker CPU.
	Iterations = 101
	saltLen    = 12
	hashLen    = 64
)

var b64 = base64.StdEncoding

// ErrBadHash is returned for a string that is not a $7$ hash.
var ErrBadHash = errors.New("not a mosquitto $7$ PBKDF2-SHA512 hash")

// HashPassword returns password hashed the way mosquitto_passwd writes it,
// with a fresh salt.
func HashPassword(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	return hashWith(password, salt, Iterations)
}

func hashWith(password string, salt []byte, iter int) (string, error) {
	k, err := pbkdf2.Key(sha512.New, password, salt, iter, hashLen)
	if err != nil {
		return "", fmt.Errorf("pbkdf2: %w", err)
	}
	return fmt.Sprintf("$7$%d$%s$%s", iter, b64.EncodeToString(salt), b64.EncodeToString(k)), nil
}

// CheckPassword reports whether password matches a $7$ hash; ErrBadHash
// when the hash cannot be parsed.
func CheckPassword(hash, password string) (bool, error) {
	f := strings.Split(hash, "$")
	if len(f) != 5 || f[0] != "" || f[1] != "7" {
		return false, ErrBadHash
	}
	iter, err := strconv.Atoi(f[2])
	if err != nil || iter < 1 {
		return false, ErrBadHash
	}
	salt, err1 := b64.DecodeString(f[3])
	want, err2 := b64.DecodeString(f[4])
	if err1 != nil || err2 != nil || len(salt) == 0 || len(want) != hashLen {
		return false, ErrBadHash
	}
	got, err := pbkdf2.Key(sha512.New, password, salt, iter, hashLen)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NewSecret returns a random secret of 192 bits, URL-safe base64 (32
// characters; no ':' or whitespace, so it fits any password file).
func NewSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
