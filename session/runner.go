package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/internal/geom"
	"github.com/glintdev/glint/result"
)

// Recorder signs and queues results (glintd: sync/agent.Agent, adapted).
type Recorder interface {
	// Admit reports whether a new session may start (the outbox has room).
	Admit() error
	// Record stamps, signs and durably queues r. The verdict is told only
	// after it returned nil.
	Record(r *result.Record) error
}

// Gate is the gate hardware (device.GPIO): the relay opens on Approved,
// the LEDs show busy during a session and ready otherwise.
type Gate interface {
	PulseRelay() error
	SetStatus(s device.Status) error
}

// RunnerConfig configures a Runner: the session's parameters and the
// components it drives.
type RunnerConfig struct {
	// Engine runs the face models; a kiosk uses the short-range detector.
	Engine *inference.Engine
	// Policy decides.
	Policy Policy
	// Guidance bounds a usable face.
	Guidance GuidanceConfig
	// Challenge shapes the flash challenges.
	Challenge flashmark.ChallengeConfig
	// LatencyMin and LatencyMax are the loop latency window calibrated for
	// this device (flashmark.AnalysisConfig).
	LatencyMin, LatencyMax time.Duration
	// HoldFrames is how many consecutive usable frames end positioning;
	// default 3.
	HoldFrames int
	// PositioningTimeout bounds the wait for a usable face (on Clock);
	// default 20 s.
	PositioningTimeout time.Duration
	// Lead and Tail are the idle screen recorded before the first and after
	// the last step; default 200 ms and 100 ms, as in the evaluation that
	// calibrated the analysis (sim/eval).
	Lead, Tail time.Duration
	// FrameTimeout: no frame for this long (wall time) is a lost camera;
	// default 3 s.
	FrameTimeout time.Duration
	// Readout is the camera's rolling-shutter readout time (0: unknown or
	// global shutter), passed to the analysis.
	Readout time.Duration
	// Retention keeps the evidence frame in the record (its digest is
	// always kept).
	Retention bool
	// KeepManual leaves exposure and white balance manual after the
	// challenge; by default the session switches back on what it switched
	// off.
	KeepManual bool
	// ExposureSettleFrames is how many frames the face-priority metering
	// skips after shortening the exposure before it meters again (a UVC
	// camera applies a control one or two frames later); default 3.
	ExposureSettleFrames int

	// Random draws the challenges; default crypto/rand. Tests and
	// benchmarks pass a seeded stream to be reproducible.
	Random io.Reader

	// Clock is the frames' timeline; default capture.MonotonicClock.
	Clock Clock
	// OpenFrames opens a frame stream for one session.
	OpenFrames func() (FrameStream, error)
	// Player shows the challenge (nil: dynamic mode is unavailable).
	Player Player
	// Controls locks exposure and white balance (nil: not supported).
	Controls capture.Controls
	// Guard reports the device guard's latest report (nil: no guard).
	Guard GuardStatus
	// Recorder signs and queues the records.
	Recorder Recorder
	// References looks enrolments up.
	References References
	// Gate is the relay and LEDs (nil: none).
	Gate Gate
	// DeviceID and SiteID go into every record (the recorder may fill
	// them as well).
	DeviceID, SiteID string
	// Versions go into every record.
	Versions result.Versions
	// Now is the wall clock for record times; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Runner runs verification sessions, one at a time (the Manager ensures
// it). It is safe to reuse across sessions.
type Runner struct {
	cfg RunnerConfig
	log *slog.Logger
}

// NewRunner checks cfg and fills defaults.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	switch {
	case cfg.Engine == nil:
		return nil, errors.New("session runner: no inference engine")
	case cfg.OpenFrames == nil:
		return nil, errors.New("session runner: no frame source")
	case cfg.Recorder == nil:
		return nil, errors.New("session runner: no recorder")
	case cfg.References == nil:
		return nil, errors.New("session runner: no enrolment references")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Challenge.Validate(); err != nil {
		return nil, err
	}
	if cfg.Guidance == (GuidanceConfig{}) {
		cfg.Guidance = DefaultGuidance()
	}
	if cfg.HoldFrames <= 0 {
		cfg.HoldFrames = 3
	}
	if cfg.ExposureSettleFrames <= 0 {
		cfg.ExposureSettleFrames = 3
	}
	if cfg.PositioningTimeout <= 0 {
		cfg.PositioningTimeout = 20 * time.Second
	}
	if cfg.Lead <= 0 {
		cfg.Lead = 200 * time.Millisecond
	}
	if cfg.Tail <= 0 {
		cfg.Tail = 100 * time.Millisecond
	}
	if cfg.FrameTimeout <= 0 {
		cfg.FrameTimeout = 3 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = capture.MonotonicClock{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Runner{cfg: cfg, log: cfg.Logger}, nil
}

// Config returns the effective configuration.
func (r *Runner) Config() RunnerConfig { return r.cfg }

// Timings break a session's time down by stage. Flash is on the session
// clock (the simulator's virtual clock in benchmarks: what it takes live);
// the others are wall time.
type Timings struct {
	Positioning time.Duration `json:"positioning"`
	// Flash is from the challenge's start (Begin) to its last frame.
	Flash time.Duration `json:"flash"`
	// Analysis is flashmark.Analyze plus the passive anti-spoof model and
	// the evidence frame's encoding.
	Analysis time.Duration `json:"analysis"`
	// Match is the evidence frame's embedding and its comparison.
	Match time.Duration `json:"match"`
	// Signing is the decision, signing and durable queueing (Recorder).
	Signing time.Duration `json:"signing"`
}

// Outcome is a finished session.
type Outcome struct {
	Record  *result.Record
	Verdict Verdict
	Timings Timings
	// Recorded is false when the record could not be signed and queued:
	// Verdict is then Not Finished (INTERNAL_ERROR) and was not told as
	// the record's.
	Recorded bool
}

// Job is one session as the runner sees it.
type Job struct {
	Request Request
	// Emit receives the session's events (Seq and At are set by the
	// receiver); it must not block for long.
	Emit func(Event)
}

// notFinished ends a session without a decision.
type notFinished struct {
	reason string
	detail string
}

func (e *notFinished) Error() string { return e.reason + ": " + e.detail }

func stop(reason, format string, a ...any) error {
	return &notFinished{reason: reason, detail: fmt.Sprintf(format, a...)}
}

// Session-ending causes set on the session's context.
var (
	errCancelled = errors.New("session cancelled")
	errShutdown  = errors.New("daemon shutting down")
	errTimeout   = errors.New("session time limit reached")
)

// run is one session's working state.
type run struct {
	r        *Runner
	job      Job
	req      Request
	timeline []result.Event
	last     Guidance
	rec      *result.Record
	timings  Timings
	started  time.Time
	rgb      []byte // conversion buffer, reused frame to frame
}

func (s *run) event(name, detail string) {
	if len(s.timeline) >= 200 {
		return // the record bounds its timeline; the verdict must still fit
	}
	s.timeline = append(s.timeline, result.Event{At: s.r.cfg.Now().UTC(), Name: name, Detail: detail})
}

func (s *run) emit(e Event) {
	if s.job.Emit != nil {
		s.job.Emit(e)
	}
}

func (s *run) state(st State) {
	s.event("state", string(st))
	s.emit(Event{Type: EventState, State: st})
}

// Run runs one session until its decision (or the reason it has none),
// records it, and returns the outcome. ctx's cause says why a session was
// stopped early (Cancel, shutdown, time limit).
func (r *Runner) Run(ctx context.Context, job Job) *Outcome {
	s := &run{r: r, job: job, req: job.Request, started: r.cfg.Now()}
	if s.req.Mode == "" {
		s.req.Mode = r.cfg.Policy.Mode
	}
	if s.req.Level == "" {
		s.req.Level = r.cfg.Policy.Level
	}
	s.rec = &result.Record{
		V: result.SchemaVersion, DeviceID: r.cfg.DeviceID, SiteID: r.cfg.SiteID,
		Subject: s.req.Subject, ReferenceID: s.req.ReferenceID, Mode: s.req.Mode,
		Versions: r.cfg.Versions, Reasons: []string{},
	}
	s.rec.Policy = r.cfg.Policy.Snapshot(s.req.Mode, s.req.Level, r.steps(s.req.Mode), r.timeoutMS())
	s.event("session_started", fmt.Sprintf("mode=%s liveness_level=%s", s.req.Mode, s.req.Level))
	if s.req.Level == flashmark.LevelClosed && s.req.Mode == result.ModeDynamic {
		s.event("liveness_disabled", "liveness level CLOSED: liveness not checked (tests only)")
	}
	if r.cfg.Gate != nil {
		_ = r.cfg.Gate.SetStatus(device.StatusBusy)
		defer func() { _ = r.cfg.Gate.SetStatus(device.StatusReady) }()
	}
	err := s.verify(ctx)
	var nf *notFinished
	switch {
	case err == nil:
	case errors.As(err, &nf):
	case ctx.Err() != nil:
		nf = ctxReason(ctx)
	default:
		nf = &notFinished{reason: ReasonInternal, detail: err.Error()}
	}
	if nf != nil {
		s.rec.Status = result.StatusNotFinished
		s.rec.Reasons = []string{nf.reason}
		s.event("not_finished", nf.reason+": "+nf.detail)
		r.log.Info("session not finished", "reason", nf.reason, "detail", nf.detail)
	}
	return s.finish()
}

// ctxReason maps the context's cause to a reason.
func ctxReason(ctx context.Context) *notFinished {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errCancelled):
		return &notFinished{ReasonCancelled, "cancelled by the kiosk"}
	case errors.Is(cause, errShutdown):
		return &notFinished{ReasonShutdown, "glintd is stopping"}
	case errors.Is(cause, errTimeout), errors.Is(cause, context.DeadlineExceeded):
		return &notFinished{ReasonSessionTimeout, "session time limit reached"}
	}
	return &notFinished{ReasonCancelled, cause.Error()}
}

func (r *Runner) steps(mode result.Mode) int {
	if mode == result.ModeExpress {
		return 0
	}
	c := r.cfg.Challenge
	if c.Steps == 0 {
		return flashmark.DefaultSteps
	}
	return c.Steps
}

func (r *Runner) analysisConfig(l flashmark.Level) flashmark.AnalysisConfig {
	return flashmark.AnalysisConfig{Level: l, LatencyMin: r.cfg.LatencyMin, LatencyMax: r.cfg.LatencyMax}
}

func (r *Runner) timeoutMS() int64 { return r.cfg.PositioningTimeout.Milliseconds() }

// finish signs and queues the record, then builds the verdict.
func (s *run) finish() *Outcome {
	r := s.r
	t0 := time.Now()
	rec := s.rec
	if rec.Scores.AntiSpoof < 0 {
		rec.Scores.AntiSpoof = 0
	}
	s.event("verdict", string(rec.Status))
	rec.Timeline = s.timeline
	rec.CreatedAt = r.cfg.Now().UTC()
	out := &Outcome{Record: rec}
	id, err := result.NewID()
	if err == nil {
		rec.ID = id
		err = r.cfg.Recorder.Record(rec)
	}
	out.Timings = s.timings
	out.Timings.Signing = time.Since(t0)
	if err != nil {
		r.log.Error("session result not recorded", "err", err)
		out.Verdict = Verdict{Status: result.StatusNotFinished, Reasons: []string{ReasonInternal}, Guard: rec.Guard}
		return out
	}
	out.Recorded = true
	out.Verdict = Verdict{ResultID: rec.ID, Status: rec.Status, Reasons: rec.Reasons, Scores: rec.Scores, Guard: rec.Guard, Flash: rec.Flashmark}
	if rec.Status == result.StatusApproved && r.cfg.Gate != nil {
		if err := r.cfg.Gate.PulseRelay(); err != nil {
			r.log.Warn("gate relay", "err", err)
		}
	}
	return out
}

// observed is one frame with its analysis.
type observed struct {
	frame *capture.Frame
	check faceCheck
}

// verify runs the states; a nil error means s.rec holds a decision.
func (s *run) verify(ctx context.Context) error {
	r := s.r
	// Guard first: a device at risk verifies nobody.
	if r.cfg.Guard != nil {
		rep := r.cfg.Guard.Last()
		s.rec.Guard = guardSummary(rep, true)
		if p := r.cfg.Policy.RefuseRisk; p != device.SeverityNone && rep.Risk >= p {
			return stop(ReasonDeviceRisk, "device guard risk %s: %v", rep.Risk, rep.Summary().Codes)
		}
	} else {
		s.rec.Guard = guardSummary(device.Report{}, false)
	}
	ref, err := r.cfg.References.Reference(s.req.ReferenceID)
	if err != nil {
		return stop(ReasonReferenceGone, "%v", err)
	}
	if want := r.cfg.Engine.Config().Embedding; ref.Model != "" && ref.Model != want {
		return stop(ReasonReferenceModel, "enrolment made with %s, this device embeds with %s", ref.Model, want)
	}
	if s.req.Mode == result.ModeDynamic && r.cfg.Player == nil {
		return stop(ReasonInternal, "dynamic mode needs a display and none is configured")
	}
	frames, err := r.cfg.OpenFrames()
	if err != nil {
		return stop(ReasonCameraLost, "%v", err)
	}
	defer frames.Close()

	s.state(StatePositioning)
	t0 := time.Now()
	pos, err := s.position(ctx, frames)
	s.timings.Positioning = time.Since(t0)
	if err != nil {
		return err
	}
	s.event("face_positioned", fmt.Sprintf("interocular=%.0fpx sharpness=%.1f", pos.check.Face.Landmarks.Interocular, pos.check.Sharpness))

	var ev *evidence
	var an *flashmark.Analysis
	if s.req.Mode == result.ModeExpress {
		s.state(StateAnalysing)
		if ev, err = s.newEvidence(pos); err != nil {
			return err
		}
	} else {
		s.state(StateChallenge)
		obs, ch, pres, exposure, err := s.challenge(ctx, frames, pos)
		if err != nil {
			return err
		}
		s.state(StateAnalysing)
		t1 := time.Now()
		if ev, err = s.bestEvidence(obs); err != nil {
			return err
		}
		in := flashmark.Input{Challenge: ch, Presentations: pres, Exposure: exposure, Readout: r.cfg.Readout, Passive: ev.passive}
		for _, o := range obs {
			in.Observations = append(in.Observations, flashmark.Observation{Frame: o.frame, Face: o.check.Box})
		}
		s.rec.Flashmark = result.Flashmark{Nonce: hex.EncodeToString(ch.Nonce[:]), Steps: len(ch.Steps), Evidence: map[string]float64{}}
		an, err = flashmark.Analyze(in, r.analysisConfig(s.req.Level))
		if err != nil {
			return stop(ReasonAnalysisFailed, "%v", err)
		}
		s.rec.Flashmark.Correlation = an.Correlation
		s.rec.Flashmark.LagMS = float64(an.Lag) / float64(time.Millisecond)
		s.rec.Flashmark.Evidence["frames"] = float64(len(obs))
		s.timings.Analysis = time.Since(t1)
	}
	if s.req.Mode == result.ModeExpress {
		if an, err = flashmark.AnalyzeExpress(ev.passive, r.analysisConfig(s.req.Level)); err != nil {
			return stop(ReasonAnalysisFailed, "%v", err)
		}
		s.timings.Analysis = ev.took
	}
	if s.rec.Flashmark.Evidence == nil {
		s.rec.Flashmark.Evidence = map[string]float64{}
	}
	for k, v := range an.Evidence {
		if len(s.rec.Flashmark.Evidence) < 60 && !math.IsNaN(v) && !math.IsInf(v, 0) {
			s.rec.Flashmark.Evidence[k] = v
		}
	}
	s.rec.Scores.Liveness = clamp100(an.Score)
	s.rec.Scores.AntiSpoof = clamp100(100 * ev.passive)
	s.rec.Evidence = ev.record
	s.event("liveness", fmt.Sprintf("score=%.1f threshold=%.1f correlation=%.3f lag=%s reasons=%v", an.Score, an.Threshold, an.Correlation, an.Lag, an.Reasons))

	// Match the evidence face against the enrolment.
	t2 := time.Now()
	emb, err := r.cfg.Engine.Embed(ev.im, *ev.check.Face)
	if err != nil {
		return stop(ReasonInternal, "embedding: %v", err)
	}
	if len(emb) != len(ref.Template) {
		return stop(ReasonReferenceModel, "template has %d dimensions, the embedding %d", len(ref.Template), len(emb))
	}
	s.rec.Scores.FaceSimilarity = clamp100(inference.SimilarityScore(r.cfg.Engine.Config().Embedding, inference.Cosine(emb, ref.Template)))
	s.timings.Match = time.Since(t2)
	s.event("face_match", fmt.Sprintf("score=%.1f", s.rec.Scores.FaceSimilarity))

	m := Measured{Mode: s.req.Mode, Level: s.req.Level, Face: s.rec.Scores.FaceSimilarity, Liveness: an}
	s.rec.Status, s.rec.Reasons, s.rec.Policy = r.cfg.Policy.Decide(m, r.steps(s.req.Mode), r.timeoutMS())
	return nil
}

func clamp100(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return math.Max(0, math.Min(100, v))
}

// next reads a frame, turning a silent camera into CAMERA_LOST.
func (s *run) next(ctx context.Context, frames FrameStream) (*capture.Frame, error) {
	fctx, cancel := context.WithTimeout(ctx, s.r.cfg.FrameTimeout)
	defer cancel()
	f, err := frames.Next(fctx)
	switch {
	case err == nil:
		return f, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return nil, stop(ReasonCameraLost, "no frame for %s", s.r.cfg.FrameTimeout)
	}
	return nil, stop(ReasonCameraLost, "%v", err)
}

// analyse converts a frame into the session's reusable RGB buffer (the
// image is valid until the next call) and runs detection and landmarks.
func (s *run) analyse(f *capture.Frame) (*inference.Image, []inference.Face, error) {
	im, err := inference.FromFrame(f, s.rgb)
	if err != nil {
		return nil, nil, err
	}
	s.rgb = im.Pix
	faces, err := s.r.cfg.Engine.Analyze(im)
	if err != nil {
		return nil, nil, err
	}
	return im, faces, nil
}

// positioned is the frame that ended positioning.
type positioned struct {
	observed
	im *inference.Image
}

// position reads frames until a usable face is held for HoldFrames frames.
func (s *run) position(ctx context.Context, frames FrameStream) (*positioned, error) {
	r := s.r
	start := r.cfg.Clock.Now()
	hold := 0
	first := true
	for {
		f, err := s.next(ctx, frames)
		if err != nil {
			return nil, err
		}
		if first {
			// Frames queued before the session are older than it: the
			// clock starts with the first one read.
			start = min(start, f.Timestamp)
			first = false
		}
		if f.Timestamp-start > r.cfg.PositioningTimeout {
			detail := "no usable face"
			if s.last != "" {
				detail += ", last guidance " + string(s.last)
			}
			return nil, stop(ReasonPositioningTimeout, "%s after %s", detail, r.cfg.PositioningTimeout)
		}
		im, faces, err := s.analyse(f)
		if err != nil {
			r.log.Warn("positioning frame", "seq", f.Seq, "err", err)
			continue
		}
		c := r.cfg.Guidance.assess(im, faces)
		if c.Guidance != s.last {
			s.last = c.Guidance
			s.emit(Event{Type: EventGuidance, Guidance: c.Guidance})
			if c.Guidance != "" {
				s.event("guidance", string(c.Guidance))
			}
		}
		if c.Guidance != "" {
			hold = 0
			continue
		}
		hold++
		if hold >= r.cfg.HoldFrames {
			// The image outlives the conversion buffer (express mode).
			own := &inference.Image{Width: im.Width, Height: im.Height, Pix: append([]byte(nil), im.Pix...)}
			return &positioned{observed: observed{frame: f, check: c}, im: own}, nil
		}
	}
}

// challenge locks the camera, meters the exposure on the positioned face,
// plays a fresh challenge and collects the frames from Lead before its
// first step to Tail after its last.
func (s *run) challenge(ctx context.Context, frames FrameStream, pos *positioned) ([]observed, *flashmark.Challenge, []flashmark.Presentation, time.Duration, error) {
	r := s.r
	ch, err := flashmark.NewChallenge(r.cfg.Challenge, r.cfg.Random) // nil: crypto/rand
	if err != nil {
		return nil, nil, nil, 0, stop(ReasonInternal, "challenge: %v", err)
	}
	unlock, exposureLocked := s.lockCamera()
	defer unlock()
	exposure := s.exposure()
	if exposureLocked && exposure > 0 {
		var err error
		if exposure, err = s.faceExposure(ctx, frames, pos, exposure); err != nil {
			return nil, nil, nil, 0, err
		}
	}

	start := r.cfg.Clock.Now() + r.cfg.Lead
	end := start + ch.Total()
	pctx, cancelPlay := context.WithCancel(ctx)
	defer cancelPlay()
	if err := r.cfg.Player.Begin(pctx, ch.Steps, ch.Idle, start); err != nil {
		return nil, nil, nil, 0, stop(ReasonInternal, "display: %v", err)
	}
	s.event("challenge_started", fmt.Sprintf("steps=%d total=%s", len(ch.Steps), ch.Total()))
	s.emit(Event{Type: EventProgress, Progress: 0})
	begun := r.cfg.Clock.Now()
	var obs []observed
	var prev image.Rectangle
	lastProgress := 0.0
	withFace := 0
	for {
		if err := r.cfg.Player.Tick(ctx); err != nil {
			return nil, nil, nil, 0, stop(ReasonInternal, "display: %v", err)
		}
		f, err := s.next(ctx, frames)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		if f.Timestamp < start-r.cfg.Lead {
			continue // queued before the challenge began
		}
		if r.cfg.Clock.Now() > end+r.cfg.Tail+2*time.Second+r.cfg.FrameTimeout {
			return nil, nil, nil, 0, stop(ReasonChallengeTimeout, "frames stopped covering the challenge")
		}
		im, faces, err := s.analyse(f)
		if err != nil {
			return nil, nil, nil, 0, stop(ReasonInternal, "challenge frame %d: %v", f.Seq, err)
		}
		o := observed{frame: f}
		// Follow the positioned face (the largest face at first).
		if best := followFace(faces, im.Width, im.Height, prev); best >= 0 {
			fc := faces[best]
			o.check = faceCheck{Face: &fc, Box: boxOf(fc.Detection.Box, im.Width, im.Height)}
			o.check.Sharpness = Sharpness(im, o.check.Box)
			o.check.Frontal = math.Abs(fc.Landmarks.Pose.Yaw) + math.Abs(fc.Landmarks.Pose.Pitch)
			prev = o.check.Box
			withFace++
		}
		obs = append(obs, o)
		if p := float64(f.Timestamp-start) / float64(end-start); p-lastProgress >= 0.1 && p <= 1 {
			lastProgress = p
			s.emit(Event{Type: EventProgress, Progress: p})
		}
		if f.Timestamp > end+r.cfg.Tail {
			break
		}
	}
	pres, err := r.cfg.Player.Finish(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, nil, 0, ctx.Err()
		}
		return nil, nil, nil, 0, stop(ReasonInternal, "display: %v", err)
	}
	s.timings.Flash = r.cfg.Clock.Now() - begun
	s.emit(Event{Type: EventProgress, Progress: 1})
	s.event("challenge_done", fmt.Sprintf("frames=%d with_face=%d", len(obs), withFace))
	if withFace*2 < len(obs) {
		return nil, nil, nil, 0, stop(ReasonFaceLost, "face tracked in %d of %d challenge frames", withFace, len(obs))
	}
	return obs, ch, pres, exposure, nil
}

// minFollowIoU is the least overlap with the previous frame's face box for
// a face to be the same one.
const minFollowIoU = 0.3

// followFace is the index of the face whose box overlaps prev most, at
// least minFollowIoU; with no previous box, the first (largest) face; -1
// when no face qualifies.
func followFace(faces []inference.Face, w, h int, prev image.Rectangle) int {
	best, bestIoU := -1, 0.0
	for i, fc := range faces {
		iou := geom.IoU(boxOf(fc.Detection.Box, w, h), prev)
		if prev.Empty() && i == 0 {
			iou = 1
		}
		if iou > bestIoU {
			best, bestIoU = i, iou
		}
	}
	if bestIoU < minFollowIoU {
		return -1
	}
	return best
}

// lockCamera switches auto exposure and white balance off where the camera
// allows (the camera would otherwise undo the flash) and returns the undo
// and whether exposure is now manual.
func (s *run) lockCamera() (unlock func(), exposureLocked bool) {
	c := s.r.cfg.Controls
	if c == nil {
		s.event("camera_lock", "no camera controls")
		return func() {}, false
	}
	var locked []func(bool) error
	for _, x := range []struct {
		name string
		set  func(bool) error
	}{{"exposure", c.SetAutoExposure}, {"white_balance", c.SetAutoWhiteBalance}} {
		err := x.set(false)
		switch {
		case err == nil:
			locked = append(locked, x.set)
			exposureLocked = exposureLocked || x.name == "exposure"
			s.event("camera_lock", x.name)
		case errors.Is(err, capture.ErrControlUnsupported):
			s.event("camera_lock", x.name+" not supported")
		default:
			s.r.log.Warn("camera lock", "control", x.name, "err", err)
			s.event("camera_lock", x.name+" failed: "+err.Error())
		}
	}
	return func() {
		if s.r.cfg.KeepManual {
			return
		}
		for _, set := range locked {
			if err := set(true); err != nil {
				s.r.log.Warn("camera unlock", "err", err)
			}
		}
	}, exposureLocked
}

// faceExposure shortens the locked exposure until the positioned face has
// headroom for the flash (flashmark.FaceExposure): the positioning's last
// frame is metered first, then fresh frames, ExposureSettleFrames after
// each change, following the face that overlaps the positioned one most.
func (s *run) faceExposure(ctx context.Context, frames FrameStream, pos *positioned, exposure time.Duration) (time.Duration, error) {
	first := true
	next := func() (*capture.Frame, image.Rectangle, error) {
		if first {
			first = false
			return pos.frame, pos.check.Box, nil
		}
		var f *capture.Frame
		for range s.r.cfg.ExposureSettleFrames + 1 {
			var err error
			if f, err = s.next(ctx, frames); err != nil {
				return nil, image.Rectangle{}, err
			}
		}
		im, faces, err := s.analyse(f)
		if err != nil {
			return nil, image.Rectangle{}, stop(ReasonInternal, "metering frame %d: %v", f.Seq, err)
		}
		if best := followFace(faces, im.Width, im.Height, pos.check.Box); best >= 0 {
			return f, boxOf(faces[best].Detection.Box, im.Width, im.Height), nil
		}
		return f, image.Rectangle{}, nil
	}
	before := exposure
	exposure, err := flashmark.FaceExposure(exposure, s.r.cfg.Controls.SetExposure, next)
	if err != nil {
		var nf *notFinished
		if errors.As(err, &nf) || ctx.Err() != nil {
			return 0, err
		}
		// The exposure in force still works, with less headroom.
		s.r.log.Warn("face exposure", "err", err)
		s.event("face_exposure", "failed: "+err.Error())
		return exposure, nil
	}
	if exposure != before {
		s.event("face_exposure", fmt.Sprintf("%s -> %s", before, exposure))
	}
	return exposure, nil
}

// exposure reads the locked exposure time where the camera reports it.
func (s *run) exposure() time.Duration {
	switch c := s.r.cfg.Controls.(type) {
	case interface{ ExposureTime() time.Duration }:
		return c.ExposureTime()
	case interface {
		GetControl(id uint32) (int32, error)
	}:
		if v, err := c.GetControl(capture.CIDExposureAbsolute); err == nil && v > 0 {
			return time.Duration(v) * 100 * time.Microsecond
		}
	}
	return 0
}

// evidence is the frame the match and the record use.
type evidence struct {
	observed
	im      *inference.Image
	passive float64
	record  result.Evidence
	took    time.Duration
}

// bestEvidence picks the sharpest, most frontal challenge frame.
func (s *run) bestEvidence(obs []observed) (*evidence, error) {
	best := -1
	bestScore := math.Inf(-1)
	for i, o := range obs {
		if o.check.Face == nil {
			continue
		}
		score := o.check.Sharpness / (1 + o.check.Frontal/10)
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return nil, stop(ReasonFaceLost, "no challenge frame has a face")
	}
	im, err := inference.FromFrame(obs[best].frame, nil)
	if err != nil {
		return nil, stop(ReasonInternal, "evidence frame: %v", err)
	}
	return s.newEvidence(&positioned{observed: obs[best], im: im})
}

// newEvidence runs the passive anti-spoof model on the evidence face and
// encodes its crop (digest always, bytes only with retention).
func (s *run) newEvidence(p *positioned) (*evidence, error) {
	t0 := time.Now()
	ev := &evidence{observed: p.observed, im: p.im}
	v, err := s.r.cfg.Engine.AntiSpoof(p.im, *p.check.Face)
	if err != nil {
		return nil, stop(ReasonInternal, "anti-spoof: %v", err)
	}
	ev.passive = v
	crop := evidenceCrop(p.im, p.check.Box)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, crop, &jpeg.Options{Quality: 85}); err != nil {
		return nil, stop(ReasonInternal, "evidence encode: %v", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	ev.record = result.Evidence{SHA256: hex.EncodeToString(sum[:]), MediaType: "image/jpeg"}
	if s.r.cfg.Retention {
		ev.record.Frame = buf.Bytes()
	}
	s.event("evidence", fmt.Sprintf("frame=%d sharpness=%.1f", p.frame.Seq, p.check.Sharpness))
	ev.took = time.Since(t0)
	return ev, nil
}

// evidenceCrop is the face box enlarged 1.6x, clipped to the frame: the
// face and its immediate surroundings, small enough to keep in a record.
func evidenceCrop(im *inference.Image, box image.Rectangle) image.Image {
	c := box.Min.Add(box.Max).Div(2)
	hw, hh := box.Dx()*8/10, box.Dy()*8/10
	r := image.Rect(c.X-hw, c.Y-hh, c.X+hw, c.Y+hh).Intersect(image.Rect(0, 0, im.Width, im.Height))
	out := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	for y := 0; y < r.Dy(); y++ {
		for x := 0; x < r.Dx(); x++ {
			o := ((r.Min.Y+y)*im.Width + r.Min.X + x) * 3
			p := out.PixOffset(x, y)
			out.Pix[p], out.Pix[p+1], out.Pix[p+2], out.Pix[p+3] = im.Pix[o], im.Pix[o+1], im.Pix[o+2], 255
		}
	}
	return out
}
