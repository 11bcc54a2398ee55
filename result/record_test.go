package result

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

func sample(t testing.TB) *Record {
	t.Helper()
	r, err := Synthetic("dev-1", "site-a", 42, time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoundTrip(t *testing.T) {
	r := sample(t)
	b, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("re-encoding differs:\n%x\n%x", b, b2)
	}
	if !got.CreatedAt.Equal(r.CreatedAt) || got.Seq != 42 || got.Flashmark.Evidence["face_luma_snr"] != 14.5 {
		t.Fatalf("fields lost: %+v", got)
	}
	if !IsCanonical(b) {
		t.Fatal("own encoding not canonical")
	}
	t.Logf("synthetic record: %d bytes CBOR", len(b))
}

// TestDeterministic builds the same record with maps filled in different
// orders and with a non-UTC time: the bytes must not change.
func TestDeterministic(t *testing.T) {
	a := sample(t)
	b := sample(t)
	b.ID = a.ID
	b.Flashmark.Evidence = map[string]float64{}
	for _, k := range []string{"specular_ratio", "face_luma_snr"} {
		b.Flashmark.Evidence[k] = a.Flashmark.Evidence[k]
	}
	b.CreatedAt = a.CreatedAt.In(time.FixedZone("CET", 3600))
	ea, _ := Marshal(a)
	eb, _ := Marshal(b)
	if !bytes.Equal(ea, eb) {
		t.Fatal("equal records encode differently")
	}
	// Core deterministic: the top-level map's keys sorted bytewise by
	// encoded form, i.e. shorter keys first ("v" before "id").
	var m map[string]cbor.RawMessage
	if err := cbor.Unmarshal(ea, &m); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hex.EncodeToString(ea), "b2") { // map(18)
		t.Fatalf("unexpected head %x", ea[:1])
	}
	if len(m) != 18 {
		t.Fatalf("record has %d fields, docs/result-record.md lists 18", len(m))
	}
}

func TestNonCanonicalDetected(t *testing.T) {
	r := sample(t)
	// Same content, map keys in struct order (not sorted): decodes fine but
	// is not canonical.
	em, _ := cbor.EncOptions{Time: cbor.TimeRFC3339Nano}.EncMode()
	b, err := em.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(b); err != nil {
		t.Fatalf("unsorted but valid CBOR rejected: %v", err)
	}
	if IsCanonical(b) {
		t.Fatal("unsorted encoding reported canonical")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(r *Record)
		want string
	}{
		{"ok", func(r *Record) {}, ""},
		{"version", func(r *Record) { r.V = 2 }, "schema version"},
		{"id not uuid", func(r *Record) { r.ID = "abc" }, "UUIDv7"},
		{"id v4", func(r *Record) { r.ID = "9b2c4c4e-8f3a-4d2e-9c1a-2b3c4d5e6f70" }, "UUIDv7"},
		{"id uppercase", func(r *Record) { r.ID = strings.ToUpper(r.ID) }, "UUIDv7"},
		{"no device", func(r *Record) { r.DeviceID = "" }, "device_id"},
		{"seq 0", func(r *Record) { r.Seq = 0 }, "seq"},
		{"no time", func(r *Record) { r.CreatedAt = time.Time{} }, "created_at"},
		{"mode", func(r *Record) { r.Mode = "fast" }, "mode"},
		{"status", func(r *Record) { r.Status = "approved" }, "status"},
		{"score high", func(r *Record) { r.Scores.Liveness = 100.5 }, "liveness"},
		{"score NaN", func(r *Record) { r.Scores.FaceSimilarity = math.NaN() }, "face_similarity"},
		{"long subject", func(r *Record) { r.Subject = strings.Repeat("x", 2000) }, "longer"},
		{"many reasons", func(r *Record) { r.Reasons = make([]string, 100) }, "too many"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sample(t)
			tt.mod(r)
			err := r.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good, _ := Marshal(sample(t))
	dup := []byte{0xa2, 0x61, 'v', 0x01, 0x61, 'v', 0x01} // {"v":1,"v":1}
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)/2]},
		{"trailing", append(append([]byte{}, good...), 0x00)},
		{"not a map", []byte{0x83, 1, 2, 3}},
		{"duplicate key", dup},
		{"indefinite", []byte{0xbf, 0x61, 'v', 0x01, 0xff}},
		{"invalid utf8", []byte{0xa1, 0x62, 'i', 'd', 0x61, 0xff}},
		{"oversized", make([]byte, MaxEncodedSize+1)},
		{"wrong type", []byte{0xa1, 0x63, 's', 'e', 'q', 0x61, 'x'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Unmarshal(tt.in); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestUnknownFieldIgnored(t *testing.T) {
	r := sample(t)
	b, _ := Marshal(r)
	var m map[string]any
	if err := cbor.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["future_field"] = "x"
	b2, _ := encMode.Marshal(m)
	got, err := Unmarshal(b2)
	if err != nil {
		t.Fatalf("record with an added field rejected: %v", err)
	}
	if got.ID != r.ID {
		t.Fatal("id lost")
	}
}

func TestJSONView(t *testing.T) {
	r := sample(t)
	j, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	b1, _ := Marshal(r)
	b2, _ := Marshal(&back)
	if !bytes.Equal(b1, b2) {
		t.Fatal("JSON view loses information")
	}
	for _, k := range []string{`"device_id": "dev-1"`, `"status": "Approved"`, `"created_at": "2026-11-22T10:00:00.123456789Z"`} {
		if !bytes.Contains(j, []byte(k)) {
			t.Errorf("JSON view lacks %s", k)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	good, _ := Marshal(sample(f))
	f.Add(good)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xbf, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		// Anything accepted re-encodes and decodes to the same bytes.
		e1, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := Unmarshal(e1)
		if err != nil {
			t.Fatalf("re-encoded record rejected: %v", err)
		}
		e2, _ := Marshal(r2)
		if !bytes.Equal(e1, e2) {
			t.Fatal("encoding not stable")
		}
	})
}

func BenchmarkMarshal(b *testing.B) {
	r := sample(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	enc, _ := Marshal(sample(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(enc); err != nil {
			b.Fatal(err)
		}
	}
}
