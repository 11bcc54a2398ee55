package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/hubtest"
	"github.com/glintdev/glint/sim"
)

// writeSimFace writes the simulator's synthetic portrait into dir.
func writeSimFace(t *testing.T, dir string) {
	t.Helper()
	if err := sim.WriteSyntheticFace(filepath.Join(dir, "face.png")); err != nil {
		t.Fatal(err)
	}
}

// TestProvisionCommand runs `glintctl provision` against a hub with the
// embedded broker: registered, settings written 0600, the simulator's
// camera and screen pass the self-test, the hub holds the report; the
// same link again is refused with exit 1.
func TestProvisionCommand(t *testing.T) {
	h := hubtest.Start(t, "provision-test-key-0123")
	ctx := context.Background()
	tok, _, err := h.Store().CreateClaimToken(ctx, "site-a", 15*time.Minute, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	link := device.ProvisionLink{Hub: "http://" + h.APIAddr().String(), Token: tok}.String()
	faces, state := t.TempDir(), t.TempDir()
	writeSimFace(t, faces)

	code, out, errOut := runCmd(t, "provision", "--link", link, "--state-dir", state, "--site", "site-a", "--device-id", "kiosk-9", "--sim-faces", faces)
	t.Logf("\n%s%s", out, errOut)
	if code != 0 || !strings.Contains(out, "self-test: PASSED") || !strings.Contains(out, "self-test report sent to the hub") {
		t.Fatalf("exit %d", code)
	}
	for _, name := range []string{device.KeyFile, device.ProvisionEnvFile, device.HubKeyPEMFile, device.ProvisionFile, device.SelfTestFile, device.SelfTestSummaryFile} {
		st, err := os.Stat(filepath.Join(state, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", name, st, err)
		}
	}
	var rep device.SelfTestReport
	b, _ := os.ReadFile(filepath.Join(state, device.SelfTestFile))
	if err := json.Unmarshal(b, &rep); err != nil || !rep.Passed || rep.DeviceID != "kiosk-9" {
		t.Fatalf("report %s", b)
	}
	stored, err := h.Store().LastProvisionReport(ctx, "kiosk-9")
	if err != nil || !stored.Passed {
		t.Fatalf("hub report %+v %v", stored, err)
	}
	code, out, errOut = runCmd(t, "provision", "--link", link, "--state-dir", t.TempDir(), "--no-self-test")
	if code != 1 || !strings.Contains(errOut, "token_used") {
		t.Fatalf("reuse: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, _ := runCmd(t, "provision", "--hub", "http://x"); code != exitUsage {
		t.Fatalf("no token: exit %d", code)
	}
}
