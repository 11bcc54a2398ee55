package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/api"
	"github.com/glintdev/glint/hub/mosquittoconf"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/hub/store/storetest"
)

func selfSignedCA(t *testing.T) ([]byte, string) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker CA"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), hex.EncodeToString(sum[:])
}

func post(t *testing.T, url string, v any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(v)
	rsp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	out, _ := io.ReadAll(rsp.Body)
	return rsp.StatusCode, out
}

// TestProvisionAPI: a Mosquitto fleet (auth password) gets a broker secret
// whose hash the store holds, the broker CA with its fingerprint, and a
// refusal with a stable code for each bad registration; the self-test
// report route accepts only the registered key's signature about its own
// device and recomputes the verdict.
func TestProvisionAPI(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	hubKey, _ := device.GenerateKey()
	caPEM, caFP := selfSignedCA(t)
	a, err := api.New(api.Config{Store: st, Keys: []string{key}, HubKey: hubKey.Public(), Provision: &api.ProvisionConfig{
		HubURL: "https://hub.example", BrokerURL: "ssl://broker.example:8883", Prefix: "glint/v1", Auth: "password", BrokerCA: caPEM}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	ctx := context.Background()
	tok, _, _ := st.CreateClaimToken(ctx, "site-a", time.Hour, "", time.Now())
	k, _ := device.GenerateKey()
	reg := func(edit func(*device.Registration)) *device.SignedJSON {
		r, _ := device.NewRegistration(k, "https://hub.example/", tok, "kiosk-1", "", time.Now())
		if edit != nil {
			edit(r)
		}
		s, _ := device.SignJSON(k, device.RegistrationDomain, r)
		return s
	}
	for _, tt := range []struct {
		name string
		body any
		code int
		want string
	}{
		{"other hub", reg(func(r *device.Registration) { r.HubURL = "https://evil.example" }), 400, "invalid_registration"},
		{"bad device id", reg(func(r *device.Registration) { r.DeviceID = "a/b" }), 400, "invalid_registration"},
		{"unknown token", reg(func(r *device.Registration) { r.Token = strings.Repeat("x", 32) }), 403, "token_unknown"},
		{"wrong site", reg(func(r *device.Registration) { r.SiteID = "site-b" }), 403, "token_site"},
		{"not signed json", map[string]string{"hello": "x"}, 400, "bad_request"},
	} {
		code, body := post(t, srv.URL+"/api/v1/provision", tt.body)
		if code != tt.code || !strings.Contains(string(body), tt.want) {
			t.Errorf("%s: %d %s", tt.name, code, body)
		}
	}
	if ds, _ := st.Devices(ctx); len(ds) != 0 {
		t.Fatal("a refused registration registered a device")
	}
	code, body := post(t, srv.URL+"/api/v1/provision", reg(nil))
	var rsp device.ProvisionResponse
	if code != 201 || json.Unmarshal(body, &rsp) != nil {
		t.Fatalf("%d %s", code, body)
	}
	if rsp.MQTT.Auth != "password" || rsp.MQTT.Username != "kiosk-1" || len(rsp.MQTT.Password) < 24 || rsp.BrokerCASHA256 != caFP || rsp.BrokerCA != string(caPEM) || rsp.HubKID != hubKey.ID {
		t.Fatalf("%+v", rsp)
	}
	h, err := st.BrokerCredential(ctx, "kiosk-1")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := mosquittoconf.CheckPassword(h, rsp.MQTT.Password); !ok || err != nil {
		t.Fatalf("stored hash does not check the issued secret: %v", err)
	}
	if code, body := post(t, srv.URL+"/api/v1/provision", reg(nil)); code != 403 || !strings.Contains(string(body), "token_used") {
		t.Fatalf("reuse: %d %s", code, body)
	}

	// Self-test reports.
	report := func(signer device.Signer, deviceID string, checks ...device.CheckResult) *device.SignedJSON {
		s, _ := device.SignJSON(signer, device.ReportDomain, &device.SelfTestReport{V: 1, DeviceID: deviceID, Passed: true, Checks: checks})
		return s
	}
	stranger, _ := device.GenerateKey()
	forged := report(k, "kiosk-1")
	forged.Payload = bytes.Replace(forged.Payload, []byte(`"passed":true`), []byte(`"passed":false`), 1)
	asReg := report(k, "kiosk-1")
	asReg.Signature, _ = k.SignMessage(append([]byte(device.RegistrationDomain), asReg.Payload...))
	for _, tt := range []struct {
		name string
		body any
		code int
		want string
	}{
		{"unregistered key", report(stranger, "kiosk-1"), 403, "unknown_device"},
		{"forged", forged, 403, "bad_signature"},
		{"registration domain", asReg, 403, "bad_signature"},
		{"about another device", report(k, "kiosk-2"), 403, "device_mismatch"},
		{"claims passed over a failed check", report(k, "kiosk-1", device.CheckResult{Name: "camera", Status: device.CheckFail}), 201, `"passed": false`},
	} {
		code, body := post(t, srv.URL+"/api/v1/provision/report", tt.body)
		if code != tt.code || !strings.Contains(string(body), tt.want) {
			t.Errorf("%s: %d %s", tt.name, code, body)
		}
	}
	if r, err := st.LastProvisionReport(ctx, "kiosk-1"); err != nil || r.Passed {
		t.Fatalf("stored %+v %v", r, err)
	}

	// Tokens over the API (admin key), and a device's detail.
	req := func(method, path, body string) (int, string) {
		r, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+key)
		rsp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer rsp.Body.Close()
		b, _ := io.ReadAll(rsp.Body)
		return rsp.StatusCode, string(b)
	}
	if code, body := req("POST", "/api/v1/tokens", `{"site_id":"site-c","ttl":"10m"}`); code != 201 || !strings.Contains(body, "glint://provision?hub=https%3A%2F%2Fhub.example&token=") {
		t.Fatalf("create token: %d %s", code, body)
	}
	if code, body := req("POST", "/api/v1/tokens", `{"site_id":"site-c","ttl":"48h"}`); code != 400 {
		t.Fatalf("ttl beyond max: %d %s", code, body)
	}
	if code, body := req("GET", "/api/v1/tokens?site=site-a", ""); code != 200 || !strings.Contains(body, `"device_id": "kiosk-1"`) || strings.Contains(body, tok) {
		t.Fatalf("list tokens: %d %s", code, body)
	}
	if code, body := req("GET", "/api/v1/devices/kiosk-1", ""); code != 200 || !strings.Contains(body, `"self_test"`) || !strings.Contains(body, `"provisioning"`) || !strings.Contains(body, `"key_alg": "EdDSA"`) {
		t.Fatalf("device: %d %s", code, body)
	}
	// A TPM device registered by hand: its P-256 key and algorithm.
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p256, _ := device.P256Public(&ec.PublicKey)
	p256PEM, _ := p256.MarshalPEM()
	regBody, _ := json.Marshal(map[string]string{"device_id": "gate-1", "site_id": "s", "public_key": string(p256PEM)})
	if code, out := req("POST", "/api/v1/devices", string(regBody)); code != 201 || !strings.Contains(out, `"key_alg": "ES256"`) || !strings.Contains(out, p256.KeyID()) {
		t.Fatalf("register P-256: %d %s", code, out)
	}
	if code, _ := req("GET", "/api/v1/devices/nope", ""); code != 404 {
		t.Fatalf("unknown device: %d", code)
	}
	if r, _ := http.Post(srv.URL+"/api/v1/tokens", "application/json", strings.NewReader(`{}`)); r.StatusCode != 401 {
		t.Fatalf("tokens without an API key: %d", r.StatusCode)
	}
}

// Provisioning off: the routes do not exist.
func TestProvisionDisabled(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	hubKey, _ := device.GenerateKey()
	a, err := api.New(api.Config{Store: st, Keys: []string{key}, HubKey: hubKey.Public()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	if code, _ := post(t, srv.URL+"/api/v1/provision", map[string]string{}); code != 404 && code != 405 {
		t.Fatalf("%d", code)
	}
	if _, err := api.New(api.Config{Store: st, Keys: []string{key}, HubKey: hubKey.Public(), Provision: &api.ProvisionConfig{BrokerURL: "tcp://b", Prefix: "p", Auth: "anonymous"}}); err == nil {
		t.Fatal("accepted an unknown auth mode")
	}
}

// TestProvisionRateLimit: one address gets RatePerMinute provisioning
// requests, then 429 with Retry-After, and a token back after its refill
// time; the limit counts refused requests too (bad bodies here).
func TestProvisionRateLimit(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	hubKey, _ := device.GenerateKey()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	a, err := api.New(api.Config{Store: st, Keys: []string{key}, HubKey: hubKey.Public(), Provision: &api.ProvisionConfig{
		BrokerURL: "tcp://broker.example:1883", Prefix: "glint/v1", Auth: "token", RatePerMinute: 3, Now: func() time.Time { return now }}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	send := func(path string) (int, string) {
		rsp, err := http.Post(srv.URL+path, "application/json", strings.NewReader("{"))
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		return rsp.StatusCode, rsp.Header.Get("Retry-After")
	}
	for i, path := range []string{"/api/v1/provision", "/api/v1/provision/report", "/api/v1/provision"} {
		if code, _ := send(path); code != http.StatusBadRequest {
			t.Fatalf("request %d: %d, want 400 (under the limit)", i+1, code)
		}
	}
	if code, retry := send("/api/v1/provision"); code != http.StatusTooManyRequests || retry != "20" {
		t.Fatalf("over the limit: %d Retry-After %q, want 429 and 20 s", code, retry)
	}
	now = now.Add(20 * time.Second)
	if code, _ := send("/api/v1/provision"); code != http.StatusBadRequest {
		t.Fatalf("after the refill: %d, want 400", code)
	}
	if code, _ := send("/api/v1/provision"); code != http.StatusTooManyRequests {
		t.Fatalf("refill gave more than one token: %d", code)
	}
	// The admin routes are not limited.
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/tokens", nil)
	req.Header.Set("X-API-Key", key)
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		t.Fatalf("admin route: %d", rsp.StatusCode)
	}
}
