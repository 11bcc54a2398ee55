package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/api"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/hub/store/storetest"
)

const key = "api-test-key-0123456789"

func TestAPI(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	hubKey, _ := device.GenerateKey()
	a, err := api.New(api.Config{Store: st, Keys: []string{key}, HubKey: hubKey.Public(), Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	devKey, _ := device.GenerateKey()
	pemKey, _ := device.PublicKeyPEM(devKey.Public())
	reg := func(id string) string {
		b, _ := json.Marshal(map[string]string{"device_id": id, "site_id": "s", "public_key": string(pemKey)})
		return string(b)
	}
	tests := []struct {
		name, method, path, body, auth string
		code                           int
		want                           string
	}{
		{"healthz open", "GET", "/healthz", "", "", 200, "ok"},
		{"metrics open", "GET", "/metrics", "", "", 200, ""},
		{"no key", "GET", "/api/v1/results", "", "", 401, "API key"},
		{"wrong key", "GET", "/api/v1/results", "", "Bearer nope-nope-nope-nope", 401, "API key"},
		{"empty list", "GET", "/api/v1/results", "", "Bearer " + key, 200, `"results": []`},
		{"bad since", "GET", "/api/v1/results?since=yesterday", "", "Bearer " + key, 400, "RFC 3339"},
		{"bad limit", "GET", "/api/v1/results?limit=0", "", "Bearer " + key, 400, "limit"},
		{"filters", "GET", "/api/v1/results?device=d&status=Approved&since=2026-01-01T00:00:00Z&limit=10", "", "Bearer " + key, 200, "results"},
		{"unknown result", "GET", "/api/v1/results/x", "", "Bearer " + key, 404, "no such"},
		{"register", "POST", "/api/v1/devices", reg("kiosk-1"), "Bearer " + key, 201, `"kid": "` + devKey.ID},
		{"register again", "POST", "/api/v1/devices", reg("kiosk-1"), "Bearer " + key, 201, "kiosk-1"},
		{"key taken", "POST", "/api/v1/devices", reg("kiosk-2"), "Bearer " + key, 409, "already"},
		{"bad id", "POST", "/api/v1/devices", reg("a/b"), "Bearer " + key, 400, "device_id"},
		{"hub id", "POST", "/api/v1/devices", reg("glint-hub"), "Bearer " + key, 400, "device_id"},
		{"bad pem", "POST", "/api/v1/devices", `{"device_id":"k","public_key":"x"}`, "Bearer " + key, 400, "PUBLIC KEY"},
		{"unknown field", "POST", "/api/v1/devices", `{"device_id":"k","pubkey":"x"}`, "Bearer " + key, 400, "unknown field"},
		{"devices", "GET", "/api/v1/devices", "", "Bearer " + key, 200, "kiosk-1"},
		{"hub key", "GET", "/api/v1/hub", "", "Bearer " + key, 200, hubKey.ID},
		{"quarantine empty", "GET", "/api/v1/quarantine?reason=bad_signature", "", "Bearer " + key, 200, `"quarantine": []`},
		{"quarantine bad limit", "GET", "/api/v1/quarantine?limit=x", "", "Bearer " + key, 400, "limit"},
		{"revoke unknown", "POST", "/api/v1/devices/ghost/revoke", "", "Bearer " + key, 404, "no such"},
		{"revoke", "POST", "/api/v1/devices/kiosk-1/revoke", "", "Bearer " + key, 200, `"revoked": true`},
		{"revoked in list", "GET", "/api/v1/devices", "", "Bearer " + key, 200, `"revoked": true`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(context.Background(), tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := resp.Body.Read(buf)
				b.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if resp.StatusCode != tt.code || !strings.Contains(b.String(), tt.want) {
				t.Fatalf("%d %s", resp.StatusCode, b.String())
			}
		})
	}
	if _, err := api.New(api.Config{Store: st, Keys: []string{"short"}}); err == nil {
		t.Fatal("short key accepted")
	}
}
