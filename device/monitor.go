package device

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Monitor runs a Guard periodically, keeps the latest report for health
// checks and result records, logs what changes, and exports metrics.
type Monitor struct {
	guard    *Guard
	interval time.Duration
	log      *slog.Logger
	onChange func(Report)

	mu   sync.Mutex
	last Report
	have bool

	risk    prometheus.Gauge
	signals *prometheus.GaugeVec
	checks  prometheus.Counter
}

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	Guard *Guard
	// Interval between checks; default 60 s.
	Interval time.Duration
	Logger   *slog.Logger
	// OnChange, when set, is called (from the monitor's goroutine) with
	// every report whose set of signals differs from the previous one:
	// where the signed guard report gets published.
	OnChange func(Report)
}

// NewMonitor builds a monitor and runs the first check at once, so that
// the daemon knows its risk before it reports ready.
func NewMonitor(cfg MonitorConfig) (*Monitor, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Monitor{
		guard: cfg.Guard, interval: cfg.Interval, log: cfg.Logger, onChange: cfg.OnChange,
		risk: prometheus.NewGauge(prometheus.GaugeOpts{Name: "glint_guard_risk",
			Help: "Highest device-guard severity raised: 0 none, 1 info, 2 warn, 3 critical."}),
		signals: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "glint_guard_signal",
			Help: "1 for each device-guard signal currently raised."}, []string{"code", "severity"}),
		checks: prometheus.NewCounter(prometheus.CounterOpts{Name: "glint_guard_checks_total",
			Help: "Device-guard checks run."}),
	}
	m.CheckNow()
	return m, nil
}

// Register adds the monitor's metrics (glint_guard_risk,
// glint_guard_signal, glint_guard_checks_total) to a registry.
func (m *Monitor) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.risk, m.signals, m.checks} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Run re-checks every interval until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.CheckNow()
		}
	}
}

// CheckNow runs the guard, records the report and returns it.
func (m *Monitor) CheckNow() Report {
	rep := m.guard.Check()
	m.checks.Inc()
	m.mu.Lock()
	prev, had := m.last, m.have
	m.last, m.have = rep, true
	m.mu.Unlock()

	changed := !had || !slices.Equal(prev.Summary().Codes, rep.Summary().Codes)
	if changed {
		m.signals.Reset()
		for _, s := range rep.Signals {
			m.signals.WithLabelValues(s.Code, s.Severity.String()).Set(1)
		}
		m.risk.Set(float64(rep.Risk))
		attrs := []any{"risk", rep.Risk.String(), "codes", rep.Summary().Codes}
		if rep.Risk >= SeverityCritical {
			m.log.Warn("device guard", attrs...)
		} else {
			m.log.Info("device guard", attrs...)
		}
		if m.onChange != nil {
			m.onChange(rep)
		}
	}
	return rep
}

// Last returns the most recent report.
func (m *Monitor) Last() Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}
