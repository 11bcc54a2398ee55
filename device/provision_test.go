package device

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProvisionLink(t *testing.T) {
	l := ProvisionLink{Hub: "https://hub.example:8780/base", Token: "abcdefghijklmnopqrstuvwxyz012345", CAFingerprint: strings.Repeat("ab", 32)}
	back, err := ParseProvisionLink(l.String())
	if err != nil || back != l {
		t.Fatalf("round trip %q: %+v %v", l.String(), back, err)
	}
	for _, bad := range []string{
		"", "https://hub/?token=x", "glint://other?hub=https://h&token=abcdefghijklmnop",
		"glint://provision?hub=ftp://h&token=abcdefghijklmnop",
		"glint://provision?hub=https://h&token=short",
		"glint://provision?hub=https://h&token=abcdefghijklmnop!!",
		"glint://provision?hub=https://h&token=abcdefghijklmnop&ca=xyz",
		"glint://provision?hub=https://&token=abcdefghijklmnop",
	} {
		if _, err := ParseProvisionLink(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParseProvisionLink(f *testing.F) {
	f.Add("glint://provision?hub=https%3A%2F%2Fh%3A1&token=abcdefghijklmnopqrstuvwxyz012345")
	f.Add("glint://provision?hub=x&token=y&ca=z")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseProvisionLink(s)
		if err != nil {
			return
		}
		// What parses checks, and renders back to the same link.
		if l.Check() != nil {
			t.Fatal("parsed an invalid link")
		}
		again, err := ParseProvisionLink(l.String())
		if err != nil || again != l {
			t.Fatalf("re-parse: %+v %v", again, err)
		}
	})
}

func signedReg(t testing.TB, k Signer, now time.Time, edit func(*Registration)) *SignedJSON {
	t.Helper()
	r, err := NewRegistration(k, "https://hub", "abcdefghijklmnopqrstuvwxyz012345", "kiosk-1", "site-a", now)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(r)
	}
	s, err := SignJSON(k, RegistrationDomain, r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyRegistration(t *testing.T) {
	now := time.Now()
	k, _ := GenerateKey()
	other, _ := GenerateKey()
	r, pub, err := VerifyRegistration(signedReg(t, k, now, nil), now, time.Minute)
	if err != nil || !pub.Equal(k.PublicKey()) || r.DeviceID != "kiosk-1" {
		t.Fatalf("%+v %v", r, err)
	}
	otherPEM, _ := other.PublicKey().MarshalPEM()
	tampered := signedReg(t, k, now, nil)
	tampered.Payload = []byte(strings.Replace(string(tampered.Payload), "kiosk-1", "kiosk-2", 1))
	asReport := signedReg(t, k, now, nil)
	asReport.Signature, _ = k.SignMessage(append([]byte(ReportDomain), asReport.Payload...))
	unknownField := signedReg(t, k, now, nil)
	unknownField.Payload = []byte(strings.Replace(string(unknownField.Payload), `{"v":1`, `{"extra":1,"v":1`, 1))
	unknownField.Signature, _ = k.SignMessage(append([]byte(RegistrationDomain), unknownField.Payload...))
	for name, s := range map[string]*SignedJSON{
		"tampered":              tampered,
		"signed for the report": asReport,
		"someone else's key":    signedReg(t, k, now, func(r *Registration) { r.PublicKey = string(otherPEM) }),
		"stale":                 signedReg(t, k, now.Add(-time.Hour), nil),
		"future":                signedReg(t, k, now.Add(time.Hour), nil),
		"wrong alg claim":       signedReg(t, k, now, func(r *Registration) { r.KeyAlg = AlgES256 }),
		"no nonce":              signedReg(t, k, now, func(r *Registration) { r.Nonce = "" }),
		"version":               signedReg(t, k, now, func(r *Registration) { r.V = 2 }),
		"unknown field":         unknownField,
		"not json":              {KID: k.KeyID(), Payload: []byte("{"), Signature: make([]byte, 64)},
		"kid of another key":    func() *SignedJSON { s := signedReg(t, k, now, nil); s.KID = other.KeyID(); return s }(),
		"empty":                 {},
	} {
		if _, _, err := VerifyRegistration(s, now, time.Minute); !errors.Is(err, ErrRegistration) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzVerifyRegistration(f *testing.F) {
	k, _ := GenerateKey()
	s := signedReg(f, k, time.Unix(1e9, 0), nil)
	f.Add(s.Payload, s.Signature)
	f.Fuzz(func(t *testing.T, payload, sig []byte) {
		_, _, err := VerifyRegistration(&SignedJSON{KID: k.KeyID(), Payload: payload, Signature: sig}, time.Unix(1e9, 0), time.Minute)
		if err == nil && (string(payload) != string(s.Payload) || string(sig) != string(s.Signature)) {
			// Only the original verifies: JSON re-encodings change the
			// signed bytes.
			t.Fatal("a mutated registration verified")
		}
	})
}

func TestWriteProvisioned(t *testing.T) {
	hubKey, _ := GenerateKey()
	hubPEM, _ := hubKey.PublicKey().MarshalPEM()
	dir := filepath.Join(t.TempDir(), "state with space")
	r := &ProvisionResponse{DeviceID: "kiosk-1", SiteID: `site "quoted" $x`, KID: "k", MQTT: MQTTSettings{BrokerURL: "ssl://b:8883", Prefix: "glint/v1", Auth: "password", Username: "kiosk-1", Password: "s3cret"},
		Policy: json.RawMessage(`{}`), HubPublicKey: string(hubPEM), HubKID: hubKey.KeyID()}
	files, err := WriteProvisioned(dir, r, "/dev/tpmrm0", &CameraIdentity{VendorID: "046d", ProductID: "0825", Serial: "X 1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s %v", f, err)
		}
	}
	env, err := ReadEnvFile(filepath.Join(dir, ProvisionEnvFile))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"GLINT_SYNC_DEVICE_ID": "kiosk-1", "GLINT_SYNC_SITE_ID": `site "quoted" $x`, "GLINT_SYNC_AUTH": "password",
		"GLINT_SYNC_PASSWORD_FILE": filepath.Join(dir, BrokerSecretFile), "GLINT_SYNC_HUB_KEY_FILE": filepath.Join(dir, HubKeyPEMFile),
		"GLINT_SYNC_TPM_DEVICE": "/dev/tpmrm0", "GLINT_GUARD_PINNED_CAMERA_SERIAL": "X 1"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	secret, _ := os.ReadFile(filepath.Join(dir, BrokerSecretFile))
	pub, _ := os.ReadFile(filepath.Join(dir, ProvisionFile))
	if strings.TrimSpace(string(secret)) != "s3cret" || strings.Contains(string(pub), "s3cret") {
		t.Fatal("secret not in broker.secret only")
	}
	r.SiteID = "a\nb"
	if _, err := WriteProvisioned(t.TempDir(), r, "", nil); err == nil {
		t.Fatal("accepted a line break in a value")
	}
}

// TestPinnedTLS: a link with the CA fingerprint trusts a hub whose chain
// holds that certificate and nothing else.
func TestPinnedTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"code":"token_unknown","error":"claim token unknown"}`))
	}))
	defer srv.Close()
	sum := sha256.Sum256(srv.Certificate().Raw)
	k, _ := GenerateKey()
	for _, tt := range []struct {
		fp       string
		refusal  bool
		wantText string
	}{
		{hex.EncodeToString(sum[:]), true, "token_unknown"},
		{strings.Repeat("00", 32), false, "pinned CA"},
	} {
		c, err := NewProvisionClient(ProvisionLink{Hub: srv.URL, Token: "abcdefghijklmnopqrstuvwxyz012345", CAFingerprint: tt.fp})
		if err != nil {
			t.Fatal(err)
		}
		// httptest's certificate is for 127.0.0.1 and example.com.
		_, err = c.Register(context.Background(), k, "", "", nil, HardwareFacts{})
		var ref *ProvisionRefusal
		if errors.As(err, &ref) != tt.refusal || err == nil || !strings.Contains(err.Error(), tt.wantText) {
			t.Fatalf("fp %s: %v", tt.fp[:8], err)
		}
	}
	if _, err := NewProvisionClient(ProvisionLink{Hub: "http://h", Token: "abcdefghijklmnopqrstuvwxyz012345", CAFingerprint: strings.Repeat("00", 32)}); err == nil {
		t.Fatal("pinning over plain http")
	}
}
