package session

import (
	"context"
	"errors"
	"time"

	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/result"
)

// This file is the contract between the session manager (sessions.go,
// runner.go, …) and the kiosk API (api.go, kiosk.go): the types the API
// serialises and the errors it maps to HTTP statuses.

// State is where a session is in its life.
type State string

// Session states, in order. A session is created Idle (its token not used
// yet) and ends Decided, whatever its status.
const (
	StateIdle        State = "Idle"
	StatePositioning State = "Positioning"
	StateChallenge   State = "Challenge"
	StateAnalysing   State = "Analysing"
	StateDecided     State = "Decided"
)

// Guidance tells the person in front of the kiosk what to change while the
// session waits for a usable face.
type Guidance string

// Guidance codes.
const (
	GuidanceNoFace        Guidance = "NO_FACE"
	GuidanceMultipleFaces Guidance = "MULTIPLE_FACES"
	GuidanceTooFar        Guidance = "TOO_FAR"
	GuidanceTooClose      Guidance = "TOO_CLOSE"
	GuidanceOffCenter     Guidance = "OFF_CENTER"
	GuidanceTooDark       Guidance = "TOO_DARK"
	GuidanceTooBright     Guidance = "TOO_BRIGHT"
	GuidanceBacklit       Guidance = "BACKLIT"
	GuidanceBlurry        Guidance = "BLURRY"
	GuidanceFaceOccluded  Guidance = "FACE_OCCLUDED"
	GuidanceLookAtScreen  Guidance = "LOOK_AT_SCREEN"
)

// Request asks for a verification session.
type Request struct {
	// Subject is the caller's opaque reference for the person.
	Subject string `json:"subject"`
	// ReferenceID is the enrolment the face is compared against.
	ReferenceID string `json:"reference_id"`
	// Mode is dynamic (flash challenge, default) or express (passive, one frame).
	Mode result.Mode `json:"mode,omitempty"`
	// Level overrides the configured liveness level when set.
	Level flashmark.Level `json:"liveness_level,omitempty"`
}

// Ticket is what creating a session returns: the single-use token that
// starts it, valid until ExpiresAt.
type Ticket struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Verdict is a decided session's outcome, as told to the kiosk.
type Verdict struct {
	// ResultID is the signed result record's ID (the authentication ID).
	ResultID string           `json:"result_id"`
	Status   result.Status    `json:"status"`
	Reasons  []string         `json:"reasons"`
	Scores   result.Scores    `json:"scores"`
	Guard    result.Guard     `json:"guard"`
	Flash    result.Flashmark `json:"flashmark"`
}

// Info is a session's current state.
type Info struct {
	ID          string          `json:"id"`
	State       State           `json:"state"`
	Subject     string          `json:"subject"`
	ReferenceID string          `json:"reference_id"`
	Mode        result.Mode     `json:"mode"`
	Level       flashmark.Level `json:"liveness_level"`
	CreatedAt   time.Time       `json:"created_at"`
	ExpiresAt   time.Time       `json:"expires_at"`
	StartedAt   time.Time       `json:"started_at,omitzero"`
	DecidedAt   time.Time       `json:"decided_at,omitzero"`
	// Guidance is the latest positioning guidance (empty once the face is usable).
	Guidance Guidance `json:"guidance,omitempty"`
	// Verdict is set once State is Decided.
	Verdict *Verdict `json:"verdict,omitempty"`
}

// EventType names a server-sent event.
type EventType string

// Event types.
const (
	EventState    EventType = "state"
	EventGuidance EventType = "guidance"
	EventProgress EventType = "progress"
	EventVerdict  EventType = "verdict"
)

// Event is one server-sent event of a session. Seq numbers a session's
// events from 1, so a client can resume (Last-Event-ID).
type Event struct {
	Seq      int       `json:"seq"`
	Type     EventType `json:"type"`
	At       time.Time `json:"at"`
	State    State     `json:"state,omitempty"`
	Guidance Guidance  `json:"guidance,omitempty"`
	// Progress is the challenge's progress in [0, 1].
	Progress float64  `json:"progress,omitempty"`
	Verdict  *Verdict `json:"verdict,omitempty"`
}

// Errors the kiosk API maps to HTTP statuses.
var (
	// ErrBusy: another session is running (409).
	ErrBusy = errors.New("another session is running")
	// ErrNotFound: no such session (404).
	ErrNotFound = errors.New("no such session")
	// ErrTokenGone: the session token expired or was already used (410).
	ErrTokenGone = errors.New("session token expired or already used")
	// ErrUnknownReference: no enrolment with that reference ID (404).
	ErrUnknownReference = errors.New("no enrolment with that reference id")
	// ErrUnavailable: the device cannot verify now (camera down, outbox
	// full) (503).
	ErrUnavailable = errors.New("device cannot verify now")
)

// Sessions is what the kiosk API needs from the session manager.
type Sessions interface {
	// Create validates the request and returns a ticket; nothing runs yet.
	Create(ctx context.Context, req Request) (Ticket, error)
	// Start uses the ticket's token (once) and runs the session in the
	// background; ErrTokenGone for a used or expired token, ErrBusy while
	// another session runs.
	Start(ctx context.Context, id, token string) (Info, error)
	// Get reports a session.
	Get(id string) (Info, error)
	// Subscribe streams the session's events from after seq (0: all of
	// them); the channel closes after the verdict or when cancel is called.
	Subscribe(id string, after int) (events <-chan Event, cancel func(), err error)
	// Cancel stops a running session (it ends Not Finished, reason
	// CANCELLED) or withdraws an unstarted one.
	Cancel(id string) error
}

// Reference is one enrolment's template, as the session compares with it.
type Reference struct {
	ID        string    `json:"reference_id"`
	Subject   string    `json:"subject"`
	Model     string    `json:"model"`
	CreatedAt time.Time `json:"created_at"`
	Template  []float32 `json:"-"`
}

// References looks enrolments up (the enrolment store implements it).
type References interface {
	// Reference returns the enrolment; an error wrapping
	// ErrUnknownReference when there is none.
	Reference(id string) (Reference, error)
}
