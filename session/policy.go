package session

import (
	"fmt"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/result"
)

// Reason codes of a session that did not reach a decision (status Not
// Finished or Expired). They are stable: kiosk apps and the hub branch on
// them. docs/session.md lists them with the decision reasons.
const (
	ReasonCancelled          = "CANCELLED"
	ReasonCameraLost         = "CAMERA_LOST"
	ReasonDeviceRisk         = "DEVICE_RISK"
	ReasonPositioningTimeout = "POSITIONING_TIMEOUT"
	ReasonChallengeTimeout   = "CHALLENGE_TIMEOUT"
	ReasonSessionTimeout     = "SESSION_TIMEOUT"
	ReasonFaceLost           = "FACE_LOST"
	ReasonAnalysisFailed     = "ANALYSIS_FAILED"
	ReasonReferenceGone      = "REFERENCE_GONE"
	ReasonReferenceModel     = "REFERENCE_MODEL_MISMATCH"
	ReasonTokenExpired       = "TOKEN_EXPIRED"
	ReasonShutdown           = "SHUTDOWN"
	ReasonInternal           = "INTERNAL_ERROR"
)

// Decision reason codes (status Declined or In Review). Liveness analysis
// adds its own codes (flashmark.Analysis.Reasons) after liveness_low.
const (
	ReasonFaceMismatch   = "face_mismatch"
	ReasonFaceReview     = "face_review"
	ReasonLivenessLow    = "liveness_low"
	ReasonLivenessReview = "liveness_review"
)

// Policy is the decision policy: what a session must score to be Approved.
// Its snapshot goes into every result record (result.Policy).
type Policy struct {
	// ID and Version name the policy in the record.
	ID      string
	Version string
	// Mode is the default mode (a request may ask for another).
	Mode result.Mode
	// Level is the default liveness level (a request may override it).
	Level flashmark.Level
	// FaceThreshold is the minimum face-similarity score (0–100).
	FaceThreshold float64
	// ReviewBand is the width, in score points below a threshold, that
	// gives In Review instead of Declined; 0 disables review.
	ReviewBand float64
	// RefuseRisk is the device-guard risk at or above which sessions are
	// refused (DEVICE_RISK); SeverityNone disables the refusal.
	RefuseRisk device.Severity
}

// DefaultPolicy is the packaged policy. FaceThreshold 50 is
// inference.DefaultMatchThreshold (cosine 0.55 with faceres: the middle of
// the measured gap between impostor and genuine pairs, docs/models.md).
// The liveness thresholds per level are flashmark's (docs/flashmark.md).
func DefaultPolicy() Policy {
	return Policy{
		ID: "default", Version: "1", Mode: result.ModeDynamic, Level: flashmark.LevelStandard,
		FaceThreshold: inference.DefaultMatchThreshold, ReviewBand: 0,
		RefuseRisk: device.SeverityCritical,
	}
}

// Validate checks the thresholds.
func (p Policy) Validate() error {
	for name, v := range map[string]float64{"face threshold": p.FaceThreshold, "review band": p.ReviewBand} {
		if !(v >= 0 && v <= 100) {
			return fmt.Errorf("policy: %s %v outside 0..100", name, v)
		}
	}
	if !p.Mode.Valid() {
		return fmt.Errorf("policy: mode %q (dynamic or express)", p.Mode)
	}
	if err := checkLevel(p.Level); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	return nil
}

func checkLevel(l flashmark.Level) error {
	switch l {
	case flashmark.LevelLoose, flashmark.LevelStandard, flashmark.LevelStrict, flashmark.LevelClosed:
		return nil
	}
	return fmt.Errorf("liveness level %q (LOOSE, STANDARD, STRICT or CLOSED)", l)
}

// Measured is what a session measured, as the decision sees it.
type Measured struct {
	Mode  result.Mode
	Level flashmark.Level
	// Face is the face-similarity score 0–100.
	Face float64
	// Liveness is the liveness analysis: flashmark.Analyze (dynamic) or
	// flashmark.AnalyzeExpress (express). nil declines.
	Liveness *flashmark.Analysis
}

// Decide applies the policy: every failed check adds its reason; any
// Declined reason declines, else any review reason gives In Review, else
// Approved. At level CLOSED liveness is not checked and the verdict carries
// LIVENESS_DISABLED even when Approved. It returns the status, the reasons and the policy snapshot.
func (p Policy) Decide(m Measured, challengeSteps int, timeoutMS int64) (result.Status, []string, result.Policy) {
	snap := p.Snapshot(m.Mode, m.Level, challengeSteps, timeoutMS)
	var declined, review []string
	check := func(score, threshold float64, low, rev string) {
		switch {
		case score >= threshold:
		case p.ReviewBand > 0 && score >= threshold-p.ReviewBand:
			review = append(review, rev)
		default:
			declined = append(declined, low)
		}
	}
	check(m.Face, p.FaceThreshold, ReasonFaceMismatch, ReasonFaceReview)
	if a := m.Liveness; a != nil {
		snap.MinLiveness = a.Threshold
		if m.Mode == result.ModeExpress {
			snap.MinAntiSpoof = a.Threshold // express: the passive score is the liveness score
		}
		switch {
		case m.Level == flashmark.LevelClosed:
			// Nothing was checked: say so even when Approved.
			review = append(review, a.Reasons...)
		case a.Live:
		case p.ReviewBand > 0 && a.Score >= a.Threshold-p.ReviewBand:
			review = append(review, ReasonLivenessReview)
		default:
			declined = append(declined, ReasonLivenessLow)
			declined = append(declined, a.Reasons...)
		}
	} else {
		declined = append(declined, ReasonLivenessLow)
	}
	switch {
	case len(declined) > 0:
		return result.StatusDeclined, append(declined, review...), snap
	case m.Level == flashmark.LevelClosed:
		return result.StatusApproved, review, snap
	case len(review) > 0:
		return result.StatusInReview, review, snap
	}
	return result.StatusApproved, []string{}, snap
}

// Snapshot is the record's copy of the policy for a session in mode at
// liveness level (the policy's own level when "").
func (p Policy) Snapshot(mode result.Mode, level flashmark.Level, challengeSteps int, timeoutMS int64) result.Policy {
	if level == "" {
		level = p.Level
	}
	return result.Policy{
		ID: p.ID, Version: p.Version, Mode: mode, LivenessLevel: string(level),
		MinFaceSimilarity: p.FaceThreshold, ReviewBand: p.ReviewBand,
		ChallengeSteps: challengeSteps, TimeoutMS: timeoutMS,
	}
}

// guardSummary converts a device-guard report to the record's form: risk
// low (none or info), medium (warn) or high (critical).
func guardSummary(rep device.Report, ran bool) result.Guard {
	if !ran {
		return result.Guard{Signals: []string{}}
	}
	s := rep.Summary()
	risk := "low"
	switch {
	case s.Risk >= device.SeverityCritical:
		risk = "high"
	case s.Risk >= device.SeverityWarn:
		risk = "medium"
	}
	return result.Guard{Risk: risk, Signals: s.Codes}
}
