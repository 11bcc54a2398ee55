package service

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// listenNotify binds a unixgram socket and points NOTIFY_SOCKET at it, the
// way systemd does for a Type=notify unit.
func listenNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotifier(t *testing.T) {
	c := listenNotify(t)
	n := NewNotifier(slog.New(slog.DiscardHandler))
	n.Ready("camera starting")
	if got := recv(t, c); got != "READY=1\nSTATUS=camera starting" {
		t.Errorf("ready: %q", got)
	}
	n.Status("camera starting") // unchanged: not sent
	n.Status("camera streaming")
	if got := recv(t, c); got != "STATUS=camera streaming" {
		t.Errorf("status: %q", got)
	}
	n.Stopping()
	if got := recv(t, c); !strings.HasPrefix(got, "STOPPING=1") {
		t.Errorf("stopping: %q", got)
	}
}

func TestWatchdog(t *testing.T) {
	c := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "100000") // 100 ms: pings every 50 ms
	t.Setenv("WATCHDOG_PID", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		NewNotifier(slog.New(slog.DiscardHandler)).RunWatchdog(ctx)
		close(done)
	}()
	for range 3 {
		if got := recv(t, c); got != "WATCHDOG=1" {
			t.Errorf("watchdog: %q", got)
		}
	}
	cancel()
	<-done
}

func TestNoopOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	n := NewNotifier(slog.New(slog.DiscardHandler))
	n.Ready("x")
	n.Status("y")
	n.Stopping()
	done := make(chan struct{})
	go func() { n.RunWatchdog(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunWatchdog without a watchdog did not return")
	}
}

func TestSignalContext(t *testing.T) {
	ctx, stop := SignalContext(context.Background())
	defer stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not cancel the context")
	}
}
