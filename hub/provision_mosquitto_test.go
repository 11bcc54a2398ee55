package hub_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub"
	"github.com/glintdev/glint/hub/mosquittoconf"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/hub/store/storetest"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/agent"
	"github.com/glintdev/glint/sync/testsvc"
)

// TestProvisionMosquittoFleet: with an external Mosquitto whose password
// file and ACL come from glint-hub mosquitto-config, provisioning issues the
// device a broker secret and stores only its hash. The secret is refused
// until mosquitto-config runs again and Mosquitto reloads (SIGHUP) — then an
// agent configured from sync.env alone delivers a signed result and a
// signed guard report through the generated ACL. Re-running
// mosquitto-config keeps the provisioned secret (it issues none).
func TestProvisionMosquittoFleet(t *testing.T) {
	bin := testsvc.RequireBinary(t, "mosquitto")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := storetest.DSN(t, store.SQLite)
	dir := filepath.Join(t.TempDir(), "mosquitto")
	port := testsvc.FreePort(t)
	generate := func() *mosquittoconf.Summary {
		t.Helper()
		s, err := store.Open(ctx, store.SQLite, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sum, err := mosquittoconf.Generate(ctx, s, mosquittoconf.Options{Dir: dir, Prefix: "glint/v1", Port: port, Bind: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	generate()
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte("user root\npersistence false\ninclude_dir "+dir+"\n"), 0o600)
	cmd := exec.Command(bin, "-c", conf)
	logf, _ := os.Create(filepath.Join(t.TempDir(), "mosquitto.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("mosquitto log:\n%s", b)
		}
	})
	testsvc.WaitListen(t, fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	url := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	r := startHub(t, hub.Config{Dialect: store.SQLite, DSN: dsn, BrokerURL: url, BrokerUsername: mosquittoconf.DefaultHubUser,
		BrokerPassword: secretOf(t, dir, mosquittoconf.DefaultHubUser), ClientID: "glint-hub-provision-test"})

	tok := r.createToken(t, "site-m", "15m")
	state := t.TempDir()
	out, err := (&device.Provisioning{Link: device.ProvisionLink{Hub: r.apiURL(), Token: tok.Token}, StateDir: state, DeviceID: "kiosk-5"}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secret := out.Response.MQTT.Password
	if out.Response.MQTT.Auth != "password" || out.Response.MQTT.BrokerURL != url || len(secret) < 24 {
		t.Fatalf("%+v", out.Response.MQTT)
	}
	connects := func() bool {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("kiosk-5").SetUsername("kiosk-5").SetPassword(secret).
			SetAutoReconnect(false).SetConnectTimeout(3 * time.Second).SetCleanSession(true))
		tk := c.Connect()
		ok := tk.WaitTimeout(5*time.Second) && tk.Error() == nil
		if ok {
			c.Disconnect(20)
		}
		return ok
	}
	if connects() {
		t.Fatal("the broker accepted the secret before mosquitto-config ran")
	}
	if sum := generate(); slices.Contains(sum.NewSecrets, "kiosk-5") {
		t.Fatal("mosquitto-config replaced the provisioned secret")
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the broker to accept the provisioned secret", connects)

	cfg := syncConfig(t, state)
	if cfg.Auth != "password" || cfg.PasswordFile != filepath.Join(state, device.BrokerSecretFile) {
		t.Fatalf("%+v", cfg)
	}
	a, err := agent.New(state, cfg, "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	actx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { a.Run(actx); done <- struct{}{} }()
	go func() { a.RunGuard(actx, fixedGuard{device.Report{CheckedAt: time.Now()}}); done <- struct{}{} }()
	defer func() { stop(); <-done; <-done }()
	rec, _ := result.Synthetic("", "", 0, time.Now())
	rec.DeviceID, rec.SiteID = "", ""
	if _, err := a.Record(rec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the result stored", func() bool {
		rows, err := r.h.Store().Results(ctx, store.Filter{DeviceID: "kiosk-5"})
		return err == nil && len(rows) == 1 && rows[0].SiteID == "site-m"
	})
	waitFor(t, 20*time.Second, "the guard report stored", func() bool {
		g, err := r.h.Store().GuardReport(ctx, "kiosk-5")
		return err == nil && g.Risk == "none"
	})
	waitFor(t, 20*time.Second, "the outbox drained by the receipt", func() bool { return a.Outbox().Stats().Depth == 0 })
}
