package hub_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub"
	"github.com/glintdev/glint/hub/mosquittoconf"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/hub/store/storetest"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
	"github.com/glintdev/glint/sync/link"
	"github.com/glintdev/glint/sync/outbox"
	"github.com/glintdev/glint/sync/testsvc"
)

// startGeneratedMosquitto runs a private Mosquitto whose only
// configuration is what mosquittoconf generated into dir (its glint.conf,
// pulled in with include_dir, names the ACL and password file).
func startGeneratedMosquitto(t *testing.T, dir string, port int) {
	t.Helper()
	bin := testsvc.RequireBinary(t, "mosquitto")
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte("user root\npersistence false\ninclude_dir "+dir+"\n"), 0o600)
	runMosquitto(t, bin, conf, port)
}

// msgs records everything one client receives.
type msgs struct {
	mu  sync.Mutex
	got []string // "topic payload"
}

func newMsgs() *msgs { return &msgs{} }

func (m *msgs) handler(_ paho.Client, msg paho.Message) {
	m.mu.Lock()
	m.got = append(m.got, msg.Topic()+" "+string(msg.Payload()))
	m.mu.Unlock()
}

// has reports whether a message with payload arrived on topic.
func (m *msgs) has(topic, payload string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(m.got, topic+" "+payload)
}

// anyOn returns the first message received on topic other than allowed.
func (m *msgs) anyOn(topic string, allowed ...string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, g := range m.got {
		t, p, _ := strings.Cut(g, " ")
		if t == topic && !slices.Contains(allowed, p) {
			return p, true
		}
	}
	return "", false
}

// wait reports whether a message with payload arrives on topic within d.
func (m *msgs) wait(topic, payload string, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m.has(topic, payload) {
			return true
		}
	}
	return false
}

func secretOf(t *testing.T, dir, user string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, mosquittoconf.CredentialsDir, user+".secret"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestMosquittoFleetConfig: a real Mosquitto started with nothing but the
// files glint-hub mosquitto-config generates from the registry. Device A,
// with its generated password, delivers signed results to the hub (shared
// subscription) and gets its receipts; A's publish on B's result topic, or
// on its own receipt topic, is not delivered; A cannot read B's receipts;
// a wrong password, an unknown user and a revoked device are refused; the
// hub user publishes receipts to A.
func TestMosquittoFleetConfig(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t, store.SQLite)
	s, err := store.Open(ctx, store.SQLite, dsn)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]*device.Key{}
	for _, id := range []string{"dev-a", "dev-b", "dev-r"} {
		k, _ := device.GenerateKey()
		if _, err := s.RegisterDevice(ctx, id, "site-a", k.Public()); err != nil {
			t.Fatal(err)
		}
		keys[id] = k
	}
	s.RevokeDevice(ctx, "dev-r")
	dir := filepath.Join(t.TempDir(), "mosquitto")
	p := newPKI(t, t.TempDir(), "fleet")
	port := testsvc.FreePort(t)
	sum, err := mosquittoconf.Generate(ctx, s, mosquittoconf.Options{Dir: dir, Prefix: "glint/v1", Port: port, Bind: "127.0.0.1",
		CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Devices != 2 || sum.Revoked != 1 {
		t.Fatalf("summary %+v", sum)
	}
	startGeneratedMosquitto(t, dir, port)

	url := fmt.Sprintf("ssl://127.0.0.1:%d", port)
	tlsCfg, err := link.TLSConfig(p.caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	hubPass := secretOf(t, dir, mosquittoconf.DefaultHubUser)
	r := startHub(t, hub.Config{Dialect: store.SQLite, DSN: dsn, BrokerURL: url, BrokerTLS: tlsCfg,
		BrokerUsername: mosquittoconf.DefaultHubUser, BrokerPassword: hubPass, ClientID: "glint-hub-fleet-test"})

	// Device A through the real link with its generated password: results
	// reach the hub, receipts come back, the outbox drains.
	ob, err := outbox.Open(outbox.Config{Path: filepath.Join(t.TempDir(), "dev-a.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	a := &dev{id: "dev-a", key: keys["dev-a"], ob: ob}
	a.put(t, 10)
	a.run(t, link.Config{Broker: url, TLS: tlsCfg, HubKey: r.h.Key().Public(), Username: "dev-a", Password: secretOf(t, dir, "dev-a")})
	waitFor(t, 20*time.Second, "dev-a's outbox drained through the generated ACL", func() bool { return a.ob.Stats().Depth == 0 })
	if n, q := counts(t, r.h.Store()); n != 10 || q != 0 {
		t.Fatalf("store: %d results, %d quarantined", n, q)
	}

	connect := func(t *testing.T, clientID, user, pass string, m *msgs) (paho.Client, error) {
		o := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetUsername(user).SetPassword(pass).
			SetTLSConfig(tlsCfg).SetAutoReconnect(false).SetConnectTimeout(3 * time.Second).SetCleanSession(true)
		if m != nil {
			o.SetDefaultPublishHandler(m.handler)
		}
		c := paho.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(5 * time.Second) {
			return nil, fmt.Errorf("connect timed out")
		}
		if tok.Error() != nil {
			return nil, tok.Error()
		}
		t.Cleanup(func() { c.Disconnect(50) })
		return c, nil
	}
	must := func(c paho.Client, err error) paho.Client {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	subscribe := func(c paho.Client, topic string, m *msgs) byte {
		t.Helper()
		tok := c.Subscribe(topic, 1, m.handler)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", topic, tok.Error())
		}
		return tok.(*paho.SubscribeToken).Result()[topic]
	}
	publish := func(c paho.Client, topic, payload string) {
		t.Helper()
		c.Publish(topic, 1, false, payload).WaitTimeout(5 * time.Second)
	}

	// An observer with the hub's credentials sees every device's results
	// and receipts.
	obsMsgs := newMsgs()
	obs := must(connect(t, "glint-hub-observer", mosquittoconf.DefaultHubUser, hubPass, obsMsgs))
	subscribe(obs, "glint/v1/+/result", obsMsgs)
	aMsgs, bMsgs := newMsgs(), newMsgs()
	ac := must(connect(t, "dev-a-raw", "dev-a", secretOf(t, dir, "dev-a"), aMsgs))
	bc := must(connect(t, "dev-b-raw", "dev-b", secretOf(t, dir, "dev-b"), bMsgs))

	// A's own result topic: delivered to the hub user; B's: not.
	publish(ac, "glint/v1/dev-b/result", "forged-by-a")
	publish(ac, "glint/v1/dev-a/result", "from-a")
	if !obsMsgs.wait("glint/v1/dev-a/result", "from-a", 5*time.Second) {
		t.Fatal("A's publish on its own result topic did not reach the hub user")
	}
	// A real signed record of A's, on B's topic: the hub never sees it.
	rec, _ := result.Synthetic("dev-a", "site-a", 1000, time.Now())
	env, err := envelope.SignRecord(a.key, rec)
	if err != nil {
		t.Fatal(err)
	}
	ac.Publish("glint/v1/dev-b/result", 1, false, env).WaitTimeout(5 * time.Second)
	publish(bc, "glint/v1/dev-b/result", "from-b")
	if !obsMsgs.wait("glint/v1/dev-b/result", "from-b", 5*time.Second) {
		t.Fatal("B's publish on its own result topic did not reach the hub user")
	}
	time.Sleep(300 * time.Millisecond)
	if p, ok := obsMsgs.anyOn("glint/v1/dev-b/result", "from-b"); ok {
		t.Fatalf("A's publish on B's result topic was delivered: %q", p)
	}
	if _, err := r.h.Store().Result(ctx, rec.ID); err == nil {
		t.Fatal("A's signed record on B's topic reached the store")
	}

	// Receipts: the hub user writes them, the device itself cannot, and
	// only the addressed device reads them.
	subscribe(ac, "glint/v1/dev-a/receipt", aMsgs)
	qos := subscribe(ac, "glint/v1/dev-b/receipt", aMsgs)
	t.Logf("SUBACK for A subscribing to B's receipts: %#x", qos)
	subscribe(bc, "glint/v1/dev-b/receipt", bMsgs)
	subscribe(obs, "glint/v1/+/receipt", obsMsgs)
	publish(ac, "glint/v1/dev-a/receipt", "self-receipt")
	publish(obs, "glint/v1/dev-b/receipt", "receipt-for-b")
	publish(obs, "glint/v1/dev-a/receipt", "receipt-for-a")
	if !bMsgs.wait("glint/v1/dev-b/receipt", "receipt-for-b", 5*time.Second) {
		t.Fatal("B did not receive the hub's receipt")
	}
	if !aMsgs.wait("glint/v1/dev-a/receipt", "receipt-for-a", 5*time.Second) {
		t.Fatal("A did not receive the hub's receipt")
	}
	time.Sleep(300 * time.Millisecond)
	if p, ok := aMsgs.anyOn("glint/v1/dev-b/receipt"); ok {
		t.Fatalf("A read B's receipt %q", p)
	}
	if obsMsgs.has("glint/v1/dev-a/receipt", "self-receipt") || aMsgs.has("glint/v1/dev-a/receipt", "self-receipt") {
		t.Fatal("A published on its own receipt topic (devices only read it)")
	}

	// Refusals.
	for name, c := range map[string][2]string{
		"wrong password":  {"dev-a", "not-the-secret"},
		"B's password":    {"dev-a", secretOf(t, dir, "dev-b")},
		"unknown user":    {"dev-x", secretOf(t, dir, "dev-a")},
		"revoked device":  {"dev-r", ""},
		"empty password":  {"dev-a", ""},
		"hub, wrong pass": {mosquittoconf.DefaultHubUser, secretOf(t, dir, "dev-a")},
	} {
		if _, err := connect(t, "refused-"+strings.ReplaceAll(name, " ", "-"), c[0], c[1], nil); err == nil {
			t.Errorf("%s: connected", name)
		}
	}
}
