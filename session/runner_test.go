package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sim"
	"github.com/glintdev/glint/sync/agent"
)

// agentRecorder adapts the real sync agent (device key, outbox) as glintd
// does.
type agentRecorder struct{ a *agent.Agent }

func (r agentRecorder) Admit() error { return r.a.Admit() }
func (r agentRecorder) Record(rec *result.Record) error {
	_, err := r.a.Record(rec)
	return err
}

// refs is a fixed enrolment table (the enrolment store is tested on its
// own; here only the template matters).
type refs map[string]Reference

func (m refs) Reference(id string) (Reference, error) {
	r, ok := m[id]
	if !ok {
		return Reference{}, fmt.Errorf("%w: %s", ErrUnknownReference, id)
	}
	return r, nil
}

// templates caches the enrolment template of each photo, made as the
// enrolment store makes it: the full-range engine on the photo.
var templates sync.Map

// enrolPhoto embeds the largest face of a photo with the full-range engine.
func enrolPhoto(t testing.TB, path string) Reference {
	t.Helper()
	if v, ok := templates.Load(path); ok {
		return v.(Reference)
	}
	eng := testModels(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	im, _, err := inference.DecodeImage(b)
	if err != nil {
		t.Fatal(err)
	}
	faces, err := eng.Analyze(im)
	if err != nil || len(faces) == 0 {
		t.Fatalf("enrol %s: %d faces, %v", path, len(faces), err)
	}
	tpl, err := eng.Embed(im, faces[0])
	if err != nil {
		t.Fatal(err)
	}
	ref := Reference{ID: "ref-" + filepath.Base(path), Subject: "subject-1", Model: eng.Config().Embedding, CreatedAt: time.Now(), Template: tpl}
	templates.Store(path, ref)
	return ref
}

// testPhoto is the face the simulator shows in these tests: skimage's
// astronaut (frontal, one face).
func testPhoto(t testing.TB) string {
	t.Helper()
	return requireFile(t, filepath.Join(repoRoot(t), ".cache", "faces", "skimage", "astronaut.png"), "registry face photos")
}

// harness is a runner on the simulator's virtual clock with the real
// models, the real signing agent and the real device guard.
type harness struct {
	rig    *sim.Rig
	clock  *sim.VirtualClock
	agent  *agent.Agent
	runner *Runner
	ref    Reference
	guard  *device.Monitor
	// frames wraps the rig per session (camera-loss tests).
	frames func(capture.Source) FrameStream
}

type harnessOpt func(*harnessConfig)

type harnessConfig struct {
	params    *sim.Params
	species   sim.Species
	runner    func(*RunnerConfig)
	tampered  bool
	frames    func(capture.Source) FrameStream
	retention bool
}

func withParams(f func(*sim.Params)) harnessOpt {
	return func(c *harnessConfig) {
		p := sim.DefaultRigParams()
		f(&p)
		c.params = &p
	}
}

func withSpecies(sp sim.Species) harnessOpt { return func(c *harnessConfig) { c.species = sp } }
func withRunner(f func(*RunnerConfig)) harnessOpt {
	return func(c *harnessConfig) { c.runner = f }
}
func withTamper() harnessOpt { return func(c *harnessConfig) { c.tampered = true } }
func withFrames(f func(capture.Source) FrameStream) harnessOpt {
	return func(c *harnessConfig) { c.frames = f }
}

func newHarness(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	var hc harnessConfig
	for _, o := range opts {
		o(&hc)
	}
	eng := testEngine(t)
	photo := testPhoto(t)
	ref := enrolPhoto(t, photo)
	clock := sim.NewVirtualClock(10 * time.Second)
	rig, err := sim.NewRig(sim.RigConfig{FacePath: photo, Params: hc.params, Clock: clock, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if hc.species != "" && hc.species != sim.BonaFide {
		if err := rig.SetSpecies(hc.species); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rig.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rig.Close() })
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ag, err := agent.New(t.TempDir(), agent.Defaults(), "test", prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.Close() })
	// The real guard, reading an empty filesystem root (this machine's own
	// signals are not the test's business) and a tamper switch.
	tampered := hc.tampered
	g, err := device.NewGuard(device.GuardConfig{Root: t.TempDir(), Environ: []string{}, Tamper: func() bool { return tampered }})
	if err != nil {
		t.Fatal(err)
	}
	mon, err := device.NewMonitor(device.MonitorConfig{Guard: g, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{rig: rig, clock: clock, agent: ag, ref: ref, guard: mon, frames: hc.frames}
	if h.frames == nil {
		h.frames = func(s capture.Source) FrameStream { return SourceFrames{Source: s} }
	}
	cfg := RunnerConfig{
		Engine: eng, Policy: DefaultPolicy(), Clock: clock,
		OpenFrames: func() (FrameStream, error) { return h.frames(rig), nil },
		Player:     &VirtualPlayer{Display: rig, Camera: rig},
		Controls:   rig, Readout: rig.Readout(), Guard: mon,
		Recorder: agentRecorder{ag}, References: refs{ref.ID: ref},
		DeviceID: "kiosk-test", SiteID: "site-test", Retention: hc.retention,
		Versions:           result.Versions{Glintd: "test", Models: map[string]string{"embedding": eng.Config().Embedding}},
		PositioningTimeout: 3 * time.Second, Logger: log,
		// Reproducible challenges (glintd draws them from crypto/rand).
		Random: rand.NewChaCha8([32]byte{'g', 'l', 'i', 'n', 't'}),
	}
	if hc.runner != nil {
		hc.runner(&cfg)
	}
	if h.runner, err = NewRunner(cfg); err != nil {
		t.Fatal(err)
	}
	return h
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// run runs one session and collects its events.
func (h *harness) run(t testing.TB, ctx context.Context, req Request) (*Outcome, []Event) {
	t.Helper()
	if req.ReferenceID == "" {
		req.ReferenceID = h.ref.ID
	}
	if req.Subject == "" {
		req.Subject = "subject-1"
	}
	var mu sync.Mutex
	var events []Event
	out := h.runner.Run(ctx, Job{Request: req, Emit: func(e Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}})
	if out.Record != nil {
		t.Logf("%s %v scores %+v flashmark corr %.3f lag %.1f ms, timings %+v", out.Record.Status, out.Record.Reasons, out.Record.Scores, out.Record.Flashmark.Correlation, out.Record.Flashmark.LagMS, out.Timings)
	}
	return out, events
}

func timelineNames(r *result.Record) []string {
	var out []string
	for _, e := range r.Timeline {
		out = append(out, e.Name)
	}
	return out
}

func TestSessionBonaFideApproved(t *testing.T) {
	h := newHarness(t)
	out, events := h.run(t, context.Background(), Request{})
	rec := out.Record
	if !out.Recorded {
		t.Fatal("record not signed and queued")
	}
	if rec.Status != result.StatusApproved {
		t.Fatalf("bona fide against its own enrolment: %s %v, want Approved", rec.Status, rec.Reasons)
	}
	if len(rec.Reasons) != 0 {
		t.Errorf("Approved with reasons %v", rec.Reasons)
	}
	if v := out.Verdict; v.ResultID != rec.ID || v.Status != rec.Status || v.Scores != rec.Scores {
		t.Errorf("verdict %+v does not tell the record %s", v, rec.ID)
	}
	if err := rec.Validate(); err != nil {
		t.Error(err)
	}
	if rec.Scores.FaceSimilarity < DefaultPolicy().FaceThreshold || rec.Scores.Liveness < flashmark.LevelStandard.Threshold() {
		t.Errorf("scores %+v below the thresholds", rec.Scores)
	}
	// Policy snapshot.
	p := rec.Policy
	if p.ID != "default" || p.Mode != result.ModeDynamic || p.MinFaceSimilarity != 50 || p.MinLiveness != flashmark.LevelStandard.Threshold() || p.ChallengeSteps != 12 || p.TimeoutMS != 3000 {
		t.Errorf("policy snapshot %+v", p)
	}
	// Guard: the clean guard's summary.
	if rec.Guard.Risk != "low" && rec.Guard.Risk != "medium" {
		t.Errorf("guard %+v", rec.Guard)
	}
	// Flashmark evidence.
	if len(rec.Flashmark.Nonce) != 32 || rec.Flashmark.Steps != 12 || rec.Flashmark.Correlation <= 0 || rec.Flashmark.Evidence["frames"] < 12 {
		t.Errorf("flashmark %+v", rec.Flashmark)
	}
	// Evidence: digest only (retention off).
	if len(rec.Evidence.SHA256) != 64 || rec.Evidence.MediaType != "image/jpeg" || rec.Evidence.Frame != nil {
		t.Errorf("evidence %+v", rec.Evidence)
	}
	// Timeline and events in order.
	names := timelineNames(rec)
	for _, want := range []string{"session_started", "face_positioned", "camera_lock", "challenge_started", "challenge_done", "evidence", "liveness", "face_match", "verdict"} {
		if !slices.Contains(names, want) {
			t.Errorf("timeline %v lacks %s", names, want)
		}
	}
	var states []State
	for _, e := range events {
		if e.Type == EventState {
			states = append(states, e.State)
		}
	}
	if !slices.Equal(states, []State{StatePositioning, StateChallenge, StateAnalysing}) {
		t.Errorf("states %v", states)
	}
	// The challenge ran with exposure and white balance locked, and the
	// session switched them back on.
	if st := h.rig; st == nil {
		t.Fatal("no rig")
	}
	if n := h.agent.Outbox().Stats().Depth; n != 1 {
		t.Errorf("outbox holds %d records, want 1", n)
	}
	if out.Timings.Flash <= 0 || out.Timings.Analysis <= 0 || out.Timings.Match <= 0 || out.Timings.Signing <= 0 {
		t.Errorf("timings %+v", out.Timings)
	}
}

func TestSessionAttacksDeclined(t *testing.T) {
	for _, sp := range []sim.Species{sim.Print, sim.Replay} {
		t.Run(string(sp), func(t *testing.T) {
			h := newHarness(t, withSpecies(sp))
			out, _ := h.run(t, context.Background(), Request{})
			rec := out.Record
			if rec.Status != result.StatusDeclined {
				t.Fatalf("%s: %s %v, want Declined", sp, rec.Status, rec.Reasons)
			}
			if !slices.Contains(rec.Reasons, ReasonLivenessLow) {
				t.Errorf("%s: reasons %v lack %s", sp, rec.Reasons, ReasonLivenessLow)
			}
			flash := false
			for _, r := range rec.Reasons {
				flash = flash || strings.HasPrefix(r, "FLASH_")
			}
			if !flash {
				t.Errorf("%s: reasons %v name no failed flash check", sp, rec.Reasons)
			}
			if rec.Scores.Liveness >= flashmark.LevelStandard.Threshold() {
				t.Errorf("%s: liveness %.1f at or above the threshold", sp, rec.Scores.Liveness)
			}
		})
	}
}

func TestSessionNoFaceTimesOut(t *testing.T) {
	// The face is placed beside the frame: nobody in front of the kiosk.
	h := newHarness(t, withParams(func(p *sim.Params) { p.FaceOffset = [2]float64{0.9, 0} }))
	out, events := h.run(t, context.Background(), Request{})
	rec := out.Record
	if rec.Status != result.StatusNotFinished || !slices.Equal(rec.Reasons, []string{ReasonPositioningTimeout}) {
		t.Fatalf("%s %v, want Not Finished [%s]", rec.Status, rec.Reasons, ReasonPositioningTimeout)
	}
	var guidance []Guidance
	for _, e := range events {
		if e.Type == EventGuidance {
			guidance = append(guidance, e.Guidance)
		}
	}
	if len(guidance) == 0 || guidance[0] != GuidanceNoFace {
		t.Errorf("guidance events %v, want NO_FACE first", guidance)
	}
	if !out.Recorded || rec.Flashmark.Nonce != "" {
		t.Errorf("recorded %v, flashmark %+v (no challenge should have run)", out.Recorded, rec.Flashmark)
	}
	if !slices.Contains(timelineNames(rec), "not_finished") {
		t.Errorf("timeline %v", timelineNames(rec))
	}
}

func TestSessionGuidanceOffCenter(t *testing.T) {
	h := newHarness(t, withParams(func(p *sim.Params) { p.FaceOffset = [2]float64{0.3, 0} }))
	out, events := h.run(t, context.Background(), Request{})
	var guidance []Guidance
	for _, e := range events {
		if e.Type == EventGuidance {
			guidance = append(guidance, e.Guidance)
		}
	}
	if !slices.Contains(guidance, GuidanceOffCenter) {
		t.Errorf("guidance %v lacks OFF_CENTER", guidance)
	}
	if out.Record.Status != result.StatusNotFinished {
		t.Errorf("status %s: an off-centre face must not be verified", out.Record.Status)
	}
}

func TestSessionCancelled(t *testing.T) {
	h := newHarness(t, withParams(func(p *sim.Params) { p.FaceOffset = [2]float64{0.9, 0} }),
		withRunner(func(c *RunnerConfig) { c.PositioningTimeout = time.Hour }))
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(300*time.Millisecond, func() { cancel(errCancelled) })
	out, _ := h.run(t, ctx, Request{})
	if rec := out.Record; rec.Status != result.StatusNotFinished || !slices.Equal(rec.Reasons, []string{ReasonCancelled}) {
		t.Fatalf("%s %v, want Not Finished [CANCELLED]", rec.Status, rec.Reasons)
	}
	if !out.Recorded {
		t.Error("a cancelled session is recorded too")
	}
}

// lossySource is a camera that is unplugged after n frames.
type lossySource struct {
	capture.Source
	n int
}

func (l *lossySource) ReadFrame(ctx context.Context) (*capture.Frame, error) {
	if l.n <= 0 {
		return nil, fmt.Errorf("read: %w", capture.ErrDeviceLost)
	}
	l.n--
	return l.Source.ReadFrame(ctx)
}

func TestSessionCameraLost(t *testing.T) {
	for _, n := range []int{2, 20} { // during positioning, during the challenge
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			h := newHarness(t, withFrames(func(s capture.Source) FrameStream {
				return SourceFrames{Source: &lossySource{Source: s, n: n}}
			}))
			out, _ := h.run(t, context.Background(), Request{})
			if rec := out.Record; rec.Status != result.StatusNotFinished || !slices.Equal(rec.Reasons, []string{ReasonCameraLost}) {
				t.Fatalf("%s %v, want Not Finished [CAMERA_LOST]", rec.Status, rec.Reasons)
			}
			// The runner is reusable: the next session (camera back) runs.
			h.frames = func(s capture.Source) FrameStream { return SourceFrames{Source: s} }
			if out, _ := h.run(t, context.Background(), Request{}); out.Record.Status == result.StatusNotFinished {
				t.Errorf("after the camera came back: %s %v", out.Record.Status, out.Record.Reasons)
			}
		})
	}
}

func TestSessionDeviceRisk(t *testing.T) {
	h := newHarness(t, withTamper())
	out, events := h.run(t, context.Background(), Request{})
	rec := out.Record
	if rec.Status != result.StatusNotFinished || !slices.Equal(rec.Reasons, []string{ReasonDeviceRisk}) {
		t.Fatalf("%s %v, want Not Finished [DEVICE_RISK]", rec.Status, rec.Reasons)
	}
	if rec.Guard.Risk != "high" || !slices.Contains(rec.Guard.Signals, device.SignalTamper) {
		t.Errorf("guard %+v", rec.Guard)
	}
	for _, e := range events {
		if e.Type == EventState && e.State == StatePositioning {
			t.Error("a refused session must not start positioning")
		}
	}
	// With the refusal disabled by policy the same device verifies.
	h2 := newHarness(t, withTamper(), withRunner(func(c *RunnerConfig) { c.Policy.RefuseRisk = device.SeverityNone }))
	if out, _ := h2.run(t, context.Background(), Request{}); slices.Contains(out.Record.Reasons, ReasonDeviceRisk) {
		t.Errorf("refuse_risk none still refused: %v", out.Record.Reasons)
	}
}

func TestSessionExpressAndRetention(t *testing.T) {
	h := newHarness(t, func(c *harnessConfig) { c.retention = true })
	out, events := h.run(t, context.Background(), Request{Mode: result.ModeExpress})
	rec := out.Record
	if rec.Mode != result.ModeExpress || rec.Policy.ChallengeSteps != 0 || rec.Flashmark.Nonce != "" {
		t.Errorf("express record: mode %s, steps %d, nonce %q", rec.Mode, rec.Policy.ChallengeSteps, rec.Flashmark.Nonce)
	}
	for _, e := range events {
		if e.Type == EventState && e.State == StateChallenge {
			t.Error("express mode ran a challenge")
		}
	}
	if rec.Status == result.StatusNotFinished {
		t.Fatalf("express: %v", rec.Reasons)
	}
	if rec.Evidence.Frame == nil {
		t.Fatal("retention on: no evidence frame")
	}
	sum := sha256.Sum256(rec.Evidence.Frame)
	if hex.EncodeToString(sum[:]) != rec.Evidence.SHA256 {
		t.Error("evidence digest does not match the frame")
	}
	if rec.Scores.Liveness != rec.Scores.AntiSpoof || rec.Policy.MinAntiSpoof != flashmark.LevelStandard.Threshold() {
		t.Errorf("express liveness %.1f, anti-spoof %.1f, policy %+v", rec.Scores.Liveness, rec.Scores.AntiSpoof, rec.Policy)
	}
}

func TestSessionClosedLevelMarked(t *testing.T) {
	h := newHarness(t, withSpecies(sim.Print))
	out, _ := h.run(t, context.Background(), Request{Level: flashmark.LevelClosed})
	rec := out.Record
	if rec.Status != result.StatusApproved || !slices.Equal(rec.Reasons, []string{flashmark.ReasonLivenessDisabled}) {
		t.Fatalf("CLOSED: %s %v, want Approved [%s]", rec.Status, rec.Reasons, flashmark.ReasonLivenessDisabled)
	}
	if rec.Policy.MinLiveness != 0 || rec.Policy.LivenessLevel != string(flashmark.LevelClosed) || !slices.Contains(timelineNames(rec), "liveness_disabled") {
		t.Errorf("CLOSED not marked: policy %+v timeline %v", rec.Policy, timelineNames(rec))
	}
}

func TestSessionUnknownReferenceAtStart(t *testing.T) {
	h := newHarness(t)
	out, _ := h.run(t, context.Background(), Request{ReferenceID: "gone"})
	if rec := out.Record; rec.Status != result.StatusNotFinished || !slices.Equal(rec.Reasons, []string{ReasonReferenceGone}) {
		t.Fatalf("%s %v", rec.Status, rec.Reasons)
	}
}

// failingRecorder is an outbox that cannot write (disk full).
type failingRecorder struct{}

func (failingRecorder) Admit() error                { return nil }
func (failingRecorder) Record(*result.Record) error { return errors.New("disk full") }

func TestSessionVerdictOnlyAfterRecord(t *testing.T) {
	h := newHarness(t, withRunner(func(c *RunnerConfig) { c.Recorder = failingRecorder{} }))
	out, _ := h.run(t, context.Background(), Request{})
	if out.Recorded || out.Verdict.ResultID != "" || out.Verdict.Status != result.StatusNotFinished {
		t.Fatalf("unrecorded session told %+v", out.Verdict)
	}
}

// brightScene is a camera left at a long manual exposure in bright light,
// which clips the face.
func brightScene() harnessOpt {
	return withParams(func(p *sim.Params) {
		p.AutoExposure, p.AutoWB = false, false
		p.Exposure, p.AmbientLux = 30*time.Millisecond, 500
	})
}

// timelineDetail is the detail of the record's last event called name.
func timelineDetail(r *result.Record, name string) string {
	var d string
	for _, e := range r.Timeline {
		if e.Name == name {
			d = e.Detail
		}
	}
	return d
}

// In a bright scene the session meters the exposure on the face before the
// challenge and shortens it until the flash has headroom.
func TestSessionFaceExposure(t *testing.T) {
	h := newHarness(t, brightScene())
	out, _ := h.run(t, context.Background(), Request{})
	rec := out.Record
	metered := timelineDetail(rec, "face_exposure")
	t.Logf("face_exposure %q, evidence %v", metered, rec.Flashmark.Evidence)
	if !strings.HasPrefix(metered, "30ms -> ") {
		t.Fatalf("timeline has no face-priority exposure change from 30ms: %q (%v)", metered, timelineNames(rec))
	}
	if rec.Status != result.StatusApproved {
		t.Errorf("bona fide after metering: %s %v, want Approved", rec.Status, rec.Reasons)
	}
	if c := rec.Flashmark.Evidence["face_clipped"]; c > 0.01 {
		t.Errorf("%.1f%% of the face clipped during the challenge after metering", 100*c)
	}
}

// exposureRefused is the simulated camera with an exposure control that
// rejects every value.
type exposureRefused struct{ *sim.Rig }

func (exposureRefused) SetExposure(int32) error { return errors.New("exposure_time_absolute: EINVAL") }

// A camera that refuses the shorter exposure leaves it as it was: the
// failure is in the timeline and the session still decides.
func TestSessionFaceExposureRefused(t *testing.T) {
	h := newHarness(t, brightScene(), withRunner(func(c *RunnerConfig) { c.Controls = exposureRefused{c.Controls.(*sim.Rig)} }))
	out, _ := h.run(t, context.Background(), Request{})
	rec := out.Record
	if detail := timelineDetail(rec, "face_exposure"); !strings.HasPrefix(detail, "failed: ") || !strings.Contains(detail, "EINVAL") {
		t.Errorf("timeline face_exposure %q, want the refused setting", detail)
	}
	if rec.Status == result.StatusNotFinished {
		t.Errorf("session not finished (%v): a refused exposure must not end it", rec.Reasons)
	}
	if got := h.rig.ExposureTime(); got != 30*time.Millisecond {
		t.Errorf("exposure %v after a refused setting, want 30ms", got)
	}
}
