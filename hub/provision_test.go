package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tpmsim "github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub"
	"github.com/glintdev/glint/hub/api"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/hub/store/storetest"
	"github.com/glintdev/glint/internal/config"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/agent"
)

func (r *running) apiURL() string { return "http://" + r.h.APIAddr().String() }

func (r *running) createToken(t *testing.T, site, ttl string) api.TokenResponse {
	t.Helper()
	code, body := r.api(t, "POST", "/api/v1/tokens", api.TokenRequest{SiteID: site, TTL: ttl, Note: "test"})
	if code != http.StatusCreated {
		t.Fatalf("create token: %d %s", code, body)
	}
	var tr api.TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

// syncConfig reads the sync.env provisioning wrote into glintd's sync
// section, through the same environment-override code glintd uses.
func syncConfig(t *testing.T, stateDir string) agent.Config {
	t.Helper()
	env, err := device.ReadEnvFile(filepath.Join(stateDir, device.ProvisionEnvFile))
	if err != nil {
		t.Fatal(err)
	}
	type glintd struct {
		Sync agent.Config `yaml:"sync" doc:"sync"`
	}
	c, err := config.Parse("sync.env", nil, glintd{Sync: agent.Defaults()}, config.Options{EnvPrefix: "GLINT",
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	return c.Sync
}

type fixedGuard struct{ rep device.Report }

func (f fixedGuard) Last() device.Report { return f.rep }

func deviceDetail(t *testing.T, r *running, id string) api.DeviceDetail {
	t.Helper()
	code, body := r.api(t, "GET", "/api/v1/devices/"+id, nil)
	if code != http.StatusOK {
		t.Fatalf("device %s: %d %s", id, code, body)
	}
	var d api.DeviceDetail
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestProvisionEndToEnd: a claim token from the API → glintctl's
// provisioning (signed registration, settings written to the state
// directory, self-test report sent) → an agent configured only from what
// provisioning wrote publishes a signed result, which the hub verifies and
// stores, and a signed guard report, which GET /api/v1/devices/{id} shows.
// Then the same token again, an expired one and one for another site are
// refused and change nothing. Both stores; the Ed25519 key file and a TPM
// (simulator) key.
func TestProvisionEndToEnd(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		for _, keyKind := range []string{"keyfile", "tpm"} {
			t.Run(string(dialect)+"/"+keyKind, func(t *testing.T) {
				testProvision(t, dialect, keyKind)
			})
		}
	}
}

func testProvision(t *testing.T, dialect store.Dialect, keyKind string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := startHub(t, hub.Config{Dialect: dialect, DSN: storetest.DSN(t, dialect)})
	if err := r.h.Store().SetSitePolicy(ctx, "site-a", json.RawMessage(`{"mode":"dynamic","liveness_min":70}`)); err != nil {
		t.Fatal(err)
	}
	tok := r.createToken(t, "site-a", "15m")
	link := device.ProvisionLink{Hub: r.apiURL(), Token: tok.Token}
	stateDir := t.TempDir()
	var signer device.Signer
	if keyKind == "tpm" {
		tpm, err := tpmsim.OpenSimulator()
		if err != nil {
			t.Fatalf("TPM simulator: %v", err)
		}
		k, err := device.NewTPMKey(tpm)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		signer = k
	}
	camera := &device.CameraIdentity{VendorID: "046d", ProductID: "0825", Serial: "ABC123"}
	var progress strings.Builder
	p := device.Provisioning{Link: link, StateDir: stateDir, Signer: signer, SiteID: "site-a", DeviceID: "kiosk-7", Camera: camera,
		Guard: &device.ReportSummary{Risk: device.SeverityNone, Codes: []string{}}, Progress: &progress}
	out, err := p.Run(ctx)
	if err != nil {
		t.Fatalf("provision: %v\n%s", err, progress.String())
	}
	t.Logf("provisioning:\n%s", progress.String())
	if out.ReportErr != nil {
		t.Fatalf("report: %v", out.ReportErr)
	}
	rsp := out.Response
	var policy bytes.Buffer
	if err := json.Compact(&policy, rsp.Policy); err != nil {
		t.Fatal(err)
	}
	if rsp.DeviceID != "kiosk-7" || rsp.SiteID != "site-a" || rsp.MQTT.Auth != "token" || rsp.MQTT.BrokerURL != r.h.BrokerURL() ||
		policy.String() != `{"mode":"dynamic","liveness_min":70}` || rsp.HubKID != r.h.Key().ID {
		t.Fatalf("response %+v", rsp)
	}
	if keyKind == "tpm" && rsp.KID != signer.KeyID() {
		t.Fatal("registered another key than the TPM's")
	}
	for _, f := range out.Files {
		if st, err := osStat(f); err != nil || st&0o077 != 0 {
			t.Fatalf("%s: mode %o %v", f, st, err)
		}
	}
	// The hub registered the device under the token's site, with the key's
	// algorithm, and kept the self-test report and the facts.
	d := deviceDetail(t, r, "kiosk-7")
	wantAlg := device.AlgEdDSA
	if keyKind == "tpm" {
		wantAlg = device.AlgES256
	}
	var facts struct {
		Camera device.CameraIdentity `json:"camera"`
		TPM    bool                  `json:"tpm"`
	}
	if d.Provisioning == nil || json.Unmarshal(d.Provisioning.Facts, &facts) != nil || facts.Camera != *camera || facts.TPM != (keyKind == "tpm") {
		t.Fatalf("provisioning facts %+v", d.Provisioning)
	}
	if d.SiteID != "site-a" || d.KeyAlg != wantAlg || d.KID != rsp.KID || d.SelfTest == nil || !d.SelfTest.Passed {
		t.Fatalf("device %+v / self-test %+v", d.Device, d.SelfTest)
	}

	// glintd's agent, configured from sync.env alone.
	cfg := syncConfig(t, stateDir)
	if cfg.DeviceID != "kiosk-7" || cfg.SiteID != "site-a" || cfg.BrokerURL != r.h.BrokerURL() || cfg.Auth != "token" || cfg.HubKeyFile != filepath.Join(stateDir, device.HubKeyPEMFile) {
		t.Fatalf("sync config %+v", cfg)
	}
	cfg.GuardRefresh = 0 // default
	var a *agent.Agent
	if signer != nil {
		a, err = agent.NewWithSigner(stateDir, cfg, signer, "test", nil, nil)
	} else {
		a, err = agent.New(stateDir, cfg, "test", nil, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	actx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan struct{}, 2)
	go func() { a.Run(actx); agentDone <- struct{}{} }()
	guard := fixedGuard{device.Report{CheckedAt: time.Now(), Risk: device.SeverityCritical, Signals: []device.Signal{
		{Code: device.SignalCameraVirtual, Severity: device.SeverityCritical, Message: "virtual camera", Evidence: map[string]string{"driver": "v4l2 loopback"}}}}}
	go func() { a.RunGuard(actx, guard); agentDone <- struct{}{} }()
	defer func() { stopAgent(); <-agentDone; <-agentDone }()

	rec, _ := result.Synthetic("", "", 0, time.Now())
	rec.DeviceID, rec.SiteID = "", ""
	if _, err := a.Record(rec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the first signed result stored", func() bool {
		rows, err := r.h.Store().Results(ctx, store.Filter{DeviceID: "kiosk-7"})
		return err == nil && len(rows) == 1 && rows[0].ID == rec.ID
	})
	code, body := r.api(t, "GET", "/api/v1/results/"+rec.ID, nil)
	var got struct {
		Verification api.Verification `json:"verification"`
	}
	if err := json.Unmarshal(body, &got); code != 200 || err != nil || !got.Verification.Verified || got.Verification.Algorithm != string(wantAlg) {
		t.Fatalf("result verification %d %s", code, body)
	}
	waitFor(t, 20*time.Second, "the guard report stored", func() bool {
		d := deviceDetail(t, r, "kiosk-7")
		return d.Guard != nil && d.Guard.Risk == "critical" && strings.Contains(string(d.Guard.Report), "v4l2 loopback")
	})
	if _, q := counts(t, r.h.Store()); q != 0 {
		rows, _ := r.h.Store().QuarantineList(ctx, "", 10)
		t.Fatalf("quarantined: %+v", rows)
	}

	// Refusals: nothing changes.
	devicesBefore, _ := r.h.Store().Devices(ctx)
	other, _ := device.GenerateKey()
	refused := func(name string, l device.ProvisionLink, site, wantCode string) {
		t.Helper()
		c, err := device.NewProvisionClient(l)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Register(ctx, other, "kiosk-8", site, nil, device.HardwareFacts{})
		var ref *device.ProvisionRefusal
		if !errors.As(err, &ref) || !errors.Is(err, device.ErrProvisionRefused) || ref.Code != wantCode || ref.Status != http.StatusForbidden {
			t.Fatalf("%s: %v, want %s", name, err, wantCode)
		}
		t.Logf("%s: %v", name, err)
	}
	refused("same token again", link, "", "token_used")
	expired, _, err := r.h.Store().CreateClaimToken(ctx, "site-a", time.Minute, "", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	refused("expired token", device.ProvisionLink{Hub: r.apiURL(), Token: expired}, "", "token_expired")
	siteB := r.createToken(t, "site-b", "15m")
	refused("token for another site", device.ProvisionLink{Hub: r.apiURL(), Token: siteB.Token}, "site-a", "token_site")
	refused("unknown token", device.ProvisionLink{Hub: r.apiURL(), Token: strings.Repeat("A", 32)}, "", "token_unknown")
	devicesAfter, _ := r.h.Store().Devices(ctx)
	if len(devicesAfter) != len(devicesBefore) {
		t.Fatalf("refusals registered devices: %d → %d", len(devicesBefore), len(devicesAfter))
	}
	ts, _ := r.h.Store().ClaimTokens(ctx, "site-b")
	if len(ts) != 1 || !ts[0].UsedAt.IsZero() {
		t.Fatalf("the wrong-site attempt consumed the token: %+v", ts)
	}
}

func osStat(path string) (os.FileMode, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Mode().Perm(), nil
}
