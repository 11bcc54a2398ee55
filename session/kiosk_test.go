package session

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/result"
)

// fakeSessions is a Sessions behind which the tests script events, so the
// HTTP layer is tested without the runner. It keeps the contract: tokens
// are single-use and expire, one session runs at a time, Subscribe replays
// after a sequence number and closes after the verdict.
type fakeSessions struct {
	mu       sync.Mutex
	now      time.Time
	ttl      time.Duration
	sessions map[string]*fakeSession
	n        int
	running  string
	// failCreate, when set, is what Create returns.
	failCreate error
}

type fakeSession struct {
	info    Info
	token   string
	used    bool
	events  []Event
	changed chan struct{}
}

func newFakeSessions() *fakeSessions {
	return &fakeSessions{now: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC), ttl: time.Minute, sessions: map[string]*fakeSession{}}
}

func (f *fakeSessions) Create(_ context.Context, req Request) (Ticket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failCreate != nil {
		return Ticket{}, f.failCreate
	}
	f.n++
	id := fmt.Sprintf("s%d", f.n)
	s := &fakeSession{token: "tok-" + id, changed: make(chan struct{}), info: Info{
		ID: id, State: StateIdle, Subject: req.Subject, ReferenceID: req.ReferenceID, Mode: result.ModeDynamic,
		CreatedAt: f.now, ExpiresAt: f.now.Add(f.ttl),
	}}
	f.sessions[id] = s
	f.appendLocked(s, Event{Type: EventState, State: StateIdle})
	return Ticket{ID: id, Token: s.token, ExpiresAt: s.info.ExpiresAt}, nil
}

func (f *fakeSessions) Start(_ context.Context, id, token string) (Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return Info{}, ErrNotFound
	}
	if s.used || token != s.token || !f.now.Before(s.info.ExpiresAt) {
		return Info{}, ErrTokenGone
	}
	if f.running != "" {
		return Info{}, ErrBusy
	}
	s.used = true
	f.running = id
	s.info.State = StatePositioning
	s.info.StartedAt = f.now
	f.appendLocked(s, Event{Type: EventState, State: StatePositioning})
	return s.info, nil
}

func (f *fakeSessions) Get(id string) (Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return Info{}, ErrNotFound
	}
	return s.info, nil
}

func (f *fakeSessions) appendLocked(s *fakeSession, ev Event) {
	ev.Seq = len(s.events) + 1
	ev.At = f.now
	s.events = append(s.events, ev)
	close(s.changed)
	s.changed = make(chan struct{})
}

// emit adds an event to a session, as the runner would.
func (f *fakeSessions) emit(id string, ev Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sessions[id]
	if ev.Type == EventVerdict {
		s.info.State, s.info.Verdict = StateDecided, ev.Verdict
		if f.running == id {
			f.running = ""
		}
	}
	f.appendLocked(s, ev)
}

func (f *fakeSessions) Subscribe(id string, after int) (<-chan Event, func(), error) {
	f.mu.Lock()
	s, ok := f.sessions[id]
	f.mu.Unlock()
	if !ok {
		return nil, nil, ErrNotFound
	}
	out := make(chan Event)
	done := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(out)
		next := after
		for {
			f.mu.Lock()
			batch := append([]Event(nil), s.events[min(next, len(s.events)):]...)
			wait := s.changed
			f.mu.Unlock()
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
			select {
			case <-wait:
			case <-done:
				return
			}
		}
	}()
	return out, func() { once.Do(func() { close(done) }) }, nil
}

func (f *fakeSessions) Cancel(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return ErrNotFound
	}
	if s.info.State != StateDecided {
		s.info.State = StateDecided
		s.info.Verdict = &Verdict{Status: result.StatusNotFinished, Reasons: []string{"CANCELLED"}}
		if f.running == id {
			f.running = ""
		}
		f.appendLocked(s, Event{Type: EventVerdict, Verdict: s.info.Verdict})
	}
	return nil
}

// fakeSim is a SimControl recording the last switch.
type fakeSim struct {
	mu            sync.Mutex
	species, face string
}

func (s *fakeSim) SetPresentation(species, face string) error {
	if face == "nobody.png" {
		return errors.New("no face nobody.png")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.species, s.face = species, face
	return nil
}

func (s *fakeSim) Presentations() []string { return []string{"bona_fide", "print", "replay"} }

// kioskServer serves a fresh API with the fake session manager on a unix
// socket and returns a client for it.
func kioskServer(t *testing.T, cfg APIConfig) (*API, *http.Client) {
	t.Helper()
	cfg.SocketPath = filepath.Join(t.TempDir(), "glintd.sock")
	if cfg.Camera == nil {
		cfg.Camera = &fakeCamera{st: streaming}
	}
	a := newTestAPI(t, cfg)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, a) })
	c := unixClient(cfg.SocketPath)
	c.Timeout = 0 // event streams; each test bounds its own waits
	return a, c
}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (r reply) apiError(t *testing.T) APIError {
	t.Helper()
	var e APIError
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e
}

func do(t *testing.T, c *http.Client, method, path, ctype string, body io.Reader, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, "http://glintd"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func postJSON(t *testing.T, c *http.Client, path, body string, hdr ...string) reply {
	t.Helper()
	return do(t, c, "POST", path, "application/json", strings.NewReader(body), hdr...)
}

func createTicket(t *testing.T, c *http.Client) Ticket {
	t.Helper()
	r := postJSON(t, c, "/v1/sessions", `{"subject":"customer-7","reference_id":"ref-1"}`)
	if r.code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	var tk Ticket
	if err := json.Unmarshal(r.body, &tk); err != nil {
		t.Fatal(err)
	}
	if tk.ID == "" || tk.Token == "" || tk.ExpiresAt.IsZero() || r.header.Get("Location") != "/v1/sessions/"+tk.ID {
		t.Fatalf("ticket %+v, Location %q", tk, r.header.Get("Location"))
	}
	return tk
}

// sse reads server-sent events from a stream.
type sse struct {
	resp *http.Response
	br   *bufio.Reader
}

type sseEvent struct {
	id, typ string
	ev      Event
}

func openEvents(t *testing.T, c *http.Client, id string, hdr ...string) *sse {
	t.Helper()
	id, query, _ := strings.Cut(id, "?")
	url := "http://glintd/v1/sessions/" + id + "/events"
	if query != "" {
		url += "?" + query
	}
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("events: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return &sse{resp: resp, br: bufio.NewReader(resp.Body)}
}

// next reads the next event, failing the test after 10 s (an unflushed
// event never arrives); io.EOF when the stream ended.
func (s *sse) next(t *testing.T) (sseEvent, error) {
	t.Helper()
	type res struct {
		e   sseEvent
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var e sseEvent
		var data string
		for {
			line, err := s.br.ReadString('\n')
			if err != nil {
				ch <- res{err: err}
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if data != "" {
					ch <- res{e: e, err: json.Unmarshal([]byte(data), &e.ev)}
					return
				}
			case strings.HasPrefix(line, "id: "):
				e.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				data = line[6:]
			}
		}
	}()
	select {
	case r := <-ch:
		return r.e, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s (not flushed?)")
	}
	return sseEvent{}, nil
}

func TestKioskSessionFlow(t *testing.T) {
	fs := newFakeSessions()
	_, c := kioskServer(t, APIConfig{Sessions: fs})
	tk := createTicket(t, c)

	// Start with the token in the body; Get reports the running session.
	r := postJSON(t, c, "/v1/sessions/"+tk.ID+"/start", `{"token":"`+tk.Token+`"}`)
	if r.code != http.StatusAccepted {
		t.Fatalf("start: %d %s", r.code, r.body)
	}
	r = do(t, c, "GET", "/v1/sessions/"+tk.ID, "", nil)
	var info Info
	if err := json.Unmarshal(r.body, &info); err != nil || r.code != 200 || info.State != StatePositioning || info.Subject != "customer-7" {
		t.Fatalf("get: %d %s", r.code, r.body)
	}

	// The stream replays what happened, then each event as it comes: the
	// next event is emitted only after the previous one was read, so an
	// unflushed stream fails here.
	s := openEvents(t, c, tk.ID)
	for _, want := range []State{StateIdle, StatePositioning} {
		e, err := s.next(t)
		if err != nil || e.typ != "state" || e.ev.State != want {
			t.Fatalf("replayed %+v, %v; want state %s", e, err, want)
		}
	}
	script := []Event{
		{Type: EventGuidance, Guidance: GuidanceTooFar},
		{Type: EventState, State: StateChallenge},
		{Type: EventProgress, Progress: 0.5},
		{Type: EventVerdict, Verdict: &Verdict{ResultID: "r1", Status: result.StatusApproved, Reasons: []string{}, Scores: result.Scores{FaceSimilarity: 81, Liveness: 93}}},
	}
	for i, ev := range script {
		fs.emit(tk.ID, ev)
		e, err := s.next(t)
		if err != nil {
			t.Fatal(err)
		}
		if e.typ != string(ev.Type) || e.id != strconv.Itoa(i+3) || e.ev.Seq != i+3 {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	if _, err := s.next(t); err != io.EOF {
		t.Fatalf("stream after the verdict: %v, want EOF", err)
	}

	// Resume: Last-Event-ID (or ?after=) gives only what came after.
	s = openEvents(t, c, tk.ID, "Last-Event-ID", "4")
	var got []string
	for {
		e, err := s.next(t)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.id)
	}
	if strings.Join(got, ",") != "5,6" {
		t.Errorf("resumed after 4: %v", got)
	}
	s = openEvents(t, c, tk.ID+"?after=5")
	if e, err := s.next(t); err != nil || e.typ != "verdict" || e.ev.Verdict.Status != result.StatusApproved {
		t.Errorf("after=5: %+v %v", e, err)
	}

	// Reused token: 410.
	r = postJSON(t, c, "/v1/sessions/"+tk.ID+"/start", "", "X-Session-Token", tk.Token)
	if r.code != http.StatusGone || r.apiError(t).Code != CodeTokenGone {
		t.Errorf("reused token: %d %s", r.code, r.body)
	}
	// Cancel: 204; unknown: 404.
	if r := do(t, c, "DELETE", "/v1/sessions/"+tk.ID, "", nil); r.code != http.StatusNoContent {
		t.Errorf("delete: %d %s", r.code, r.body)
	}
	for _, p := range []string{"/v1/sessions/nope", "/v1/sessions/nope/events"} {
		if r := do(t, c, "GET", p, "", nil); r.code != http.StatusNotFound || r.apiError(t).Code != CodeSessionNotFound {
			t.Errorf("GET %s: %d %s", p, r.code, r.body)
		}
	}
	if r := do(t, c, "DELETE", "/v1/sessions/nope", "", nil); r.code != http.StatusNotFound {
		t.Errorf("DELETE unknown: %d", r.code)
	}
}

func TestKioskBusyAndExpired(t *testing.T) {
	fs := newFakeSessions()
	_, c := kioskServer(t, APIConfig{Sessions: fs})
	a, b := createTicket(t, c), createTicket(t, c)
	if r := postJSON(t, c, "/v1/sessions/"+a.ID+"/start", "", "X-Session-Token", a.Token); r.code != http.StatusAccepted {
		t.Fatalf("start a: %d %s", r.code, r.body)
	}
	// A second session while one runs: 409, and its token stays usable.
	r := postJSON(t, c, "/v1/sessions/"+b.ID+"/start", "", "X-Session-Token", b.Token)
	if r.code != http.StatusConflict || r.apiError(t).Code != CodeBusy {
		t.Fatalf("second session: %d %s", r.code, r.body)
	}
	fs.emit(a.ID, Event{Type: EventVerdict, Verdict: &Verdict{Status: result.StatusDeclined}})
	if r := postJSON(t, c, "/v1/sessions/"+b.ID+"/start", "", "X-Session-Token", b.Token); r.code != http.StatusAccepted {
		t.Fatalf("b after a decided: %d %s", r.code, r.body)
	}
	// Expired token: 410.
	e := createTicket(t, c)
	fs.mu.Lock()
	fs.now = fs.now.Add(2 * fs.ttl)
	fs.mu.Unlock()
	r = postJSON(t, c, "/v1/sessions/"+e.ID+"/start", "", "X-Session-Token", e.Token)
	if r.code != http.StatusGone || r.apiError(t).Code != CodeTokenGone {
		t.Errorf("expired token: %d %s", r.code, r.body)
	}
	// A wrong token is as good as a used one: 410.
	if r := postJSON(t, c, "/v1/sessions/"+e.ID+"/start", "", "X-Session-Token", "guess"); r.code != http.StatusGone {
		t.Errorf("wrong token: %d", r.code)
	}
}

func TestKioskManagerErrors(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int
		want string
	}{
		{fmt.Errorf("%w: abc", ErrUnknownReference), http.StatusNotFound, CodeUnknownReference},
		{fmt.Errorf("%w: camera down", ErrUnavailable), http.StatusServiceUnavailable, CodeUnavailable},
		{&FieldError{Field: "mode", Msg: "no display for dynamic mode"}, http.StatusBadRequest, CodeInvalidField},
		{errors.New("disk on fire"), http.StatusInternalServerError, CodeInternal},
	} {
		fs := newFakeSessions()
		fs.failCreate = tt.err
		_, c := kioskServer(t, APIConfig{Sessions: fs})
		r := postJSON(t, c, "/v1/sessions", `{"subject":"s","reference_id":"r"}`)
		if r.code != tt.code || r.apiError(t).Code != tt.want {
			t.Errorf("%v: %d %s", tt.err, r.code, r.body)
		}
		if tt.code == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	// No session manager at all: 503 on every session route.
	_, c := kioskServer(t, APIConfig{})
	for _, p := range []string{"/v1/sessions", "/v1/sessions/x/start"} {
		if r := postJSON(t, c, p, `{}`); r.code != http.StatusServiceUnavailable {
			t.Errorf("%s without sessions: %d", p, r.code)
		}
	}
	if r := postJSON(t, c, "/v1/enrollments", `{}`); r.code != http.StatusServiceUnavailable {
		t.Errorf("enrol without a store: %d", r.code)
	}
}

func TestKioskBadRequests(t *testing.T) {
	_, c := kioskServer(t, APIConfig{Sessions: newFakeSessions(), SimControl: &fakeSim{}})
	for _, tt := range []struct {
		name, path, ctype, body string
		hdr                     []string
		code                    int
		errCode, field          string
	}{
		{"malformed", "/v1/sessions", "application/json", `{"subject":`, nil, 400, CodeMalformedBody, ""},
		{"syntax", "/v1/sessions", "application/json", `{"subject" "x"}`, nil, 400, CodeMalformedBody, ""},
		{"empty", "/v1/sessions", "application/json", ``, nil, 400, CodeMalformedBody, ""},
		{"not an object", "/v1/sessions", "application/json", `[1,2]`, nil, 400, CodeMalformedBody, ""},
		{"trailing", "/v1/sessions", "application/json", `{"subject":"s","reference_id":"r"} {}`, nil, 400, CodeMalformedBody, ""},
		{"unknown field", "/v1/sessions", "application/json", `{"subject":"s","reference_id":"r","colour":"red"}`, nil, 400, CodeUnknownField, "colour"},
		{"wrong type", "/v1/sessions", "application/json", `{"subject":7,"reference_id":"r"}`, nil, 400, CodeInvalidField, "subject"},
		{"no subject", "/v1/sessions", "application/json", `{"reference_id":"r"}`, nil, 400, CodeInvalidField, "subject"},
		{"no reference", "/v1/sessions", "application/json", `{"subject":"s"}`, nil, 400, CodeMissingField, "reference_id"},
		{"bad mode", "/v1/sessions", "application/json", `{"subject":"s","reference_id":"r","mode":"turbo"}`, nil, 400, CodeInvalidField, "mode"},
		{"bad level", "/v1/sessions", "application/json", `{"subject":"s","reference_id":"r","liveness_level":"lax"}`, nil, 400, CodeInvalidField, "liveness_level"},
		{"control char subject", "/v1/sessions", "application/json", `{"subject":"a\u0007","reference_id":"r"}`, nil, 400, CodeInvalidField, "subject"},
		{"text/plain", "/v1/sessions", "text/plain", `{"subject":"s","reference_id":"r"}`, nil, 415, CodeUnsupportedMedia, ""},
		{"start without token", "/v1/sessions/s1/start", "", ``, nil, 400, CodeMissingField, "token"},
		{"start unknown field", "/v1/sessions/s1/start", "application/json", `{"tokn":"x"}`, nil, 400, CodeUnknownField, "tokn"},
		{"sim unknown species", "/v1/sim/presentation", "application/json", `{"species":"hologram"}`, nil, 400, CodeInvalidField, "species"},
		{"sim no species", "/v1/sim/presentation", "application/json", `{}`, nil, 400, CodeMissingField, "species"},
		{"sim bad face", "/v1/sim/presentation", "application/json", `{"species":"print","face":"nobody.png"}`, nil, 400, CodeInvalidField, "face"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, c, "POST", tt.path, tt.ctype, strings.NewReader(tt.body), tt.hdr...)
			e := r.apiError(t)
			if r.code != tt.code || e.Code != tt.errCode || e.Field != tt.field || e.Error == "" {
				t.Errorf("%d %+v, want %d %s field %q", r.code, e, tt.code, tt.errCode, tt.field)
			}
		})
	}
	r := do(t, c, "GET", "/v1/sessions/s1/events", "", nil, "Last-Event-ID", "-3")
	if e := r.apiError(t); r.code != 400 || e.Field != "Last-Event-ID" {
		t.Errorf("bad Last-Event-ID: %d %+v", r.code, e)
	}
	// Oversized session body: 413.
	big := `{"subject":"` + strings.Repeat("a", maxJSONBody) + `","reference_id":"r"}`
	if r := postJSON(t, c, "/v1/sessions", big); r.code != http.StatusRequestEntityTooLarge || r.apiError(t).Code != CodeTooLarge {
		t.Errorf("oversized body: %d %s", r.code, r.body)
	}
}

func TestKioskSimPresentation(t *testing.T) {
	sim := &fakeSim{}
	_, c := kioskServer(t, APIConfig{Sessions: newFakeSessions(), SimControl: sim})
	r := do(t, c, "GET", "/v1/sim/presentation", "", nil)
	if r.code != 200 || !strings.Contains(string(r.body), `"replay"`) {
		t.Fatalf("list: %d %s", r.code, r.body)
	}
	if r := postJSON(t, c, "/v1/sim/presentation", `{"species":"print","face":"astronaut.png"}`); r.code != 200 {
		t.Fatalf("set: %d %s", r.code, r.body)
	}
	sim.mu.Lock()
	if sim.species != "print" || sim.face != "astronaut.png" {
		t.Errorf("simulator got %q %q", sim.species, sim.face)
	}
	sim.mu.Unlock()
	// Without a simulator the route does not exist.
	_, c2 := kioskServer(t, APIConfig{Sessions: newFakeSessions()})
	if r := postJSON(t, c2, "/v1/sim/presentation", `{"species":"print"}`); r.code != http.StatusNotFound {
		t.Errorf("sim route without a simulator: %d", r.code)
	}
}

func TestKioskShutdownEndsStreams(t *testing.T) {
	fs := newFakeSessions()
	a, c := kioskServer(t, APIConfig{Sessions: fs})
	tk := createTicket(t, c)
	s := openEvents(t, c, tk.ID)
	if _, err := s.next(t); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an open stream: %v", err)
	}
	if _, err := s.next(t); err == nil {
		t.Error("stream still open after Shutdown")
	}
}

func TestKioskTCPBearer(t *testing.T) {
	a := newTestAPI(t, APIConfig{TCPAddr: "127.0.0.1:0", Token: "kiosk-token-0123456789", Camera: &fakeCamera{st: streaming}, Sessions: newFakeSessions()})
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, a)
	url := "http://" + a.TCPAddr().String() + "/v1/sessions"
	for _, tt := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer nope", 401}, {"Bearer kiosk-token-0123456789", 201}} {
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"subject":"s","reference_id":"r"}`))
		req.Header.Set("Content-Type", "application/json")
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%q: %d %s", tt.auth, resp.StatusCode, b)
		}
		if tt.want == 401 && (!strings.Contains(string(b), CodeUnauthorized) || resp.Header.Get("WWW-Authenticate") == "") {
			t.Errorf("401 body %s", b)
		}
	}
}

// multipartBody builds an enrolment upload.
func multipartBody(t testing.TB, fields map[string]string, portrait []byte) (string, *bytes.Buffer) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if portrait != nil {
		fw, err := mw.CreateFormFile("portrait", "portrait.png")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(portrait)
	}
	mw.Close()
	return mw.FormDataContentType(), &b
}

func TestKioskEnrolments(t *testing.T) {
	store := newTestStore(t, EnrolmentConfig{})
	a, c := kioskServer(t, APIConfig{Sessions: newFakeSessions(), Enrolments: store})
	portrait := validPortrait(t)

	// Multipart upload.
	ct, body := multipartBody(t, map[string]string{"subject": "customer-9"}, portrait)
	r := do(t, c, "POST", "/v1/enrollments", ct, body)
	if r.code != http.StatusCreated {
		t.Fatalf("multipart enrol: %d %s", r.code, r.body)
	}
	var e Enrolment
	if err := json.Unmarshal(r.body, &e); err != nil || e.Subject != "customer-9" || e.TemplateDims != 1024 || r.header.Get("Location") != "/v1/enrollments/"+e.ReferenceID {
		t.Fatalf("enrolment %s", r.body)
	}
	if strings.Contains(string(r.body), "template\"") {
		t.Errorf("template leaked: %s", r.body)
	}
	// JSON upload.
	js, _ := json.Marshal(enrolBody{Subject: "customer-10", Portrait: base64.StdEncoding.EncodeToString(portrait)})
	r = postJSON(t, c, "/v1/enrollments", string(js))
	var e2 Enrolment
	if err := json.Unmarshal(r.body, &e2); r.code != http.StatusCreated || err != nil || e2.ReferenceID == e.ReferenceID {
		t.Fatalf("json enrol: %d %s", r.code, r.body)
	}
	// Metadata; deletion (data-subject request); then 404.
	r = do(t, c, "GET", "/v1/enrollments/"+e.ReferenceID, "", nil)
	var got Enrolment
	if err := json.Unmarshal(r.body, &got); r.code != 200 || err != nil || got != e {
		t.Errorf("get: %d %s", r.code, r.body)
	}
	if r := do(t, c, "DELETE", "/v1/enrollments/"+e.ReferenceID, "", nil); r.code != http.StatusNoContent {
		t.Errorf("delete: %d %s", r.code, r.body)
	}
	if _, err := store.Reference(e.ReferenceID); !errors.Is(err, ErrUnknownReference) {
		t.Errorf("template still there after delete: %v", err)
	}
	for _, m := range []string{"GET", "DELETE"} {
		r := do(t, c, m, "/v1/enrollments/"+e.ReferenceID, "", nil)
		if r.code != http.StatusNotFound || r.apiError(t).Code != CodeUnknownReference {
			t.Errorf("%s after delete: %d %s", m, r.code, r.body)
		}
	}
	if r := do(t, c, "GET", "/v1/enrollments/not-an-id", "", nil); r.code != http.StatusNotFound {
		t.Errorf("malformed id: %d", r.code)
	}

	// Refusals: 422 with the portrait code, 400 naming the field, 413.
	noFace := cropPNG(t, registryPhoto(t, "skimage/astronaut.png"), 380, 380, 120, 400)
	// A valid PNG padded to one byte over the limit: just over, so that
	// the server reads the whole upload before it answers.
	tooBig := append(append([]byte{}, portrait...), make([]byte, inference.MaxPortraitBytes+1-len(portrait))...)
	for _, tt := range []struct {
		name       string
		fields     map[string]string
		portrait   []byte
		code       int
		errCode    string
		field      string
		rawJSON    string
		rawCT      string
		rawPayload string
	}{
		{name: "no face", fields: map[string]string{"subject": "x"}, portrait: noFace, code: 422, errCode: string(inference.CodeNoFace), field: "portrait"},
		{name: "not an image", fields: map[string]string{"subject": "x"}, portrait: []byte("GIF89a"), code: 422, errCode: string(inference.CodeFormat), field: "portrait"},
		{name: "small face", fields: map[string]string{"subject": "x"}, portrait: registryPhoto(t, "skimage/astronaut.png"), code: 422, errCode: string(inference.CodeEyesTooClose), field: "portrait"},
		{name: "unknown part", fields: map[string]string{"subject": "x", "nickname": "y"}, portrait: portrait, code: 400, errCode: CodeUnknownField, field: "nickname"},
		{name: "no portrait", fields: map[string]string{"subject": "x"}, code: 400, errCode: CodeMissingField, field: "portrait"},
		{name: "no subject", fields: map[string]string{}, portrait: portrait, code: 400, errCode: CodeMissingField, field: "subject"},
		{name: "bad subject", fields: map[string]string{"subject": "tab\there"}, portrait: portrait, code: 400, errCode: CodeInvalidField, field: "subject"},
		{name: "oversized multipart", fields: map[string]string{"subject": "x"}, portrait: tooBig, code: 413, errCode: string(inference.CodeTooLarge), field: "portrait"},
		{name: "json unknown field", rawJSON: `{"subject":"x","portrait":"AAAA","photo":"x"}`, code: 400, errCode: CodeUnknownField, field: "photo"},
		{name: "json bad base64", rawJSON: `{"subject":"x","portrait":"***"}`, code: 400, errCode: CodeInvalidField, field: "portrait"},
		{name: "json oversized portrait", rawJSON: `{"subject":"x","portrait":"` + base64.StdEncoding.EncodeToString(tooBig) + `"}`, code: 413, errCode: string(inference.CodeTooLarge), field: "portrait"},
		{name: "json oversized body", rawJSON: `{"subject":"x","portrait":"` + strings.Repeat("A", int(maxEnrolJSONBody)) + `"}`, code: 413, errCode: CodeTooLarge},
		{name: "wrong media type", rawCT: "image/png", rawPayload: string(portrait), code: 415, errCode: CodeUnsupportedMedia},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r reply
			switch {
			case tt.rawJSON != "":
				r = postJSON(t, c, "/v1/enrollments", tt.rawJSON)
			case tt.rawCT != "":
				r = do(t, c, "POST", "/v1/enrollments", tt.rawCT, strings.NewReader(tt.rawPayload))
			default:
				ct, body := multipartBody(t, tt.fields, tt.portrait)
				r = do(t, c, "POST", "/v1/enrollments", ct, body)
			}
			e := r.apiError(t)
			if r.code != tt.code || e.Code != tt.errCode || e.Field != tt.field {
				t.Errorf("%d %+v, want %d %s field %q", r.code, e, tt.code, tt.errCode, tt.field)
			}
		})
	}
	if n, _ := store.Count(); n != 1 {
		t.Errorf("%d enrolments stored, want 1 (the JSON one)", n)
	}

	// The metrics saw it all.
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`glint_enrolments_total{outcome="created"} 2`,
		`glint_enrolments_total{outcome="deleted"} 1`,
		`glint_enrolment_portraits_rejected_total{code="portrait_no_face"} 1`,
		`glint_enrolments 1`,
		`glint_api_requests_total{code="201",route="POST /v1/enrollments"} 2`,
		`glint_api_requests_total{code="413",route="POST /v1/enrollments"} 3`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestKioskUnknownReference(t *testing.T) {
	// The session manager reports the store's ErrUnknownReference: 404
	// naming reference_id.
	store := newTestStore(t, EnrolmentConfig{})
	fs := newFakeSessions()
	fs.failCreate = func() error { _, err := store.Reference("0193a5b0-7e1f-7c3a-9b2d-5e6f70818293"); return err }()
	_, c := kioskServer(t, APIConfig{Sessions: fs, Enrolments: store})
	r := postJSON(t, c, "/v1/sessions", `{"subject":"s","reference_id":"0193a5b0-7e1f-7c3a-9b2d-5e6f70818293"}`)
	if e := r.apiError(t); r.code != http.StatusNotFound || e.Code != CodeUnknownReference || e.Field != "reference_id" {
		t.Errorf("%d %+v", r.code, e)
	}
}

// acceptAllStore is an EnrolmentStore that accepts any portrait: for
// fuzzing the upload parsing without the models.
type acceptAllStore struct{}

func (acceptAllStore) Enrol(_ context.Context, subject string, portrait []byte) (Enrolment, error) {
	if err := CheckSubject(subject); err != nil {
		return Enrolment{}, err
	}
	return Enrolment{ReferenceID: "x", Subject: subject, TemplateDims: len(portrait)}, nil
}
func (acceptAllStore) Enrolment(string) (Enrolment, error) { return Enrolment{}, ErrUnknownReference }
func (acceptAllStore) Delete(string) error                 { return ErrUnknownReference }

// FuzzKioskBodies: no request body makes the kiosk routes panic or answer
// 500, and every refusal is a JSON error with a code.
func FuzzKioskBodies(f *testing.F) {
	a, err := NewAPI(APIConfig{SocketPath: "unused", Camera: &fakeCamera{}, Sessions: newFakeSessions(), Enrolments: acceptAllStore{}, Logger: discardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	ct, body := multipartBody(f, map[string]string{"subject": "s"}, []byte("\x89PNG"))
	f.Add("/v1/sessions", "application/json", []byte(`{"subject":"s","reference_id":"r"}`))
	f.Add("/v1/sessions/s1/start", "application/json", []byte(`{"token":"x"}`))
	f.Add("/v1/enrollments", "application/json", []byte(`{"subject":"s","portrait":"AAAA"}`))
	f.Add("/v1/enrollments", ct, body.Bytes())
	f.Fuzz(func(t *testing.T, path, ctype string, body []byte) {
		switch path {
		case "/v1/sessions", "/v1/sessions/s1/start", "/v1/enrollments":
		default:
			return
		}
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e APIError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" {
				t.Fatalf("%s: %d with body %q", path, rec.Code, rec.Body)
			}
		}
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
