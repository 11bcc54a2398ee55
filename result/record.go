package result

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// SchemaVersion is the version of Record this package writes.
const SchemaVersion = 1

// ErrInvalid is wrapped by every Validate and Decode failure, so that callers
// (the hub's ingest) can tell bad input from their own faults.
var ErrInvalid = errors.New("invalid result record")

// Mode is how the verification was run.
type Mode string

// Modes.
const (
	// ModeDynamic: the screen challenge (flashmark) ran; full liveness.
	ModeDynamic Mode = "dynamic"
	// ModeExpress: passive anti-spoof only, no screen challenge.
	ModeExpress Mode = "express"
)

// Status is the verdict.
type Status string

// Statuses. The strings are part of the wire format.
const (
	StatusApproved    Status = "Approved"
	StatusDeclined    Status = "Declined"
	StatusInReview    Status = "In Review"
	StatusNotFinished Status = "Not Finished"
	StatusExpired     Status = "Expired"
)

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusApproved, StatusDeclined, StatusInReview, StatusNotFinished, StatusExpired:
		return true
	}
	return false
}

// Valid reports whether m is one of the defined modes.
func (m Mode) Valid() bool { return m == ModeDynamic || m == ModeExpress }

// Record is one verification's result, version 1. Field names (cbor and json
// tags) are the wire format; see docs/result-record.md.
type Record struct {
	// V is the schema version, SchemaVersion when written by this package.
	V int `cbor:"v" json:"v"`
	// ID is the authentication ID: a UUIDv7 in canonical text form.
	ID string `cbor:"id" json:"id"`
	// DeviceID is the producing device's ID.
	DeviceID string `cbor:"device_id" json:"device_id"`
	// SiteID is the site the device was provisioned to.
	SiteID string `cbor:"site_id" json:"site_id"`
	// Seq is the per-device sequence number, strictly increasing, from 1.
	Seq uint64 `cbor:"seq" json:"seq"`
	// CreatedAt is when the verdict was reached, UTC.
	CreatedAt time.Time `cbor:"created_at" json:"created_at"`
	// Subject is the caller's opaque reference for the person.
	Subject string `cbor:"subject" json:"subject"`
	// ReferenceID names the enrolment (portrait) compared against.
	ReferenceID string `cbor:"reference_id" json:"reference_id"`
	// Mode is dynamic or express.
	Mode Mode `cbor:"mode" json:"mode"`
	// Status is the verdict.
	Status Status `cbor:"status" json:"status"`
	// Reasons are stable machine codes explaining the status (e.g.
	// "face_mismatch", "liveness_low"); empty when Approved.
	Reasons []string `cbor:"reasons" json:"reasons"`
	// Policy is the snapshot of every threshold and mode applied.
	Policy Policy `cbor:"policy" json:"policy"`
	// Scores are the measured scores.
	Scores Scores `cbor:"scores" json:"scores"`
	// Flashmark is the screen challenge's evidence (dynamic mode).
	Flashmark Flashmark `cbor:"flashmark" json:"flashmark"`
	// Guard is the device-guard snapshot.
	Guard Guard `cbor:"guard" json:"guard"`
	// Timeline lists timestamped session events in order.
	Timeline []Event `cbor:"timeline" json:"timeline"`
	// Evidence is the evidence frame's digest (and the frame when retained).
	Evidence Evidence `cbor:"evidence" json:"evidence"`
	// Versions are the software, model and config versions that decided.
	Versions Versions `cbor:"versions" json:"versions"`
}

// Policy is the snapshot of the decision policy applied to one session.
type Policy struct {
	// ID names the policy (e.g. "bank-default") and Version its revision.
	ID      string `cbor:"id" json:"id"`
	Version string `cbor:"version" json:"version"`
	// Mode is the mode the policy asked for.
	Mode Mode `cbor:"mode" json:"mode"`
	// MinFaceSimilarity, MinLiveness and MinAntiSpoof are the 0–100
	// thresholds for Approved.
	MinFaceSimilarity float64 `cbor:"min_face_similarity" json:"min_face_similarity"`
	MinLiveness       float64 `cbor:"min_liveness" json:"min_liveness"`
	MinAntiSpoof      float64 `cbor:"min_anti_spoof" json:"min_anti_spoof"`
	// ReviewBand is the width, in score points below a threshold, that
	// yields In Review instead of Declined.
	ReviewBand float64 `cbor:"review_band" json:"review_band"`
	// Occlusion is the required occlusion state: "" (none required),
	// "helmet", "mask", or "none" (face must be unoccluded).
	Occlusion string `cbor:"occlusion" json:"occlusion"`
	// LivenessLevel is the liveness operating point applied: LOOSE,
	// STANDARD, STRICT, or CLOSED (liveness not checked: tests only).
	LivenessLevel string `cbor:"liveness_level,omitempty" json:"liveness_level,omitempty"`
	// ChallengeSteps is the number of flashmark steps.
	ChallengeSteps int `cbor:"challenge_steps" json:"challenge_steps"`
	// TimeoutMS is the session time limit in milliseconds.
	TimeoutMS int64 `cbor:"timeout_ms" json:"timeout_ms"`
}

// Scores are the measured scores, each 0–100 (higher is better).
type Scores struct {
	FaceSimilarity float64 `cbor:"face_similarity" json:"face_similarity"`
	Liveness       float64 `cbor:"liveness" json:"liveness"`
	AntiSpoof      float64 `cbor:"anti_spoof" json:"anti_spoof"`
	// Occlusion is the detected occlusion: "none", "helmet", "mask",
	// "hand", "other" or "" when not assessed.
	Occlusion string `cbor:"occlusion" json:"occlusion"`
}

// Flashmark is the dynamic-liveness evidence.
type Flashmark struct {
	// Nonce is the challenge nonce (hex) from which the colour sequence was
	// derived.
	Nonce string `cbor:"nonce" json:"nonce"`
	// Steps is the number of colour steps shown.
	Steps int `cbor:"steps" json:"steps"`
	// Correlation is the measured correlation between shown and reflected
	// colour, -1..1.
	Correlation float64 `cbor:"correlation" json:"correlation"`
	// LagMS is the measured display-to-camera lag in milliseconds.
	LagMS float64 `cbor:"lag_ms" json:"lag_ms"`
	// Evidence holds other named measurements (e.g. "face_luma_snr").
	Evidence map[string]float64 `cbor:"evidence" json:"evidence"`
}

// Guard is the device-guard snapshot at decision time.
type Guard struct {
	// Risk is "low", "medium", "high" or "" when no guard ran.
	Risk string `cbor:"risk" json:"risk"`
	// Signals are the raised integrity signals (e.g. "tamper_switch_open").
	Signals []string `cbor:"signals" json:"signals"`
}

// Event is one timeline entry.
type Event struct {
	At   time.Time `cbor:"at" json:"at"`
	Name string    `cbor:"name" json:"name"`
	// Detail is optional free text.
	Detail string `cbor:"detail,omitempty" json:"detail,omitempty"`
}

// Evidence describes the evidence frame.
type Evidence struct {
	// SHA256 is the hex SHA-256 of the encoded evidence frame ("" if none).
	SHA256 string `cbor:"sha256" json:"sha256"`
	// MediaType of the frame, e.g. "image/jpeg".
	MediaType string `cbor:"media_type" json:"media_type"`
	// Frame is the frame itself, present only when retention is on.
	Frame []byte `cbor:"frame,omitempty" json:"frame,omitempty"`
}

// Versions are what decided.
type Versions struct {
	Glintd string `cbor:"glintd" json:"glintd"`
	// Models maps model name to version or digest.
	Models map[string]string `cbor:"models" json:"models"`
	// Config is the configuration digest or version.
	Config string `cbor:"config" json:"config"`
}

// NewID returns a fresh UUIDv7 authentication ID.
func NewID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("new record id: %w", err)
	}
	return u.String(), nil
}

// Limits enforced by Validate, so that a record always fits an envelope.
const (
	maxString  = 1024
	maxReasons = 64
	maxEvents  = 256
	maxMapLen  = 64
)

// Validate checks the record's invariants. Every error wraps ErrInvalid.
func (r *Record) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if r.V != SchemaVersion {
		return bad("schema version %d, want %d", r.V, SchemaVersion)
	}
	u, err := uuid.Parse(r.ID)
	if err != nil || u.Version() != 7 || u.String() != r.ID {
		return bad("id %q is not a canonical UUIDv7", r.ID)
	}
	if r.DeviceID == "" {
		return bad("device_id empty")
	}
	if r.Seq == 0 {
		return bad("seq must be ≥ 1")
	}
	if r.CreatedAt.IsZero() {
		return bad("created_at missing")
	}
	if r.CreatedAt.Location() != time.UTC {
		return bad("created_at not UTC")
	}
	if !r.Mode.Valid() {
		return bad("mode %q", r.Mode)
	}
	if !r.Status.Valid() {
		return bad("status %q", r.Status)
	}
	for name, s := range map[string]float64{
		"face_similarity": r.Scores.FaceSimilarity,
		"liveness":        r.Scores.Liveness,
		"anti_spoof":      r.Scores.AntiSpoof,
	} {
		if !(s >= 0 && s <= 100) { // also rejects NaN
			return bad("scores.%s %v outside 0–100", name, s)
		}
	}
	for _, s := range []string{r.DeviceID, r.SiteID, r.Subject, r.ReferenceID} {
		if len(s) > maxString {
			return bad("string field longer than %d bytes", maxString)
		}
	}
	if len(r.Reasons) > maxReasons || len(r.Timeline) > maxEvents ||
		len(r.Flashmark.Evidence) > maxMapLen || len(r.Versions.Models) > maxMapLen {
		return bad("too many reasons, events or map entries")
	}
	return nil
}

// Normalize puts times in UTC and nil slices as empty ones, so that records
// built in memory encode exactly like their decoded round trip.
func (r *Record) Normalize() {
	r.CreatedAt = r.CreatedAt.UTC()
	for i := range r.Timeline {
		r.Timeline[i].At = r.Timeline[i].At.UTC()
	}
	if r.Reasons == nil {
		r.Reasons = []string{}
	}
	if r.Timeline == nil {
		r.Timeline = []Event{}
	}
	if r.Guard.Signals == nil {
		r.Guard.Signals = []string{}
	}
}

// JSON returns the record's indented JSON view.
func (r *Record) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("record json: %w", err)
	}
	return b, nil
}
