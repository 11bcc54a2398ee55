package device

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMonitorReportsChangesAndMetrics(t *testing.T) {
	var tampered atomic.Bool
	g, err := NewGuard(GuardConfig{Root: fakeRoot(t, cleanPlatform()), Environ: []string{}, Tamper: tampered.Load})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	var changes atomic.Int32
	m, err := NewMonitor(MonitorConfig{Guard: g, Interval: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnChange: func(Report) { changes.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	if m.Last().Risk != SeverityNone || changes.Load() != 1 {
		t.Fatalf("first check: %+v, %d changes", m.Last(), changes.Load())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	tampered.Store(true)
	waitFor(t, "tamper reported", func() bool { return m.Last().Has(SignalTamper) })
	cancel()
	<-done
	if got := testutil.ToFloat64(m.risk); got != float64(SeverityCritical) {
		t.Fatalf("glint_guard_risk = %v", got)
	}
	if got := testutil.ToFloat64(m.signals.WithLabelValues(SignalTamper, "critical")); got != 1 {
		t.Fatalf("glint_guard_signal{ENCLOSURE_TAMPER} = %v", got)
	}
	if changes.Load() != 2 {
		t.Fatalf("%d change callbacks, want 2 (unchanged reports are not repeated)", changes.Load())
	}
	if !strings.Contains(logs.String(), "ENCLOSURE_TAMPER") {
		t.Fatalf("change not logged: %s", logs.String())
	}
	if testutil.ToFloat64(m.checks) < 2 {
		t.Fatal("periodic checks did not run")
	}
}
