package envelope

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/glintdev/glint/device"
)

// Receipt statuses.
const (
	// ReceiptStored: the record was committed by this delivery.
	ReceiptStored = "stored"
	// ReceiptDuplicate: the record was already stored (a redelivery).
	ReceiptDuplicate = "duplicate"
	// ReceiptRejected: the envelope's signature verified but the record
	// broke a rule (seq reused, clock skew, invalid record); it is kept in
	// the hub's quarantine table, so the device may drop it.
	ReceiptRejected = "rejected"
)

// Receipt is the hub's signed statement that it durably holds records of
// one device. The device deletes an outbox entry only on a receipt that
// verifies with the pinned hub key, names its device ID and lists the
// entry's seq and record ID. One receipt covers every record of the device
// in one committed batch, so a burst costs one signature and one message
// per device and batch, not per record.
type Receipt struct {
	V        int           `cbor:"v" json:"v"`
	DeviceID string        `cbor:"device_id" json:"device_id"`
	StoredAt time.Time     `cbor:"stored_at" json:"stored_at"`
	Items    []ReceiptItem `cbor:"items" json:"items"`
}

// ReceiptItem is the hub's answer for one record.
type ReceiptItem struct {
	Seq      uint64 `cbor:"seq" json:"seq"`
	RecordID string `cbor:"record_id" json:"record_id"`
	// Status is ReceiptStored, ReceiptDuplicate or ReceiptRejected.
	Status string `cbor:"status" json:"status"`
	// Reason is the rejection reason (quarantine reason code).
	Reason string `cbor:"reason,omitempty" json:"reason,omitempty"`
}

// MaxReceiptItems bounds the items of one receipt (keeps it far below
// MaxSize).
const MaxReceiptItems = 512

var (
	rcptEnc cbor.EncMode
	rcptDec cbor.DecMode
)

func init() {
	eo := cbor.CoreDetEncOptions()
	eo.Time = cbor.TimeRFC3339Nano
	var err error
	if rcptEnc, err = eo.EncMode(); err != nil {
		panic(err) // static options
	}
	do := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, IndefLength: cbor.IndefLengthForbidden, MaxNestedLevels: 4, MaxArrayElements: MaxReceiptItems}
	if rcptDec, err = do.DecMode(); err != nil {
		panic(err)
	}
}

// SignReceipt signs rc with the hub key.
func SignReceipt(key device.Signer, rc *Receipt) ([]byte, error) {
	rc.V = 1
	rc.StoredAt = rc.StoredAt.UTC()
	p, err := rcptEnc.Marshal(rc)
	if err != nil {
		return nil, fmt.Errorf("encode receipt: %w", err)
	}
	return Sign(key, ContentTypeReceipt, p)
}

// OpenReceipt decodes and verifies a receipt with the pinned hub key.
func OpenReceipt(b []byte, hub ed25519.PublicKey) (*Receipt, error) {
	e, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if err := e.Verify(hub, ContentTypeReceipt); err != nil {
		return nil, err
	}
	var rc Receipt
	rest, err := rcptDec.UnmarshalFirst(e.Payload, &rc)
	if err != nil || len(rest) != 0 || rc.V != 1 || rc.DeviceID == "" || len(rc.Items) == 0 || len(rc.Items) > MaxReceiptItems {
		return nil, fmt.Errorf("%w: receipt payload", ErrPayload)
	}
	for _, it := range rc.Items {
		if it.Seq == 0 || it.RecordID == "" {
			return nil, fmt.Errorf("%w: receipt item", ErrPayload)
		}
	}
	return &rc, nil
}
