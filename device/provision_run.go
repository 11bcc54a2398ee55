package device

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/glintdev/glint/internal/fsutil"
)

// Provisioning is the whole field provisioning of one device, as
// `glintctl provision` and `glintd provision` run it: identity, signed
// registration, settings written to the state directory, self-test, and
// the report to the hub.
type Provisioning struct {
	Link     ProvisionLink
	StateDir string
	// TPMPath, when set, keeps the identity in that TPM (ES256); otherwise
	// the Ed25519 key file in StateDir is loaded or created.
	TPMPath string
	// Signer, when set, is the identity to use instead of opening one
	// (the caller keeps it; tests pass a TPM simulator key).
	Signer Signer
	// DeviceID defaults to "glint-" + the first 12 hex digits of the kid.
	DeviceID string
	// SiteID, when set, must match the token's site.
	SiteID string
	// Camera is the camera identity to register and pin.
	Camera *CameraIdentity
	// Facts are the hardware facts (nil: CollectFacts("/")).
	Facts *HardwareFacts
	// Guard is the guard's summary at registration (optional).
	Guard *ReportSummary
	// SelfTest configures the checks after registration.
	SelfTest SelfTestConfig
	// Client overrides the HTTP client (tests); nil: NewProvisionClient.
	Client *ProvisionClient
	// Progress receives one line per step (nil: discarded).
	Progress io.Writer
}

// ProvisionOutcome is what a provisioning did.
type ProvisionOutcome struct {
	Response *ProvisionResponse
	Files    []string
	Report   *SelfTestReport
	// ReportErr is set when the report could not be sent (the device is
	// provisioned nevertheless; the report is in the state directory).
	ReportErr error
}

// Run provisions the device. An error before the hub's answer leaves the
// state directory as it was (apart from a newly created key file); after
// it, the settings are written even if the self-test fails.
func (p *Provisioning) Run(ctx context.Context) (*ProvisionOutcome, error) {
	say := func(format string, args ...any) {
		if p.Progress != nil {
			fmt.Fprintf(p.Progress, format+"\n", args...)
		}
	}
	client := p.Client
	if client == nil {
		var err error
		if client, err = NewProvisionClient(p.Link); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(p.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	key := p.Signer
	where := "the given signer"
	if key == nil {
		var closeKey func() error
		var err error
		if key, closeKey, err = OpenSigner(p.StateDir, p.TPMPath); err != nil {
			return nil, fmt.Errorf("device key: %w", err)
		}
		defer closeKey()
		where = "key file " + filepath.Join(p.StateDir, KeyFile)
		if p.TPMPath != "" {
			where = "TPM " + p.TPMPath
		}
	}
	say("identity: %s key %s in %s", key.Algorithm(), key.KeyID(), where)
	facts := CollectFacts("/")
	if p.Facts != nil {
		facts = *p.Facts
	}
	facts.TPM = key.Algorithm() == AlgES256
	facts.Guard = p.Guard
	started := time.Now()
	rsp, err := client.Register(ctx, key, p.DeviceID, p.SiteID, p.Camera, facts)
	if err != nil {
		return nil, err
	}
	say("registered: device %s at site %s (token %s); broker %s, auth %s", rsp.DeviceID, rsp.SiteID, rsp.TokenID, rsp.MQTT.BrokerURL, rsp.MQTT.Auth)
	out := &ProvisionOutcome{Response: rsp}
	if out.Files, err = WriteProvisioned(p.StateDir, rsp, p.TPMPath, p.Camera); err != nil {
		return out, err
	}
	say("wrote %d files to %s (settings for glintd: %s)", len(out.Files), p.StateDir, filepath.Join(p.StateDir, ProvisionEnvFile))

	checks := RunSelfTest(ctx, p.SelfTest)
	rep := &SelfTestReport{V: 1, DeviceID: rsp.DeviceID, SiteID: rsp.SiteID, KID: key.KeyID(), KeyAlg: key.Algorithm(),
		StartedAt: started.UTC(), FinishedAt: time.Now().UTC(), Passed: Passed(checks), Checks: checks, Facts: &facts, Guard: p.Guard}
	out.Report = rep
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return out, err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{SelfTestFile, append(js, '\n')}, {SelfTestSummaryFile, []byte(rep.Summary())}} {
		path := filepath.Join(p.StateDir, f.name)
		if err := fsutil.WriteFileAtomic(path, f.data, 0o600); err != nil {
			return out, err
		}
		out.Files = append(out.Files, path)
	}
	if out.ReportErr = client.PostReport(ctx, key, rep); out.ReportErr != nil {
		say("self-test report NOT sent to the hub: %v (it is in %s)", out.ReportErr, filepath.Join(p.StateDir, SelfTestFile))
	} else {
		say("self-test report sent to the hub")
	}
	return out, nil
}
