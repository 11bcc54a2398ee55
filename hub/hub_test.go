package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/hub/store/storetest"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/link"
	"github.com/glintdev/glint/sync/outbox"
	"github.com/glintdev/glint/sync/testsvc"
)

const apiKey = "test-api-key-0123456789"

type running struct {
	h      *hub.Hub
	cancel func()
	done   chan error
}

func startHub(t *testing.T, cfg hub.Config) *running {
	t.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = "127.0.0.1:0"
		cfg.APIKeys = []string{apiKey}
	}
	if cfg.BrokerURL == "" && cfg.EmbeddedAddr == "" {
		cfg.EmbeddedAddr = "127.0.0.1:0"
	}
	h, err := hub.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{h: h, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- h.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("hub run: %v", err)
	}
	r.h.Close()
	r.cancel = nil
}

func (r *running) api(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+r.h.APIAddr().String()+path, rd)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type dev struct {
	id  string
	key *device.Key
	ob  *outbox.Outbox
}

func newDevice(t *testing.T, r *running, id string) *dev {
	t.Helper()
	k, _ := device.GenerateKey()
	pemKey, _ := device.PublicKeyPEM(k.Public())
	code, body := r.api(t, "POST", "/api/v1/devices", map[string]string{"device_id": id, "site_id": "site-a", "public_key": string(pemKey)})
	if code != http.StatusCreated {
		t.Fatalf("register %s: %d %s", id, code, body)
	}
	ob, err := outbox.Open(outbox.Config{Path: filepath.Join(t.TempDir(), id+".db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	return &dev{id: id, key: k, ob: ob}
}

func (d *dev) put(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		r, _ := result.Synthetic(d.id, "site-a", 0, time.Now())
		if _, err := d.ob.PutRecord(d.key, r); err != nil {
			t.Fatal(err)
		}
	}
}

func (d *dev) run(t *testing.T, cfg link.Config) func() {
	t.Helper()
	cfg.DeviceID, cfg.Queue = d.id, d.ob
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 50 * time.Millisecond
		cfg.MaxBackoff = 500 * time.Millisecond
	}
	l, err := link.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
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

func counts(t *testing.T, s *store.Store) (int64, int64) {
	r, q, err := s.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r, q
}

// TestEmbeddedEndToEnd: hub with the embedded broker; a device registered
// through the API authenticates with its signed token, its outbox drains
// through receipts, and the API serves the verified results and the
// device's status. Both stores.
func TestEmbeddedEndToEnd(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			r := startHub(t, hub.Config{Dialect: dialect, DSN: storetest.DSN(t, dialect)})
			d := newDevice(t, r, "kiosk-1")
			d.put(t, 120)
			key := d.key
			d.run(t, link.Config{Broker: r.h.BrokerURL(), HubKey: r.h.Key().Public(), Username: d.id,
				PasswordFunc: func() string { return link.AuthToken(key, "kiosk-1", time.Now()) }, StatusInterval: 200 * time.Millisecond})
			waitFor(t, 20*time.Second, "outbox drained", func() bool { return d.ob.Stats().Depth == 0 })
			if n, q := counts(t, r.h.Store()); n != 120 || q != 0 {
				t.Fatalf("store: %d results, %d quarantined", n, q)
			}
			code, body := r.api(t, "GET", "/api/v1/results?device=kiosk-1&limit=5", nil)
			var list struct{ Results []store.Row }
			if code != 200 || json.Unmarshal(body, &list) != nil || len(list.Results) != 5 {
				t.Fatalf("list: %d %s", code, body)
			}
			code, body = r.api(t, "GET", "/api/v1/results/"+list.Results[0].ID, nil)
			var one struct {
				Verification struct{ Verified bool }
				Envelope     []byte
			}
			if code != 200 || json.Unmarshal(body, &one) != nil || !one.Verification.Verified || len(one.Envelope) == 0 {
				t.Fatalf("get: %d %s", code, body)
			}
			waitFor(t, 10*time.Second, "device online in the API", func() bool {
				_, body := r.api(t, "GET", "/api/v1/devices", nil)
				var ds struct{ Devices []store.Device }
				json.Unmarshal(body, &ds)
				return len(ds.Devices) == 1 && ds.Devices[0].Online && ds.Devices[0].QueueDepth == 0 && !ds.Devices[0].LastSeen.IsZero()
			})
			if code, _ := r.api(t, "GET", "/api/v1/results/nope", nil); code != 404 {
				t.Fatalf("unknown id: %d", code)
			}
			req, _ := http.NewRequest("GET", "http://"+r.h.APIAddr().String()+"/api/v1/results", nil)
			req.Header.Set("X-API-Key", "wrong-key-wrong-key")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("wrong key: %d", resp.StatusCode)
			}
		})
	}
}

func pahoConnect(t *testing.T, url, clientID, user, pass string) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(o)
	tok := c.Connect()
	tok.WaitTimeout(5 * time.Second)
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

// TestEmbeddedBrokerAuth: per-device authentication and the subtree ACL of
// the embedded broker.
func TestEmbeddedBrokerAuth(t *testing.T) {
	r := startHub(t, hub.Config{Dialect: store.SQLite, DSN: storetest.DSN(t, store.SQLite)})
	a := newDevice(t, r, "dev-a")
	b := newDevice(t, r, "dev-b")
	url := r.h.BrokerURL()
	tokA := link.AuthToken(a.key, "dev-a", time.Now())

	refused := []struct{ name, client, user, pass string }{
		{"no credentials", "dev-a", "", ""},
		{"B's token as A", "dev-a", "dev-a", link.AuthToken(b.key, "dev-a", time.Now())},
		{"A's token for B", "dev-b", "dev-b", tokA},
		{"client ID differs", "dev-b", "dev-a", tokA},
		{"stale token", "dev-a", "dev-a", link.AuthToken(a.key, "dev-a", time.Now().Add(-time.Hour))},
		{"unregistered", "dev-z", "dev-z", link.AuthToken(a.key, "dev-z", time.Now())},
		{"hub user, wrong password", "x", "glint-hub", "guess"},
	}
	for _, tt := range refused {
		if _, err := pahoConnect(t, url, tt.client, tt.user, tt.pass); err == nil {
			t.Errorf("%s: connected", tt.name)
		}
	}
	// A may not subscribe to everyone's receipts.
	ca, err := pahoConnect(t, url, "dev-a", "dev-a", tokA)
	if err != nil {
		t.Fatalf("A with its own token: %v", err)
	}
	st := ca.Subscribe("glint/v1/+/receipt", 1, nil)
	st.WaitTimeout(2 * time.Second)
	if res := st.(*paho.SubscribeToken).Result(); st.Error() == nil && res["glint/v1/+/receipt"] != 0x80 {
		t.Errorf("wildcard receipt subscription granted: %v", res)
	}
	// A publishes a valid result of its own on B's topic: the broker
	// refuses it (and drops A's connection), the hub never sees it.
	ca, err = pahoConnect(t, url, "dev-a", "dev-a", tokA)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := result.Synthetic("dev-a", "site-a", 1, time.Now())
	env, _ := a.ob.PutRecord(a.key, rec)
	ca.Publish("glint/v1/dev-b/result", 1, false, env.Envelope).WaitTimeout(2 * time.Second)
	// Its own topic goes through.
	ca, err = pahoConnect(t, url, "dev-a", "dev-a", tokA)
	if err != nil {
		t.Fatal(err)
	}
	ca.Publish("glint/v1/dev-a/result", 1, false, env.Envelope).WaitTimeout(2 * time.Second)
	waitFor(t, 10*time.Second, "A's own result stored", func() bool { n, _ := counts(t, r.h.Store()); return n == 1 })
	time.Sleep(200 * time.Millisecond)
	if n, q := counts(t, r.h.Store()); n != 1 || q != 0 {
		t.Fatalf("store: %d results, %d quarantined (the cross-device publish got through)", n, q)
	}

	// Bad input over the wire: garbage, a truncated envelope and a result
	// dated an hour ahead are quarantined; the hub keeps ingesting.
	future, _ := result.Synthetic("dev-a", "site-a", 2, time.Now().Add(time.Hour))
	futureEnv, _ := a.ob.PutRecord(a.key, future)
	for _, p := range [][]byte{[]byte("garbage"), env.Envelope[:40], futureEnv.Envelope} {
		ca.Publish("glint/v1/dev-a/result", 1, false, p).WaitTimeout(2 * time.Second)
	}
	waitFor(t, 10*time.Second, "3 rejections quarantined", func() bool { _, q := counts(t, r.h.Store()); return q == 3 })
	for _, reason := range []string{"malformed", "clock_skew"} {
		if qs, _ := r.h.Store().QuarantineList(t.Context(), reason, 10); len(qs) == 0 {
			t.Errorf("no quarantine row for %s", reason)
		}
	}
	late, _ := result.Synthetic("dev-a", "site-a", 3, time.Now())
	lateEnv, _ := a.ob.PutRecord(a.key, late)
	ca.Publish("glint/v1/dev-a/result", 1, false, lateEnv.Envelope).WaitTimeout(2 * time.Second)
	waitFor(t, 10*time.Second, "a good result after the bad ones", func() bool { n, _ := counts(t, r.h.Store()); return n == 2 })
	if v := metricValue(t, r.h, "glint_ingest_rejected_total"); v != 3 {
		t.Errorf("glint_ingest_rejected_total = %v, want 3", v)
	}
}

// TestMosquittoSharedReplicas: two hub replicas on the machine's Mosquitto
// share the results via $share/glint-hub; every result is stored exactly
// once in the shared PostgreSQL store and both replicas took part.
func TestMosquittoSharedReplicas(t *testing.T) {
	testsvc.Require(t, "mosquitto", testsvc.MosquittoAddr)
	dsn := storetest.DSN(t, store.Postgres)
	prefix := testsvc.UniqueName("hubshare")
	url := "tcp://" + testsvc.MosquittoAddr
	r1 := startHub(t, hub.Config{Dialect: store.Postgres, DSN: dsn, BrokerURL: url, Prefix: prefix, ClientID: prefix + "-r1"})
	stateDir := t.TempDir()
	// Both replicas sign receipts with the same hub key (one state dir
	// copied to each replica in production).
	copyKey(t, r1.h, stateDir)
	r2 := startHub(t, hub.Config{Dialect: store.Postgres, DSN: dsn, BrokerURL: url, Prefix: prefix, ClientID: prefix + "-r2", StateDir: stateDir})
	time.Sleep(300 * time.Millisecond) // both subscribed
	var devs []*dev
	var stops []func()
	for i := 0; i < 3; i++ {
		d := newDevice(t, r1, fmt.Sprintf("%s-d%d", prefix, i))
		d.put(t, 100)
		stops = append(stops, d.run(t, link.Config{Broker: url, Prefix: prefix, HubKey: r1.h.Key().Public()}))
		devs = append(devs, d)
	}
	waitFor(t, 30*time.Second, "all outboxes drained", func() bool {
		for _, d := range devs {
			if d.ob.Stats().Depth != 0 {
				return false
			}
		}
		return true
	})
	if n, q := counts(t, r1.h.Store()); n != 300 || q != 0 {
		t.Fatalf("store: %d results, %d quarantined", n, q)
	}
	m1 := metricValue(t, r1.h, "glint_ingest_received_total")
	m2 := metricValue(t, r2.h, "glint_ingest_received_total")
	t.Logf("replica 1 received %v, replica 2 received %v", m1, m2)
	if m1 == 0 || m2 == 0 {
		t.Fatalf("shared subscription did not split the load: %v / %v", m1, m2)
	}
	for _, stop := range stops {
		stop()
	}
	r1.stop(t)
	r2.stop(t)
	cleanupDevices(t, url, prefix, devs)
	forgetSessions(url, prefix+"-r1", prefix+"-r2")
}

// forgetSessions removes persistent sessions from the shared broker.
func forgetSessions(url string, clientIDs ...string) {
	for _, id := range clientIDs {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true))
		if tok := c.Connect(); tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
			c.Disconnect(50)
		}
	}
}

var keyMu sync.Mutex

func copyKey(t *testing.T, h *hub.Hub, dir string) {
	keyMu.Lock()
	defer keyMu.Unlock()
	b, err := device.MarshalKey(h.Key())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, hub.KeyFile), b); err != nil {
		t.Fatal(err)
	}
}

func metricValue(t *testing.T, h *hub.Hub, name string) float64 {
	mfs, err := h.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var v float64
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
			return v
		}
	}
	return 0
}

// cleanupDevices removes the persistent sessions and retained statuses the
// test left on the shared broker.
func cleanupDevices(t *testing.T, url, prefix string, devs []*dev) {
	for _, d := range devs {
		o := paho.NewClientOptions().AddBroker(url).SetClientID(d.id).SetCleanSession(true)
		c := paho.NewClient(o)
		if tok := c.Connect(); tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
			c.Publish(prefix+"/"+d.id+"/status", 1, true, []byte{}).WaitTimeout(time.Second)
			c.Disconnect(50)
		}
	}
}
