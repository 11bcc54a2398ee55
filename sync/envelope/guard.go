package envelope

import (
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/glintdev/glint/device"
)

// GuardReport is the device-guard report a device publishes, signed, on
// <prefix>/<device>/guard (content type ContentTypeGuard): the whole
// device.Report (every signal with its evidence), not only the summary
// that result records carry.
type GuardReport struct {
	V        int    `cbor:"v" json:"v"`
	DeviceID string `cbor:"device_id" json:"device_id"`
	// SentAt is when the device signed this report; the hub keeps the
	// newest per device, so an older report replayed later never replaces
	// a newer one.
	SentAt    time.Time     `cbor:"sent_at" json:"sent_at"`
	CheckedAt time.Time     `cbor:"checked_at" json:"checked_at"`
	Risk      string        `cbor:"risk" json:"risk"`
	Signals   []GuardSignal `cbor:"signals" json:"signals"`
}

// GuardSignal is one raised device-guard signal.
type GuardSignal struct {
	Code     string            `cbor:"code" json:"code"`
	Severity string            `cbor:"severity" json:"severity"`
	Message  string            `cbor:"message" json:"message"`
	Evidence map[string]string `cbor:"evidence,omitempty" json:"evidence,omitempty"`
}

// MaxGuardSignals bounds the signals of one report.
const MaxGuardSignals = 256

var guardDec cbor.DecMode

func init() {
	do := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, IndefLength: cbor.IndefLengthForbidden,
		MaxNestedLevels: 6, MaxArrayElements: MaxGuardSignals, MaxMapPairs: 256}
	var err error
	if guardDec, err = do.DecMode(); err != nil {
		panic(err) // static options
	}
}

// NewGuardReport converts a monitor's report for the wire.
func NewGuardReport(deviceID string, rep device.Report, now time.Time) *GuardReport {
	g := &GuardReport{V: 1, DeviceID: deviceID, SentAt: now.UTC(), CheckedAt: rep.CheckedAt.UTC(), Risk: rep.Risk.String(), Signals: []GuardSignal{}}
	for _, s := range rep.Signals {
		g.Signals = append(g.Signals, GuardSignal{Code: s.Code, Severity: s.Severity.String(), Message: s.Message, Evidence: s.Evidence})
	}
	return g
}

// SignGuard signs a guard report with the device key.
func SignGuard(key device.Signer, g *GuardReport) ([]byte, error) {
	g.V = 1
	g.SentAt, g.CheckedAt = g.SentAt.UTC(), g.CheckedAt.UTC()
	if g.Signals == nil {
		g.Signals = []GuardSignal{}
	}
	if len(g.Signals) > MaxGuardSignals {
		return nil, fmt.Errorf("sign guard report: %w: %d signals", ErrTooLarge, len(g.Signals))
	}
	p, err := rcptEnc.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("encode guard report: %w", err)
	}
	return Sign(key, ContentTypeGuard, p)
}

// Guard decodes the payload as a guard report (call after VerifyKey with
// ContentTypeGuard).
func (e *Envelope) Guard() (*GuardReport, error) {
	if e.ContentType != ContentTypeGuard {
		return nil, fmt.Errorf("%w: %q", ErrContentType, e.ContentType)
	}
	var g GuardReport
	rest, err := guardDec.UnmarshalFirst(e.Payload, &g)
	if err != nil || len(rest) != 0 || g.V != 1 || g.DeviceID == "" || g.SentAt.IsZero() {
		return nil, fmt.Errorf("%w: guard report", ErrPayload)
	}
	if _, err := device.ParseSeverity(g.Risk); err != nil {
		return nil, fmt.Errorf("%w: guard risk %q", ErrPayload, g.Risk)
	}
	for _, s := range g.Signals {
		if _, err := device.ParseSeverity(s.Severity); err != nil || s.Code == "" {
			return nil, fmt.Errorf("%w: guard signal", ErrPayload)
		}
	}
	return &g, nil
}

// OpenGuard decodes and verifies a guard report envelope with the device's
// registered key.
func OpenGuard(b []byte, pub device.PublicKey) (*GuardReport, error) {
	e, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if err := e.VerifyKey(pub, ContentTypeGuard); err != nil {
		return nil, err
	}
	return e.Guard()
}
