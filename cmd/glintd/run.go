package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/internal/buildinfo"
	"github.com/glintdev/glint/internal/service"
	"github.com/glintdev/glint/session"
	"github.com/glintdev/glint/sim"
	"github.com/glintdev/glint/sync/agent"
	"github.com/glintdev/glint/sync/outbox"
)

// newLogger logs JSON when asked to or when systemd's journal reads stderr,
// text otherwise.
func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		level = slog.LevelInfo // validated already; keep a sane fallback
	}
	opts := &slog.HandlerOptions{Level: level}
	jsonOut := cfg.Format == "json" || cfg.Format == "auto" && service.UnderSystemd()
	if jsonOut {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// newSource builds the configured camera source. A missing camera is not
// an error here: the supervisor keeps retrying it, for the file source too
// (its images are loaded at the first successful Open).
func newSource(c CameraConfig) (capture.Source, error) {
	switch c.Source {
	case "file":
		return &lazySource{create: func() (capture.Source, error) {
			// The file source's errors already name it and its path.
			return capture.NewFileSource(capture.FileSourceConfig{Path: c.File.Path, FPS: c.File.FPS, Loop: c.File.Loop})
		}}, nil
	case "sim":
		return newSimRig(c)
	case "v4l2":
		return capture.NewV4L2Source(capture.V4L2Config{
			Device:       c.Device,
			BusInfo:      c.BusInfo,
			Serial:       c.Serial,
			Width:        c.Width,
			Height:       c.Height,
			FPS:          c.FPS,
			Formats:      c.PixelFormats(),
			Buffers:      c.Buffers,
			FrameTimeout: c.FrameTimeout,
		}), nil
	}
	return nil, fmt.Errorf("camera.source %q unknown", c.Source)
}

// lazySource creates its Source at the first Open that succeeds, so that a
// source whose constructor fails (images not there yet) is retried by the
// supervisor like a missing camera instead of stopping the daemon.
type lazySource struct {
	create func() (capture.Source, error)

	mu  sync.Mutex // guards src: Close may come from another goroutine
	src capture.Source
}

func (l *lazySource) get() capture.Source {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.src
}

func (l *lazySource) Open(ctx context.Context) (capture.Format, error) {
	src := l.get()
	if src == nil {
		var err error
		if src, err = l.create(); err != nil {
			return capture.Format{}, err
		}
		l.mu.Lock()
		l.src = src
		l.mu.Unlock()
	}
	return src.Open(ctx)
}

func (l *lazySource) ReadFrame(ctx context.Context) (*capture.Frame, error) {
	src := l.get()
	if src == nil {
		return nil, capture.ErrClosed
	}
	return src.ReadFrame(ctx)
}

func (l *lazySource) Close() error {
	if src := l.get(); src != nil {
		return src.Close()
	}
	return nil
}

// newGuard builds the device guard from the configuration: the camera in
// use (V4L2 only: a file source has no device to judge), the release
// manifest, the pinned camera and the tamper latch.
func newGuard(cfg Config, src capture.Source, gate *device.GPIO) (*device.Guard, error) {
	gc := device.GuardConfig{MaxClockSkew: cfg.Guard.MaxClockSkew, Severity: cfg.Guard.severityPolicy()}
	if v, ok := src.(*capture.V4L2Source); ok {
		gc.Camera = func() (capture.DeviceInfo, error) { return v.Device(), nil }
	}
	if p := cfg.Guard.PinnedCamera; p != (PinnedCamera{}) {
		gc.PinnedCamera = &device.CameraIdentity{VendorID: p.VendorID, ProductID: p.ProductID, Serial: p.Serial}
	}
	if cfg.Guard.Manifest != "" {
		m, err := device.LoadManifest(cfg.Guard.Manifest)
		if err != nil {
			return nil, err
		}
		gc.ExecutableSHA256, gc.Models = m.ExecutableSHA256, m.Models
	}
	if gate != nil && cfg.GPIO.Tamper != "" {
		gc.Tamper = func() bool { t, _ := gate.Tampered(); return t }
	}
	return device.NewGuard(gc)
}

// SyncHealth is the "sync" section of /healthz.
type SyncHealth struct {
	// KeyID is the device key's ID (the COSE kid of every result).
	KeyID string `json:"key_id"`
	// Enabled is false when no broker is configured: results are signed
	// and queued, not sent.
	Enabled    bool         `json:"enabled"`
	Connected  bool         `json:"connected"`
	Since      time.Time    `json:"since,omitzero"`
	LastError  string       `json:"last_error,omitempty"`
	Outbox     outbox.Stats `json:"outbox"`
	Published  uint64       `json:"published"`
	Receipts   uint64       `json:"receipts"`
	Reconnects uint64       `json:"reconnects"`
}

func syncHealth(a *agent.Agent, enabled bool) SyncHealth {
	st := a.Status()
	return SyncHealth{
		KeyID: a.Key().ID, Enabled: enabled, Connected: st.Connected, Since: st.Since, LastError: st.LastError,
		Outbox: a.Outbox().Stats(), Published: st.Published, Receipts: st.Receipts, Reconnects: st.Reconnects,
	}
}

// errShutdownDeadline: the clean stop took longer than allowed.
var errShutdownDeadline = errors.New("shutdown deadline exceeded")

// runDaemon wires the components, reports readiness, and on ctx's end stops
// them in order (API, then camera) within cfg.Service.ShutdownTimeout.
// Signals arriving during shutdown are absorbed: the deadline bounds it.
func runDaemon(ctx context.Context, cfg Config, log *slog.Logger) error {
	src, err := newSource(cfg.Camera)
	if err != nil {
		return err
	}
	return runWith(ctx, cfg, src, log)
}

// runWith is runDaemon with the camera source given, for tests.
func runWith(ctx context.Context, cfg Config, src capture.Source, log *slog.Logger) error {
	log.Info("glintd starting", "version", buildinfo.Version, "camera", cfg.Camera.Source, "pid", os.Getpid())
	notify := service.NewNotifier(log)

	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	token := ""
	if cfg.API.TCP != "" {
		var err error
		if token, err = readToken(cfg.API.TokenFile); err != nil {
			return err
		}
	}
	// Frames reach a session through the feed, only while one listens. A
	// second of frames of slack: a session whose per-frame analysis falls
	// behind for a moment (a loaded CPU) catches up instead of losing
	// challenge frames.
	feed := session.NewFeed(32)
	sup, err := capture.NewSupervisor(capture.SupervisorConfig{
		Source:     src,
		Sink:       feed,
		MinBackoff: cfg.Supervisor.ReconnectMin,
		MaxBackoff: cfg.Supervisor.ReconnectMax,
		Logger:     log.With("component", "camera"),
		OnChange: func(st capture.Status) {
			notify.Status(st.Summary())
			feed.CameraChanged(st)
		},
	})
	if err != nil {
		return err
	}
	var gate *device.GPIO
	if cfg.GPIO.enabled() {
		lookup, err := device.HostPins()
		if err != nil {
			return err
		}
		if gate, err = device.NewGPIO(cfg.GPIO.device(), lookup); err != nil {
			return err
		}
		defer gate.Close()
	}
	guard, err := newGuard(cfg, src, gate)
	if err != nil {
		return err
	}
	monitor, err := device.NewMonitor(device.MonitorConfig{
		Guard:    guard,
		Interval: cfg.Guard.Interval,
		Logger:   log.With("component", "guard"),
	})
	if err != nil {
		return err
	}
	verify, err := newSessions(cfg, src, sup, feed, monitor, gate, log)
	if err != nil {
		return err
	}
	if verify != nil {
		defer verify.Close()
	}
	apiCfg := session.APIConfig{
		SocketPath: cfg.API.Socket,
		TCPAddr:    cfg.API.TCP,
		Token:      token,
		Version:    buildinfo.Version,
		Camera:     sup,
		Guard:      monitor,
		Logger:     log.With("component", "api"),
	}
	if verify != nil && verify.manager != nil {
		apiCfg.Sessions = verify.manager
	}
	if verify != nil && verify.enrolments != nil {
		apiCfg.Enrolments = verify.enrolments
	}
	if rig, ok := src.(*sim.Rig); ok {
		apiCfg.SimControl = simControl{rig: rig, dir: filepath.Dir(cfg.Camera.Sim.Face), log: log.With("component", "sim")}
	}
	api, err := session.NewAPI(apiCfg)
	if err != nil {
		return err
	}
	if err := monitor.Register(api.Registry()); err != nil {
		return err
	}
	// The device key, the outbox and the link to the hub. A key readable by
	// others stops the daemon here: it must not sign anything with it.
	syncAgent, err := agent.New(cfg.StateDir, cfg.Sync, buildinfo.Version, api.Registry(), log.With("component", "sync"))
	if err != nil {
		return err
	}
	defer syncAgent.Close()
	if verify != nil {
		verify.recorder.a = syncAgent
	}
	syncEnabled := cfg.Sync.BrokerURL != "" && cfg.Sync.DeviceID != ""
	api.AddComponent("sync", func() any { return syncHealth(syncAgent, syncEnabled) })
	if err := api.Start(); err != nil {
		return err
	}

	// The camera runs under its own context so that shutdown can stop the
	// API first (no new requests) and the camera second.
	camCtx, stopCamera := context.WithCancel(context.Background())
	defer stopCamera()
	camDone := make(chan struct{})
	go func() {
		defer close(camDone)
		_ = sup.Run(camCtx)
	}()
	// The guard and the gate hardware stop with the camera.
	var helpers sync.WaitGroup
	helpers.Add(1)
	go func() {
		defer helpers.Done()
		monitor.Run(camCtx)
	}()
	if gate != nil {
		helpers.Add(1)
		go func() {
			defer helpers.Done()
			if err := gate.Run(camCtx); err != nil {
				log.Error("gpio", "err", err)
			}
		}()
		_ = gate.SetStatus(device.StatusReady)
	}
	helpers.Add(1)
	go func() {
		defer helpers.Done()
		if err := syncAgent.Run(camCtx); err != nil {
			log.Error("sync", "err", err)
		}
	}()
	helpers.Add(1)
	go func() {
		defer helpers.Done()
		// The signed guard report, retained on <prefix>/<device>/guard.
		syncAgent.RunGuard(camCtx, monitor)
	}()
	if verify != nil && verify.manager != nil {
		helpers.Add(1)
		go func() {
			defer helpers.Done()
			_ = verify.manager.Run(camCtx) // expires tokens, forgets old sessions
		}()
	}
	defer helpers.Wait()
	watchCtx, stopWatchdog := context.WithCancel(context.Background())
	defer stopWatchdog()
	if cfg.Service.Watchdog {
		go notify.RunWatchdog(watchCtx)
	}
	notify.Ready(sup.Status().Summary())
	log.Info("glintd ready")

	<-ctx.Done()
	log.Info("glintd stopping", "cause", context.Cause(ctx))
	notify.Stopping()
	stopWatchdog()

	deadline := time.Now().Add(cfg.Service.ShutdownTimeout)
	shCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		err := api.Shutdown(shCtx)
		// A running session ends Not Finished (SHUTDOWN) and is recorded
		// before the camera and the outbox go.
		if verify != nil && verify.manager != nil {
			_ = verify.manager.Close()
		}
		stopCamera()
		select {
		case <-camDone:
		case <-shCtx.Done():
		}
		done <- err
	}()
	select {
	case err := <-done:
		if shCtx.Err() != nil {
			return fmt.Errorf("%w (%s)", errShutdownDeadline, cfg.Service.ShutdownTimeout)
		}
		if err != nil {
			log.Warn("api shutdown", "err", err)
		}
	case <-shCtx.Done():
		return fmt.Errorf("%w (%s)", errShutdownDeadline, cfg.Service.ShutdownTimeout)
	}
	log.Info("glintd stopped")
	return nil
}
