package ingest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/veraison/go-cose"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/hub/store/storetest"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
	"github.com/glintdev/glint/sync/ingest"
)

// recorder is the receipt publisher: it keeps what would go to the broker.
type recorder struct {
	mu   sync.Mutex
	sent map[string][][]byte
}

func (r *recorder) Publish(topic string, p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent == nil {
		r.sent = map[string][][]byte{}
	}
	r.sent[topic] = append(r.sent[topic], p)
	return nil
}

// receipts returns the items of every receipt sent to topic, in order.
func (r *recorder) receipts(t *testing.T, topic string, hub *device.Key) []envelope.ReceiptItem {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []envelope.ReceiptItem
	for _, p := range r.sent[topic] {
		rc, err := envelope.OpenReceipt(p, hub.Public())
		if err != nil {
			t.Fatalf("receipt does not verify: %v", err)
		}
		out = append(out, rc.Items...)
	}
	return out
}

// waitReceipts polls until at least n receipt items were sent to topic and
// returns them. Receipts are published after the store commits, so a test
// that has seen the rows land must still wait for them.
func (r *recorder) waitReceipts(t *testing.T, topic string, hub *device.Key, n int) []envelope.ReceiptItem {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		items := r.receipts(t, topic, hub)
		if len(items) >= n || time.Now().After(deadline) {
			return items
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type fixture struct {
	st      *store.Store
	in      *ingest.Ingest
	reg     *prometheus.Registry
	pub     *recorder
	hub     *device.Key
	dev     *device.Key
	revoked *device.Key
	cancel  func()
	done    chan error
}

func setup(t *testing.T, d store.Dialect) *fixture {
	f := &fixture{st: storetest.Open(t, d), reg: prometheus.NewRegistry(), pub: &recorder{}}
	f.hub, _ = device.GenerateKey()
	f.dev, _ = device.GenerateKey()
	f.revoked, _ = device.GenerateKey()
	ctx := context.Background()
	if _, err := f.st.RegisterDevice(ctx, "dev-1", "site", f.dev.Public()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.RegisterDevice(ctx, "dev-r", "site", f.revoked.Public()); err != nil {
		t.Fatal(err)
	}
	if err := f.st.RevokeDevice(ctx, "dev-r"); err != nil {
		t.Fatal(err)
	}
	var err error
	f.in, err = ingest.New(ingest.Config{Store: f.st, Publisher: f.pub, HubKey: f.hub, Registerer: f.reg, BatchWait: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	f.cancel = cancel
	f.done = make(chan error, 1)
	go func() { f.done <- f.in.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-f.done })
	return f
}

func record(t testing.TB, dev string, seq uint64) *result.Record {
	r, err := result.Synthetic(dev, "site", seq, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sign(t testing.TB, k *device.Key, r *result.Record) []byte {
	b, err := envelope.SignRecord(k, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitCount(t *testing.T, f *fixture, results, quarantined int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, q, err := f.st.Counts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if r == results && q == quarantined {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store has %d results, %d quarantined; want %d, %d", r, q, results, quarantined)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIngestStoresAndReceipts(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			f := setup(t, d)
			ctx := context.Background()
			var envs [][]byte
			for seq := uint64(1); seq <= 300; seq++ {
				envs = append(envs, sign(t, f.dev, record(t, "dev-1", seq)))
			}
			for _, e := range envs {
				if err := f.in.Submit(ctx, "glint/v1/dev-1/result", e); err != nil {
					t.Fatal(err)
				}
			}
			// Redeliveries of the first ten.
			for _, e := range envs[:10] {
				f.in.Submit(ctx, "glint/v1/dev-1/result", e)
			}
			waitCount(t, f, 300, 0)
			rcs := f.pub.waitReceipts(t, "glint/v1/dev-1/receipt", f.hub, 310)
			stored, dup := 0, 0
			for _, rc := range rcs {
				switch rc.Status {
				case envelope.ReceiptStored:
					stored++
				case envelope.ReceiptDuplicate:
					dup++
				}
			}
			if stored != 300 || dup != 10 {
				t.Fatalf("receipts: %d stored, %d duplicate", stored, dup)
			}
			if got := testutil.ToFloat64(f.in.Metrics().Duplicates); got != 10 {
				t.Fatalf("duplicates metric %v", got)
			}
			row, err := f.st.Result(ctx, rcs[0].RecordID)
			if err != nil || !row.Canonical {
				t.Fatalf("stored row %+v %v", row, err)
			}
			if _, err := envelope.OpenRecord(row.Envelope, f.dev.Public()); err != nil {
				t.Fatalf("stored envelope does not verify: %v", err)
			}
		})
	}
}

// TestIngestRejects feeds every kind of bad input; each is rejected with its
// reason, counted and quarantined, only verified ones are receipted
// ("rejected"), and the hub keeps ingesting afterwards.
func TestIngestRejects(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			f := setup(t, d)
			ctx := context.Background()
			stranger, _ := device.GenerateKey()
			good := sign(t, f.dev, record(t, "dev-1", 1))
			forged := append([]byte{}, good...)
			forged[len(forged)-3] ^= 0x40
			ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			es256, _ := cose.NewSigner(cose.AlgorithmES256, ecKey)
			p, _ := envelope.Decode(good)
			wrongAlg, _ := cose.Sign1(rand.Reader, es256, cose.Headers{Protected: cose.ProtectedHeader{
				cose.HeaderLabelAlgorithm: cose.AlgorithmES256, cose.HeaderLabelKeyID: []byte(f.dev.ID), cose.HeaderLabelContentType: envelope.ContentTypeRecord}}, p.Payload, nil)
			// Signed by dev-1's key but claiming another key's kid.
			edSigner, _ := cose.NewSigner(cose.AlgorithmEdDSA, f.dev.Private)
			wrongKID, _ := cose.Sign1(rand.Reader, edSigner, cose.Headers{Protected: cose.ProtectedHeader{
				cose.HeaderLabelAlgorithm: cose.AlgorithmEdDSA, cose.HeaderLabelKeyID: []byte(f.revoked.ID), cose.HeaderLabelContentType: envelope.ContentTypeRecord}}, p.Payload, nil)
			future := record(t, "dev-1", 2)
			future.CreatedAt = time.Now().Add(time.Hour)
			otherDev := record(t, "dev-9", 3)
			reused := record(t, "dev-1", 1) // seq 1 again, new ID

			tests := []struct {
				name, topic string
				payload     []byte
				reason      string
				receipt     bool
			}{
				{"malformed cbor", "glint/v1/dev-1/result", []byte{0xd2, 0x84, 0xff}, "malformed", false},
				{"truncated", "glint/v1/dev-1/result", good[:len(good)/2], "malformed", false},
				{"oversized", "glint/v1/dev-1/result", make([]byte, envelope.MaxSize+1), "too_large", false},
				{"wrong alg", "glint/v1/dev-1/result", wrongAlg, "bad_algorithm", false},
				{"forged signature", "glint/v1/dev-1/result", forged, "bad_signature", false},
				{"wrong kid", "glint/v1/dev-r/result", wrongKID, "revoked_device", false},
				{"unknown device", "glint/v1/dev-x/result", sign(t, stranger, record(t, "dev-x", 1)), "unknown_device", false},
				{"revoked device", "glint/v1/dev-r/result", sign(t, f.revoked, record(t, "dev-r", 1)), "revoked_device", false},
				{"topic of another device", "glint/v1/dev-r/result", good, "device_mismatch", false},
				{"record of another device", "glint/v1/dev-1/result", sign(t, f.dev, otherDev), "device_mismatch", false},
				{"bad topic", "glint/v1/dev-1/status", good, "bad_topic", false},
				{"clock skew", "glint/v1/dev-1/result", sign(t, f.dev, future), "clock_skew", true},
			}
			for _, tt := range tests {
				if err := f.in.Submit(ctx, tt.topic, tt.payload); err != nil {
					t.Fatal(err)
				}
			}
			waitCount(t, f, 0, int64(len(tests)))
			// The hub is still running: a good one, then the same seq with
			// another record (quarantined, receipted "rejected").
			f.in.Submit(ctx, "glint/v1/dev-1/result", good)
			waitCount(t, f, 1, int64(len(tests)))
			f.in.Submit(ctx, "glint/v1/dev-1/result", sign(t, f.dev, reused))
			waitCount(t, f, 1, int64(len(tests))+1)

			byReason := map[string]int{}
			qs, err := f.st.QuarantineList(ctx, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range qs {
				byReason[q.Reason]++
				if q.Reason == "" || len(q.Envelope) == 0 {
					t.Errorf("quarantine row without reason or bytes: %+v", q)
				}
			}
			want := map[string]int{"seq_reused": 1}
			for _, tt := range tests {
				want[tt.reason]++
			}
			for reason, n := range want {
				if byReason[reason] != n {
					t.Errorf("quarantine %s: %d rows, want %d", reason, byReason[reason], n)
				}
				if got := testutil.ToFloat64(f.in.Metrics().Rejected.WithLabelValues(reason)); int(got) != n {
					t.Errorf("metric rejected{%s} = %v, want %d", reason, got, n)
				}
			}
			rcs := f.pub.waitReceipts(t, "glint/v1/dev-1/receipt", f.hub, 3)
			var statuses []string
			for _, rc := range rcs {
				statuses = append(statuses, rc.Status+":"+rc.Reason)
			}
			if got := strings.Join(statuses, ","); got != "rejected:clock_skew,stored:,rejected:seq_reused" {
				t.Errorf("receipts to dev-1: %s", got)
			}
			if n := len(f.pub.receipts(t, "glint/v1/dev-r/receipt", f.hub)) + len(f.pub.receipts(t, "glint/v1/dev-x/receipt", f.hub)); n != 0 {
				t.Errorf("%d receipts for unverified envelopes", n)
			}
		})
	}
}

// flakyStore fails the first n commits of the real store (a database
// outage), to check that ingest retries instead of dropping or receipting.
type flakyStore struct {
	*store.Store
	mu sync.Mutex
	n  int
}

func (f *flakyStore) Commit(ctx context.Context, items []ingest.Item, q []ingest.Quarantined, w uint64) ([]ingest.Outcome, error) {
	f.mu.Lock()
	fail := f.n > 0
	f.n--
	f.mu.Unlock()
	if fail {
		return nil, errors.New("database unavailable")
	}
	return f.Store.Commit(ctx, items, q, w)
}

func TestIngestRetriesCommit(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	hub, _ := device.GenerateKey()
	dev, _ := device.GenerateKey()
	if _, err := st.RegisterDevice(context.Background(), "dev-1", "s", dev.Public()); err != nil {
		t.Fatal(err)
	}
	pub := &recorder{}
	in, err := ingest.New(ingest.Config{Store: &flakyStore{Store: st, n: 2}, Publisher: pub, HubKey: hub})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() { cancel(); <-done }()
	in.Submit(ctx, "glint/v1/dev-1/result", sign(t, dev, record(t, "dev-1", 1)))
	if len(pub.waitReceipts(t, "glint/v1/dev-1/receipt", hub, 1)) == 0 {
		t.Fatal("no receipt after the store recovered")
	}
	if n, _, _ := st.Counts(context.Background()); n != 1 {
		t.Fatalf("stored %d", n)
	}
}
