package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glintdev/glint/capture"
)

// stuckSource never finishes opening, ignoring both ctx and Close, like a
// driver wedged in an ioctl.
type stuckSource struct{ release chan struct{} }

func (s *stuckSource) Open(context.Context) (capture.Format, error) {
	<-s.release
	return capture.Format{}, errors.New("released")
}
func (s *stuckSource) ReadFrame(context.Context) (*capture.Frame, error) {
	return nil, capture.ErrClosed
}
func (s *stuckSource) Close() error { return nil }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestShutdownDeadline(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.API.Socket = filepath.Join(dir, "glintd.sock")
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Service.ShutdownTimeout = 300 * time.Millisecond
	src := &stuckSource{release: make(chan struct{})}
	defer close(src.release)

	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runWith(ctx, cfg, src, slog.New(slog.NewTextHandler(&logs, nil))) }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "glintd ready") {
		if time.Now().After(deadline) {
			t.Fatalf("not ready:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, errShutdownDeadline) {
			t.Errorf("runWith = %v, want the shutdown deadline error", err)
		}
		if took := time.Since(start); took < 250*time.Millisecond || took > 3*time.Second {
			t.Errorf("gave up after %s, want about 300ms", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("runWith ignored its shutdown deadline")
	}
}
