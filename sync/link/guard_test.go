package link

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/sync/envelope"
	"github.com/glintdev/glint/sync/outbox"
	"github.com/glintdev/glint/sync/testsvc"
)

// TestGuardRetained: SetGuard publishes the signed report retained on
// <prefix>/<device>/guard; a subscriber arriving later (the hub after a
// restart) gets the latest one from the broker, and a new report
// replaces it. Against the machine's Mosquitto.
func TestGuardRetained(t *testing.T) {
	testsvc.Require(t, "mosquitto", testsvc.MosquittoAddr)
	prefix := testsvc.UniqueName("guardtest")
	devID := testsvc.UniqueName("dev")
	topic := DeviceTopics(prefix, devID).Guard
	forgetDevice(t, prefix, devID)
	t.Cleanup(func() { // clear the retained guard report
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + testsvc.MosquittoAddr).SetClientID(devID + "-clean"))
		if tok := c.Connect(); tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
			c.Publish(topic, 1, true, []byte{}).WaitTimeout(time.Second)
			c.Disconnect(50)
		}
	})
	hubKey, _ := device.GenerateKey()
	devKey, _ := device.GenerateKey()
	ob, err := outbox.Open(outbox.Config{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	l, err := New(Config{Broker: "tcp://" + testsvc.MosquittoAddr, DeviceID: devID, Prefix: prefix, Queue: ob, HubKey: hubKey.Public(), MinBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	report := func(risk device.Severity) []byte {
		b, err := envelope.SignGuard(devKey, envelope.NewGuardReport(devID, device.Report{CheckedAt: time.Now(), Risk: risk}, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Set before connecting: published once connected.
	l.SetGuard(report(device.SeverityNone))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 10*time.Second, "connected", func() bool { return l.Status().Connected })

	// A late subscriber gets the retained report.
	latest := func() (string, bool) {
		var mu sync.Mutex
		risk, retained := "", false
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + testsvc.MosquittoAddr).SetClientID(testsvc.UniqueName("sub")).SetCleanSession(true))
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscriber: %v", tok.Error())
		}
		defer c.Disconnect(50)
		c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
			g, err := envelope.OpenGuard(m.Payload(), devKey.PublicKey())
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				risk, retained = g.Risk, m.Retained()
			}
		}).WaitTimeout(5 * time.Second)
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			r, ret := risk, retained
			mu.Unlock()
			if r != "" {
				return r, ret
			}
			time.Sleep(20 * time.Millisecond)
		}
		return "", false
	}
	waitFor(t, 10*time.Second, "retained report", func() bool { r, ret := latest(); return r == "none" && ret })
	l.SetGuard(report(device.SeverityCritical))
	waitFor(t, 10*time.Second, "replaced report", func() bool { r, ret := latest(); return r == "critical" && ret })
}
