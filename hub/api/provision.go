package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/mosquittoconf"
	"github.com/glintdev/glint/hub/store"
)

// ProvisionConfig is what the hub tells devices it provisions.
type ProvisionConfig struct {
	// HubURL is the hub's public API URL, put into provisioning links;
	// when set, a registration signed for another hub URL is refused.
	HubURL string
	// BrokerURL is the broker URL devices use (their view: a public host
	// name, not the hub's loopback).
	BrokerURL string
	// Prefix is the MQTT topic prefix.
	Prefix string
	// Auth is "token" (the embedded broker: the device signs a token with
	// its key, no secret is issued) or "password" (Mosquitto, EMQX: each
	// provisioning issues a new broker secret, returned once, its
	// Mosquitto hash stored in broker_credentials; glint-hub
	// mosquitto-config then writes it into the broker's password file).
	Auth string
	// BrokerCA is the PEM CA of an ssl:// broker, handed to the device
	// with its SHA-256 fingerprint to pin.
	BrokerCA []byte
	// MaxSkew bounds the registration's time against the hub's clock.
	// Default 10 minutes.
	MaxSkew time.Duration
	// MaxTTL bounds claim tokens created over the API. Default 24 h.
	MaxTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RatePerMinute bounds the provisioning requests (registrations and
	// reports together) one client address may make per minute, with a
	// burst of as many; over it: 429 with Retry-After. Default 30.
	RatePerMinute int

	caSHA256 string
}

func (c *ProvisionConfig) check() error {
	if c.BrokerURL == "" || c.Prefix == "" {
		return errors.New("api: provisioning needs the device-facing broker URL and the prefix")
	}
	if c.Auth != "token" && c.Auth != "password" {
		return fmt.Errorf("api: provisioning auth %q: want token or password", c.Auth)
	}
	if c.MaxSkew <= 0 {
		c.MaxSkew = 10 * time.Minute
	}
	if c.MaxTTL <= 0 {
		c.MaxTTL = 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RatePerMinute <= 0 {
		c.RatePerMinute = 30
	}
	if len(c.BrokerCA) > 0 {
		blk, _ := pem.Decode(c.BrokerCA)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return errors.New("api: provisioning broker CA: no CERTIFICATE PEM block")
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("api: provisioning broker CA: %w", err)
		}
		sum := sha256.Sum256(blk.Bytes)
		c.caSHA256 = hex.EncodeToString(sum[:])
	}
	return nil
}

func writeCode(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, device.ProvisionError{Code: code, Message: msg})
}

// readSigned reads a SignedJSON body (at most 64 KiB, no unknown fields).
func readSigned(w http.ResponseWriter, r *http.Request) (*device.SignedJSON, bool) {
	var s device.SignedJSON
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		writeCode(w, http.StatusBadRequest, "bad_request", "body: "+err.Error())
		return nil, false
	}
	return &s, true
}

func sameURL(a, b string) bool { return strings.TrimRight(a, "/") == strings.TrimRight(b, "/") }

// provision registers a device on a claim token (no API key: the token
// authorises it, the signature proves the device holds its key).
func (a *API) provision(w http.ResponseWriter, r *http.Request) {
	pc := a.cfg.Provision
	s, ok := readSigned(w, r)
	if !ok {
		return
	}
	now := pc.Now()
	reg, pub, err := device.VerifyRegistration(s, now, pc.MaxSkew)
	if err != nil {
		writeCode(w, http.StatusBadRequest, "invalid_registration", err.Error())
		return
	}
	if pc.HubURL != "" && !sameURL(reg.HubURL, pc.HubURL) {
		writeCode(w, http.StatusBadRequest, "invalid_registration", fmt.Sprintf("registration is for hub %q, this is %q", reg.HubURL, pc.HubURL))
		return
	}
	if err := ValidDeviceID(reg.DeviceID); err != nil {
		writeCode(w, http.StatusBadRequest, "invalid_registration", err.Error())
		return
	}
	facts, _ := json.Marshal(struct {
		Camera *device.CameraIdentity `json:"camera,omitempty"`
		device.HardwareFacts
	}{reg.Camera, reg.Facts})
	params := store.ProvisionParams{TokenHash: store.HashToken(reg.Token), SiteID: reg.SiteID, DeviceID: reg.DeviceID, Key: pub,
		FactsJSON: string(facts), Registration: mustJSON(s), Now: now}
	mqtt := device.MQTTSettings{BrokerURL: pc.BrokerURL, Prefix: pc.Prefix, Auth: pc.Auth, Username: reg.DeviceID}
	if pc.Auth == "password" {
		secret, err := mosquittoconf.NewSecret()
		if err == nil {
			params.BrokerPasswordHash, err = mosquittoconf.HashPassword(secret)
		}
		if err != nil {
			a.internal(w, err)
			return
		}
		mqtt.Password = secret
	}
	res, err := a.cfg.Store.Provision(r.Context(), params)
	if err != nil {
		status, code := http.StatusInternalServerError, ""
		switch {
		case errors.Is(err, store.ErrTokenUnknown):
			status, code = http.StatusForbidden, "token_unknown"
		case errors.Is(err, store.ErrTokenUsed):
			status, code = http.StatusForbidden, "token_used"
		case errors.Is(err, store.ErrTokenExpired):
			status, code = http.StatusForbidden, "token_expired"
		case errors.Is(err, store.ErrTokenSite):
			status, code = http.StatusForbidden, "token_site"
		case errors.Is(err, store.ErrConflict):
			status, code = http.StatusConflict, "conflict"
		}
		if code == "" {
			a.internal(w, err)
			return
		}
		a.log.Warn("provisioning refused", "device", reg.DeviceID, "code", code, "err", err, "remote", r.RemoteAddr)
		writeCode(w, status, code, err.Error())
		return
	}
	hubPEM, err := device.PublicKeyPEM(a.cfg.HubKey)
	if err != nil {
		a.internal(w, err)
		return
	}
	a.log.Info("device provisioned", "device", reg.DeviceID, "site", res.SiteID, "token", res.TokenID, "alg", pub.Alg, "kid", pub.KeyID())
	writeJSON(w, http.StatusCreated, device.ProvisionResponse{
		DeviceID: reg.DeviceID, SiteID: res.SiteID, KID: pub.KeyID(), TokenID: res.TokenID,
		MQTT: mqtt, Policy: res.Policy, HubPublicKey: string(hubPEM), HubKID: device.KeyID(a.cfg.HubKey),
		BrokerCA: string(pc.BrokerCA), BrokerCASHA256: pc.caSHA256,
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v) // plain struct
	return b
}

// provisionReport stores a self-test report signed by a registered device.
func (a *API) provisionReport(w http.ResponseWriter, r *http.Request) {
	s, ok := readSigned(w, r)
	if !ok {
		return
	}
	d, err := a.cfg.Store.DeviceByKID(r.Context(), s.KID)
	if errors.Is(err, store.ErrNotFound) {
		writeCode(w, http.StatusForbidden, "unknown_device", "no device registered with kid "+s.KID)
		return
	}
	if err != nil {
		a.internal(w, err)
		return
	}
	if d.Revoked {
		writeCode(w, http.StatusForbidden, "revoked_device", "device "+d.DeviceID+" is revoked")
		return
	}
	if err := s.Verify(d.Key, device.ReportDomain); err != nil {
		writeCode(w, http.StatusForbidden, "bad_signature", err.Error())
		return
	}
	var rep device.SelfTestReport
	dec := json.NewDecoder(bytes.NewReader(s.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil || rep.V != 1 {
		writeCode(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("report: %v", err))
		return
	}
	if rep.DeviceID != d.DeviceID {
		writeCode(w, http.StatusForbidden, "device_mismatch", fmt.Sprintf("report names %q, key belongs to %q", rep.DeviceID, d.DeviceID))
		return
	}
	// The report's own verdict is recomputed: a report claiming success
	// over a failed check is stored as failed.
	passed := device.Passed(rep.Checks)
	if err := a.cfg.Store.AddProvisionReport(r.Context(), d.DeviceID, passed, s.Payload, mustJSON(s), time.Now()); err != nil {
		a.internal(w, err)
		return
	}
	a.log.Info("self-test report", "device", d.DeviceID, "passed", passed)
	writeJSON(w, http.StatusCreated, map[string]any{"device_id": d.DeviceID, "passed": passed})
}

// DeviceDetail is GET /api/v1/devices/{id}.
type DeviceDetail struct {
	*store.Device
	// Guard is the latest verified guard report (the signed envelope is
	// included for audits).
	Guard        *store.GuardRow        `json:"guard,omitempty"`
	Provisioning *store.Provisioning    `json:"provisioning,omitempty"`
	SelfTest     *store.ProvisionReport `json:"self_test,omitempty"`
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	d, err := a.cfg.Store.DeviceByID(ctx, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeErr(w, http.StatusNotFound, "no such device")
		return
	}
	if err != nil {
		a.internal(w, err)
		return
	}
	out := DeviceDetail{Device: d}
	if out.Guard, err = a.cfg.Store.GuardReport(ctx, d.DeviceID); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.internal(w, err)
		return
	}
	if out.Provisioning, err = a.cfg.Store.LastProvisioning(ctx, d.DeviceID); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.internal(w, err)
		return
	}
	if out.SelfTest, err = a.cfg.Store.LastProvisionReport(ctx, d.DeviceID); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	SiteID string `json:"site_id"`
	// TTL is a Go duration ("15m"); default 15m.
	TTL  string `json:"ttl"`
	Note string `json:"note"`
}

// TokenResponse is a created claim token: the only time it is shown.
type TokenResponse struct {
	Token string `json:"token"`
	// Link is the glint://provision link (with the hub URL configured).
	Link string `json:"link,omitempty"`
	store.ClaimToken
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	ttl := 15 * time.Minute
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "ttl: "+err.Error())
			return
		}
		ttl = d
	}
	maxTTL := 24 * time.Hour
	if a.cfg.Provision != nil {
		maxTTL = a.cfg.Provision.MaxTTL
	}
	if ttl <= 0 || ttl > maxTTL {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("ttl: want within (0, %s]", maxTTL))
		return
	}
	tok, ct, err := a.cfg.Store.CreateClaimToken(r.Context(), req.SiteID, ttl, req.Note, time.Now())
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	out := TokenResponse{Token: tok, ClaimToken: *ct}
	if a.cfg.Provision != nil && a.cfg.Provision.HubURL != "" {
		out.Link = device.ProvisionLink{Hub: a.cfg.Provision.HubURL, Token: tok}.String()
	}
	writeJSON(w, http.StatusCreated, out)
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := a.cfg.Store.ClaimTokens(r.Context(), r.URL.Query().Get("site"))
	if err != nil {
		a.internal(w, err)
		return
	}
	if ts == nil {
		ts = []store.ClaimToken{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": ts})
}
