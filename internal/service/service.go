// Package service connects a daemon to its service manager: SIGTERM and
// SIGINT become a cancelled context, and readiness, status, stopping and
// watchdog messages go to systemd over sd_notify. Outside systemd
// (NOTIFY_SOCKET unset) every notification is a no-op, so the same binary
// runs in a terminal, a container or a test.
package service

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// SignalContext returns a context cancelled on the first SIGTERM or SIGINT;
// later ones are absorbed until stop is called, so that a duplicate signal
// (systemd and a terminal both sending one) cannot cut a clean shutdown
// short. The daemon bounds its shutdown with its own deadline instead.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGTERM, syscall.SIGINT)
}

// UnderSystemd reports whether the process was started by systemd, whose
// journal wants structured (JSON) logs rather than terminal text.
func UnderSystemd() bool {
	return os.Getenv("JOURNAL_STREAM") != "" || os.Getenv("INVOCATION_ID") != ""
}

// Notifier sends sd_notify messages. Its methods are safe for concurrent use
// and do nothing when the process is not run by systemd with a notify
// socket.
type Notifier struct {
	log *slog.Logger

	mu         sync.Mutex
	lastStatus string
}

// NewNotifier returns a notifier logging failures to log (nil: slog.Default).
func NewNotifier(log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.Default()
	}
	return &Notifier{log: log}
}

// Ready tells systemd that start-up is complete (Type=notify units leave
// "activating" here), with a first status line.
func (n *Notifier) Ready(status string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lastStatus = status
	n.send(daemon.SdNotifyReady + "\nSTATUS=" + status)
}

// Status sets the one-line status shown by `systemctl status`; repeats of
// the current line are not sent.
func (n *Notifier) Status(status string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if status == n.lastStatus {
		return
	}
	n.lastStatus = status
	n.send("STATUS=" + status)
}

// Stopping tells systemd that shutdown has begun.
func (n *Notifier) Stopping() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.send(daemon.SdNotifyStopping + "\nSTATUS=stopping")
}

// RunWatchdog pings systemd's watchdog at half of WatchdogSec until ctx is
// done. It returns at once when the unit has no watchdog. The ping proves
// that the process still schedules goroutines and reaches the notify
// socket; a wedged process misses it and systemd restarts the unit.
func (n *Notifier) RunWatchdog(ctx context.Context) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog settings invalid; not pinging", "err", err)
		return
	}
	if interval <= 0 {
		return
	}
	n.log.Debug("systemd watchdog enabled", "interval", interval)
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		n.mu.Lock()
		n.send(daemon.SdNotifyWatchdog)
		n.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// send writes one notification; called with mu held so that messages keep
// their order.
func (n *Notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("sd_notify failed", "err", err)
	}
}
