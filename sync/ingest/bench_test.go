package ingest_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/store/storetest"
	"github.com/glintdev/glint/sync/ingest"
)

// BenchmarkPipeline measures the hub's ingest alone, without MQTT: 10,000
// pre-signed envelopes from 20 devices go through verify, batch commit and
// receipt signing. The figure (results/s) is the hub's own capacity; the
// end-to-end figure over loopback MQTT with a simulated fleet on the same
// cores is hub.BenchmarkIngest*.
func BenchmarkPipeline(b *testing.B) {
	for _, d := range storetest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			const devices, per = 20, 500
			for b.Loop() {
				b.StopTimer()
				st := storetest.Open(b, d)
				hubKey, _ := device.GenerateKey()
				topics := make([]string, devices)
				envs := make([][][]byte, devices)
				for i := range devices {
					k, _ := device.GenerateKey()
					id := fmt.Sprintf("dev-%d", i)
					if _, err := st.RegisterDevice(context.Background(), id, "s", k.Public()); err != nil {
						b.Fatal(err)
					}
					topics[i] = "glint/v1/" + id + "/result"
					for seq := uint64(1); seq <= per; seq++ {
						envs[i] = append(envs[i], sign(b, k, record(b, id, seq)))
					}
				}
				in, err := ingest.New(ingest.Config{Store: st, Publisher: &recorder{}, HubKey: hubKey, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- in.Run(ctx) }()
				b.StartTimer()
				start := time.Now()
				for j := range per { // interleaved, as a broker delivers them
					for i := range devices {
						in.Submit(ctx, topics[i], envs[i][j])
					}
				}
				for testutil.ToFloat64(in.Metrics().Stored) < devices*per {
					time.Sleep(time.Millisecond)
				}
				el := time.Since(start)
				b.StopTimer()
				cancel()
				<-done
				b.ReportMetric(devices*per/el.Seconds(), "results/s")
				b.ReportMetric(0, "ns/op")
				b.StartTimer()
			}
		})
	}
}
