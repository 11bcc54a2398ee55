package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/internal/buildinfo"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/session"
	"github.com/glintdev/glint/sim"
	"github.com/glintdev/glint/sync/agent"
)

// newSimRig builds the simulated camera and screen (camera.source: sim) on
// the real clock.
func newSimRig(c CameraConfig) (*sim.Rig, error) {
	sp, err := sim.ParseSpecies(c.Sim.Species)
	if err != nil {
		return nil, fmt.Errorf("camera.sim.species: %w", err)
	}
	p := sim.DefaultRigParams()
	p.Width, p.Height, p.FPS = c.Width, c.Height, c.FPS
	rig, err := sim.NewRig(sim.RigConfig{FacePath: c.Sim.Face, FaceIndex: c.Sim.FaceIndex, Params: &p, Clock: sim.RealClock{}, Seed: uint64(c.Sim.Seed)})
	if err != nil {
		return nil, fmt.Errorf("camera.sim: %w", err)
	}
	if sp != sim.BonaFide {
		if err := rig.SetSpecies(sp); err != nil {
			return nil, err
		}
	}
	return rig, nil
}

// simControl is the API's handle on the simulated presentation.
type simControl struct {
	rig *sim.Rig
	dir string // where face names are looked up
	log *slog.Logger
}

// SetPresentation switches species and, when face is given, the photo (a
// name relative to the configured photo's directory, or a path).
func (s simControl) SetPresentation(species, face string) error {
	sp, err := sim.ParseSpecies(species)
	if err != nil {
		return &session.FieldError{Field: "species", Msg: err.Error()}
	}
	if face != "" {
		path := face
		if !filepath.IsAbs(path) {
			path = filepath.Join(s.dir, filepath.Clean("/"+face))
		}
		if err := s.rig.SetFace(path, 0); err != nil {
			return &session.FieldError{Field: "face", Msg: err.Error()}
		}
	}
	if err := s.rig.SetSpecies(sp); err != nil {
		return err
	}
	s.log.Info("simulated presentation", "species", sp, "face", face)
	return nil
}

// Presentations lists the species.
func (simControl) Presentations() []string {
	out := []string{string(sim.BonaFide)}
	for _, sp := range sim.AttackSpecies {
		out = append(out, string(sp))
	}
	return out
}

// agentRecorder is the session's recorder: the sync agent signs and queues.
// a is set once the agent exists, before the API serves.
type agentRecorder struct{ a *agent.Agent }

func (r *agentRecorder) Admit() error {
	if r.a == nil {
		return errors.New("sync agent not ready")
	}
	return r.a.Admit()
}

func (r *agentRecorder) Record(rec *result.Record) error {
	if r.a == nil {
		return errors.New("sync agent not ready")
	}
	if rec.DeviceID == "" {
		// Sync disabled and no device ID configured: the key ID names
		// the device, so the record still validates and verifies.
		rec.DeviceID = r.a.Key().ID
	}
	_, err := r.a.Record(rec)
	return err
}

// sessions is the verification side of glintd: models, enrolments, the
// session manager.
type sessions struct {
	rt         *inference.Runtime
	engines    []*inference.Engine
	manager    *session.Manager
	enrolments *session.Enrolments
	recorder   *agentRecorder
	closers    []func() error
}

// Close releases the models (after the manager stopped).
func (s *sessions) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c())
	}
	for _, e := range s.engines {
		errs = append(errs, e.Close())
	}
	if s.rt != nil {
		errs = append(errs, s.rt.Close())
	}
	return errors.Join(errs...)
}

// newSessions loads the models and the enrolment store and builds the
// session manager. It returns nil (sessions disabled, said in the log)
// when models.dir or enrolment.key_file is not configured.
func newSessions(cfg Config, src capture.Source, sup *capture.Supervisor, feed *session.Feed, monitor *device.Monitor, gate *device.GPIO, log *slog.Logger) (*sessions, error) {
	if cfg.Models.Dir == "" {
		log.Warn("sessions disabled: models.dir is not set")
		return nil, nil
	}
	s := &sessions{recorder: &agentRecorder{}}
	fail := func(err error) (*sessions, error) { _ = s.Close(); return nil, err }
	var err error
	if s.rt, err = inference.NewRuntime(inference.RuntimeConfig{LibraryPath: cfg.Models.libraryPath()}); err != nil {
		return fail(fmt.Errorf("models: %w", err))
	}
	icfg := inference.Config{ModelsDir: cfg.Models.Dir, Precision: cfg.Models.Precision, IntraOpThreads: cfg.Models.Threads}
	// The kiosk camera sees one close face: the short-range detector (5x
	// cheaper, docs/models.md). Enrolment portraits are arbitrary uploads:
	// the full-range one. Both embed alike, so templates compare.
	short := icfg
	short.Detector = inference.DetectorShort
	eng, err := inference.New(s.rt, short)
	if err != nil {
		return fail(fmt.Errorf("models: %w", err))
	}
	s.engines = append(s.engines, eng)
	if !cfg.Enrolment.Enabled() {
		log.Warn("sessions disabled: enrolment.key_file is not set (no enrolments to compare against)")
		return s, nil
	}
	full := icfg
	full.Detector = inference.DetectorFull
	enrolEng, err := inference.New(s.rt, full)
	if err != nil {
		return fail(fmt.Errorf("models: %w", err))
	}
	s.engines = append(s.engines, enrolEng)
	if s.enrolments, err = session.NewEnrolments(cfg.Enrolment, cfg.StateDir, enrolEng, log.With("component", "enrolment")); err != nil {
		return fail(err)
	}

	rc := session.RunnerConfig{
		Engine: eng, Policy: cfg.Session.policy(), Challenge: cfg.Session.challenge(),
		LatencyMin: cfg.Session.LatencyMin, LatencyMax: cfg.Session.LatencyMax,
		HoldFrames: cfg.Session.HoldFrames, PositioningTimeout: cfg.Session.PositioningTimeout,
		FrameTimeout: cfg.Camera.FrameTimeout + 500*time.Millisecond, Readout: cfg.Session.Readout,
		Retention: cfg.Session.Retention, Clock: capture.MonotonicClock{},
		OpenFrames: func() (session.FrameStream, error) { return feed.Open(), nil },
		Guard:      monitor, Recorder: s.recorder, References: s.enrolments,
		DeviceID: cfg.Sync.DeviceID, SiteID: cfg.Sync.SiteID,
		Versions: result.Versions{Glintd: buildinfo.Version, Models: modelVersions(eng), Config: configDigest(cfg)},
		Logger:   log.With("component", "session"),
	}
	if c, ok := src.(capture.Controls); ok {
		rc.Controls = c
	}
	if gate != nil {
		rc.Gate = gate
	}
	switch backend := cfg.Display.Backend; {
	case backend == "auto":
		if rig, ok := src.(*sim.Rig); ok {
			rc.Player = session.NewLivePlayer(rig, capture.MonotonicClock{})
			if rc.Readout == 0 {
				rc.Readout = rig.Readout()
			}
		}
	case backend == "fbdev":
		fb, err := flashmark.OpenFramebuffer(flashmark.FramebufferConfig{Path: cfg.Display.Framebuffer})
		if err != nil {
			return fail(fmt.Errorf("display.framebuffer: %w", err))
		}
		s.closers = append(s.closers, fb.Close)
		rc.Player = session.NewLivePlayer(fb, capture.MonotonicClock{})
	}
	if rc.Player == nil && rc.Policy.Mode == result.ModeDynamic {
		log.Warn("no challenge display (display.backend): only express-mode sessions can run")
		rc.Policy.Mode = result.ModeExpress
	}
	runner, err := session.NewRunner(rc)
	if err != nil {
		return fail(err)
	}
	s.manager, err = session.NewManager(session.ManagerConfig{
		Runner: runner, TokenTTL: cfg.Session.TokenTTL, SessionTimeout: cfg.Session.Timeout, Keep: cfg.Session.Keep,
		Ready: func() error {
			if st := sup.Status(); st.State != capture.StateStreaming {
				return fmt.Errorf("camera %s", st.Summary())
			}
			return nil
		},
		Logger: log.With("component", "session"),
	})
	if err != nil {
		return fail(err)
	}
	log.Info("sessions ready", "mode", rc.Policy.Mode, "liveness_level", rc.Policy.Level, "face_threshold", rc.Policy.FaceThreshold, "display", rc.Player != nil)
	return s, nil
}

// modelVersions names the models that decide, for the record.
func modelVersions(e *inference.Engine) map[string]string {
	c := e.Config()
	return map[string]string{"detector": c.Detector, "embedding": c.Embedding, "precision": c.Precision}
}

// configDigest identifies the configuration in the record (the first 8
// bytes of the SHA-256 of its JSON form; secrets are file paths, not
// values, so none leak).
func configDigest(cfg Config) string {
	b, err := json.Marshal(cfg)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:8])
}
