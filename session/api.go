// Package session owns one verification (positioning guidance, challenge,
// analysis, policy decision, result record) and the local kiosk API that
// drives it: sessions with server-sent events, enrolments, health and
// metrics (docs/kiosk-api.md, docs/openapi.yaml).
package session

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/device"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// CameraStatus is what the API needs from the camera supervisor.
type CameraStatus interface {
	Status() capture.Status
}

// GuardStatus reports the latest device-guard report (device.Monitor).
type GuardStatus interface {
	Last() device.Report
}

// APIConfig configures the local API.
type APIConfig struct {
	// SocketPath is the unix socket to serve on; "" disables it. A stale
	// socket file left by a crashed daemon is removed at start.
	SocketPath string
	// SocketMode is the socket file's permission bits; 0 means 0660, so
	// that the kiosk app's user in the daemon's group can connect.
	SocketMode os.FileMode
	// TCPAddr is an optional loopback address (e.g. 127.0.0.1:8787) for
	// clients that cannot use a unix socket; "" disables it. Requests on it
	// need "Authorization: Bearer <Token>".
	TCPAddr string
	// Token authenticates TCP clients; required when TCPAddr is set.
	Token string
	// Version is reported by /healthz and glint_build_info.
	Version string
	// Camera reports the camera state.
	Camera CameraStatus
	// Guard, when set, reports the device-guard state in /healthz.
	Guard GuardStatus
	// Components adds named sections to /healthz (e.g. "sync": the link
	// to the hub), each read when the request comes.
	Components map[string]func() any
	// Sessions runs verification sessions; nil answers the session routes
	// with 503.
	Sessions Sessions
	// Enrolments stores enrolments (*Enrolments); nil answers the
	// enrolment routes with 503.
	Enrolments EnrolmentStore
	// SimControl, when set, serves /v1/sim/presentation: switching what
	// stands in front of the simulated camera (demo, tests).
	SimControl SimControl
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// API is the local HTTP API. NewAPI builds it, Start binds and serves,
// Shutdown stops it.
type API struct {
	cfg      APIConfig
	log      *slog.Logger
	registry *prometheus.Registry
	handler  http.Handler
	started  time.Time
	routes   []string
	kmetrics *kioskMetrics
	// stopping is closed when Shutdown starts, ending event streams.
	stopping chan struct{}
	stopOnce sync.Once

	mu        sync.Mutex
	servers   []*http.Server
	listeners []net.Listener
	done      sync.WaitGroup
}

// NewAPI checks cfg and builds the handlers and the metrics registry.
// Nothing is bound until Start.
func NewAPI(cfg APIConfig) (*API, error) {
	if cfg.Camera == nil {
		return nil, errors.New("api: no camera status")
	}
	if cfg.SocketPath == "" && cfg.TCPAddr == "" {
		return nil, errors.New("api: neither a socket path nor a TCP address")
	}
	if cfg.TCPAddr != "" {
		if err := CheckLoopback(cfg.TCPAddr); err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		if cfg.Token == "" {
			return nil, errors.New("api: a TCP address needs a token")
		}
	}
	if cfg.SocketMode == 0 {
		cfg.SocketMode = 0o660
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{cfg: cfg, log: cfg.Logger, started: time.Now(), stopping: make(chan struct{})}

	// A registry of our own, not prometheus.DefaultRegisterer: no package
	// global state, and two daemons in one test process do not collide.
	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCameraCollector(cfg.Camera),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "glint_build_info",
			Help:        "Always 1; the version label says which glintd runs.",
			ConstLabels: prometheus.Labels{"version": cfg.Version},
		}, func() float64 { return 1 }),
	)

	mux := http.NewServeMux()
	a.routes = append(a.routes, "GET /healthz", "GET /metrics")
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{
		Registry:          a.registry,
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}))
	a.registerKiosk(mux)
	a.handler = mux
	return a, nil
}

// AddComponent adds a named section to /healthz; call it before Start.
func (a *API) AddComponent(name string, read func() any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg.Components == nil {
		a.cfg.Components = map[string]func() any{}
	}
	a.cfg.Components[name] = read
}

// Registry is the daemon's metrics registry, for other components to
// register their collectors in.
func (a *API) Registry() *prometheus.Registry { return a.registry }

// Handler serves the API without authentication (as on the unix socket).
func (a *API) Handler() http.Handler { return a.handler }

// Start binds the unix socket and the TCP address and serves them in the
// background. When it returns nil the API accepts connections.
func (a *API) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg.SocketPath != "" {
		l, err := listenUnix(a.cfg.SocketPath, a.cfg.SocketMode)
		if err != nil {
			return err
		}
		a.serve(l, a.handler)
	}
	if a.cfg.TCPAddr != "" {
		l, err := net.Listen("tcp", a.cfg.TCPAddr)
		if err != nil {
			a.closeLocked()
			return fmt.Errorf("api: listen %s: %w", a.cfg.TCPAddr, err)
		}
		a.serve(l, bearerAuth(a.cfg.Token, a.handler))
	}
	return nil
}

// TCPAddr is the bound TCP address (useful with port 0), nil without TCP.
func (a *API) TCPAddr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.listeners {
		if l.Addr().Network() == "tcp" {
			return l.Addr()
		}
	}
	return nil
}

func (a *API) serve(l net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	a.servers = append(a.servers, srv)
	a.listeners = append(a.listeners, l)
	a.done.Add(1)
	go func() {
		defer a.done.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("api server stopped", "addr", l.Addr().String(), "err", err)
		}
	}()
	a.log.Info("api listening", "network", l.Addr().Network(), "addr", l.Addr().String())
}

// Shutdown stops accepting, waits for requests in flight until ctx ends,
// then closes what is left. The unix socket file is removed.
func (a *API) Shutdown(ctx context.Context) error {
	// Event streams never go idle on their own: end them first.
	a.stopOnce.Do(func() { close(a.stopping) })
	a.mu.Lock()
	servers := a.servers
	a.mu.Unlock()
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			_ = s.Close()
		}
	}
	a.done.Wait()
	a.mu.Lock()
	a.closeLocked()
	a.mu.Unlock()
	return errors.Join(errs...)
}

func (a *API) closeLocked() {
	for _, s := range a.servers {
		_ = s.Close()
	}
	for _, l := range a.listeners {
		_ = l.Close() // a unix listener unlinks its socket file
	}
	a.servers, a.listeners = nil, nil
}

// listenUnix binds a unix socket at path with the given mode, replacing a
// stale socket file but refusing to steal one another process serves.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("api: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("api: %s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("api: remove stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api: listen %s: %w", path, err)
	}
	// The socket exists with umask permissions until this chmod; its
	// directory (RuntimeDirectory, 0750 by default) guards that instant.
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("api: chmod socket: %w", err)
	}
	return l, nil
}

// CheckLoopback reports an error unless addr is host:port with a loopback
// host: the TCP API is for local clients only.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("tcp address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("tcp address %q is not a loopback address", addr)
	}
	return nil
}

// bearerAuth requires "Authorization: Bearer <token>".
func bearerAuth(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="glintd"`)
			_ = writeJSON(w, http.StatusUnauthorized, APIError{Error: "missing or wrong bearer token", Code: CodeUnauthorized})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Health is the /healthz response body.
type Health struct {
	// Status is "ok" when the camera streams, "degraded" otherwise (the
	// daemon itself is up either way).
	Status        string       `json:"status"`
	Version       string       `json:"version"`
	UptimeSeconds float64      `json:"uptime_seconds"`
	Camera        CameraHealth `json:"camera"`
	// Guard is the device-guard summary (absent when no guard runs). A
	// critical risk does not make the daemon unhealthy: sessions are
	// refused instead, with the reason.
	Guard *device.ReportSummary `json:"guard,omitempty"`
	// Components holds the sections of APIConfig.Components.
	Components map[string]any `json:"components,omitempty"`
}

// CameraHealth is the camera part of Health.
type CameraHealth struct {
	State          string    `json:"state"`
	Summary        string    `json:"summary"`
	Since          time.Time `json:"since"`
	PixelFormat    string    `json:"pixel_format,omitempty"`
	Width          int       `json:"width,omitempty"`
	Height         int       `json:"height,omitempty"`
	NominalFPS     float64   `json:"nominal_fps,omitempty"`
	FPS            float64   `json:"fps"`
	FramesCaptured uint64    `json:"frames_captured"`
	FramesDropped  uint64    `json:"frames_dropped"`
	Reconnects     uint64    `json:"reconnects"`
	Attempt        int       `json:"attempt,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
	RetryInSeconds float64   `json:"retry_in_seconds,omitempty"`
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	st := a.cfg.Camera.Status()
	h := Health{
		Status:        "ok",
		Version:       a.cfg.Version,
		UptimeSeconds: time.Since(a.started).Seconds(),
		Camera: CameraHealth{
			State:          string(st.State),
			Summary:        st.Summary(),
			Since:          st.Since.UTC(),
			FPS:            st.FPS,
			FramesCaptured: st.FramesCaptured,
			FramesDropped:  st.FramesDropped,
			Reconnects:     st.Reconnects,
			Attempt:        st.Attempt,
			LastError:      st.LastError,
			RetryInSeconds: st.RetryIn.Seconds(),
		},
	}
	if a.cfg.Guard != nil {
		sum := a.cfg.Guard.Last().Summary()
		h.Guard = &sum
	}
	a.mu.Lock()
	components := a.cfg.Components
	a.mu.Unlock()
	if len(components) > 0 {
		h.Components = make(map[string]any, len(components))
		for name, read := range components {
			h.Components[name] = read()
		}
	}
	if st.Format != (capture.Format{}) {
		h.Camera.PixelFormat = st.Format.PixelFormat.String()
		h.Camera.Width, h.Camera.Height = st.Format.Width, st.Format.Height
		h.Camera.NominalFPS = st.Format.FPS
	}
	code := http.StatusOK
	if st.State != capture.StateStreaming {
		h.Status, code = "degraded", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(h); err != nil {
		a.log.Debug("healthz write", "err", err)
	}
}

// cameraCollector exports the supervisor's counters, reading one Status
// snapshot per scrape so the values are consistent with each other.
type cameraCollector struct {
	cam                                       CameraStatus
	captured, dropped, reconnects, fps, camUp *prometheus.Desc
}

func newCameraCollector(cam CameraStatus) *cameraCollector {
	return &cameraCollector{
		cam:        cam,
		captured:   prometheus.NewDesc("glint_frames_captured_total", "Frames read from the camera.", nil, nil),
		dropped:    prometheus.NewDesc("glint_frames_dropped_total", "Frames lost: gaps in the camera's sequence numbers plus frames a slow consumer dropped.", []string{"reason"}, nil),
		reconnects: prometheus.NewDesc("glint_camera_reconnects_total", "Attempts to reopen the camera after a failure.", nil, nil),
		fps:        prometheus.NewDesc("glint_camera_fps", "Current camera frame rate (moving average), 0 when not streaming.", nil, nil),
		camUp:      prometheus.NewDesc("glint_camera_up", "1 when the camera is streaming, 0 otherwise.", nil, nil),
	}
}

func (c *cameraCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.captured, c.dropped, c.reconnects, c.fps, c.camUp} {
		ch <- d
	}
}

func (c *cameraCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.cam.Status()
	up := 0.0
	if st.State == capture.StateStreaming {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.captured, prometheus.CounterValue, float64(st.FramesCaptured))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.SeqGaps), "sequence_gap")
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.ConsumerDrops), "consumer_slow")
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(st.Reconnects))
	ch <- prometheus.MustNewConstMetric(c.fps, prometheus.GaugeValue, st.FPS)
	ch <- prometheus.MustNewConstMetric(c.camUp, prometheus.GaugeValue, up)
}
