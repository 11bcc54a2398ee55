package result

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Synthetic returns a plausible, valid Approved record for simulators
// (glintctl fleet-sim), tests and benchmarks. It is deterministic apart from
// the ID, so its size (about 900 bytes of CBOR) is representative of a real
// dynamic-mode result without the evidence frame.
func Synthetic(deviceID, siteID string, seq uint64, now time.Time) (*Record, error) {
	id, err := NewID()
	if err != nil {
		return nil, err
	}
	now = now.UTC()
	digest := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", deviceID, seq)))
	r := &Record{
		V:           SchemaVersion,
		ID:          id,
		DeviceID:    deviceID,
		SiteID:      siteID,
		Seq:         seq,
		CreatedAt:   now,
		Subject:     fmt.Sprintf("customer-%d", seq%1000),
		ReferenceID: fmt.Sprintf("enrol-%d", seq%1000),
		Mode:        ModeDynamic,
		Status:      StatusApproved,
		Reasons:     []string{},
		Policy: Policy{
			ID: "bank-default", Version: "3", Mode: ModeDynamic,
			MinFaceSimilarity: 80, MinLiveness: 70, MinAntiSpoof: 60, ReviewBand: 5,
			ChallengeSteps: 8, TimeoutMS: 15000,
		},
		Scores: Scores{FaceSimilarity: 93.5, Liveness: 88.25, AntiSpoof: 97, Occlusion: "none"},
		Flashmark: Flashmark{
			Nonce: hex.EncodeToString(digest[:16]), Steps: 8, Correlation: 0.91, LagMS: 48,
			Evidence: map[string]float64{"face_luma_snr": 14.5, "specular_ratio": 0.12},
		},
		Guard: Guard{Risk: "low", Signals: []string{}},
		Timeline: []Event{
			{At: now.Add(-1900 * time.Millisecond), Name: "session_started"},
			{At: now.Add(-1500 * time.Millisecond), Name: "face_positioned"},
			{At: now.Add(-1200 * time.Millisecond), Name: "challenge_started"},
			{At: now.Add(-300 * time.Millisecond), Name: "challenge_done"},
			{At: now, Name: "verdict"},
		},
		Evidence: Evidence{SHA256: hex.EncodeToString(digest[:]), MediaType: "image/jpeg"},
		Versions: Versions{
			Glintd: "dev",
			Models: map[string]string{"detector": "scrfd-2.5g-q8", "embedder": "arcface-r50-q8", "antispoof": "minifas-q8"},
			Config: "sha256:" + hex.EncodeToString(digest[:8]),
		},
	}
	return r, nil
}
