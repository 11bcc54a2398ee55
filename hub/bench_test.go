package hub_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/hub/store/storetest"
	"github.com/glintdev/glint/sync/fleetsim"
)

type regStore struct{ st *store.Store }

func (r regStore) Register(ctx context.Context, id, site string, k *device.Key) error {
	_, err := r.st.RegisterDevice(ctx, id, site, k.Public())
	return err
}

// benchIngest measures hub ingest end to end over loopback: fleet-sim
// devices with a preloaded backlog connect to the hub's embedded broker;
// the figure is verified-and-committed results per second while they
// drain (receipts included: a result counts when its outbox entry is gone).
func benchIngest(b *testing.B, dialect store.Dialect, devices, perDevice int) {
	for b.Loop() {
		b.StopTimer()
		h, err := hub.New(context.Background(), hub.Config{StateDir: b.TempDir(), Dialect: dialect, DSN: storetest.DSN(b, dialect), EmbeddedAddr: "127.0.0.1:0", Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.Run(ctx) }()
		b.StartTimer()
		rep, err := fleetsim.Run(context.Background(), fleetsim.Config{Broker: h.BrokerURL(), Devices: devices, Dir: b.TempDir(), Preload: perDevice,
			HubKey: h.Key(), Register: regStore{h.Store()}, Auth: "token", DrainTimeout: 5 * time.Minute})
		b.StopTimer()
		cancel()
		<-done
		h.Close()
		if err != nil || rep.Pending != 0 {
			b.Fatalf("%v, pending %d", err, rep.Pending)
		}
		b.ReportMetric(float64(devices*perDevice)/rep.Drain.Seconds(), "results/s")
		b.Logf("%s", rep)
		b.ReportMetric(0, "ns/op")
		b.StartTimer()
	}
}

func BenchmarkIngestSQLite(b *testing.B) {
	for _, devs := range []int{10, 50} {
		b.Run(fmt.Sprintf("devices=%d", devs), func(b *testing.B) { benchIngest(b, store.SQLite, devs, 20000/devs) })
	}
}

func BenchmarkIngestPostgres(b *testing.B) {
	for _, devs := range []int{10, 50} {
		b.Run(fmt.Sprintf("devices=%d", devs), func(b *testing.B) { benchIngest(b, store.Postgres, devs, 20000/devs) })
	}
}

// BenchmarkLatency measures Put-to-receipt latency at low load: 5 devices
// producing 50 results/s in total for 5 s against the embedded broker and
// SQLite; p50 and p99 are reported as metrics.
func BenchmarkLatency(b *testing.B) {
	for _, dialect := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(string(dialect), func(b *testing.B) {
			for b.Loop() {
				h, err := hub.New(context.Background(), hub.Config{StateDir: b.TempDir(), Dialect: dialect, DSN: storetest.DSN(b, dialect), EmbeddedAddr: "127.0.0.1:0", Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- h.Run(ctx) }()
				rep, err := fleetsim.Run(context.Background(), fleetsim.Config{Broker: h.BrokerURL(), Devices: 5, Dir: b.TempDir(), Rate: 50, Duration: 5 * time.Second,
					HubKey: h.Key(), Register: regStore{h.Store()}, Auth: "token", DrainTimeout: time.Minute})
				cancel()
				<-done
				h.Close()
				if err != nil || rep.Pending != 0 {
					b.Fatalf("%v, pending %d", err, rep.Pending)
				}
				b.Logf("%s", rep)
				b.ReportMetric(float64(rep.P50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(rep.P99.Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(rep.PutP50.Microseconds())/1000, "put-p50-ms")
				b.ReportMetric(0, "ns/op")
			}
		})
	}
}

var quiet = slog.New(slog.DiscardHandler)
