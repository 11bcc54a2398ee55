package envelope

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/veraison/go-cose"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/result"
)

func testKey(t testing.TB) *device.Key {
	t.Helper()
	k, err := device.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signed(t testing.TB, k *device.Key) []byte {
	t.Helper()
	r, err := result.Synthetic("dev-1", "site-a", 7, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := SignRecord(k, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// coseWith builds a COSE_Sign1 by hand so that tests can set any header.
func coseWith(t *testing.T, alg cose.Algorithm, signer cose.Signer, prot, unprot map[any]any, payload []byte) []byte {
	t.Helper()
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(alg)
	for k, v := range prot {
		msg.Headers.Protected[k] = v
	}
	for k, v := range unprot {
		msg.Headers.Unprotected[k] = v
	}
	msg.Payload = payload
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		t.Fatal(err)
	}
	b, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignOpenRecord(t *testing.T) {
	k := testKey(t)
	b := signed(t, k)
	r, err := OpenRecord(b, k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 7 || r.DeviceID != "dev-1" {
		t.Fatalf("record %+v", r)
	}
	e, _ := Decode(b)
	if e.KID != k.ID || e.ContentType != ContentTypeRecord {
		t.Fatalf("headers %q %q", e.KID, e.ContentType)
	}
	t.Logf("envelope of the synthetic record: %d bytes", len(b))
}

func TestRejects(t *testing.T) {
	k := testKey(t)
	other := testKey(t)
	good := signed(t, k)
	payload, _ := Decode(good)

	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es256, _ := cose.NewSigner(cose.AlgorithmES256, ecKey)
	edSigner, _ := cose.NewSigner(cose.AlgorithmEdDSA, k.Private)
	stdProt := map[any]any{cose.HeaderLabelKeyID: []byte(k.ID), cose.HeaderLabelContentType: ContentTypeRecord}

	forged := append([]byte{}, good...)
	forged[len(forged)-1] ^= 0x01 // last signature byte
	tamperedPayload := append([]byte{}, good...)
	// Flip a byte inside the payload: the subject's digits.
	for i := 20; i < len(tamperedPayload)-70; i++ {
		if tamperedPayload[i] == 'c' && tamperedPayload[i+1] == 'u' {
			tamperedPayload[i] = 'C'
			break
		}
	}
	// Signed by k but claiming other's kid.
	wrongKID := coseWith(t, cose.AlgorithmEdDSA, edSigner,
		map[any]any{cose.HeaderLabelKeyID: []byte(other.ID), cose.HeaderLabelContentType: ContentTypeRecord}, nil, payload.Payload)
	receiptAsRecord, _ := SignReceipt(k, &Receipt{DeviceID: "dev-1", StoredAt: time.Now(), Items: []ReceiptItem{{Seq: 1, RecordID: "x", Status: ReceiptStored}}})

	tests := []struct {
		name string
		in   []byte
		pub  []byte
		want error
	}{
		{"empty", nil, k.Public(), ErrMalformed},
		{"not cbor", []byte("hello world"), k.Public(), ErrMalformed},
		{"malformed cbor", []byte{0xd2, 0x84, 0x43, 0xa1, 0x01}, k.Public(), ErrMalformed},
		{"untagged", good[1:], k.Public(), ErrMalformed},
		{"truncated", good[:len(good)-10], k.Public(), ErrMalformed},
		{"truncated to header", good[:8], k.Public(), ErrMalformed},
		{"trailing", append(append([]byte{}, good...), 0), k.Public(), ErrMalformed},
		{"oversized", make([]byte, MaxSize+1), k.Public(), ErrTooLarge},
		{"wrong alg ES256", coseWith(t, cose.AlgorithmES256, es256, stdProt, nil, payload.Payload), k.Public(), ErrAlgorithm},
		{"alg in unprotected", coseWith(t, cose.AlgorithmEdDSA, edSigner, stdProt, map[any]any{cose.HeaderLabelAlgorithm: cose.AlgorithmEdDSA}, payload.Payload), k.Public(), ErrMalformed},
		{"no kid", coseWith(t, cose.AlgorithmEdDSA, edSigner, map[any]any{cose.HeaderLabelContentType: ContentTypeRecord}, nil, payload.Payload), k.Public(), ErrMalformed},
		{"no content type", coseWith(t, cose.AlgorithmEdDSA, edSigner, map[any]any{cose.HeaderLabelKeyID: []byte(k.ID)}, nil, payload.Payload), k.Public(), ErrMalformed},
		{"forged signature", forged, k.Public(), ErrSignature},
		{"tampered payload", tamperedPayload, k.Public(), ErrSignature},
		{"wrong kid", wrongKID, other.Public(), ErrSignature},
		{"wrong kid for key", wrongKID, k.Public(), ErrKeyID},
		{"other device's key", good, other.Public(), ErrKeyID},
		{"receipt as record", receiptAsRecord, k.Public(), ErrContentType},
		{"not a record", coseWith(t, cose.AlgorithmEdDSA, edSigner, stdProt, nil, []byte{0xa0}), k.Public(), ErrPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenRecord(tt.in, tt.pub)
			// The alg-in-unprotected case is refused either by go-cose's
			// header validation or by our own check.
			if tt.name == "alg in unprotected" && errors.Is(err, ErrAlgorithm) {
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if Reason(err) == "other" || Reason(err) == "" {
				t.Fatalf("no reason code for %v", err)
			}
		})
	}
}

func TestReceipt(t *testing.T) {
	hub := testKey(t)
	b, err := SignReceipt(hub, &Receipt{DeviceID: "d", StoredAt: time.Now(), Items: []ReceiptItem{{Seq: 3, RecordID: "id", Status: ReceiptStored}, {Seq: 4, RecordID: "id2", Status: ReceiptRejected, Reason: "clock_skew"}}})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := OpenReceipt(b, hub.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Items) != 2 || rc.Items[0].Seq != 3 || rc.Items[1].Reason != "clock_skew" {
		t.Fatalf("%+v", rc)
	}
	empty, _ := SignReceipt(hub, &Receipt{DeviceID: "d", StoredAt: time.Now()})
	if _, err := OpenReceipt(empty, hub.Public()); !errors.Is(err, ErrPayload) {
		t.Fatalf("receipt without items: %v", err)
	}
	if _, err := OpenReceipt(b, testKey(t).Public()); !errors.Is(err, ErrKeyID) {
		t.Fatalf("receipt under another key: %v", err)
	}
	dev := testKey(t)
	if _, err := OpenReceipt(signed(t, dev), dev.Public()); !errors.Is(err, ErrContentType) {
		t.Fatalf("record as receipt: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	k := testKey(f)
	good := signed(f, k)
	f.Add(good)
	f.Add(good[:40])
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			if Reason(err) == "other" {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if e.KID == "" || e.Payload == nil {
			t.Fatal("accepted envelope without kid or payload")
		}
		_, _ = e.Record()
	})
}

// FuzzVerify mutates a valid envelope: nothing but the original bytes may
// verify under the device key (a mutation that verifies is a forgery).
func FuzzVerify(f *testing.F) {
	k := testKey(f)
	good := signed(f, k)
	f.Add(0, byte(1))
	f.Add(len(good)-1, byte(0x80))
	f.Add(10, byte(0xff))
	f.Fuzz(func(t *testing.T, pos int, x byte) {
		if pos < 0 || x == 0 {
			return
		}
		b := append([]byte{}, good...)
		b[pos%len(b)] ^= x
		r, err := OpenRecord(b, k.Public())
		if err == nil {
			// Only a re-encoding that leaves every signed byte intact
			// could verify; the record must then be identical.
			e0, _ := Decode(good)
			r0, _ := e0.Record()
			if r.ID != r0.ID || r.Seq != r0.Seq {
				t.Fatalf("mutation at %d verified with different content", pos%len(b))
			}
		} else if Reason(err) == "other" {
			t.Fatalf("unclassified error: %v", err)
		}
	})
}

func BenchmarkSignRecord(b *testing.B) {
	k := testKey(b)
	r, _ := result.Synthetic("dev-1", "site-a", 7, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignRecord(k, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenRecord(b *testing.B) {
	k := testKey(b)
	env := signed(b, k)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenRecord(env, k.Public()); err != nil {
			b.Fatal(err)
		}
	}
}
