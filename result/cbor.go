package result

import (
	"bytes"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// MaxEncodedSize bounds the CBOR a decoder accepts; an envelope adds about
// 150 bytes of headers and signature to it.
const MaxEncodedSize = 60 << 10

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	// Core deterministic encoding (RFC 8949 §4.2.1): shortest integers and
	// floats, definite lengths, map keys sorted bytewise. Times are RFC 3339
	// text with nanoseconds (UTC after Normalize), readable in any CBOR
	// tool and exact.
	eo := cbor.CoreDetEncOptions()
	eo.Time = cbor.TimeRFC3339Nano
	eo.TimeTag = cbor.EncTagNone
	var err error
	if encMode, err = eo.EncMode(); err != nil {
		panic(err) // static options; cannot fail at run time
	}
	// Decoding is strict about structure (duplicate keys, invalid UTF-8,
	// indefinite lengths, depth and sizes) but ignores unknown fields:
	// adding a field is a compatible change.
	do := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
		MaxNestedLevels:  16,
		MaxArrayElements: 4096,
		MaxMapPairs:      4096,
		TimeTag:          cbor.DecTagIgnored,
	}
	if decMode, err = do.DecMode(); err != nil {
		panic(err)
	}
}

// Marshal normalizes r and returns its deterministic CBOR encoding.
func Marshal(r *Record) ([]byte, error) {
	r.Normalize()
	b, err := encMode.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	return b, nil
}

// Unmarshal decodes and validates a CBOR record. It rejects trailing bytes
// and anything over MaxEncodedSize. Errors wrap ErrInvalid.
func Unmarshal(b []byte) (*Record, error) {
	if len(b) > MaxEncodedSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalid, len(b), MaxEncodedSize)
	}
	var r Record
	rest, err := decMode.UnmarshalFirst(b, &r)
	if err != nil {
		return nil, fmt.Errorf("%w: cbor: %v", ErrInvalid, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrInvalid, len(rest))
	}
	r.CreatedAt = r.CreatedAt.UTC()
	for i := range r.Timeline {
		r.Timeline[i].At = r.Timeline[i].At.UTC()
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// IsCanonical reports whether b is exactly the deterministic encoding of the
// record it decodes to (only fields this version knows): the hub records it
// so that non-canonical producers show up.
func IsCanonical(b []byte) bool {
	r, err := Unmarshal(b)
	if err != nil {
		return false
	}
	again, err := Marshal(r)
	return err == nil && bytes.Equal(again, b)
}
