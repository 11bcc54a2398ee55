package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glintdev/glint/hub/hubtest"
)

// TestFleetSim runs `glintctl fleet-sim` against a hub with the embedded
// broker: the devices register through the API, fetch the hub key,
// authenticate with signed tokens, and every result is receipted.
func TestFleetSim(t *testing.T) {
	const key = "fleet-sim-test-key-0123"
	h := hubtest.Start(t, key)
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte(key+"\n"), 0o600)

	code, out, errOut := runCmd(t, "fleet-sim", "--broker", h.BrokerURL(), "--hub-api", "http://"+h.APIAddr().String(), "--api-key-file", keyFile,
		"--devices", "4", "--rate", "200", "--duration", "1s", "--drain-timeout", "30s", "--json")
	var rep struct{ Produced, Receipted, Pending int64 }
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("code %d\n%s\n%s", code, out, errOut)
	}
	t.Log(strings.TrimSpace(out))
	// Counts, not rates: how many were produced depends on the machine.
	n, q, err := h.Store().Counts(context.Background())
	if err != nil || rep.Produced == 0 || rep.Pending != 0 || rep.Receipted != rep.Produced || n != rep.Produced || q != 0 {
		t.Fatalf("report %+v; hub stored %d, quarantined %d, %v", rep, n, q, err)
	}
	if code, _, errOut := runCmd(t, "fleet-sim", "--devices", "1"); code != exitUsage || !strings.Contains(errOut, "--broker") {
		t.Fatalf("missing broker: %d %s", code, errOut)
	}
}
