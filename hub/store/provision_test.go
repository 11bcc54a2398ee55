package store_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/store"
)

func p256(t *testing.T) device.PublicKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := device.P256Public(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// snapshot is everything Provision may change.
type snapshot struct {
	devices []store.Device
	tokens  []store.ClaimToken
	creds   map[string]string
}

func snap(t *testing.T, s *store.Store) snapshot {
	ctx := context.Background()
	ds, err := s.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := s.ClaimTokens(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := s.BrokerCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{ds, ts, cs}
}

func sameSnap(a, b snapshot) bool {
	x, _ := json.Marshal([]any{a.devices, a.tokens, a.creds})
	y, _ := json.Marshal([]any{b.devices, b.tokens, b.creds})
	return string(x) == string(y)
}

func TestProvision(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now()
		if err := s.SetSitePolicy(ctx, "site-a", json.RawMessage(`{"mode":"dynamic"}`)); err != nil {
			t.Fatal(err)
		}
		tok, ct, err := s.CreateClaimToken(ctx, "site-a", 15*time.Minute, "kiosk 3", now)
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != 32 || ct.SiteID != "site-a" || len(ct.ID) != 12 {
			t.Fatalf("token %q %+v", tok, ct)
		}
		expiredTok, _, _ := s.CreateClaimToken(ctx, "site-a", time.Minute, "", now.Add(-2*time.Minute))
		otherTok, _, _ := s.CreateClaimToken(ctx, "site-b", time.Hour, "", now)
		key := p256(t)
		ed, _ := device.GenerateKey()

		// Refusals change nothing.
		before := snap(t, s)
		for _, tt := range []struct {
			name string
			p    store.ProvisionParams
			want error
		}{
			{"unknown token", store.ProvisionParams{TokenHash: store.HashToken("nope"), DeviceID: "kiosk-3", Key: key, Now: now}, store.ErrTokenUnknown},
			{"expired", store.ProvisionParams{TokenHash: store.HashToken(expiredTok), DeviceID: "kiosk-3", Key: key, Now: now}, store.ErrTokenExpired},
			{"wrong site", store.ProvisionParams{TokenHash: store.HashToken(otherTok), SiteID: "site-a", DeviceID: "kiosk-3", Key: key, Now: now, BrokerPasswordHash: "h"}, store.ErrTokenSite},
			{"invalid key", store.ProvisionParams{TokenHash: store.HashToken(tok), DeviceID: "kiosk-3", Key: device.PublicKey{Alg: device.AlgES256, Raw: []byte{4}}, Now: now}, device.ErrAlgorithm},
		} {
			if _, err := s.Provision(ctx, tt.p); !errors.Is(err, tt.want) {
				t.Fatalf("%s: %v, want %v", tt.name, err, tt.want)
			}
		}
		if !sameSnap(before, snap(t, s)) {
			t.Fatal("a refused provisioning changed the store")
		}

		p, err := s.Provision(ctx, store.ProvisionParams{TokenHash: store.HashToken(tok), SiteID: "site-a", DeviceID: "kiosk-3", Key: key,
			FactsJSON: `{"kernel":"6.1"}`, Registration: []byte("signed"), BrokerPasswordHash: "$7$hash", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if p.SiteID != "site-a" || p.TokenID != ct.ID || string(p.Policy) != `{"mode":"dynamic"}` || p.Device.KeyAlg != device.AlgES256 || !p.Device.Key.Equal(key) || p.Device.KID != key.KeyID() {
			t.Fatalf("%+v %+v", p, p.Device)
		}
		if h, err := s.BrokerCredential(ctx, "kiosk-3"); err != nil || h != "$7$hash" {
			t.Fatalf("credential %q %v", h, err)
		}
		lk, err := s.LookupDevice(ctx, key.KeyID())
		if err != nil || !lk.VerifyKey().Equal(key) {
			t.Fatalf("lookup: %v", err)
		}
		if pv, err := s.LastProvisioning(ctx, "kiosk-3"); err != nil || string(pv.Facts) != `{"kernel":"6.1"}` {
			t.Fatalf("provisioning %+v %v", pv, err)
		}

		// The same token again: refused, nothing changes.
		before = snap(t, s)
		_, err = s.Provision(ctx, store.ProvisionParams{TokenHash: store.HashToken(tok), DeviceID: "kiosk-4", Key: ed.PublicKey(), Now: now})
		if !errors.Is(err, store.ErrTokenUsed) {
			t.Fatalf("reuse: %v", err)
		}
		if !sameSnap(before, snap(t, s)) {
			t.Fatal("reuse changed the store")
		}
		// A new token may re-provision the same device with the same key;
		// another key for the device ID is a conflict and leaves the
		// token unused.
		tok2, _, _ := s.CreateClaimToken(ctx, "site-b", time.Hour, "", now)
		before = snap(t, s)
		if _, err := s.Provision(ctx, store.ProvisionParams{TokenHash: store.HashToken(tok2), DeviceID: "kiosk-3", Key: p256(t), Now: now}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("other key: %v", err)
		}
		if !sameSnap(before, snap(t, s)) {
			t.Fatal("conflict changed the store")
		}
		p, err = s.Provision(ctx, store.ProvisionParams{TokenHash: store.HashToken(tok2), DeviceID: "kiosk-3", Key: key, Now: now})
		if err != nil || p.SiteID != "site-b" || p.Device.SiteID != "site-b" {
			t.Fatalf("re-provision: %+v %v", p, err)
		}
		ts, _ := s.ClaimTokens(ctx, "site-a")
		used := 0
		for _, x := range ts {
			if !x.UsedAt.IsZero() {
				used++
				if x.DeviceID != "kiosk-3" {
					t.Fatalf("%+v", x)
				}
			}
		}
		if used != 1 || len(ts) != 2 {
			t.Fatalf("site-a tokens %+v", ts)
		}
	})
}

// Two devices racing for one token: exactly one wins.
func TestProvisionRace(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		tok, _, err := s.CreateClaimToken(ctx, "site-a", time.Hour, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, _ := device.GenerateKey()
				_, errs[i] = s.Provision(ctx, store.ProvisionParams{TokenHash: store.HashToken(tok), DeviceID: "racer-" + string(rune('a'+i)), Key: k.PublicKey(), Now: time.Now()})
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrTokenUsed):
				t.Fatalf("unexpected: %v", err)
			}
		}
		ds, _ := s.Devices(ctx)
		if won != 1 || len(ds) != 1 {
			t.Fatalf("%d winners, %d devices", won, len(ds))
		}
	})
}

func TestGuardReportStore(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		t0 := time.Now().UTC().Truncate(time.Microsecond)
		row := func(sent time.Time, risk string) store.GuardRow {
			return store.GuardRow{DeviceID: "d", SentAt: sent, CheckedAt: sent, ReceivedAt: sent, Risk: risk, Report: json.RawMessage(`{"risk":"` + risk + `"}`), Envelope: []byte{1}}
		}
		if _, err := s.GuardReport(ctx, "d"); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		for _, st := range []struct {
			r    store.GuardRow
			want bool
		}{
			{row(t0, "none"), true},
			{row(t0.Add(time.Minute), "critical"), true},
			{row(t0, "none"), false},                  // older: a replay
			{row(t0.Add(time.Minute), "none"), false}, // same sent_at: a redelivery
			{row(t0.Add(2*time.Minute), "warn"), true},
		} {
			ok, err := s.SetGuardReport(ctx, st.r)
			if err != nil || ok != st.want {
				t.Fatalf("set %s %s: %v %v", st.r.SentAt, st.r.Risk, ok, err)
			}
		}
		g, err := s.GuardReport(ctx, "d")
		if err != nil || g.Risk != "warn" || !g.SentAt.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("%+v %v", g, err)
		}
		// The device list carries each device's latest risk.
		for _, id := range []string{"d", "e"} {
			pub, _, _ := ed25519.GenerateKey(nil)
			if _, err := s.RegisterDevice(ctx, id, "site", pub); err != nil {
				t.Fatal(err)
			}
		}
		ds, err := s.Devices(ctx)
		if err != nil || len(ds) != 2 {
			t.Fatalf("devices %+v %v", ds, err)
		}
		if ds[0].DeviceID != "d" || ds[0].GuardRisk != "warn" || !ds[0].GuardCheckedAt.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("d: guard %q at %v, want warn at %v", ds[0].GuardRisk, ds[0].GuardCheckedAt, t0.Add(2*time.Minute))
		}
		if ds[1].GuardRisk != "" || !ds[1].GuardCheckedAt.IsZero() {
			t.Errorf("e has no report but guard %q at %v", ds[1].GuardRisk, ds[1].GuardCheckedAt)
		}
	})
}

func TestProvisionReportStore(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if err := s.AddProvisionReport(ctx, "d", true, []byte(`{"ok":true}`), []byte("sig"), time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.AddProvisionReport(ctx, "d", false, []byte(`not json`), nil, time.Now()); err == nil {
			t.Fatal("accepted invalid JSON")
		}
		r, err := s.LastProvisionReport(ctx, "d")
		if err != nil || !r.Passed || string(r.Report) != `{"ok":true}` {
			t.Fatalf("%+v %v", r, err)
		}
	})
}
