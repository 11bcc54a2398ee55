//go:build faults

package faults

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/sync/envelope"
	"github.com/glintdev/glint/sync/fleetsim"
	"github.com/glintdev/glint/sync/link"
	"github.com/glintdev/glint/sync/outbox"
	"github.com/glintdev/glint/sync/testsvc"
)

// Helper-process modes: the test binary re-executes itself as a device
// producer or as a hub, so that those can be killed with SIGKILL.
const helperEnv = "GLINT_FAULTS_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "device":
		os.Exit(deviceHelper())
	case "hub":
		os.Exit(hubHelper())
	}
	os.Exit(m.Run())
}

// deviceHelper runs the devices under GLINT_FAULTS_DIR with their links,
// producing results until killed, and prints "told DEVICE SEQ ID" after
// every durable Put.
func deviceHelper() int {
	dir, broker := os.Getenv("GLINT_FAULTS_DIR"), os.Getenv("GLINT_FAULTS_BROKER")
	hubPub, _ := hex.DecodeString(os.Getenv("GLINT_FAULTS_HUBKEY"))
	n, _ := strconv.Atoi(os.Getenv("GLINT_FAULTS_DEVICES"))
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	for i := 0; i < n; i++ {
		s, err := fleetsim.OpenDevice(dir, fmt.Sprintf("dev-%d", i))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		k := s.Key
		id := s.ID
		l, err := link.New(link.Config{Broker: broker, DeviceID: s.ID, Queue: s.Box, HubKey: hubPub, Username: s.ID,
			PasswordFunc: func() string { return link.AuthToken(k, id, time.Now()) }, RedeliverAfter: time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go l.Run(context.Background())
		go func() {
			for {
				e, err := s.Put()
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(w, "told %s %d %s\n", s.ID, e.Seq, e.RecordID)
				w.Flush()
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(4)) * time.Millisecond)
			}
		}()
	}
	select {}
}

// hubHelper runs glint-hub (SQLite) until killed and prints "ready".
func hubHelper() int {
	h, err := hub.New(context.Background(), hub.Config{StateDir: os.Getenv("GLINT_FAULTS_DIR"), Dialect: store.SQLite,
		DSN: os.Getenv("GLINT_FAULTS_DSN"), BrokerURL: os.Getenv("GLINT_FAULTS_BROKER"), ClientID: "faults-hub", BatchWait: 5 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	if err := h.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// told collects what kiosks were told: device/seq → record ID.
type told struct {
	mu sync.Mutex
	m  map[string]string
}

func newTold() *told { return &told{m: map[string]string{}} }

func (t *told) add(dev string, seq uint64, id string) {
	t.mu.Lock()
	t.m[fmt.Sprintf("%s/%d", dev, seq)] = id
	t.mu.Unlock()
}

// audit checks the store against what was told and prints the scenario
// line. Devices' public keys come from the registry.
func audit(t *testing.T, name string, trials int, st *store.Store, tl *told, dirs ...string) {
	t.Helper()
	ctx := context.Background()
	devs, err := st.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, d := range devs {
		keys[d.DeviceID] = d.PublicKey
	}
	rows := map[string]string{} // device/seq → id
	perID := map[string]int{}
	badSig := 0
	err = st.Envelopes(ctx, func(id, dev string, seq uint64, env []byte) error {
		rows[fmt.Sprintf("%s/%d", dev, seq)] = id
		perID[id]++
		r, err := envelope.OpenRecord(env, keys[dev])
		if err != nil || r.ID != id || r.Seq != seq {
			badSig++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dup := 0
	for _, n := range perID {
		if n > 1 {
			dup += n - 1
		}
	}
	stored, lost := 0, 0
	tl.mu.Lock()
	for k, id := range tl.m {
		if rows[k] == id {
			stored++
		} else {
			lost++
		}
	}
	n := len(tl.m)
	tl.mu.Unlock()
	fmt.Printf("faults: scenario=%s trials=%d told=%d stored=%d lost=%d duplicated=%d\n", name, trials, n, stored, lost, dup)
	if lost != 0 || dup != 0 || badSig != 0 || n == 0 {
		t.Errorf("scenario %s: lost=%d duplicated=%d bad signatures=%d told=%d", name, lost, dup, badSig, n)
	}
	for _, dir := range dirs {
		entries, _ := filepath.Glob(filepath.Join(dir, "*", "outbox.db"))
		for _, p := range entries {
			ob, err := outbox.Open(outbox.Config{Path: p})
			if err != nil {
				t.Fatal(err)
			}
			if d := ob.Stats().Depth; d != 0 {
				t.Errorf("scenario %s: outbox %s still holds %d", name, p, d)
			}
			ob.Close()
		}
	}
}

// registerDevices creates n device keys under dir and registers them.
func registerDevices(t *testing.T, st *store.Store, dir string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		s, err := fleetsim.OpenDevice(dir, fmt.Sprintf("dev-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.RegisterDevice(context.Background(), s.ID, "site", s.Key.Public()); err != nil {
			t.Fatal(err)
		}
		s.Box.Close()
	}
}

type storeRegistrar struct{ st *store.Store }

func (r storeRegistrar) Register(ctx context.Context, id, site string, k *device.Key) error {
	_, err := r.st.RegisterDevice(ctx, id, site, k.Public())
	return err
}

func startHub(t *testing.T, cfg hub.Config) *hub.Hub {
	t.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.Dialect == "" {
		cfg.Dialect, cfg.DSN = store.SQLite, filepath.Join(t.TempDir(), "hub.db")
	}
	if cfg.BrokerURL == "" {
		cfg.EmbeddedAddr = "127.0.0.1:0"
	}
	h, err := hub.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; h.Close() })
	return h
}

// drain runs the devices under dir (no new results) until their outboxes
// are empty.
func drain(t *testing.T, dir, broker string, n int, hubPub ed25519.PublicKey, auth string) {
	t.Helper()
	rep, err := fleetsim.Run(context.Background(), fleetsim.Config{Broker: broker, Devices: n, IDPrefix: "dev", Dir: dir,
		HubPublic: hubPub, Auth: auth, DrainTimeout: 60 * time.Second, RedeliverAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pending != 0 {
		t.Fatalf("drain: %d results still pending", rep.Pending)
	}
}

// TestKill9Publisher is scenario (a).
func TestKill9Publisher(t *testing.T) {
	const trials, devices = 50, 2
	h := startHub(t, hub.Config{})
	dir := t.TempDir()
	registerDevices(t, h.Store(), dir, devices)
	tl := newTold()
	for trial := 0; trial < trials; trial++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=device", "GLINT_FAULTS_DIR="+dir, "GLINT_FAULTS_BROKER="+h.BrokerURL(),
			"GLINT_FAULTS_HUBKEY="+hex.EncodeToString(h.Key().Public()), "GLINT_FAULTS_DEVICES="+strconv.Itoa(devices))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		read := make(chan struct{})
		go func() {
			defer close(read)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) == 4 && f[0] == "told" {
					seq, _ := strconv.ParseUint(f[2], 10, 64)
					tl.add(f[1], seq, f[3])
				}
			}
		}()
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		<-read
		cmd.Wait()
		if s := strings.TrimSpace(stderr.String()); s != "" && !strings.Contains(s, "signal: killed") {
			t.Fatalf("trial %d: device helper: %s", trial, s)
		}
	}
	drain(t, dir, h.BrokerURL(), devices, h.Key().Public(), "token")
	audit(t, "kill9-publisher", trials, h.Store(), tl, dir)
}

// mosquitto is a private broker the test can kill and restart.
type mosquitto struct {
	t    *testing.T
	conf string
	port int

	mu  sync.Mutex // guards cmd: the test kills and restarts from a goroutine
	cmd *exec.Cmd
}

func startMosquitto(t *testing.T) *mosquitto {
	t.Helper()
	bin := testsvc.RequireBinary(t, "mosquitto")
	port := testsvc.FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n", port)), 0o600)
	m := &mosquitto{t: t, conf: conf, port: port}
	m.start(bin)
	t.Cleanup(m.kill)
	return m
}

func (m *mosquitto) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.port) }

// start runs the broker and waits until it listens; safe from any
// goroutine (errors are reported with t.Error).
func (m *mosquitto) start(bin string) {
	m.mu.Lock()
	m.cmd = exec.Command(bin, "-c", m.conf)
	err := m.cmd.Start()
	m.mu.Unlock()
	if err != nil {
		m.t.Error(err)
		return
	}
	addr := fmt.Sprintf("127.0.0.1:%d", m.port)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
	}
	m.t.Errorf("mosquitto did not listen on %s", addr)
}

func (m *mosquitto) kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Signal(syscall.SIGKILL)
		m.cmd.Wait()
		m.cmd = nil
	}
}

// TestBrokerRestart is scenario (b): the broker is killed and restarted
// twice while devices produce.
func TestBrokerRestart(t *testing.T) {
	const restarts, devices = 2, 5
	mq := startMosquitto(t)
	bin, _ := exec.LookPath("mosquitto")
	if bin == "" {
		bin = "/usr/sbin/mosquitto"
	}
	h := startHub(t, hub.Config{BrokerURL: mq.url(), ClientID: "faults-hub-b"})
	dir := t.TempDir()
	tl := newTold()
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		for i := 0; i < restarts; i++ {
			time.Sleep(1500 * time.Millisecond)
			mq.kill()
			time.Sleep(500 * time.Millisecond)
			mq.start(bin)
		}
	}()
	rep, err := fleetsim.Run(context.Background(), fleetsim.Config{Broker: mq.url(), Devices: devices, IDPrefix: "dev", Dir: dir,
		Rate: 200, Duration: 5 * time.Second, HubKey: h.Key(), Register: storeRegistrar{h.Store()}, Auth: "none",
		RedeliverAfter: time.Second, DrainTimeout: 60 * time.Second,
		OnTold: func(dev string, e outbox.Entry) { tl.add(dev, e.Seq, e.RecordID) }})
	<-restarted
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	audit(t, "broker-restart", restarts, h.Store(), tl, dir)
}

// TestKill9Hub is scenario (c): the hub process is killed with SIGKILL at
// random points mid-stream and restarted, five times.
func TestKill9Hub(t *testing.T) {
	const trials, devices = 5, 5
	mq := startMosquitto(t)
	hubDir := t.TempDir()
	dsn := filepath.Join(hubDir, "hub.db")
	hubKey, err := device.LoadOrCreateKey(filepath.Join(hubDir, hub.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.SQLite, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var hubCmd *exec.Cmd
	startHubProc := func() {
		hubCmd = exec.Command(os.Args[0], "-test.run=^$")
		hubCmd.Env = append(os.Environ(), helperEnv+"=hub", "GLINT_FAULTS_DIR="+hubDir, "GLINT_FAULTS_DSN="+dsn, "GLINT_FAULTS_BROKER="+mq.url())
		out, _ := hubCmd.StdoutPipe()
		hubCmd.Stderr = os.Stderr
		// Called from the killer goroutine too: t.Error, not t.Fatal.
		if err := hubCmd.Start(); err != nil {
			t.Error(err)
			return
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "ready" {
			t.Error("hub helper did not start")
			return
		}
		go func() {
			for sc.Scan() {
			}
		}()
	}
	killHub := func() {
		hubCmd.Process.Signal(syscall.SIGKILL)
		hubCmd.Wait()
	}
	startHubProc()
	defer func() { killHub() }()
	dir := t.TempDir()
	tl := newTold()
	stopKiller := make(chan struct{})
	killed := make(chan int)
	go func() {
		n := 0
		defer func() { killed <- n }()
		for n < trials {
			select {
			case <-stopKiller:
				return
			case <-time.After(time.Duration(400+rand.IntN(800)) * time.Millisecond):
			}
			killHub()
			n++
			time.Sleep(200 * time.Millisecond)
			startHubProc()
		}
	}()
	rep, err := fleetsim.Run(context.Background(), fleetsim.Config{Broker: mq.url(), Devices: devices, IDPrefix: "dev", Dir: dir,
		Rate: 300, Duration: 6 * time.Second, HubKey: hubKey, Register: storeRegistrar{st}, Auth: "none",
		RedeliverAfter: time.Second, DrainTimeout: 60 * time.Second,
		OnTold: func(dev string, e outbox.Entry) { tl.add(dev, e.Seq, e.RecordID) }})
	close(stopKiller)
	n := <-killed
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if rep.Pending != 0 {
		// The last restart may have come late: drain once more.
		drain(t, dir, mq.url(), devices, hubKey.Public(), "none")
	}
	audit(t, "kill9-hub", n, st, tl, dir)
}

// TestOffline10k is scenario (d): 10 devices accumulate 1,000 results each
// while offline, then connect.
func TestOffline10k(t *testing.T) {
	const devices, each = 10, 1000
	h := startHub(t, hub.Config{})
	dir := t.TempDir()
	tl := newTold()
	rep, err := fleetsim.Run(context.Background(), fleetsim.Config{Broker: h.BrokerURL(), Devices: devices, IDPrefix: "dev", Dir: dir,
		Preload: each, HubKey: h.Key(), Register: storeRegistrar{h.Store()}, Auth: "token", DrainTimeout: 120 * time.Second,
		OnTold: func(dev string, e outbox.Entry) { tl.add(dev, e.Seq, e.RecordID) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	fmt.Printf("faults: offline-10k drained %d results in %s (%.0f/s)\n", devices*each, rep.Drain.Round(time.Millisecond), float64(devices*each)/rep.Elapsed.Seconds())
	audit(t, "offline-10k", 1, h.Store(), tl, dir)
}
