package link

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
	"github.com/glintdev/glint/sync/outbox"
	"github.com/glintdev/glint/sync/testsvc"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		n    int
		u    float64
		want time.Duration
	}{
		{1, 0.5, time.Second},
		{2, 0.5, 2 * time.Second},
		{4, 0.5, 8 * time.Second},
		{10, 0.5, 60 * time.Second},
		{1, 0, 800 * time.Millisecond},
		{1, 0.999999, 1200 * time.Millisecond},
	}
	for _, tt := range tests {
		got := backoff(time.Second, time.Minute, tt.n, tt.u)
		if d := got - tt.want; d > time.Millisecond || d < -time.Millisecond {
			t.Errorf("backoff(n=%d,u=%v) = %s, want %s", tt.n, tt.u, got, tt.want)
		}
	}
}

func TestAuthToken(t *testing.T) {
	k, _ := device.GenerateKey()
	other, _ := device.GenerateKey()
	now := time.Now()
	tok := AuthToken(k, "dev-1", now)
	tests := []struct {
		name  string
		token string
		dev   string
		key   *device.Key
		at    time.Time
		ok    bool
	}{
		{"ok", tok, "dev-1", k, now, true},
		{"within skew", tok, "dev-1", k, now.Add(4 * time.Minute), true},
		{"expired", tok, "dev-1", k, now.Add(6 * time.Minute), false},
		{"other device", tok, "dev-2", k, now, false},
		{"other key", tok, "dev-1", other, now, false},
		{"garbage", "v1.x.y", "dev-1", k, now, false},
		{"empty", "", "dev-1", k, now, false},
	}
	for _, tt := range tests {
		err := VerifyAuthToken(tt.token, tt.dev, tt.key.Public(), tt.at, 5*time.Minute)
		if tt.ok != (err == nil) {
			t.Errorf("%s: err = %v", tt.name, err)
		}
		if err != nil && !errors.Is(err, ErrAuthToken) {
			t.Errorf("%s: err %v not ErrAuthToken", tt.name, err)
		}
	}
}

// fakeHub answers results with receipts, like sync/ingest but without a
// store, so that the link is tested on its own against Mosquitto.
type fakeHub struct {
	t      *testing.T
	hubKey *device.Key
	devKey *device.Key
	c      mqtt.Client
	prefix string

	mu       sync.Mutex
	seen     map[uint64]int // deliveries per seq
	dropOnce func(seq uint64) bool
	statuses []StatusMessage
}

func startFakeHub(t *testing.T, prefix string, hubKey, devKey *device.Key) *fakeHub {
	h := &fakeHub{t: t, hubKey: hubKey, devKey: devKey, prefix: prefix, seen: map[uint64]int{}}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + testsvc.MosquittoAddr).SetClientID(prefix + "-hub").SetCleanSession(true)
	h.c = mqtt.NewClient(o)
	if tok := h.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("fake hub connect: %v", tok.Error())
	}
	t.Cleanup(func() { h.c.Disconnect(100) })
	if tok := h.c.Subscribe(prefix+"/+/result", 1, h.onResult); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if tok := h.c.Subscribe(prefix+"/+/status", 1, func(_ mqtt.Client, m mqtt.Message) {
		var s StatusMessage
		if json.Unmarshal(m.Payload(), &s) == nil {
			h.mu.Lock()
			h.statuses = append(h.statuses, s)
			h.mu.Unlock()
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return h
}

func (h *fakeHub) onResult(c mqtt.Client, m mqtt.Message) {
	r, err := envelope.OpenRecord(m.Payload(), h.devKey.Public())
	if err != nil {
		h.t.Errorf("fake hub: %v", err)
		return
	}
	h.mu.Lock()
	h.seen[r.Seq]++
	first := h.seen[r.Seq] == 1
	drop := first && h.dropOnce != nil && h.dropOnce(r.Seq)
	h.mu.Unlock()
	if drop {
		return
	}
	rc, err := envelope.SignReceipt(h.hubKey, &envelope.Receipt{DeviceID: r.DeviceID, StoredAt: time.Now(),
		Items: []envelope.ReceiptItem{{Seq: r.Seq, RecordID: r.ID, Status: envelope.ReceiptStored}}})
	if err != nil {
		h.t.Error(err)
		return
	}
	c.Publish(h.prefix+"/"+r.DeviceID+"/receipt", 1, false, rc)
}

// forgetDevice removes what a test device leaves on the shared broker: its
// persistent session and its retained status. Registered first, it runs
// after the link has stopped.
func forgetDevice(t *testing.T, prefix, devID string) {
	t.Cleanup(func() {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + testsvc.MosquittoAddr).SetClientID(devID).SetCleanSession(true))
		if tok := c.Connect(); tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
			c.Publish(prefix+"/"+devID+"/status", 1, true, []byte{}).WaitTimeout(time.Second)
			c.Disconnect(50)
		}
	})
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLinkMosquitto(t *testing.T) {
	testsvc.Require(t, "mosquitto", testsvc.MosquittoAddr)
	prefix := testsvc.UniqueName("linktest")
	devID := testsvc.UniqueName("dev")
	forgetDevice(t, prefix, devID)
	hubKey, _ := device.GenerateKey()
	devKey, _ := device.GenerateKey()
	hub := startFakeHub(t, prefix, hubKey, devKey)
	hub.dropOnce = func(seq uint64) bool { return seq%10 == 0 } // every 10th first delivery lost

	// 100 results of ~1.3 KB fill this outbox beyond 80 %: the alarm is
	// on at connect and must be cleared on the status topic once drained.
	ob, err := outbox.Open(outbox.Config{Path: filepath.Join(t.TempDir(), "o.db"), MaxBytes: 150 << 10, Headroom: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	const n = 100
	for i := 0; i < n; i++ {
		r, _ := result.Synthetic(devID, "s", 0, time.Now())
		if _, err := ob.PutRecord(devKey, r); err != nil {
			t.Fatal(err)
		}
	}
	l, err := New(Config{
		Broker: "tcp://" + testsvc.MosquittoAddr, DeviceID: devID, Prefix: prefix, Queue: ob,
		HubKey: hubKey.Public(), Window: 16, RedeliverAfter: 300 * time.Millisecond, MinBackoff: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	waitFor(t, 20*time.Second, "outbox drained", func() bool { return ob.Stats().Depth == 0 })
	// Results put while connected go out at once.
	r, _ := result.Synthetic(devID, "s", 0, time.Now())
	if _, err := ob.PutRecord(devKey, r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "live result receipted", func() bool { return ob.Stats().Depth == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The retained "offline" status is published on the way out and
	// reaches the hub's subscription asynchronously: wait for it.
	waitFor(t, 10*time.Second, "offline status", func() bool {
		hub.mu.Lock()
		defer hub.mu.Unlock()
		for _, s := range hub.statuses {
			if s.DeviceID == devID && s.State == "offline" {
				return true
			}
		}
		return false
	})
	hub.mu.Lock()
	defer hub.mu.Unlock()
	for seq := uint64(1); seq <= n+1; seq++ {
		if hub.seen[seq] == 0 {
			t.Errorf("seq %d never delivered", seq)
		}
		if seq%10 == 0 && seq <= n && hub.seen[seq] < 2 {
			t.Errorf("seq %d: receipt dropped but not redelivered", seq)
		}
	}
	var online, offline, alarmOn, alarmOff bool
	for _, s := range hub.statuses {
		if s.DeviceID == devID && s.State == "online" && s.Queue != nil {
			online = true
			if s.Queue.Alarm {
				alarmOn = true
			} else if alarmOn {
				alarmOff = true
			}
		}
		if s.DeviceID == devID && s.State == "offline" && online {
			offline = true
		}
	}
	if !online || !offline || !alarmOn || !alarmOff {
		t.Errorf("status messages online=%v offline=%v alarm on=%v then off=%v: %+v", online, offline, alarmOn, alarmOff, hub.statuses)
	}
}

// TestForgedReceiptIgnored: a receipt signed by anything but the pinned hub
// key must not delete the entry.
func TestForgedReceiptIgnored(t *testing.T) {
	testsvc.Require(t, "mosquitto", testsvc.MosquittoAddr)
	prefix := testsvc.UniqueName("linkforge")
	devID := testsvc.UniqueName("dev")
	forgetDevice(t, prefix, devID)
	hubKey, _ := device.GenerateKey()
	forger, _ := device.GenerateKey()
	devKey, _ := device.GenerateKey()
	startFakeHub(t, prefix, forger, devKey) // receipts signed by the wrong key

	ob, err := outbox.Open(outbox.Config{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	r, _ := result.Synthetic(devID, "s", 0, time.Now())
	if _, err := ob.PutRecord(devKey, r); err != nil {
		t.Fatal(err)
	}
	l, _ := New(Config{Broker: "tcp://" + testsvc.MosquittoAddr, DeviceID: devID, Prefix: prefix, Queue: ob, HubKey: hubKey.Public()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	waitFor(t, 10*time.Second, "forged receipt counted", func() bool {
		return l.m.badRct != nil && testCounter(l.m.badRct) >= 1
	})
	cancel()
	<-done
	if d := ob.Stats().Depth; d != 1 {
		t.Fatalf("forged receipt deleted the entry (depth %d)", d)
	}
}
