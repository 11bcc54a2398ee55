package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/sync/envelope"
	"github.com/glintdev/glint/sync/link"
	"github.com/glintdev/glint/sync/testsvc"
)

type changingGuard struct {
	mu  sync.Mutex
	rep device.Report
}

func (g *changingGuard) Last() device.Report {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rep
}

func (g *changingGuard) set(r device.Report) {
	g.mu.Lock()
	g.rep = r
	g.mu.Unlock()
}

// TestRunGuard: the agent publishes the monitor's report at start and again
// when its signals change, signed with the device key, to the device's
// guard topic on the machine's Mosquitto.
func TestRunGuard(t *testing.T) {
	testsvc.Require(t, "mosquitto", testsvc.MosquittoAddr)
	prefix := testsvc.UniqueName("agentguard")
	devID := testsvc.UniqueName("dev")
	topic := link.DeviceTopics(prefix, devID).Guard
	dir := t.TempDir()
	hubKey, _ := device.GenerateKey()
	hubPEM, _ := device.PublicKeyPEM(hubKey.Public())
	os.WriteFile(filepath.Join(dir, "hub.pub"), hubPEM, 0o600)
	cfg := Defaults()
	cfg.DeviceID, cfg.BrokerURL, cfg.Prefix, cfg.Auth, cfg.HubKeyFile = devID, "tcp://"+testsvc.MosquittoAddr, prefix, "none", filepath.Join(dir, "hub.pub")
	a, err := New(filepath.Join(dir, "state"), cfg, "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	var mu sync.Mutex
	var seen []string
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + testsvc.MosquittoAddr).SetClientID(testsvc.UniqueName("sub")).SetCleanSession(true))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(50)
	sub.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		if len(m.Payload()) == 0 {
			return
		}
		g, err := envelope.OpenGuard(m.Payload(), a.Signer().PublicKey())
		if err != nil {
			t.Errorf("guard report: %v", err)
			return
		}
		codes := []string{}
		for _, s := range g.Signals {
			codes = append(codes, s.Code)
		}
		mu.Lock()
		seen = append(seen, g.Risk+":"+strings.Join(codes, ","))
		mu.Unlock()
	}).WaitTimeout(5 * time.Second)
	defer func() { // clear the retained report
		sub.Publish(topic, 1, true, []byte{}).WaitTimeout(time.Second)
	}()

	src := &changingGuard{rep: device.Report{CheckedAt: time.Now()}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.Run(ctx) }()
	go func() { defer wg.Done(); a.RunGuard(ctx, src) }()
	defer func() { cancel(); wg.Wait() }()
	has := func(want string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range seen {
				if s == want {
					return true
				}
			}
			return false
		}
	}
	waitUntil(t, "the first report", has("none:"))
	src.set(device.Report{CheckedAt: time.Now(), Risk: device.SeverityCritical, Signals: []device.Signal{{Code: device.SignalTamper, Severity: device.SeverityCritical}}})
	waitUntil(t, "the changed report", has("critical:"+device.SignalTamper))
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A TPM path that does not exist is a clear error, not a fallback to a key
// file.
func TestTPMDeviceMissing(t *testing.T) {
	cfg := Defaults()
	cfg.TPMDevice = filepath.Join(t.TempDir(), "tpmrm9")
	_, err := New(t.TempDir(), cfg, "test", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "TPM") {
		t.Fatalf("%v", err)
	}
}
