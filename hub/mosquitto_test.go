package hub_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/glintdev/glint/hub"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/hub/store/storetest"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
	"github.com/glintdev/glint/sync/link"
	"github.com/glintdev/glint/sync/testsvc"
)

// testPKI is a throwaway CA with a server certificate for 127.0.0.1.
type testPKI struct {
	dir                       string
	ca                        *x509.Certificate
	caKey                     *ecdsa.PrivateKey
	caFile, certFile, keyFile string
}

// pki writes a CA and a server certificate for 127.0.0.1 into dir.
func pki(t *testing.T, dir, name string) (caFile, certFile, keyFile string) {
	p := newPKI(t, dir, name)
	return p.caFile, p.certFile, p.keyFile
}

func newPKI(t *testing.T, dir, name string) *testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{dir: dir, ca: ca, caKey: caKey}
	p.caFile = p.write(t, name+"-ca.pem", "CERTIFICATE", caDER)
	p.certFile, p.keyFile = p.issue(t, name+"-server", "127.0.0.1", true)
	return p
}

func (p *testPKI) write(t *testing.T, n, typ string, der []byte) string {
	path := filepath.Join(p.dir, n)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue signs a server (127.0.0.1) or client certificate with common name cn.
func (p *testPKI) issue(t *testing.T, name, cn string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+".key", "EC PRIVATE KEY", keyDER)
}

// startPrivateMosquitto runs a Mosquitto of the test's own: TLS only,
// per-device passwords, and an ACL confining each device to its subtree.
// runMosquitto starts bin with conf until the test ends, waits for its
// listeners, and shows its log when the test failed.
func runMosquitto(t *testing.T, bin, conf string, ports ...int) {
	t.Helper()
	cmd := exec.Command(bin, "-c", conf)
	logf, err := os.Create(filepath.Join(t.TempDir(), "mosquitto.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("mosquitto log:\n%s", b)
		}
	})
	for _, port := range ports {
		testsvc.WaitListen(t, fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	}
}

func startPrivateMosquitto(t *testing.T, users map[string]string) (port, certPort int, p *testPKI) {
	t.Helper()
	bin := testsvc.RequireBinary(t, "mosquitto")
	passwd := testsvc.RequireBinary(t, "mosquitto_passwd")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	os.WriteFile(pwFile, nil, 0o600)
	for u, p := range users {
		if out, err := exec.Command(passwd, "-b", pwFile, u, p).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v %s", err, out)
		}
	}
	acl := filepath.Join(dir, "acl")
	os.WriteFile(acl, []byte("# every device: its own subtree only\npattern readwrite glint/v1/%u/#\n\nuser glint-hub\ntopic readwrite glint/v1/#\n"), 0o600)
	p = newPKI(t, dir, "mosquitto")
	port, certPort = testsvc.FreePort(t), testsvc.FreePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	// The second listener authenticates devices by client certificate
	// (the certificate's CN is the username the ACL pattern uses).
	os.WriteFile(conf, []byte(fmt.Sprintf(`user root
persistence false
per_listener_settings false
allow_anonymous false
password_file %s
acl_file %s
listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
tls_version tlsv1.2
listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate true
use_identity_as_username true
`, pwFile, acl, port, p.caFile, p.certFile, p.keyFile, certPort, p.caFile, p.certFile, p.keyFile)), 0o600)
	runMosquitto(t, bin, conf, port, certPort)
	return port, certPort, p
}

// TestPrivateMosquittoACLAndTLS: the hub and devices reach a private
// Mosquitto over TLS with a pinned CA and per-device passwords; the broker's
// pattern ACL keeps device A from publishing as device B; a wrong CA or a
// wrong password is refused.
func TestPrivateMosquittoACLAndTLS(t *testing.T) {
	users := map[string]string{"glint-hub": "hub-secret", "dev-a": "a-secret", "dev-b": "b-secret"}
	port, certPort, p := startPrivateMosquitto(t, users)
	url := fmt.Sprintf("ssl://127.0.0.1:%d", port)
	tlsCfg, err := link.TLSConfig(p.caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	r := startHub(t, hub.Config{Dialect: store.SQLite, DSN: storetest.DSN(t, store.SQLite), BrokerURL: url, BrokerTLS: tlsCfg,
		BrokerUsername: "glint-hub", BrokerPassword: "hub-secret", ClientID: "glint-hub-acl-test"})
	a := newDevice(t, r, "dev-a")
	newDevice(t, r, "dev-b")
	a.put(t, 20)
	a.run(t, link.Config{Broker: url, TLS: tlsCfg, HubKey: r.h.Key().Public(), Username: "dev-a", Password: "a-secret"})
	waitFor(t, 20*time.Second, "dev-a's outbox drained over TLS", func() bool { return a.ob.Stats().Depth == 0 })

	// A, properly authenticated, publishes its own valid signed result on
	// B's topic: Mosquitto's ACL drops it, the hub never sees it.
	o := paho.NewClientOptions().AddBroker(url).SetClientID("dev-a-raw").SetUsername("dev-a").SetPassword("a-secret").
		SetTLSConfig(tlsCfg).SetAutoReconnect(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("raw A: %v", tok.Error())
	}
	defer c.Disconnect(50)
	// (Signed directly, not queued: A's running link would deliver a
	// queued one on A's own topic.)
	rec, _ := result.Synthetic("dev-a", "site-a", 1000, time.Now())
	env, err := envelope.SignRecord(a.key, rec)
	if err != nil {
		t.Fatal(err)
	}
	c.Publish("glint/v1/dev-b/result", 1, false, env).WaitTimeout(5 * time.Second)
	time.Sleep(500 * time.Millisecond)
	if _, err := r.h.Store().Result(t.Context(), rec.ID); err == nil {
		t.Fatal("A's publish on B's topic reached the store")
	}
	if n, q := counts(t, r.h.Store()); n != 20 || q != 0 {
		t.Fatalf("store: %d results, %d quarantined; want 20, 0 (the cross-device publish must not reach the hub)", n, q)
	}
	// The same envelope on A's own topic is accepted.
	c.Publish("glint/v1/dev-a/result", 1, false, env).WaitTimeout(5 * time.Second)
	waitFor(t, 10*time.Second, "A's own publish stored", func() bool { _, err := r.h.Store().Result(t.Context(), rec.ID); return err == nil })

	// A device authenticated by its client certificate (CN dev-c) on the
	// listener that requires one; without a certificate it is refused.
	c3 := newDevice(t, r, "dev-c")
	c3.put(t, 5)
	certFile, keyFile := p.issue(t, "dev-c", "dev-c", false)
	certTLS, err := link.TLSConfig(p.caFile, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	certURL := fmt.Sprintf("ssl://127.0.0.1:%d", certPort)
	c3.run(t, link.Config{Broker: certURL, TLS: certTLS, HubKey: r.h.Key().Public()})
	waitFor(t, 20*time.Second, "dev-c's outbox drained with a client certificate", func() bool { return c3.ob.Stats().Depth == 0 })
	noCert := paho.NewClient(paho.NewClientOptions().AddBroker(certURL).SetClientID("dev-c-x").SetTLSConfig(tlsCfg).
		SetAutoReconnect(false).SetConnectTimeout(3 * time.Second))
	if tok := noCert.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		noCert.Disconnect(0)
		t.Error("connected without a client certificate")
	}

	// Refusals: another CA (not pinned), a wrong password.
	otherCA, _, _ := pki(t, t.TempDir(), "other")
	otherTLS, _ := link.TLSConfig(otherCA, "", "")
	for name, cfg := range map[string]struct {
		tls  *tls.Config
		pass string
	}{"unpinned CA": {otherTLS, "a-secret"}, "wrong password": {tlsCfg, "nope"}} {
		o := paho.NewClientOptions().AddBroker(url).SetClientID("dev-a-x").SetUsername("dev-a").SetPassword(cfg.pass).
			SetTLSConfig(cfg.tls).SetAutoReconnect(false).SetConnectTimeout(3 * time.Second)
		c := paho.NewClient(o)
		tok := c.Connect()
		tok.WaitTimeout(5 * time.Second)
		if tok.Error() == nil {
			c.Disconnect(0)
			t.Errorf("%s: connected", name)
		}
	}
}

// TestEmbeddedTLS: the embedded broker serves TLS; a device pins the CA and
// authenticates with its signed token.
func TestEmbeddedTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := pki(t, dir, "embedded")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	clientTLS, _ := link.TLSConfig(caFile, "", "")
	r := startHub(t, hub.Config{Dialect: store.SQLite, DSN: storetest.DSN(t, store.SQLite),
		EmbeddedTLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if got := r.h.BrokerURL(); got[:6] != "ssl://" {
		t.Fatalf("broker URL %s", got)
	}
	d := newDevice(t, r, "kiosk-tls")
	d.put(t, 10)
	k := d.key
	d.run(t, link.Config{Broker: r.h.BrokerURL(), TLS: clientTLS, HubKey: r.h.Key().Public(), Username: d.id,
		PasswordFunc: func() string { return link.AuthToken(k, "kiosk-tls", time.Now()) }})
	waitFor(t, 20*time.Second, "outbox drained over TLS", func() bool { return d.ob.Stats().Depth == 0 })
	if n, _ := counts(t, r.h.Store()); n != 10 {
		t.Fatalf("stored %d", n)
	}
}
