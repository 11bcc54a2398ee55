package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/glintdev/glint/session"
)

// glintdBin is the binary built once by TestMain for the end-to-end tests.
var glintdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "glintd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	glintdBin = filepath.Join(dir, "glintd")
	build := exec.Command("go", "build", "-o", glintdBin,
		"-ldflags", "-X github.com/glintdev/glint/internal/buildinfo.Version=e2e-test", ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build glintd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// writeJPEGs writes n small JPEG frames, each a different grey, to dir.
func writeJPEGs(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		for y := range 48 {
			for x := range 64 {
				img.Set(x, y, color.RGBA{uint8(40 * i), uint8(x * 4), uint8(y * 5), 255})
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("frame%03d.jpg", i)), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// notifySocket listens where systemd would and collects the daemon's
// sd_notify datagrams.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
	conn *net.UnixConn
}

func listenNotify(t *testing.T, dir string) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(dir, "notify.sock")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n.conn = c
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// wait returns the first message containing want, or fails after timeout.
func (n *notifySocket) wait(t *testing.T, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n.mu.Lock()
		for _, m := range n.msgs {
			if strings.Contains(m, want) {
				n.mu.Unlock()
				return m
			}
		}
		all := append([]string(nil), n.msgs...)
		n.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %q notification within %s; got %q", want, timeout, all)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// daemon is a running glintd.
type daemon struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cleanEnv is the test's environment without anything that would change
// glintd's behaviour: systemd markers and GLINT_ overrides.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if strings.HasPrefix(k, "GLINT_") || k == "NOTIFY_SOCKET" || k == "JOURNAL_STREAM" ||
			k == "INVOCATION_ID" || strings.HasPrefix(k, "WATCHDOG_") || k == "CREDENTIALS_DIRECTORY" {
			continue
		}
		env = append(env, e)
	}
	return append(env, extra...)
}

func startDaemon(t *testing.T, cfgPath string, env ...string) *daemon {
	t.Helper()
	d := &daemon{stderr: &lockedBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(glintdBin, "--config", cfgPath)
	d.cmd.Env = cleanEnv(env...)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("glintd stderr:\n%s", d.stderr)
		}
	})
	return d
}

// stop sends SIGTERM and returns the exit code and how long the stop took.
func (d *daemon) stop(t *testing.T) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("glintd did not exit within 10 s of SIGTERM")
	}
	return d.cmd.ProcessState.ExitCode(), time.Since(start)
}

func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

func getHealth(t *testing.T, c *http.Client) (int, session.Health) {
	t.Helper()
	resp, err := c.Get("http://glintd/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	var h session.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("healthz body: %v", err)
	}
	return resp.StatusCode, h
}

func scrape(t *testing.T, c *http.Client) map[string]float64 {
	t.Helper()
	resp, err := c.Get("http://glintd/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestEndToEndFileSource(t *testing.T) {
	dir := t.TempDir()
	frames := filepath.Join(dir, "frames")
	writeJPEGs(t, frames, 4)
	sock := filepath.Join(dir, "run", "glintd.sock")
	cfg := filepath.Join(dir, "glintd.yaml")
	writeFile(t, cfg, fmt.Sprintf(`log:
  level: debug
  format: auto
api:
  socket: %s
camera:
  source: file
  file:
    path: %s
    fps: 50
    loop: true
supervisor:
  reconnect_min: 100ms
  reconnect_max: 1s
state_dir: %s
`, sock, frames, filepath.Join(dir, "state")))
	notify := listenNotify(t, dir)
	// INVOCATION_ID marks a systemd service: logs switch to JSON.
	d := startDaemon(t, cfg, "NOTIFY_SOCKET="+notify.path, "WATCHDOG_USEC=200000", "INVOCATION_ID=e2e")

	ready := notify.wait(t, "READY=1", 10*time.Second)
	if !strings.Contains(ready, "STATUS=camera") {
		t.Errorf("READY without a camera status: %q", ready)
	}
	notify.wait(t, "STATUS=camera streaming MJPG 64x48 @ 50 fps", 5*time.Second)
	notify.wait(t, "WATCHDOG=1", 5*time.Second)

	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket: %v %v", fi, err)
	}
	c := unixClient(sock)
	code, h := getHealth(t, c)
	if code != http.StatusOK || h.Status != "ok" || h.Camera.State != "streaming" || h.Version != "e2e-test" {
		t.Errorf("healthz %d %+v", code, h)
	}
	if h.Camera.PixelFormat != "MJPG" || h.Camera.Width != 64 || h.Camera.Height != 48 {
		t.Errorf("camera %+v", h.Camera)
	}
	// The guard ran before READY; whatever this machine raises, healthz
	// carries it and the metrics export it.
	if h.Guard == nil || h.Guard.CheckedAt.IsZero() {
		t.Errorf("healthz without the guard summary: %+v", h.Guard)
	}
	// The sync agent created the device key (0600) and the outbox in the
	// state directory; with no broker configured it queues offline.
	sy, _ := h.Components["sync"].(map[string]any)
	if sy == nil || sy["key_id"] == "" || sy["enabled"] != false {
		t.Errorf("healthz sync section: %v", h.Components["sync"])
	}
	eventually(t, "frames captured", func() bool { return scrape(t, c)["glint_frames_captured_total"] > 5 })
	m := scrape(t, c)
	for _, name := range []string{"glint_guard_risk", "glint_guard_checks_total", "glint_camera_fps", "glint_camera_reconnects_total", `glint_frames_dropped_total{reason="sequence_gap"}`, "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := m[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	if m["glint_camera_up"] != 1 {
		t.Errorf("glint_camera_up = %v", m["glint_camera_up"])
	}

	exit, took := d.stop(t)
	notify.wait(t, "STOPPING=1", time.Second)
	if exit != 0 {
		t.Errorf("exit code %d, want 0", exit)
	}
	if took > 5*time.Second {
		t.Errorf("stop took %s, want < 5 s", took)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	logs := d.stderr.String()
	for _, want := range []string{`"msg":"glintd ready"`, `"msg":"glintd stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

func TestMissingV4L2DeviceKeepsDaemonUp(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "glintd.sock")
	cfg := filepath.Join(dir, "glintd.yaml")
	writeFile(t, cfg, fmt.Sprintf(`api:
  socket: %s
camera:
  source: v4l2
  device: /dev/video-does-not-exist
supervisor:
  reconnect_min: 50ms
  reconnect_max: 200ms
state_dir: %s
`, sock, filepath.Join(dir, "state")))
	notify := listenNotify(t, dir)
	d := startDaemon(t, cfg, "NOTIFY_SOCKET="+notify.path)
	notify.wait(t, "READY=1", 10*time.Second)
	notify.wait(t, "STATUS=camera unavailable, retrying in", 5*time.Second)

	c := unixClient(sock)
	var h session.Health
	eventually(t, "two reconnect attempts", func() bool {
		var code int
		code, h = getHealth(t, c)
		if code != http.StatusServiceUnavailable {
			t.Fatalf("healthz %d with no camera, want 503", code)
		}
		return h.Camera.Reconnects >= 2
	})
	if h.Status != "degraded" || !strings.Contains(h.Camera.LastError, "not found") {
		t.Errorf("health %+v", h)
	}
	if m := scrape(t, c); m["glint_camera_reconnects_total"] < 2 || m["glint_camera_up"] != 0 {
		t.Errorf("metrics reconnects=%v up=%v", m["glint_camera_reconnects_total"], m["glint_camera_up"])
	}
	if exit, _ := d.stop(t); exit != 0 {
		t.Errorf("exit code %d, want 0", exit)
	}
	// Text logs outside systemd.
	if logs := d.stderr.String(); !strings.Contains(logs, "level=WARN msg=\"camera failed, retrying\"") {
		t.Errorf("logs:\n%s", logs)
	}
}

func runGlintd(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(glintdBin, args...)
	cmd.Env = cleanEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		env     []string
		code    int
		want    string // in stderr (errors) or stdout (OK); %s is the file
	}{
		{"valid", "camera:\n  device: /dev/video2\n", nil, 0, "%s: OK"},
		{"unknown key", "log:\n  level: info\n\napi:\n  socket: /run/x.sock\ncamera:\n  devce: /dev/video0\n", nil, 2,
			`%s:7: unknown key "camera.devce"`},
		{"out of range", "camera:\n  source: v4l2\n  fps: 1000\n", nil, 2, "%s:3: camera.fps: 1000 is above the maximum 240"},
		{"bad enum", "log:\n  format: xml\n", nil, 2, `%s:2: log.format: "xml" is not one of auto, json, text`},
		{"backoff order", "supervisor:\n  reconnect_min: 10s\n  reconnect_max: 1s\n", nil, 2, "%s:3: supervisor.reconnect_max: 1s is below supervisor.reconnect_min (10s)"},
		{"file source needs path", "camera:\n  source: file\n", nil, 2, "%s:1: camera.file.path: must be set for the file source"},
		{"tcp not loopback", "api:\n  tcp: 0.0.0.0:80\n  token_file: /x\n", nil, 2, "%s:2: api.tcp: tcp address \"0.0.0.0:80\" is not a loopback address"},
		{"tcp token unreadable", "api:\n  tcp: 127.0.0.1:8787\n  token_file: /does/not/exist\n", nil, 2, "api.token_file: open /does/not/exist"},
		{"env override", "", []string{"GLINT_CAMERA_WIDTH=99999"}, 2, "environment GLINT_CAMERA_WIDTH: camera.width: 99999 is above the maximum 8192"},
		{"env typed", "", []string{"GLINT_SUPERVISOR_RECONNECT_MAX=forever"}, 2, `environment GLINT_SUPERVISOR_RECONNECT_MAX: supervisor.reconnect_max: invalid duration "forever"`},
		{"guard policy", "guard:\n  severity:\n    VIRTUAL_MACHINE: none\n    CAMERA_NOT_USB: warn\n", nil, 0, "%s: OK"},
		{"guard unknown signal", "guard:\n  interval: 1m\n  severity:\n    NO_SUCH: warn\n", nil, 2, `%s:3: guard.severity: unknown signal code "NO_SUCH"`},
		{"guard bad severity", "guard:\n  severity:\n    VIRTUAL_MACHINE: severe\n", nil, 2, `guard.severity: VIRTUAL_MACHINE: unknown severity "severe"`},
		{"guard policy from env", "", []string{"GLINT_GUARD_SEVERITY=VIRTUAL_MACHINE=none,TRACED=info"}, 2, `unknown signal code "TRACED"`},
		{"gpio pulse range", "gpio:\n  relay: GPIO17\n  relay_pulse: 5m\n", nil, 2, "%s:3: gpio.relay_pulse: 5m0s is above the maximum 1m0s"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("c%d.yaml", i))
			writeFile(t, path, tt.content)
			code, stdout, stderr := runGlintd(t, tt.env, "config", "check", path)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tt.code, stdout, stderr)
			}
			want := strings.ReplaceAll(tt.want, "%s", path)
			if !strings.Contains(stdout+stderr, want) {
				t.Errorf("output lacks %q:\nstdout %q\nstderr %q", want, stdout, stderr)
			}
		})
	}
	if code, _, stderr := runGlintd(t, nil, "config", "check", filepath.Join(dir, "missing.yaml")); code != 2 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, stderr)
	}
	// gpio safe: nothing to do without a relay; a relay pin this machine
	// lacks is a failure (exit 1), not a silent success.
	noRelay := filepath.Join(dir, "norelay.yaml")
	writeFile(t, noRelay, "camera:\n  device: /dev/video0\n")
	if code, _, stderr := runGlintd(t, nil, "gpio", "safe", "--config", noRelay); code != 0 {
		t.Errorf("gpio safe without a relay: exit %d, %q", code, stderr)
	}
	relay := filepath.Join(dir, "relay.yaml")
	writeFile(t, relay, "gpio:\n  relay: GLINT_NO_SUCH_PIN\n")
	if code, _, stderr := runGlintd(t, nil, "gpio", "safe", "--config", relay); code != 1 || !strings.Contains(stderr, "GLINT_NO_SUCH_PIN") {
		t.Errorf("gpio safe with a missing relay pin: exit %d, %q", code, stderr)
	}
	// Running with a bad config also exits 2, before starting anything.
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "camera:\n  devce: x\n")
	if code, _, stderr := runGlintd(t, nil, "--config", bad); code != 2 || !strings.Contains(stderr, `unknown key "camera.devce"`) {
		t.Errorf("run with a bad config: exit %d, %q", code, stderr)
	}
}

func TestCommands(t *testing.T) {
	if code, out, _ := runGlintd(t, nil, "version"); code != 0 || !regexp.MustCompile(`^glintd e2e-test \(go[0-9.]+`).MatchString(out) {
		t.Errorf("version: %d %q", code, out)
	}
	if code, out, _ := runGlintd(t, nil, "config", "defaults"); code != 0 || !strings.Contains(out, "reconnect_min: 500ms") {
		t.Errorf("config defaults: %d %q", code, out)
	}
	if code, out, _ := runGlintd(t, nil, "config", "defaults", "--markdown"); code != 0 || !strings.Contains(out, "| `camera.fps` | `25` |") {
		t.Errorf("config defaults --markdown: %d %q", code, out)
	}
	for _, args := range [][]string{{"frobnicate"}, {"config"}, {"config", "frob"}, {"--no-such-flag"}} {
		if code, _, _ := runGlintd(t, nil, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// TestCameraAppearsLater: glintd starts without its images, stays up and
// degraded, and streams once they appear, without a restart.
func TestCameraAppearsLater(t *testing.T) {
	dir := t.TempDir()
	frames := filepath.Join(dir, "frames")
	sock := filepath.Join(dir, "glintd.sock")
	cfg := filepath.Join(dir, "glintd.yaml")
	writeFile(t, cfg, fmt.Sprintf(`api:
  socket: %s
camera:
  source: file
  file:
    path: %s
supervisor:
  reconnect_min: 50ms
  reconnect_max: 200ms
state_dir: %s
`, sock, frames, filepath.Join(dir, "state")))
	notify := listenNotify(t, dir)
	d := startDaemon(t, cfg, "NOTIFY_SOCKET="+notify.path)
	notify.wait(t, "READY=1", 10*time.Second)
	c := unixClient(sock)
	if code, h := getHealth(t, c); code != http.StatusServiceUnavailable {
		t.Errorf("healthz before the images exist: %d %+v", code, h)
	}
	writeJPEGs(t, frames, 2)
	notify.wait(t, "STATUS=camera streaming", 5*time.Second)
	eventually(t, "healthz 200", func() bool { code, _ := getHealth(t, c); return code == http.StatusOK })
	if exit, _ := d.stop(t); exit != 0 {
		t.Errorf("exit code %d", exit)
	}
}

// TestRefusesKeyReadableByOthers: a device key that group or others can
// read may have leaked; glintd must not sign anything with it.
func TestRefusesKeyReadableByOthers(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	frames := filepath.Join(dir, "frames")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(state, "device.key"), "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
	if err := os.Chmod(filepath.Join(state, "device.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "glintd.yaml")
	writeFile(t, cfg, fmt.Sprintf("api:\n  socket: %s\ncamera:\n  source: file\n  file:\n    path: %s\nstate_dir: %s\n",
		filepath.Join(dir, "glintd.sock"), frames, state))
	code, _, stderr := runGlintd(t, nil, "--config", cfg)
	if code != 1 || !strings.Contains(stderr, "accessible by group or others") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
