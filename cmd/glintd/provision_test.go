package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/hubtest"
	"github.com/glintdev/glint/sim"
)

func writeProvisionFace(t *testing.T, path string) {
	t.Helper()
	if err := sim.WriteSyntheticFace(path); err != nil {
		t.Fatal(err)
	}
}

// TestProvisionFirstBoot runs `glintd provision` with a configuration
// whose camera and screen are the simulator's: the device registers with
// the hub, the self-test passes on the real clock, and the hub holds the
// report with the guard summary; a bad link exits 2.
func TestProvisionFirstBoot(t *testing.T) {
	h := hubtest.Start(t, "provision-test-key-0123")
	ctx := context.Background()
	tok, _, err := h.Store().CreateClaimToken(ctx, "site-a", 15*time.Minute, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	face := filepath.Join(dir, "face.png")
	writeProvisionFace(t, face)
	state := filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "glintd.yaml")
	writeFile(t, cfgPath, "state_dir: "+state+"\napi:\n  socket: "+filepath.Join(dir, "api.sock")+"\ncamera:\n  source: sim\n  sim:\n    face: "+face+"\n")
	link := device.ProvisionLink{Hub: "http://" + h.APIAddr().String(), Token: tok}.String()
	var out, errb bytes.Buffer
	code := realMain([]string{"provision", "--config", cfgPath, "--link", link, "--device-id", "gate-3"}, &out, &errb)
	t.Logf("\n%s%s", out.String(), errb.String())
	if code != exitOK || !strings.Contains(out.String(), "self-test: PASSED") {
		t.Fatalf("exit %d", code)
	}
	env, err := device.ReadEnvFile(filepath.Join(state, device.ProvisionEnvFile))
	if err != nil || env["GLINT_SYNC_DEVICE_ID"] != "gate-3" || env["GLINT_SYNC_BROKER_URL"] != h.BrokerURL() {
		t.Fatalf("sync.env %v %v", env, err)
	}
	rep, err := h.Store().LastProvisionReport(ctx, "gate-3")
	if err != nil || !rep.Passed || !strings.Contains(string(rep.Report), `"guard"`) {
		t.Fatalf("hub report %+v %v", rep, err)
	}
	if _, err := os.Stat(filepath.Join(state, device.KeyFile)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := realMain([]string{"provision", "--config", cfgPath, "--link", "glint://nope"}, &out, &errb); code != exitConfig {
		t.Fatalf("bad link: exit %d %s", code, errb.String())
	}
}
