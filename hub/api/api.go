// Package api is glint-hub's minimal HTTP API (JSON), every route but
// /healthz and /metrics behind an API key (Authorization: Bearer KEY or
// X-API-Key: KEY):
//
//	GET  /api/v1/results?device=&status=&since=&limit=   newest first
//	GET  /api/v1/results/{id}      record, verification status, raw envelope
//	GET  /api/v1/devices           last seen, online, reported queue depth
//	GET  /api/v1/devices/{id}      one device with its latest verified guard report,
//	                               provisioning facts and self-test report
//	POST /api/v1/devices           register {device_id, site_id, public_key (PEM, Ed25519 or P-256)}
//	POST /api/v1/devices/{id}/revoke  revoke: its envelopes are rejected from then on
//	GET  /api/v1/quarantine?reason=&limit=  rejected input with reasons
//	GET  /api/v1/hub               the hub's receipt-signing public key
//	POST /api/v1/tokens            create a claim token {site_id, ttl, note}
//	GET  /api/v1/tokens?site=      list claim tokens (never the tokens themselves)
//
// Two routes take no API key, because what they carry authorises them
// (docs/provisioning.md):
//
//	POST /api/v1/provision         a registration signed by the device key, with a claim token
//	POST /api/v1/provision/report  a self-test report signed by a registered device key
//
// The dashboard comes in a later issue.
package api

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/sync/envelope"
)

// Config configures the API.
type Config struct {
	Store *store.Store
	// Keys are the accepted API keys (at least one; each ≥ 16 characters).
	Keys []string
	// HubKey is the hub's public key, served at /api/v1/hub.
	HubKey ed25519.PublicKey
	// Gatherer serves /metrics; nil serves none.
	Gatherer prometheus.Gatherer
	// Provision enables provisioning (POST /api/v1/provision and
	// /api/v1/provision/report); nil leaves those routes out.
	Provision *ProvisionConfig
	Logger    *slog.Logger
}

// API is the HTTP handler.
type API struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// New checks cfg and builds the handler.
func New(cfg Config) (*API, error) {
	if cfg.Store == nil {
		return nil, errors.New("api: no store")
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("api: no API keys configured")
	}
	for _, k := range cfg.Keys {
		if len(k) < 16 {
			return nil, errors.New("api: API keys must be at least 16 characters")
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &API{cfg: cfg, log: log.With("component", "api"), mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	})
	if cfg.Gatherer != nil {
		a.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	a.mux.HandleFunc("GET /api/v1/results", a.auth(a.listResults))
	a.mux.HandleFunc("GET /api/v1/results/{id}", a.auth(a.getResult))
	a.mux.HandleFunc("GET /api/v1/devices", a.auth(a.listDevices))
	a.mux.HandleFunc("POST /api/v1/devices", a.auth(a.registerDevice))
	a.mux.HandleFunc("POST /api/v1/devices/{id}/revoke", a.auth(a.revokeDevice))
	a.mux.HandleFunc("GET /api/v1/quarantine", a.auth(a.listQuarantine))
	a.mux.HandleFunc("GET /api/v1/hub", a.auth(a.hubKey))
	a.mux.HandleFunc("GET /api/v1/devices/{id}", a.auth(a.getDevice))
	a.mux.HandleFunc("POST /api/v1/tokens", a.auth(a.createToken))
	a.mux.HandleFunc("GET /api/v1/tokens", a.auth(a.listTokens))
	if cfg.Provision != nil {
		if err := cfg.Provision.check(); err != nil {
			return nil, err
		}
		lim := newAddrLimiter(cfg.Provision.RatePerMinute, cfg.Provision.Now)
		a.mux.HandleFunc("POST /api/v1/provision", lim.limit(a.provision))
		a.mux.HandleFunc("POST /api/v1/provision/report", lim.limit(a.provisionReport))
	}
	return a, nil
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *API) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-API-Key")
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			key = v
		}
		ok := 0
		for _, k := range a.cfg.Keys {
			ok |= subtle.ConstantTimeCompare([]byte(key), []byte(k))
		}
		if key == "" || ok != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="glint-hub"`)
			writeErr(w, http.StatusUnauthorized, "missing or wrong API key")
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // links (glint://provision?…&token=…) stay readable
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (a *API) internal(w http.ResponseWriter, err error) {
	a.log.Error("api", "err", err)
	writeErr(w, http.StatusInternalServerError, "internal error")
}

func (a *API) listResults(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.Filter{DeviceID: q.Get("device"), Status: q.Get("status")}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "since: want RFC 3339, e.g. 2026-11-22T10:00:00Z")
			return
		}
		f.Since = t
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeErr(w, http.StatusBadRequest, "limit: want 1..1000")
			return
		}
		f.Limit = n
	}
	rows, err := a.cfg.Store.Results(r.Context(), f)
	if err != nil {
		a.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": rows})
}

// Verification is how a stored result verifies now.
type Verification struct {
	Verified  bool   `json:"verified"`
	Algorithm string `json:"algorithm"`
	KID       string `json:"kid"`
	DeviceID  string `json:"device_id"`
	Canonical bool   `json:"canonical"`
	Error     string `json:"error,omitempty"`
}

func (a *API) getResult(w http.ResponseWriter, r *http.Request) {
	row, err := a.cfg.Store.Result(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeErr(w, http.StatusNotFound, "no such result")
		return
	}
	if err != nil {
		a.internal(w, err)
		return
	}
	// Re-verify against the registry now: the stored bytes are evidence
	// and anyone can re-check them with glintctl inspect.
	v := Verification{Algorithm: string(device.AlgEdDSA), KID: row.KID, DeviceID: row.DeviceID, Canonical: row.Canonical}
	if e, err := envelope.Decode(row.Envelope); err == nil {
		v.Algorithm = string(e.Alg)
	}
	d, err := a.cfg.Store.DeviceByKID(r.Context(), row.KID)
	if err == nil {
		_, err = envelope.OpenRecordKey(row.Envelope, d.Key)
	}
	if err != nil {
		v.Error = err.Error()
	} else {
		v.Verified = true
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": row.ID, "record": row.Record, "verification": v, "received_at": row.ReceivedAt, "envelope": row.Envelope,
	})
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request) {
	ds, err := a.cfg.Store.Devices(r.Context())
	if err != nil {
		a.internal(w, err)
		return
	}
	if ds == nil {
		ds = []store.Device{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": ds})
}

// RegisterRequest is the body of POST /api/v1/devices.
type RegisterRequest struct {
	DeviceID  string `json:"device_id"`
	SiteID    string `json:"site_id"`
	PublicKey string `json:"public_key"` // PKIX PEM
}

func (a *API) registerDevice(w http.ResponseWriter, r *http.Request) {
	var req RegisterRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if err := ValidDeviceID(req.DeviceID); err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	pub, err := device.ParsePublicKey([]byte(req.PublicKey))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	d, err := a.cfg.Store.RegisterDeviceKey(r.Context(), req.DeviceID, req.SiteID, pub)
	if errors.Is(err, store.ErrConflict) {
		writeErr(w, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		a.internal(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, d)
}

func (a *API) revokeDevice(w http.ResponseWriter, r *http.Request) {
	err := a.cfg.Store.RevokeDevice(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeErr(w, http.StatusNotFound, "no such device")
		return
	}
	if err != nil {
		a.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": r.PathValue("id"), "revoked": true})
}

func (a *API) listQuarantine(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeErr(w, http.StatusBadRequest, "limit: want 1..1000")
			return
		}
		limit = n
	}
	qs, err := a.cfg.Store.QuarantineList(r.Context(), r.URL.Query().Get("reason"), limit)
	if err != nil {
		a.internal(w, err)
		return
	}
	if qs == nil {
		qs = []store.Quarantined{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"quarantine": qs})
}

// ValidDeviceID accepts IDs usable as an MQTT topic segment and client ID:
// 1–64 characters of [A-Za-z0-9._-], not "glint-hub".
func ValidDeviceID(id string) error {
	if len(id) == 0 || len(id) > 64 || id == "glint-hub" {
		return fmt.Errorf("device_id %q: want 1–64 characters, not glint-hub", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("device_id %q: only letters, digits, '.', '_' and '-'", id)
		}
	}
	return nil
}

func (a *API) hubKey(w http.ResponseWriter, r *http.Request) {
	p, err := device.PublicKeyPEM(a.cfg.HubKey)
	if err != nil {
		a.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"public_key": string(p), "kid": device.KeyID(a.cfg.HubKey)})
}

// Serve runs an HTTP server for h on ln's address until ctx is done.
func Serve(ctx context.Context, srv *http.Server, serve func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}
