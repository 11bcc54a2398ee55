package session

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sim"
)

// fakeNow is a settable wall clock for token expiry.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeNow) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func newManager(t *testing.T, h *harness, now *fakeNow) *Manager {
	t.Helper()
	cfg := ManagerConfig{Runner: h.runner, TokenTTL: time.Minute, Keep: time.Hour}
	if now != nil {
		cfg.Now = now.Now
	}
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// waitDecided follows the session's events to its verdict.
func waitDecided(t *testing.T, m *Manager, id string) (Info, []Event) {
	t.Helper()
	ch, cancel, err := m.Subscribe(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	var evs []Event
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				info, err := m.Get(id)
				if err != nil {
					t.Fatal(err)
				}
				return info, evs
			}
			evs = append(evs, e)
		case <-timeout:
			t.Fatal("no verdict")
		}
	}
}

func TestManagerSessionLifecycle(t *testing.T) {
	h := newHarness(t)
	m := newManager(t, h, nil)
	ctx := context.Background()
	tk, err := m.Create(ctx, Request{Subject: "s1", ReferenceID: h.ref.ID})
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := m.Get(tk.ID); info.State != StateIdle || info.Mode != result.ModeDynamic || info.Level == "" {
		t.Errorf("created: %+v", info)
	}
	if _, err := m.Start(ctx, tk.ID, "wrong-token"); !errors.Is(err, ErrTokenGone) {
		t.Errorf("wrong token: %v, want ErrTokenGone", err)
	}
	if _, err := m.Start(ctx, "nope", tk.Token); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown session: %v", err)
	}
	if _, err := m.Start(ctx, tk.ID, tk.Token); err != nil {
		t.Fatal(err)
	}
	// The token is single-use.
	if _, err := m.Start(ctx, tk.ID, tk.Token); !errors.Is(err, ErrTokenGone) {
		t.Errorf("reused token: %v, want ErrTokenGone", err)
	}
	info, evs := waitDecided(t, m, tk.ID)
	if info.State != StateDecided || info.Verdict == nil || info.Verdict.Status != result.StatusApproved || info.Verdict.ResultID == "" {
		t.Fatalf("decided: %+v verdict %+v", info, info.Verdict)
	}
	for i, e := range evs {
		if e.Seq != i+1 {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	if last := evs[len(evs)-1]; last.Type != EventVerdict || last.Verdict.ResultID != info.Verdict.ResultID {
		t.Errorf("last event %+v", last)
	}
	// Replay from the middle: exactly the later events, then the channel closes.
	ch, cancel, err := m.Subscribe(tk.ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	var replay []int
	for e := range ch {
		replay = append(replay, e.Seq)
	}
	var want []int
	for _, e := range evs[3:] {
		want = append(want, e.Seq)
	}
	if !slices.Equal(replay, want) {
		t.Errorf("replay after 3: %v, want %v", replay, want)
	}
	out, err := m.Outcome(tk.ID)
	if err != nil || out.Record.ID != info.Verdict.ResultID {
		t.Errorf("outcome %v %v", out, err)
	}
}

func TestManagerBusyAndCancel(t *testing.T) {
	// Nobody in front of the camera: the first session positions until cancelled.
	h := newHarness(t, withParams(func(p *sim.Params) { p.FaceOffset = [2]float64{0.9, 0} }),
		withRunner(func(c *RunnerConfig) { c.PositioningTimeout = time.Hour }))
	m := newManager(t, h, nil)
	ctx := context.Background()
	a, err := m.Create(ctx, Request{ReferenceID: h.ref.ID})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Create(ctx, Request{ReferenceID: h.ref.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, a.ID, a.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, b.ID, b.Token); !errors.Is(err, ErrBusy) {
		t.Fatalf("second session while one runs: %v, want ErrBusy", err)
	}
	if !m.Busy() {
		t.Error("not busy while a session runs")
	}
	if err := m.Cancel(a.ID); err != nil {
		t.Fatal(err)
	}
	info, _ := waitDecided(t, m, a.ID)
	if v := info.Verdict; v.Status != result.StatusNotFinished || !slices.Equal(v.Reasons, []string{ReasonCancelled}) {
		t.Fatalf("cancelled: %+v", v)
	}
	// ErrBusy did not consume b's token: it starts now.
	if _, err := m.Start(ctx, b.ID, b.Token); err != nil {
		t.Fatalf("b after a ended: %v", err)
	}
	if err := m.Cancel(b.ID); err != nil {
		t.Fatal(err)
	}
	waitDecided(t, m, b.ID)
	// Withdrawing an unstarted session.
	c, err := m.Create(ctx, Request{ReferenceID: h.ref.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Cancel(c.ID); err != nil {
		t.Fatal(err)
	}
	if info, _ := m.Get(c.ID); info.State != StateDecided || info.Verdict.Status != result.StatusNotFinished {
		t.Errorf("withdrawn: %+v", info)
	}
	if _, err := m.Start(ctx, c.ID, c.Token); !errors.Is(err, ErrTokenGone) {
		t.Errorf("start after withdrawal: %v, want ErrTokenGone", err)
	}
	if err := m.Cancel("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancel unknown: %v", err)
	}
}

func TestManagerTokenExpiry(t *testing.T) {
	h := newHarness(t)
	now := &fakeNow{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	m := newManager(t, h, now)
	ctx := context.Background()
	tk, err := m.Create(ctx, Request{ReferenceID: h.ref.ID})
	if err != nil {
		t.Fatal(err)
	}
	if !tk.ExpiresAt.Equal(now.Now().Add(time.Minute)) {
		t.Errorf("expires at %s", tk.ExpiresAt)
	}
	now.Add(time.Minute)
	if _, err := m.Start(ctx, tk.ID, tk.Token); !errors.Is(err, ErrTokenGone) {
		t.Fatalf("expired token: %v, want ErrTokenGone", err)
	}
	info, err := m.Get(tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != StateDecided || info.Verdict.Status != result.StatusExpired || !slices.Equal(info.Verdict.Reasons, []string{ReasonTokenExpired}) || info.Verdict.ResultID == "" {
		t.Fatalf("expired session: %+v %+v", info, info.Verdict)
	}
	// Decided sessions are forgotten after Keep.
	now.Add(2 * time.Hour)
	if _, err := m.Get(tk.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("after keep: %v, want ErrNotFound", err)
	}
}

func TestManagerCreateValidates(t *testing.T) {
	h := newHarness(t)
	m := newManager(t, h, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		req   Request
		want  error
		field string
	}{
		{Request{ReferenceID: "unknown"}, ErrUnknownReference, ""},
		{Request{}, nil, "reference_id"},
		{Request{ReferenceID: h.ref.ID, Mode: "sideways"}, nil, "mode"},
		{Request{ReferenceID: h.ref.ID, Level: "MEDIUM"}, nil, "liveness_level"},
	} {
		_, err := m.Create(ctx, tc.req)
		var fe *FieldError
		switch {
		case err == nil:
			t.Errorf("%+v accepted", tc.req)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%+v: %v, want %v", tc.req, err, tc.want)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%+v: %v, want a FieldError on %s", tc.req, err, tc.field)
		}
	}
}

// fullRecorder is an outbox at its bound.
type fullRecorder struct{ agentRecorder }

func (fullRecorder) Admit() error { return errors.New("outbox full") }

func TestManagerUnavailable(t *testing.T) {
	h := newHarness(t, withRunner(func(c *RunnerConfig) { c.Recorder = fullRecorder{} }))
	m := newManager(t, h, nil)
	tk, err := m.Create(context.Background(), Request{ReferenceID: h.ref.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(context.Background(), tk.ID, tk.Token); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("full outbox: %v, want ErrUnavailable", err)
	}
}
