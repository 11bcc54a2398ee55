package ingest

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"testing"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
)

// registry is a fixed device table for fuzzing the verification path
// (the store suites in sync/ingest_test and hub/store run it on SQLite and
// PostgreSQL; a database round trip per fuzz input would make fuzzing
// useless).
type registry map[string]*Device

func (r registry) LookupDevice(_ context.Context, kid string) (*Device, error) {
	if d, ok := r[kid]; ok {
		return d, nil
	}
	return nil, ErrUnknownDevice
}

func (r registry) Commit(context.Context, []Item, []Quarantined, uint64) ([]Outcome, error) {
	panic("not used by verify")
}

type nopPublisher struct{}

func (nopPublisher) Publish(string, []byte) error { return nil }

// FuzzVerify feeds arbitrary topics and payloads to the hub's verification:
// it must never panic, every rejection must carry a reason, and anything it
// accepts must verify with the registered key of the topic's device.
func FuzzVerify(f *testing.F) {
	k, _ := device.GenerateKey()
	hub, _ := device.GenerateKey()
	reg := registry{k.ID: {DeviceID: "dev-1", PublicKey: k.Public()}}
	in, err := New(Config{Store: reg, Publisher: nopPublisher{}, HubKey: hub, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	r, _ := result.Synthetic("dev-1", "s", 1, time.Now())
	good, _ := envelope.SignRecord(k, r)
	f.Add("glint/v1/dev-1/result", good)
	f.Add("glint/v1/dev-1/result", good[:len(good)/3])
	f.Add("glint/v1/dev-2/result", good)
	f.Add("glint/v1//result", []byte{0xd2, 0x84})
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		v := in.verify(context.Background(), msg{topic: topic, payload: payload, at: time.Now()})
		switch {
		case v.item != nil:
			if topic != "glint/v1/dev-1/result" {
				t.Fatalf("accepted on topic %q", topic)
			}
			if _, err := envelope.OpenRecord(v.item.Envelope, ed25519.PublicKey(k.Public())); err != nil {
				t.Fatalf("accepted an envelope that does not verify: %v", err)
			}
		case v.quarantine != nil:
			if v.quarantine.Reason == "" {
				t.Fatal("rejection without a reason")
			}
		default:
			t.Fatal("neither accepted nor quarantined")
		}
	})
}
