package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// State is the supervisor's view of the camera.
type State string

// Supervisor states.
const (
	// StateStarting: opening the source.
	StateStarting State = "starting"
	// StateStreaming: the source is open and frames flow.
	StateStreaming State = "streaming"
	// StateRetrying: the source failed (or could not be opened) and the
	// supervisor waits before reopening it.
	StateRetrying State = "retrying"
	// StateStopped: Run has returned.
	StateStopped State = "stopped"
)

// FrameSink receives the supervisor's frames. Offer is called from the
// capture loop and must not block: it returns false when it dropped a frame
// because its consumer is behind, which the supervisor counts.
type FrameSink interface {
	Offer(f *Frame) bool
}

// ChanSink is a FrameSink over a buffered channel that keeps the newest
// frames: when the buffer is full the oldest queued frame is dropped, so a
// slow consumer sees fresh frames rather than a growing lag.
type ChanSink struct {
	ch chan *Frame
}

// NewChanSink returns a sink buffering up to n frames (at least 1).
func NewChanSink(n int) *ChanSink {
	if n < 1 {
		n = 1
	}
	return &ChanSink{ch: make(chan *Frame, n)}
}

// Frames is the channel the consumer reads.
func (c *ChanSink) Frames() <-chan *Frame { return c.ch }

// Offer queues f, dropping the oldest queued frame when full. It reports
// false when a frame was dropped.
func (c *ChanSink) Offer(f *Frame) bool {
	select {
	case c.ch <- f:
		return true
	default:
	}
	select {
	case <-c.ch: // drop the oldest
	default:
	}
	select {
	case c.ch <- f:
	default: // the consumer raced us; f is the one dropped
	}
	return false
}

// SupervisorConfig configures a Supervisor.
type SupervisorConfig struct {
	// Source is the camera to run. The supervisor owns it: it opens,
	// reads and closes it from Run's goroutine.
	Source Source
	// Sink receives every frame; nil discards them (the statistics are
	// still kept).
	Sink FrameSink
	// MinBackoff and MaxBackoff bound the wait before reopening a failed
	// source; it doubles from MinBackoff on each consecutive failure, with
	// ±20 % jitter so that many devices restarted together spread out.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives state changes; nil means slog.Default().
	Logger *slog.Logger
	// OnChange, if set, is called from Run's goroutine with the new status
	// whenever the state changes (not on every frame). It must return
	// quickly.
	OnChange func(Status)
}

// Status is a snapshot of the supervisor, safe to keep.
type Status struct {
	State State
	// Since is when State was entered.
	Since time.Time
	// Format is the negotiated format while streaming, zero otherwise.
	Format Format
	// LastError is the most recent failure ("" if none yet) and when.
	LastError   string
	LastErrorAt time.Time
	// RetryAt and RetryIn say when the next open attempt is due (retrying
	// only).
	RetryAt time.Time
	RetryIn time.Duration
	// Attempt counts consecutive failures; it resets once a frame arrives.
	Attempt int
	// Lost is true when the last failure ended a stream, false when the
	// source could not be opened.
	Lost bool
	// FramesCaptured counts frames read from the source.
	FramesCaptured uint64
	// FramesDropped is SeqGaps + ConsumerDrops.
	FramesDropped uint64
	// SeqGaps counts frames missing from the source's sequence numbers
	// (lost by the driver or the source before glint saw them).
	SeqGaps uint64
	// ConsumerDrops counts frames the sink dropped because its consumer
	// was behind.
	ConsumerDrops uint64
	// Reconnects counts attempts to reopen the source after a failure,
	// successful or not.
	Reconnects uint64
	// FPS is the current frame rate (exponentially weighted over frame
	// intervals), 0 when not streaming.
	FPS float64
}

// Summary is a one-line description for logs and sd_notify STATUS=, e.g.
// "camera streaming MJPG 640x480 @ 25 fps" or "camera lost, retrying in 2s".
func (s Status) Summary() string {
	switch s.State {
	case StateStreaming:
		return fmt.Sprintf("camera streaming %s %dx%d @ %.4g fps",
			s.Format.PixelFormat, s.Format.Width, s.Format.Height, s.Format.FPS)
	case StateRetrying:
		what := "camera unavailable"
		if s.Lost {
			what = "camera lost"
		}
		return fmt.Sprintf("%s, retrying in %s: %s", what, roundDelay(s.RetryIn), s.LastError)
	case StateStarting:
		return "camera starting"
	}
	return "camera stopped"
}

func roundDelay(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}

// fpsAlpha weighs each new frame interval in the frame-rate average: about
// the last ten frames count, enough to smooth jitter yet follow a change
// within half a second at 25 fps.
const fpsAlpha = 0.1

// Supervisor keeps a Source streaming: it reads frames in Run's goroutine,
// hands them to the sink, and on any error closes the source and reopens it
// with exponential backoff. A source missing at start is not fatal; the
// supervisor keeps retrying until Run's context ends.
type Supervisor struct {
	cfg SupervisorConfig
	log *slog.Logger

	mu sync.Mutex // guards st and the frame-rate state below
	st Status

	// Frame-rate and sequence state, owned by Run's goroutine but read
	// under mu by Status.
	haveLast    bool
	lastSeq     uint64
	lastTS      time.Duration
	lastArrival time.Time
	interval    float64 // EWMA of frame intervals, seconds
}

// NewSupervisor checks cfg and returns a supervisor ready to Run.
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	if cfg.Source == nil {
		return nil, errors.New("supervisor: no source")
	}
	if cfg.MinBackoff <= 0 || cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("supervisor: backoff must satisfy 0 < min (%s) <= max (%s)", cfg.MinBackoff, cfg.MaxBackoff)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Supervisor{cfg: cfg, log: log}
	s.st = Status{State: StateStarting, Since: time.Now()}
	return s, nil
}

// Status returns a snapshot; safe for concurrent use.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	if st.State == StateRetrying {
		st.RetryIn = max(time.Until(st.RetryAt), 0)
	}
	return st
}

// Run opens the source and streams until ctx is done, reopening after
// failures. It closes the source before returning and always returns nil
// once ctx is done: camera failures are states, not errors. Call it once.
func (s *Supervisor) Run(ctx context.Context) error {
	src := s.cfg.Source
	defer func() {
		if err := src.Close(); err != nil {
			s.log.Debug("camera close", "err", err)
		}
		s.setState(StateStopped, func(st *Status) { st.Format = Format{}; st.FPS = 0 })
	}()
	attempt := 0
	for {
		if attempt > 0 {
			s.mu.Lock()
			s.st.Reconnects++
			s.mu.Unlock()
		}
		s.setState(StateStarting, nil)
		streamed, err := s.session(ctx, src, &attempt)
		if ctx.Err() != nil {
			return nil
		}
		if cerr := src.Close(); cerr != nil {
			s.log.Debug("camera close", "err", cerr)
		}
		attempt++
		delay := backoff(s.cfg.MinBackoff, s.cfg.MaxBackoff, attempt, rand.Float64())
		now := time.Now()
		var prevErr string
		s.setState(StateRetrying, func(st *Status) {
			prevErr = st.LastError
			st.Format, st.FPS = Format{}, 0
			st.LastError, st.LastErrorAt = err.Error(), now
			st.RetryAt, st.Attempt, st.Lost = now.Add(delay), attempt, streamed
		})
		level := slog.LevelWarn
		if attempt > 1 && prevErr == err.Error() {
			level = slog.LevelDebug // the same failure again: said already
		}
		s.log.Log(ctx, level, "camera failed, retrying", "err", err, "attempt", attempt, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session opens the source and reads until an error, which it returns,
// with whether the source was open (streaming) when it failed.
func (s *Supervisor) session(ctx context.Context, src Source, attempt *int) (bool, error) {
	format, err := src.Open(ctx)
	if err != nil {
		return false, fmt.Errorf("open camera: %w", err)
	}
	s.mu.Lock()
	s.haveLast, s.interval = false, 0
	s.mu.Unlock()
	s.setState(StateStreaming, func(st *Status) { st.Format = format; st.RetryAt = time.Time{} })
	s.log.Info("camera streaming", "format", format.String())

	// Close unblocks a ReadFrame that does not watch ctx.
	stop := context.AfterFunc(ctx, func() { _ = src.Close() })
	defer stop()
	for {
		f, err := src.ReadFrame(ctx)
		if err != nil {
			return true, fmt.Errorf("read frame: %w", err)
		}
		if f == nil {
			return true, errors.New("read frame: source returned no frame")
		}
		if *attempt != 0 {
			*attempt = 0
			s.mu.Lock()
			s.st.Attempt = 0
			s.mu.Unlock()
		}
		s.account(f)
		if s.cfg.Sink != nil && !s.cfg.Sink.Offer(f) {
			s.mu.Lock()
			s.st.ConsumerDrops++
			s.st.FramesDropped++
			s.mu.Unlock()
		}
	}
}

// account updates counters and the frame rate for one frame.
func (s *Supervisor) account(f *Frame) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.FramesCaptured++
	if s.haveLast {
		if f.Seq > s.lastSeq+1 {
			gap := f.Seq - s.lastSeq - 1
			s.st.SeqGaps += gap
			s.st.FramesDropped += gap
		}
		// Prefer the source's timestamps; fall back to arrival times when
		// they do not advance (a source without timestamps).
		var dt float64
		if f.Timestamp > s.lastTS {
			dt = (f.Timestamp - s.lastTS).Seconds()
		} else {
			dt = now.Sub(s.lastArrival).Seconds()
		}
		if dt > 0 {
			if s.interval == 0 {
				s.interval = dt
			} else {
				s.interval += fpsAlpha * (dt - s.interval)
			}
			s.st.FPS = 1 / s.interval
		}
	}
	s.haveLast, s.lastSeq, s.lastTS, s.lastArrival = true, f.Seq, f.Timestamp, now
}

// setState changes the state, applies edit under the lock, and notifies.
func (s *Supervisor) setState(state State, edit func(*Status)) {
	s.mu.Lock()
	if s.st.State != state {
		s.st.Since = time.Now()
	}
	s.st.State = state
	if edit != nil {
		edit(&s.st)
	}
	s.mu.Unlock()
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(s.Status())
	}
}

// backoff returns the wait before attempt n (1-based): min·2^(n-1) capped at
// max, scaled by a jitter factor in [0.8, 1.2) from r ∈ [0, 1), and kept
// within [min, max].
func backoff(minD, maxD time.Duration, n int, r float64) time.Duration {
	d := minD
	for i := 1; i < n && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	d = time.Duration(float64(d) * (0.8 + 0.4*r))
	return min(max(d, minD), maxD)
}
