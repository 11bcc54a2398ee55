package link

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/glintdev/glint/device"
)

// ErrAuthToken is wrapped by every VerifyAuthToken failure.
var ErrAuthToken = errors.New("invalid auth token")

// AuthToken returns the MQTT password a device presents to glint-hub's
// embedded broker: "v1.<unix seconds>.<base64url signature over
// "glint-mqtt-auth/v1|<device>|<unix seconds>">", signed with the device
// key (Ed25519, or ES256 r||s for a TPM key). No shared secret is
// provisioned: the broker checks it against the device's registered public
// key, within a clock-skew window. Use it over TLS (it can be replayed within
// the window by whoever sees it). It returns "" when the key cannot sign
// (a TPM failure): the broker then refuses the connection and the link
// retries.
func AuthToken(key device.Signer, deviceID string, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	sig, err := key.SignMessage([]byte("glint-mqtt-auth/v1|" + deviceID + "|" + ts))
	if err != nil {
		return ""
	}
	return "v1." + ts + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// VerifyAuthToken checks a token from AuthToken for deviceID against pub,
// accepting timestamps within skew of now. pub is the raw registered key
// as the hub's registry returns it: 32 bytes for Ed25519, the 65-byte
// uncompressed point for a P-256 (TPM) key; VerifyAuthTokenKey takes the
// typed key.
func VerifyAuthToken(token, deviceID string, pub ed25519.PublicKey, now time.Time, skew time.Duration) error {
	alg := device.AlgEdDSA
	if len(pub) != ed25519.PublicKeySize {
		alg = device.AlgES256
	}
	return VerifyAuthTokenKey(token, deviceID, device.PublicKey{Alg: alg, Raw: pub}, now, skew)
}

// VerifyAuthTokenKey is VerifyAuthToken with a key of either algorithm.
func VerifyAuthTokenKey(token, deviceID string, pub device.PublicKey, now time.Time, skew time.Duration) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] != "v1" {
		return fmt.Errorf("%w: format", ErrAuthToken)
	}
	ts, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp", ErrAuthToken)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > skew || d < -skew {
		return fmt.Errorf("%w: timestamp %s off", ErrAuthToken, d.Round(time.Second))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || pub.Check() != nil {
		return fmt.Errorf("%w: signature encoding", ErrAuthToken)
	}
	if !pub.Verify([]byte("glint-mqtt-auth/v1|"+deviceID+"|"+parts[1]), sig) {
		return fmt.Errorf("%w: signature", ErrAuthToken)
	}
	return nil
}
