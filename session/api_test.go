package session

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glintdev/glint/capture"
)

type fakeCamera struct {
	mu sync.Mutex
	st capture.Status
}

func (c *fakeCamera) Status() capture.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

var streaming = capture.Status{
	State:          capture.StateStreaming,
	Format:         capture.Format{PixelFormat: capture.FormatMJPEG, Width: 640, Height: 480, FPS: 25},
	FramesCaptured: 120, FramesDropped: 3, SeqGaps: 1, ConsumerDrops: 2, Reconnects: 1, FPS: 24.9,
}

var retrying = capture.Status{
	State: capture.StateRetrying, LastError: "open camera: camera device not found",
	RetryIn: 2 * time.Second, Attempt: 3, Reconnects: 2,
}

func newTestAPI(t *testing.T, cfg APIConfig) *API {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	if cfg.Version == "" {
		cfg.Version = "test"
	}
	a, err := NewAPI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestHealthz(t *testing.T) {
	tests := []struct {
		name       string
		st         capture.Status
		wantCode   int
		wantStatus string
	}{
		{"streaming", streaming, http.StatusOK, "ok"},
		{"retrying", retrying, http.StatusServiceUnavailable, "degraded"},
		{"starting", capture.Status{State: capture.StateStarting}, http.StatusServiceUnavailable, "degraded"},
		{"stopped", capture.Status{State: capture.StateStopped}, http.StatusServiceUnavailable, "degraded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam := &fakeCamera{st: tt.st}
			a := newTestAPI(t, APIConfig{SocketPath: "unused", Camera: cam})
			rec := httptest.NewRecorder()
			a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
			if rec.Code != tt.wantCode {
				t.Errorf("code %d, want %d", rec.Code, tt.wantCode)
			}
			var h Health
			if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if h.Status != tt.wantStatus || h.Camera.State != string(tt.st.State) || h.Version != "test" {
				t.Errorf("health %+v", h)
			}
			if tt.st.State == capture.StateRetrying && (h.Camera.LastError == "" || h.Camera.RetryInSeconds <= 0 || h.Camera.Attempt != 3) {
				t.Errorf("retry not visible: %+v", h.Camera)
			}
			if tt.st.State == capture.StateStreaming && (h.Camera.PixelFormat != "MJPG" || h.Camera.Width != 640 || h.Camera.FramesCaptured != 120) {
				t.Errorf("camera %+v", h.Camera)
			}
		})
	}
}

func TestHealthzMethod(t *testing.T) {
	a := newTestAPI(t, APIConfig{SocketPath: "unused", Camera: &fakeCamera{st: streaming}})
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/healthz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d", rec.Code)
	}
}

func TestMetrics(t *testing.T) {
	a := newTestAPI(t, APIConfig{SocketPath: "unused", Camera: &fakeCamera{st: streaming}, Version: "v9"})
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"glint_frames_captured_total 120",
		`glint_frames_dropped_total{reason="sequence_gap"} 1`,
		`glint_frames_dropped_total{reason="consumer_slow"} 2`,
		"glint_camera_reconnects_total 1",
		"glint_camera_fps 24.9",
		"glint_camera_up 1",
		`glint_build_info{version="v9"} 1`,
		"go_goroutines ",
		"process_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Two APIs in one process: each has its own registry.
	newTestAPI(t, APIConfig{SocketPath: "unused", Camera: &fakeCamera{}})
}

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func shutdown(t *testing.T, a *API) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "glintd.sock")
	// A stale socket, as a crashed daemon leaves it.
	if err := os.MkdirAll(filepath.Dir(sock), 0o750); err != nil {
		t.Fatal(err)
	}
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	a := newTestAPI(t, APIConfig{SocketPath: sock, Camera: &fakeCamera{st: streaming}})
	if err := a.Start(); err != nil {
		t.Fatalf("Start over a stale socket: %v", err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, want socket 0660", fi.Mode())
	}
	resp, err := unixClient(sock).Get("http://glintd/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz over the socket: %d", resp.StatusCode)
	}

	// A second daemon must not steal a live socket.
	b := newTestAPI(t, APIConfig{SocketPath: sock, Camera: &fakeCamera{}})
	if err := b.Start(); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Start = %v, want in use", err)
	}
	shutdown(t, a)
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after Shutdown: %v", err)
	}
}

func TestUnixSocketNotASocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newTestAPI(t, APIConfig{SocketPath: path, Camera: &fakeCamera{}})
	if err := a.Start(); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Start = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Error("regular file clobbered")
	}
}

func TestTCPBearerToken(t *testing.T) {
	a := newTestAPI(t, APIConfig{TCPAddr: "127.0.0.1:0", Token: "s3cret", Camera: &fakeCamera{st: retrying}})
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, a)
	url := "http://" + a.TCPAddr().String() + "/healthz"
	for _, tt := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"s3cret", http.StatusUnauthorized},
		{"Bearer s3cret", http.StatusServiceUnavailable}, // authorized; camera down
	} {
		req, _ := http.NewRequest("GET", url, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("Authorization %q: %d, want %d", tt.auth, resp.StatusCode, tt.want)
		}
	}
}

func TestNewAPIRejects(t *testing.T) {
	cam := &fakeCamera{}
	for name, cfg := range map[string]APIConfig{
		"no camera":      {SocketPath: "x"},
		"no listener":    {Camera: cam},
		"tcp no token":   {Camera: cam, TCPAddr: "127.0.0.1:1"},
		"tcp not local":  {Camera: cam, TCPAddr: "0.0.0.0:1", Token: "t"},
		"tcp no port":    {Camera: cam, TCPAddr: "127.0.0.1", Token: "t"},
		"tcp public ip6": {Camera: cam, TCPAddr: "[2001:db8::1]:80", Token: "t"},
	} {
		if _, err := NewAPI(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8787": true, "[::1]:8787": true, "localhost:1": true, "127.1.2.3:1": true,
		":8787": false, "0.0.0.0:1": false, "192.168.1.2:1": false, "example.com:1": false, "127.0.0.1": false,
	} {
		if err := CheckLoopback(addr); (err == nil) != ok {
			t.Errorf("CheckLoopback(%q) = %v", addr, err)
		}
	}
}
