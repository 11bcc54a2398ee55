package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/session"
)

// scriptedSessions is a session.Sessions whose sessions play a fixed
// script chosen by the subject: "approve", "decline" or "busy".
type scriptedSessions struct {
	mu   sync.Mutex
	reqs map[string]session.Request
	used map[string]bool
	n    int
}

func (s *scriptedSessions) Create(_ context.Context, req session.Request) (session.Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.ReferenceID == "unknown" {
		return session.Ticket{}, session.ErrUnknownReference
	}
	s.n++
	id := "sess-" + string(rune('0'+s.n))
	s.reqs[id] = req
	return session.Ticket{ID: id, Token: "t" + id, ExpiresAt: time.Now().Add(time.Minute)}, nil
}

func (s *scriptedSessions) Start(_ context.Context, id, token string) (session.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.reqs[id]
	if !ok {
		return session.Info{}, session.ErrNotFound
	}
	if s.used[id] || token != "t"+id {
		return session.Info{}, session.ErrTokenGone
	}
	if req.Subject == "busy" {
		return session.Info{}, session.ErrBusy
	}
	s.used[id] = true
	return session.Info{ID: id, State: session.StatePositioning}, nil
}

func (s *scriptedSessions) verdict(id string) *session.Verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reqs[id].Subject == "approve" {
		return &session.Verdict{ResultID: "r-" + id, Status: result.StatusApproved, Reasons: []string{},
			Scores: result.Scores{FaceSimilarity: 78.4, Liveness: 91.2, AntiSpoof: 97}, Flash: result.Flashmark{Steps: 8, Correlation: 0.93, LagMS: 66}}
	}
	return &session.Verdict{ResultID: "r-" + id, Status: result.StatusDeclined, Reasons: []string{"LIVENESS_NO_RESPONSE", "LIVENESS_FLAT"},
		Scores: result.Scores{FaceSimilarity: 80, Liveness: 4, AntiSpoof: 12}}
}

func (s *scriptedSessions) script(id string) []session.Event {
	evs := []session.Event{
		{Type: session.EventState, State: session.StatePositioning},
		{Type: session.EventGuidance, Guidance: session.GuidanceTooFar},
		{Type: session.EventGuidance, Guidance: session.GuidanceTooFar},
		{Type: session.EventState, State: session.StateChallenge},
		{Type: session.EventProgress, Progress: 0.5},
		{Type: session.EventProgress, Progress: 1},
		{Type: session.EventState, State: session.StateDecided},
		{Type: session.EventVerdict, Verdict: s.verdict(id)},
	}
	s.mu.Lock()
	if s.reqs[id].Subject == "silent" {
		evs = evs[:3] // a stream that ends without a verdict
	}
	s.mu.Unlock()
	for i := range evs {
		evs[i].Seq = i + 1
		evs[i].At = time.Now()
	}
	return evs
}

func (s *scriptedSessions) Get(id string) (session.Info, error) {
	s.mu.Lock()
	req, ok := s.reqs[id]
	s.mu.Unlock()
	if !ok {
		return session.Info{}, session.ErrNotFound
	}
	return session.Info{ID: id, State: session.StateDecided, Subject: req.Subject, ReferenceID: req.ReferenceID, Verdict: s.verdict(id)}, nil
}

func (s *scriptedSessions) Subscribe(id string, after int) (<-chan session.Event, func(), error) {
	if _, err := s.Get(id); err != nil {
		return nil, nil, err
	}
	ch := make(chan session.Event, 16)
	for _, ev := range s.script(id) {
		if ev.Seq > after {
			ch <- ev
		}
	}
	close(ch)
	return ch, func() {}, nil
}

func (s *scriptedSessions) Cancel(id string) error {
	_, err := s.Get(id)
	return err
}

// recordingSim is a session.SimControl remembering the last presentation.
type recordingSim struct {
	mu      sync.Mutex
	species []string
}

func (r *recordingSim) SetPresentation(species, face string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.species = append(r.species, species+"/"+face)
	return nil
}

func (r *recordingSim) Presentations() []string { return []string{"bona_fide", "print", "replay"} }

func (r *recordingSim) got() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.species, ",")
}

type streamingCamera struct{}

func (streamingCamera) Status() capture.Status { return capture.Status{State: capture.StateStreaming} }

// kioskDaemon serves the real kiosk API on a unix socket (and a TCP port
// with a token) in front of the scripted sessions and the given store.
func kioskDaemon(t *testing.T, store session.EnrolmentStore, sim ...session.SimControl) (sock, url, tokenFile string) {
	t.Helper()
	dir := t.TempDir()
	sock = filepath.Join(dir, "glintd.sock")
	tokenFile = filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("test-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := session.APIConfig{
		SocketPath: sock, TCPAddr: "127.0.0.1:0", Token: "test-token-0123456789", Camera: streamingCamera{},
		Sessions:   &scriptedSessions{reqs: map[string]session.Request{}, used: map[string]bool{}},
		Enrolments: store, Logger: slog.New(slog.DiscardHandler),
	}
	if len(sim) > 0 {
		cfg.SimControl = sim[0]
	}
	a, err := session.NewAPI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return sock, "http://" + a.TCPAddr().String(), tokenFile
}

func TestSessionStart(t *testing.T) {
	sock, url, tokenFile := kioskDaemon(t, nil)
	code, out, stderr := runCmd(t, "session", "start", "--subject", "approve", "--reference", "ref", "--socket", sock)
	if code != 0 {
		t.Fatalf("approve: exit %d\n%s%s", code, out, stderr)
	}
	for _, want := range []string{"state Challenge", "guidance TOO_FAR: move closer", "progress  50%", "verdict Approved",
		"face similarity 78.4  liveness 91.2  anti-spoof 97.0", "reasons   none", "flashmark 8 steps, correlation 0.93, lag 66 ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("approve output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "TOO_FAR") != 1 {
		t.Errorf("repeated guidance printed twice:\n%s", out)
	}

	code, out, _ = runCmd(t, "session", "start", "--subject", "decline", "--reference", "ref", "--url", url, "--token-file", tokenFile)
	if code != 1 || !strings.Contains(out, "verdict Declined") || !strings.Contains(out, "LIVENESS_NO_RESPONSE, LIVENESS_FLAT") {
		t.Errorf("decline over TCP: exit %d\n%s", code, out)
	}

	code, out, _ = runCmd(t, "session", "start", "--subject", "approve", "--reference", "ref", "--socket", sock, "--json")
	var info session.Info
	if err := json.Unmarshal([]byte(out), &info); code != 0 || err != nil || info.Verdict == nil || info.Verdict.Status != result.StatusApproved {
		t.Errorf("--json: exit %d, %v\n%s", code, err, out)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--subject", "busy", "--reference", "ref", "--socket", sock}, "409 busy"},
		{[]string{"--subject", "silent", "--reference", "ref", "--socket", sock}, "without a verdict"},
		{[]string{"--subject", "s", "--reference", "unknown", "--socket", sock}, "404 unknown_reference"},
		{[]string{"--subject", "s", "--reference", "r", "--url", url, "--token-file", filepath.Join(t.TempDir(), "none")}, "token file"},
		{[]string{"--subject", "s", "--reference", "r", "--url", url}, "--token-file"},
		{[]string{"--reference", "r", "--socket", sock}, "--subject"},
		{[]string{"--subject", "s", "--reference", "r", "--socket", filepath.Join(t.TempDir(), "no.sock")}, "glintd:"},
	} {
		code, _, stderr := runCmd(t, append([]string{"session", "start"}, tt.args...)...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
	// A wrong token on TCP is refused with 401.
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("wrong"), 0o600)
	if code, _, stderr := runCmd(t, "session", "start", "--subject", "s", "--reference", "r", "--url", url, "--token-file", bad); code != 2 || !strings.Contains(stderr, "401") {
		t.Errorf("wrong token: exit %d %q", code, stderr)
	}
}

// enrolStore opens a real enrolment store on the real models.
func enrolStore(t *testing.T) *session.Enrolments {
	t.Helper()
	models := requireDeps(t)
	rt, err := inference.NewRuntime(inference.RuntimeConfig{LibraryPath: filepath.Join(models, "lib", runtime.GOARCH, inference.LibraryName)})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := inference.New(rt, inference.Config{ModelsDir: models})
	if err != nil {
		rt.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); rt.Close() })
	key := filepath.Join(t.TempDir(), "enrolment.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := session.NewEnrolments(session.EnrolmentConfig{KeyFile: key}, t.TempDir(), eng, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEnrolCommand(t *testing.T) {
	store := enrolStore(t)
	sock, _, _ := kioskDaemon(t, store)
	astro := filepath.Join(repoRoot(t), ".cache", "faces", "skimage", "astronaut.png")

	// The whole photo: the face is too small for an enrolment portrait.
	code, out, stderr := runCmd(t, "enrol", "--subject", "astronaut", "--socket", sock, astro)
	if code != 1 || !strings.Contains(out, "portrait_eyes_too_close") {
		t.Fatalf("small face: exit %d\n%s%s", code, out, stderr)
	}
	// Cropped around the face and scaled up: accepted.
	code, out, stderr = runCmd(t, "enrol", "--subject", "astronaut", "--crop", "125,26,200", "--socket", sock, astro)
	if code != 0 {
		t.Fatalf("cropped: exit %d\n%s%s", code, out, stderr)
	}
	id := regexp.MustCompile(`reference_id ([0-9a-f-]{36})`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no reference_id in %q", out)
	}
	if _, err := store.Reference(id[1]); err != nil {
		t.Fatalf("not stored: %v", err)
	}
	code, out, _ = runCmd(t, "enrol", "get", id[1], "--socket", sock)
	var e session.Enrolment
	if err := json.Unmarshal([]byte(out), &e); code != 0 || err != nil || e.Subject != "astronaut" {
		t.Errorf("get: exit %d %s", code, out)
	}
	if code, _, stderr := runCmd(t, "enrol", "delete", id[1], "--socket", sock); code != 0 {
		t.Errorf("delete: exit %d %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, "enrol", "delete", id[1], "--socket", sock); code != 2 || !strings.Contains(stderr, "404 unknown_reference") {
		t.Errorf("delete again: exit %d %s", code, stderr)
	}
	for _, args := range [][]string{
		{"enrol", "--socket", sock, astro},
		{"enrol", "--subject", "s", "--socket", sock},
		{"enrol", "--subject", "s", "--crop", "1,2", "--socket", sock, astro},
		{"enrol", "--subject", "s", "--crop", "400,400,300", "--socket", sock, astro},
	} {
		if code, _, _ := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestSessionPresent(t *testing.T) {
	sim := &recordingSim{}
	sock, _, _ := kioskDaemon(t, nil, sim)
	if code, out, stderr := runCmd(t, "session", "present", "print", "--socket", sock); code != 0 || !strings.Contains(out, "print in front") {
		t.Fatalf("present: exit %d %s %s", code, out, stderr)
	}
	code, out, stderr := runCmd(t, "session", "start", "--subject", "approve", "--reference", "r", "--sim-presentation", "bona_fide", "--sim-face", "a.png", "--socket", sock)
	if code != 0 || !strings.Contains(out, "simulator: bona_fide") {
		t.Fatalf("start --sim-presentation: exit %d %s %s", code, out, stderr)
	}
	if got := sim.got(); got != "print/,bona_fide/a.png" {
		t.Errorf("simulator saw %q", got)
	}
	if code, _, stderr := runCmd(t, "session", "present", "hologram", "--socket", sock); code != 2 || !strings.Contains(stderr, "400 invalid_field") {
		t.Errorf("unknown species: exit %d %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, "session", "start", "--subject", "s", "--reference", "r", "--sim-face", "a.png", "--socket", sock); code != 2 || !strings.Contains(stderr, "--sim-presentation") {
		t.Errorf("--sim-face alone: exit %d %s", code, stderr)
	}
}
