package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/hub/store/storetest"
	"github.com/glintdev/glint/result"
)

func forEach(t *testing.T, f func(t *testing.T, s *store.Store)) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) { f(t, storetest.Open(t, d)) })
	}
}

func item(t *testing.T, dev string, seq uint64) store.Item {
	r, err := result.Synthetic(dev, "site", seq, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return store.Item{Record: r, Envelope: []byte("env"), KID: "kid", Topic: "t", ReceivedAt: time.Now(), Canonical: true}
}

func TestMigrateIdempotent(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			ctx := context.Background()
			// Concurrent opens model N replicas starting together.
			var wg sync.WaitGroup
			errs := make([]error, 3)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := store.Open(ctx, d, dsn)
					if err == nil {
						s.Close()
					}
					errs[i] = err
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			s, err := store.Open(ctx, d, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if v, err := s.SchemaVersion(ctx); err != nil || v != 3 {
				t.Fatalf("schema version %d, %v", v, err)
			}
		})
	}
}

func TestDevices(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		k, _ := device.GenerateKey()
		k2, _ := device.GenerateKey()
		d, err := s.RegisterDevice(ctx, "dev-1", "site-a", k.Public())
		if err != nil {
			t.Fatal(err)
		}
		if d.KID != k.ID || !d.PublicKey.Equal(k.Public()) || d.Revoked {
			t.Fatalf("%+v", d)
		}
		if _, err := s.RegisterDevice(ctx, "dev-1", "site-a", k.Public()); err != nil {
			t.Fatalf("re-register same key: %v", err)
		}
		if _, err := s.RegisterDevice(ctx, "dev-1", "site-a", k2.Public()); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("re-register other key: %v", err)
		}
		if _, err := s.RegisterDevice(ctx, "dev-2", "site-a", k.Public()); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("same key for another device: %v", err)
		}
		if _, err := s.DeviceByKID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown kid: %v", err)
		}
		at := time.Now()
		if err := s.SetDeviceStatus(ctx, "dev-1", true, 12, []byte(`{"state":"online"}`), at); err != nil {
			t.Fatal(err)
		}
		ds, err := s.Devices(ctx)
		if err != nil || len(ds) != 1 {
			t.Fatalf("devices %v %v", ds, err)
		}
		if !ds[0].Online || ds[0].QueueDepth != 12 || string(ds[0].Status) != `{"state":"online"}` || !ds[0].LastSeen.Equal(at.UTC().Truncate(0)) && ds[0].LastSeen.UnixNano() != at.UnixNano() {
			t.Fatalf("status not kept: %+v", ds[0])
		}
		if err := s.RevokeDevice(ctx, "dev-1"); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.DeviceByKID(ctx, k.ID); !d.Revoked {
			t.Fatal("not revoked")
		}
		if err := s.RevokeDevice(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoke unknown: %v", err)
		}
	})
}

func TestCommitOutcomes(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		k, _ := device.GenerateKey()
		if _, err := s.RegisterDevice(ctx, "dev-1", "site", k.Public()); err != nil {
			t.Fatal(err)
		}
		a, b, c := item(t, "dev-1", 1), item(t, "dev-1", 2), item(t, "dev-1", 3)
		out, err := s.Commit(ctx, []store.Item{a, b, a}, nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		if out[0] != store.Stored || out[1] != store.Stored || out[2] != store.Duplicate {
			t.Fatalf("outcomes %v", out)
		}
		reused := item(t, "dev-1", 2) // new ID, seq 2 taken
		out, err = s.Commit(ctx, []store.Item{b, reused, c}, []store.Quarantined{{Reason: "bad_signature", DeviceID: "x\xff\x00y", ReceivedAt: time.Now()}}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if out[0] != store.Duplicate || out[1] != store.SeqReused || out[2] != store.Stored {
			t.Fatalf("outcomes %v", out)
		}
		// Far beyond the window: seq 1000 stored, then a never-seen seq 5.
		big := item(t, "dev-1", 1000)
		if _, err := s.Commit(ctx, []store.Item{big}, nil, 100); err != nil {
			t.Fatal(err)
		}
		old := item(t, "dev-1", 5)
		nearby := item(t, "dev-1", 950)
		out, err = s.Commit(ctx, []store.Item{old, nearby, a}, nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		if out[0] != store.SeqTooOld || out[1] != store.Stored || out[2] != store.Duplicate {
			t.Fatalf("outcomes %v", out)
		}
		nres, nq, err := s.Counts(ctx)
		if err != nil || nres != 5 || nq != 3 {
			t.Fatalf("counts %d results %d quarantined, %v", nres, nq, err)
		}
		qs, err := s.QuarantineList(ctx, "seq_reused", 10)
		if err != nil || len(qs) != 1 || qs[0].RecordID != reused.Record.ID {
			t.Fatalf("quarantine %+v %v", qs, err)
		}
		ds, _ := s.Devices(ctx)
		if ds[0].LastSeq != 1000 {
			t.Fatalf("last seq %d", ds[0].LastSeq)
		}
	})
}

func TestQueries(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var items []store.Item
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := 1; i <= 10; i++ {
			it := item(t, []string{"dev-a", "dev-b"}[i%2], uint64(i))
			it.Record.CreatedAt = base.Add(time.Duration(i) * time.Minute)
			if i%3 == 0 {
				it.Record.Status = result.StatusDeclined
			}
			items = append(items, it)
		}
		if _, err := s.Commit(ctx, items, nil, 100); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			f    store.Filter
			want int
		}{
			{"all", store.Filter{}, 10},
			{"device", store.Filter{DeviceID: "dev-a"}, 5},
			{"status", store.Filter{Status: "Declined"}, 3},
			{"since", store.Filter{Since: base.Add(8 * time.Minute)}, 3},
			{"limit", store.Filter{Limit: 4}, 4},
			{"combined", store.Filter{DeviceID: "dev-b", Status: "Declined"}, 2},
		}
		for _, tt := range tests {
			rows, err := s.Results(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != tt.want {
				t.Errorf("%s: %d rows, want %d", tt.name, len(rows), tt.want)
			}
			for i := 1; i < len(rows); i++ {
				if rows[i].CreatedAt.After(rows[i-1].CreatedAt) {
					t.Errorf("%s: not newest first", tt.name)
				}
			}
		}
		r, err := s.Result(ctx, items[0].Record.ID)
		if err != nil || string(r.Envelope) != "env" || r.Seq != 1 || len(r.Record) == 0 {
			t.Fatalf("result %+v %v", r, err)
		}
		if _, err := s.Result(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown result: %v", err)
		}
	})
}
