package capture

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSource is a Source scripted by the test: Open returns the queued open
// errors in turn, then succeeds; ReadFrame delivers what the test sends on
// reads and, like a driver blocked in a syscall, ignores ctx: only Close
// unblocks it.
type fakeSource struct {
	reads chan fakeRead

	mu       sync.Mutex
	openErrs []error
	open     bool
	opens    int
	closes   int
	closeCh  chan struct{}
	overlaps int // Open called while already open: the supervisor must close first
}

type fakeRead struct {
	f   *Frame
	err error
}

func newFakeSource(openErrs ...error) *fakeSource {
	return &fakeSource{reads: make(chan fakeRead), openErrs: openErrs}
}

func (s *fakeSource) Open(ctx context.Context) (Format, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opens++
	if s.open {
		s.overlaps++
	}
	if len(s.openErrs) > 0 {
		err := s.openErrs[0]
		s.openErrs = s.openErrs[1:]
		if err != nil {
			return Format{}, err
		}
	}
	s.open = true
	s.closeCh = make(chan struct{})
	return Format{PixelFormat: FormatMJPEG, Width: 640, Height: 480, FPS: 25}, nil
}

func (s *fakeSource) ReadFrame(ctx context.Context) (*Frame, error) {
	s.mu.Lock()
	ch, open := s.closeCh, s.open
	s.mu.Unlock()
	if !open {
		return nil, ErrClosed
	}
	select {
	case r := <-s.reads:
		return r.f, r.err
	case <-ch:
		return nil, ErrClosed
	}
}

func (s *fakeSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes++
	if s.open {
		close(s.closeCh)
		s.open = false
	}
	return nil
}

func (s *fakeSource) counts() (opens, closes, overlaps int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opens, s.closes, s.overlaps
}

// send delivers one read to the supervisor, failing the test if it does not
// ask within 5 s.
func (s *fakeSource) send(t *testing.T, r fakeRead) {
	t.Helper()
	select {
	case s.reads <- r:
	case <-time.After(5 * time.Second):
		t.Fatalf("supervisor did not read (sending %+v)", r)
	}
}

func frame(seq uint64, ts time.Duration) fakeRead {
	return fakeRead{f: &Frame{Seq: seq, Timestamp: ts, Width: 640, Height: 480, Format: FormatMJPEG, Data: []byte{1}}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// startSupervisor runs a supervisor over src until the test ends.
func startSupervisor(t *testing.T, cfg SupervisorConfig) (*Supervisor, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 4*time.Millisecond
	}
	sup, err := NewSupervisor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := sup.Run(ctx); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return sup, cancel, done
}

func TestSupervisorStreamsAndCounts(t *testing.T) {
	src := newFakeSource()
	sink := NewChanSink(1) // nobody reads it: every frame after the first displaces one
	sup, _, _ := startSupervisor(t, SupervisorConfig{Source: src, Sink: sink})

	const interval = 40 * time.Millisecond // 25 fps
	for i, seq := range []uint64{0, 1, 2, 5, 6, 7, 8, 9} {
		src.send(t, frame(seq, time.Duration(i+1)*interval))
	}
	waitFor(t, "8 frames counted", func() bool { return sup.Status().FramesCaptured == 8 })
	st := sup.Status()
	if st.State != StateStreaming {
		t.Errorf("state %s, want streaming", st.State)
	}
	if st.Format.PixelFormat != FormatMJPEG || st.Format.Width != 640 {
		t.Errorf("format %v", st.Format)
	}
	if st.SeqGaps != 2 {
		t.Errorf("SeqGaps = %d, want 2 (3 and 4 missing)", st.SeqGaps)
	}
	if st.ConsumerDrops != 7 {
		t.Errorf("ConsumerDrops = %d, want 7", st.ConsumerDrops)
	}
	if st.FramesDropped != st.SeqGaps+st.ConsumerDrops {
		t.Errorf("FramesDropped = %d, want %d", st.FramesDropped, st.SeqGaps+st.ConsumerDrops)
	}
	if math.Abs(st.FPS-25) > 0.01 {
		t.Errorf("FPS = %.3f, want 25 from 40 ms frame timestamps", st.FPS)
	}
	if got := st.Summary(); got != "camera streaming MJPG 640x480 @ 25 fps" {
		t.Errorf("Summary = %q", got)
	}
	// The sink holds the newest frame.
	if f := <-sink.Frames(); f.Seq != 9 {
		t.Errorf("sink holds seq %d, want the newest (9)", f.Seq)
	}
}

func TestSupervisorMissingDeviceRetries(t *testing.T) {
	missing := errors.New("open /dev/video-does-not-exist: " + ErrNoDevice.Error())
	src := newFakeSource(ErrNoDevice, missing, ErrNoDevice)
	var mu sync.Mutex
	var states []State
	sup, _, _ := startSupervisor(t, SupervisorConfig{Source: src, OnChange: func(s Status) {
		mu.Lock()
		defer mu.Unlock()
		if len(states) == 0 || states[len(states)-1] != s.State {
			states = append(states, s.State)
		}
	}})

	waitFor(t, "streaming after 3 failed opens", func() bool { return sup.Status().State == StateStreaming })
	src.send(t, frame(0, time.Second))
	waitFor(t, "a frame", func() bool { return sup.Status().FramesCaptured == 1 })
	st := sup.Status()
	if st.Reconnects != 3 {
		t.Errorf("Reconnects = %d, want 3", st.Reconnects)
	}
	if st.Attempt != 0 {
		t.Errorf("Attempt = %d after a frame, want 0", st.Attempt)
	}
	if !strings.Contains(st.LastError, "camera device not found") {
		t.Errorf("LastError = %q", st.LastError)
	}
	if opens, _, overlaps := src.counts(); opens != 4 || overlaps != 0 {
		t.Errorf("opens = %d, overlaps = %d; want 4, 0", opens, overlaps)
	}
	mu.Lock()
	got := states
	mu.Unlock()
	want := []State{StateStarting, StateRetrying, StateStarting, StateRetrying, StateStarting, StateRetrying, StateStarting, StateStreaming}
	if strings.Join(stateStrings(got), ",") != strings.Join(stateStrings(want), ",") {
		t.Errorf("states %v, want %v", got, want)
	}
}

func stateStrings(s []State) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return out
}

func TestSupervisorRetryingStatus(t *testing.T) {
	// A long backoff, so the retrying state can be inspected.
	src := newFakeSource(ErrNoDevice)
	sup, _, _ := startSupervisor(t, SupervisorConfig{Source: src, MinBackoff: time.Minute, MaxBackoff: time.Hour})
	waitFor(t, "retrying", func() bool { return sup.Status().State == StateRetrying })
	st := sup.Status()
	if st.Attempt != 1 || st.Lost || st.RetryIn <= 0 || st.RetryIn > 72*time.Second {
		t.Errorf("status %+v", st)
	}
	if s := st.Summary(); !strings.HasPrefix(s, "camera unavailable, retrying in 1m") || !strings.Contains(s, "not found") {
		t.Errorf("Summary = %q", s)
	}
}

func TestSupervisorDeviceLostRecovers(t *testing.T) {
	src := newFakeSource()
	var mu sync.Mutex
	var summaries []string
	sup, _, _ := startSupervisor(t, SupervisorConfig{Source: src, MinBackoff: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		OnChange: func(s Status) {
			mu.Lock()
			summaries = append(summaries, s.Summary())
			mu.Unlock()
		}})
	src.send(t, frame(0, 10*time.Millisecond))
	src.send(t, frame(1, 20*time.Millisecond))
	src.send(t, fakeRead{err: ErrDeviceLost})
	waitFor(t, "retrying", func() bool { return sup.Status().State == StateRetrying })
	st := sup.Status()
	if !st.Lost || !strings.Contains(st.LastError, "camera device lost") || st.FPS != 0 || st.Format != (Format{}) {
		t.Errorf("after loss: %+v", st)
	}
	waitFor(t, "streaming again", func() bool { return sup.Status().State == StateStreaming })
	// Sequence numbers restart with the new stream: not a gap.
	src.send(t, frame(0, time.Second))
	src.send(t, frame(1, time.Second+40*time.Millisecond))
	waitFor(t, "4 frames", func() bool { return sup.Status().FramesCaptured == 4 })
	st = sup.Status()
	if st.Reconnects != 1 || st.SeqGaps != 0 || st.Attempt != 0 {
		t.Errorf("after recovery: %+v", st)
	}
	if opens, closes, overlaps := src.counts(); opens != 2 || closes < 1 || overlaps != 0 {
		t.Errorf("opens %d closes %d overlaps %d", opens, closes, overlaps)
	}
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, s := range summaries {
		if strings.HasPrefix(s, "camera lost, retrying in ") {
			found = true
		}
	}
	if !found {
		t.Errorf("no 'camera lost' summary in %q", summaries)
	}
}

func TestSupervisorErrorsReopen(t *testing.T) {
	for _, e := range []error{ErrTimeout, ErrEndOfStream, errors.New("EIO")} {
		t.Run(e.Error(), func(t *testing.T) {
			src := newFakeSource()
			sup, _, _ := startSupervisor(t, SupervisorConfig{Source: src})
			src.send(t, fakeRead{err: e})
			waitFor(t, "reopened", func() bool {
				opens, _, _ := src.counts()
				return opens == 2 && sup.Status().State == StateStreaming
			})
			if st := sup.Status(); !strings.Contains(st.LastError, e.Error()) || st.Reconnects != 1 {
				t.Errorf("status %+v", st)
			}
		})
	}
}

func TestSupervisorNilFrameIsAnError(t *testing.T) {
	src := newFakeSource()
	sup, _, _ := startSupervisor(t, SupervisorConfig{Source: src, MinBackoff: time.Minute, MaxBackoff: time.Minute})
	src.send(t, fakeRead{})
	waitFor(t, "retrying", func() bool { return sup.Status().State == StateRetrying })
}

func TestSupervisorStopUnblocksRead(t *testing.T) {
	src := newFakeSource()
	sup, cancel, done := startSupervisor(t, SupervisorConfig{Source: src})
	waitFor(t, "streaming", func() bool { return sup.Status().State == StateStreaming })
	// ReadFrame ignores ctx: the supervisor must Close the source to stop.
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if st := sup.Status(); st.State != StateStopped {
		t.Errorf("state %s, want stopped", st.State)
	}
	if _, closes, _ := src.counts(); closes == 0 {
		t.Error("source not closed")
	}
}

func TestSupervisorStopWhileRetrying(t *testing.T) {
	src := newFakeSource(ErrNoDevice)
	sup, cancel, done := startSupervisor(t, SupervisorConfig{Source: src, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	waitFor(t, "retrying", func() bool { return sup.Status().State == StateRetrying })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return while backing off")
	}
	if sup.Status().State != StateStopped {
		t.Error("not stopped")
	}
}

func TestSupervisorStatusConcurrent(t *testing.T) {
	src := newFakeSource()
	sup, _, _ := startSupervisor(t, SupervisorConfig{Source: src})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					_ = sup.Status().Summary()
				}
			}
		}()
	}
	for i := range 200 {
		src.send(t, frame(uint64(i), time.Duration(i)*time.Millisecond))
	}
	close(stop)
	wg.Wait()
	waitFor(t, "200 frames", func() bool { return sup.Status().FramesCaptured == 200 })
}

func TestNewSupervisorRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]SupervisorConfig{
		"no source":     {MinBackoff: time.Second, MaxBackoff: time.Second},
		"zero min":      {Source: newFakeSource(), MaxBackoff: time.Second},
		"max below min": {Source: newFakeSource(), MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	} {
		if _, err := NewSupervisor(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSupervisorBackoff(t *testing.T) {
	const lo, hi = 500 * time.Millisecond, 30 * time.Second
	tests := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0.5, 500 * time.Millisecond},      // no jitter at r=0.5
		{1, 0, 500 * time.Millisecond},        // jitter never goes below min
		{1, 0.999, 599800 * time.Microsecond}, // +20 %
		{2, 0.5, time.Second},
		{3, 0.5, 2 * time.Second},
		{7, 0.5, 30 * time.Second}, // 32 s capped
		{7, 0, 24 * time.Second},   // capped, then jittered down
		{7, 0.999, 30 * time.Second},
		{1000, 0.5, 30 * time.Second}, // no overflow
	}
	for _, tt := range tests {
		if got := backoff(lo, hi, tt.n, tt.r); got != tt.want {
			t.Errorf("backoff(n=%d, r=%g) = %s, want %s", tt.n, tt.r, got, tt.want)
		}
	}
}

func TestChanSinkKeepsNewest(t *testing.T) {
	s := NewChanSink(2)
	for i := range 5 {
		ok := s.Offer(&Frame{Seq: uint64(i)})
		if want := i < 2; ok != want {
			t.Errorf("Offer(%d) = %v, want %v", i, ok, want)
		}
	}
	if a, b := (<-s.Frames()).Seq, (<-s.Frames()).Seq; a != 3 || b != 4 {
		t.Errorf("sink holds %d, %d; want 3, 4", a, b)
	}
}
