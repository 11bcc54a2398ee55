package flashmark

import (
	"errors"
	"fmt"
	"image"
	"math"
	"time"

	"github.com/glintdev/glint/capture"
)

// Level is a liveness operating point: the threshold a liveness score must
// reach. CLOSED disables liveness and exists for tests only; results made
// with it say so in their policy snapshot.
type Level string

// The liveness levels.
const (
	LevelLoose    Level = "LOOSE"
	LevelStandard Level = "STANDARD"
	LevelStrict   Level = "STRICT"
	LevelClosed   Level = "CLOSED"
)

// Observation is one camera frame of a challenge and where the face tracker
// found the face in it.
type Observation struct {
	Frame *capture.Frame
	// Face is the tracked face box in frame pixels; empty when the tracker
	// had no face in this frame.
	Face image.Rectangle
}

// Input is everything one challenge produced.
type Input struct {
	// Challenge is the challenge that was shown.
	Challenge *Challenge
	// Presentations are the display's reports, one per step, in order.
	Presentations []Presentation
	// Observations are the frames from before the first step to after the
	// last, in capture order.
	Observations []Observation
	// Exposure is the (locked) exposure time during the challenge.
	Exposure time.Duration
	// Readout is the rolling-shutter readout time of a whole frame; 0 for a
	// global shutter or when unknown.
	Readout time.Duration
	// Passive is the passive anti-spoof model's live probability in [0, 1];
	// negative when the model did not run.
	Passive float64
}

// AnalysisConfig is the operating point and the device's calibration.
type AnalysisConfig struct {
	// Level picks the score threshold; default LevelStandard.
	Level Level
	// LatencyMin and LatencyMax bound the loop latency (presentation to the
	// face's response in the frames) calibrated for this device; a session
	// whose measured latency falls outside is rejected.
	LatencyMin, LatencyMax time.Duration
	// HFOV is the camera's horizontal field of view in degrees (default
	// 62, the simulator's and a typical kiosk webcam's); the near-field
	// check corrects the background's response for its angle off the
	// camera's axis with it.
	HFOV float64
}

// Analysis is the liveness evidence of one challenge.
type Analysis struct {
	// Score is the liveness score, 0–100, higher meaning more likely live.
	Score float64
	// Live is Score ≥ the level's threshold (always true at LevelClosed).
	Live bool
	// Threshold is the level's threshold that Score was compared with.
	Threshold float64
	// Reasons are stable machine codes for every failed check.
	Reasons []string
	// Correlation is the face response's correlation with the emitted
	// sequence (mean over channels) at the best lag.
	Correlation float64
	// Lag is the measured loop latency at the best correlation.
	Lag time.Duration
	// Evidence holds the other measured quantities by name (face/background
	// ratio, shading spread, passive score, frames used, …).
	Evidence map[string]float64
}

// ErrAnalysis wraps inputs that cannot be analysed at all (no frames, no
// presentations); a weak or wrong response is not an error but a low score.
var ErrAnalysis = errors.New("flashmark analysis")

// Analyze measures the face's response to the challenge and scores it.
// It returns an ErrAnalysis-wrapped error for input that cannot be
// analysed (no challenge, presentations that do not match its steps, no
// frames, too few frames with a face inside the challenge, undecodable
// frames); a weak or wrong response is a low score, not an error. At
// LevelClosed nothing is measured: the result is live and says so.
func Analyze(in Input, cfg AnalysisConfig) (*Analysis, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Level == LevelClosed {
		return closed(), nil
	}
	if math.IsNaN(in.Passive) || in.Passive > 1 {
		return nil, fmt.Errorf("%w: passive score %v outside [0, 1] (negative: not run)", ErrAnalysis, in.Passive)
	}
	m, err := prepare(in, cfg.HFOV)
	if err != nil {
		return nil, err
	}
	if len(m.frames) < minFrames {
		return nil, fmt.Errorf("%w: %d frames with a face inside the challenge, need %d", ErrAnalysis, len(m.frames), minFrames)
	}
	ft := m.measure([2]time.Duration{cfg.LatencyMin, cfg.LatencyMax})
	return score(ft, in.Passive, cfg), nil
}
