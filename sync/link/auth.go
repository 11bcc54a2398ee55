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
// embedded broker: "v1.<unix seconds>.<base64url Ed25519 signature over
// "glint-mqtt-auth/v1|<device>|<unix seconds>">". No shared secret is
// provisioned: the broker checks it against the device's registered public
// key, within a clock-skew window. Use it over TLS (it can be replayed within
// the window by whoever sees it).
func AuthToken(key *device.Key, deviceID string, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := ed25519.Sign(key.Private, []byte("glint-mqtt-auth/v1|"+deviceID+"|"+ts))
	return "v1." + ts + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// VerifyAuthToken checks a token from AuthToken for deviceID against pub,
// accepting timestamps within skew of now.
func VerifyAuthToken(token, deviceID string, pub ed25519.PublicKey, now time.Time, skew time.Duration) error {
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
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: signature encoding", ErrAuthToken)
	}
	if !ed25519.Verify(pub, []byte("glint-mqtt-auth/v1|"+deviceID+"|"+parts[1]), sig) {
		return fmt.Errorf("%w: signature", ErrAuthToken)
	}
	return nil
}
