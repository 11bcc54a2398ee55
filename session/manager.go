package session

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/result"
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Runner runs the sessions.
	Runner *Runner
	// TokenTTL is how long a ticket's token can start its session;
	// default 2 min. An unstarted session whose token expires ends Expired.
	TokenTTL time.Duration
	// SessionTimeout bounds a started session in wall time (positioning
	// has its own limit inside it); default 60 s.
	SessionTimeout time.Duration
	// Keep is how long a decided session stays readable (Get, Subscribe);
	// default 10 min.
	Keep time.Duration
	// MaxSessions bounds the sessions kept (decided ones are forgotten
	// oldest first, unstarted ones beyond it are refused); default 256.
	MaxSessions int
	// Ready, when set, reports whether the device can verify now (camera
	// streaming); an error refuses Start with ErrUnavailable.
	Ready func() error
	// Now is the wall clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Manager implements Sessions: tickets with single-use expiring tokens, one
// running session at a time (a second Start gets ErrBusy, which the API
// answers 409: there is no queue, the kiosk retries), event fan-out with
// replay, and forgetting decided sessions after a while.
type Manager struct {
	cfg ManagerConfig
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*entry
	running  *entry
	wg       sync.WaitGroup
	closed   bool
}

var _ Sessions = (*Manager)(nil)

// entry is one session's state, guarded by Manager.mu.
type entry struct {
	info   Info
	token  string
	used   bool
	cancel context.CancelCauseFunc
	events []Event
	// changed is closed and replaced whenever events grow or the session
	// is decided: subscribers wait on it.
	changed chan struct{}
	outcome *Outcome
}

// NewManager checks cfg and fills defaults.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Runner == nil {
		return nil, errors.New("session manager: no runner")
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 2 * time.Minute
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = time.Minute
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 10 * time.Minute
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 256
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg, log: cfg.Logger, sessions: map[string]*entry{}}, nil
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Create validates the request and returns a ticket.
func (m *Manager) Create(_ context.Context, req Request) (Ticket, error) {
	if req.ReferenceID == "" {
		return Ticket{}, &FieldError{Field: "reference_id", Msg: "must be set"}
	}
	if len(req.ReferenceID) > 1024 {
		return Ticket{}, &FieldError{Field: "reference_id", Msg: "longer than 1024 bytes"}
	}
	if len(req.Subject) > MaxSubjectLen {
		return Ticket{}, &FieldError{Field: "subject", Msg: fmt.Sprintf("longer than %d bytes", MaxSubjectLen)}
	}
	if req.Mode != "" && !req.Mode.Valid() {
		return Ticket{}, &FieldError{Field: "mode", Msg: fmt.Sprintf("%q: want dynamic or express", req.Mode)}
	}
	if req.Level != "" {
		if err := checkLevel(req.Level); err != nil {
			return Ticket{}, &FieldError{Field: "liveness_level", Msg: err.Error()}
		}
	}
	pol := m.cfg.Runner.cfg.Policy
	if req.Mode == "" {
		req.Mode = pol.Mode
	}
	if req.Level == "" {
		req.Level = pol.Level
	}
	if req.Mode == result.ModeDynamic && m.cfg.Runner.cfg.Player == nil {
		return Ticket{}, fmt.Errorf("%w: no display for dynamic mode", ErrUnavailable)
	}
	if _, err := m.cfg.Runner.cfg.References.Reference(req.ReferenceID); err != nil {
		if errors.Is(err, ErrUnknownReference) {
			return Ticket{}, err
		}
		return Ticket{}, fmt.Errorf("%w: enrolment store: %w", ErrUnavailable, err)
	}
	id, err := result.NewID()
	if err != nil {
		return Ticket{}, err
	}
	tok, err := newToken()
	if err != nil {
		return Ticket{}, err
	}
	now := m.cfg.Now()
	e := &entry{token: tok, changed: make(chan struct{}), info: Info{
		ID: id, State: StateIdle, Subject: req.Subject, ReferenceID: req.ReferenceID,
		Mode: req.Mode, Level: req.Level, CreatedAt: now.UTC(), ExpiresAt: now.Add(m.cfg.TokenTTL).UTC(),
	}}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Ticket{}, fmt.Errorf("%w: shutting down", ErrUnavailable)
	}
	m.sweepLocked(now)
	if len(m.sessions) >= m.cfg.MaxSessions {
		return Ticket{}, fmt.Errorf("%w: %d sessions pending", ErrUnavailable, len(m.sessions))
	}
	m.sessions[id] = e
	e.appendLocked(Event{Type: EventState, State: StateIdle, At: now.UTC()})
	return Ticket{ID: id, Token: tok, ExpiresAt: e.info.ExpiresAt}, nil
}

// Start uses the ticket's token and runs the session in the background.
// The token is consumed only when the session starts: ErrBusy and
// ErrUnavailable leave it usable until it expires.
func (m *Manager) Start(_ context.Context, id, token string) (Info, error) {
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	e, ok := m.sessions[id]
	if !ok {
		return Info{}, ErrNotFound
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(e.token)) != 1 {
		// A wrong token must not reveal whether the right one was used.
		return Info{}, fmt.Errorf("%w: token does not match", ErrTokenGone)
	}
	if e.used || e.info.State != StateIdle {
		return Info{}, fmt.Errorf("%w: already used", ErrTokenGone)
	}
	if !now.Before(e.info.ExpiresAt) {
		return Info{}, fmt.Errorf("%w: expired at %s", ErrTokenGone, e.info.ExpiresAt.Format(time.RFC3339))
	}
	if m.closed {
		return Info{}, fmt.Errorf("%w: shutting down", ErrUnavailable)
	}
	if m.running != nil {
		return Info{}, fmt.Errorf("%w: session %s", ErrBusy, m.running.info.ID)
	}
	if m.cfg.Ready != nil {
		if err := m.cfg.Ready(); err != nil {
			return Info{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	if err := m.cfg.Runner.cfg.Recorder.Admit(); err != nil {
		return Info{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	e.used = true
	e.info.StartedAt = now.UTC()
	m.running = e
	ctx, cancel := context.WithCancelCause(context.Background())
	ctx, cancelT := context.WithTimeoutCause(ctx, m.cfg.SessionTimeout, errTimeout)
	e.cancel = cancel
	req := Request{Subject: e.info.Subject, ReferenceID: e.info.ReferenceID, Mode: e.info.Mode, Level: e.info.Level}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel(nil)
		defer cancelT()
		out := m.cfg.Runner.Run(ctx, Job{Request: req, Emit: func(ev Event) { m.emit(e, ev) }})
		m.decide(e, out)
	}()
	return e.info, nil
}

// emit appends a runner event.
func (m *Manager) emit(e *entry, ev Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ev.At = m.cfg.Now().UTC()
	switch ev.Type {
	case EventState:
		e.info.State = ev.State
	case EventGuidance:
		e.info.Guidance = ev.Guidance
	}
	e.appendLocked(ev)
}

func (e *entry) appendLocked(ev Event) {
	ev.Seq = len(e.events) + 1
	e.events = append(e.events, ev)
	close(e.changed)
	e.changed = make(chan struct{})
}

// decide stores a finished session and tells its verdict.
func (m *Manager) decide(e *entry, out *Outcome) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running == e {
		m.running = nil
	}
	e.outcome = out
	v := out.Verdict
	e.info.State = StateDecided
	e.info.DecidedAt = m.cfg.Now().UTC()
	e.info.Guidance = ""
	e.info.Verdict = &v
	e.appendLocked(Event{Type: EventState, State: StateDecided, At: e.info.DecidedAt})
	e.appendLocked(Event{Type: EventVerdict, Verdict: &v, At: e.info.DecidedAt})
	m.log.Info("session decided", "id", e.info.ID, "status", v.Status, "reasons", v.Reasons, "result_id", v.ResultID)
}

// endUnstarted decides a session that never ran (expired or withdrawn):
// it is recorded like any other, so the hub sees it.
func (m *Manager) endUnstarted(e *entry, status result.Status, reason string) {
	e.used = true
	r := m.cfg.Runner
	rec := &result.Record{
		V: result.SchemaVersion, DeviceID: r.cfg.DeviceID, SiteID: r.cfg.SiteID,
		Subject: e.info.Subject, ReferenceID: e.info.ReferenceID, Mode: e.info.Mode,
		Status: status, Reasons: []string{reason}, Versions: r.cfg.Versions,
		Policy:   r.cfg.Policy.Snapshot(e.info.Mode, e.info.Level, r.steps(e.info.Mode), r.timeoutMS()),
		Timeline: []result.Event{{At: e.info.CreatedAt, Name: "session_created"}, {At: m.cfg.Now().UTC(), Name: "verdict", Detail: string(status)}},
	}
	if r.cfg.Guard != nil {
		rec.Guard = guardSummary(r.cfg.Guard.Last(), true)
	} else {
		rec.Guard = guardSummary(device.Report{}, false)
	}
	rec.CreatedAt = m.cfg.Now().UTC()
	out := &Outcome{Record: rec}
	id, err := result.NewID()
	if err == nil {
		rec.ID = id
		err = r.cfg.Recorder.Record(rec)
	}
	if err != nil {
		m.log.Error("session result not recorded", "id", e.info.ID, "err", err)
		out.Verdict = Verdict{Status: status, Reasons: rec.Reasons, Guard: rec.Guard}
	} else {
		out.Recorded = true
		out.Verdict = Verdict{ResultID: rec.ID, Status: status, Reasons: rec.Reasons, Guard: rec.Guard}
	}
	e.outcome = out
	v := out.Verdict
	e.info.State = StateDecided
	e.info.DecidedAt = rec.CreatedAt
	e.info.Verdict = &v
	e.appendLocked(Event{Type: EventState, State: StateDecided, At: e.info.DecidedAt})
	e.appendLocked(Event{Type: EventVerdict, Verdict: &v, At: e.info.DecidedAt})
}

// sweepLocked expires unstarted sessions whose token ran out and forgets
// decided sessions older than Keep.
func (m *Manager) sweepLocked(now time.Time) {
	for id, e := range m.sessions {
		switch {
		case e.info.State == StateIdle && !e.used && !now.Before(e.info.ExpiresAt):
			m.endUnstarted(e, result.StatusExpired, ReasonTokenExpired)
		case e.info.State == StateDecided && now.Sub(e.info.DecidedAt) > m.cfg.Keep:
			delete(m.sessions, id)
		}
	}
}

// Get reports a session.
func (m *Manager) Get(id string) (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(m.cfg.Now())
	e, ok := m.sessions[id]
	if !ok {
		return Info{}, ErrNotFound
	}
	return e.info, nil
}

// Outcome returns a decided session's record and timings (for glintctl,
// tests and benchmarks); ErrNotFound while undecided.
func (m *Manager) Outcome(id string) (*Outcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.sessions[id]
	if !ok || e.outcome == nil {
		return nil, ErrNotFound
	}
	return e.outcome, nil
}

// Subscribe streams the session's events after seq. The channel closes
// after the verdict event or when cancel is called.
func (m *Manager) Subscribe(id string, after int) (<-chan Event, func(), error) {
	m.mu.Lock()
	e, ok := m.sessions[id]
	m.mu.Unlock()
	if !ok {
		return nil, nil, ErrNotFound
	}
	out := make(chan Event, 16)
	done := make(chan struct{})
	var once sync.Once
	cancel := func() { once.Do(func() { close(done) }) }
	go func() {
		defer close(out)
		next := max(after, 0)
		for {
			m.mu.Lock()
			batch := append([]Event(nil), e.events[min(next, len(e.events)):]...)
			decided := e.info.State == StateDecided
			wait := e.changed
			m.mu.Unlock()
			for _, ev := range batch {
				select {
				case out <- ev:
					next = ev.Seq
				case <-done:
					return
				}
				if ev.Type == EventVerdict {
					return
				}
			}
			if decided && len(batch) == 0 {
				return // replaying after the verdict: nothing more will come
			}
			select {
			case <-wait:
			case <-done:
				return
			}
		}
	}()
	return out, cancel, nil
}

// Cancel stops a running session or withdraws an unstarted one. Cancelling
// a decided session is a no-op.
func (m *Manager) Cancel(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.sessions[id]
	if !ok {
		return ErrNotFound
	}
	switch {
	case e.info.State == StateDecided:
	case e.cancel != nil:
		e.cancel(errCancelled)
	default:
		m.endUnstarted(e, result.StatusNotFinished, ReasonCancelled)
	}
	return nil
}

// Busy reports whether a session is running.
func (m *Manager) Busy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running != nil
}

// Run sweeps expired tokens and old sessions every second until ctx ends,
// then stops the running session (Not Finished, SHUTDOWN) and waits for it.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.Close()
			return nil
		case <-t.C:
			m.mu.Lock()
			m.sweepLocked(m.cfg.Now())
			m.mu.Unlock()
		}
	}
}

// Close refuses new sessions, stops the running one and waits for it.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	if m.running != nil && m.running.cancel != nil {
		m.running.cancel(errShutdown)
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}
