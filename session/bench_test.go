package session

import (
	"context"
	"testing"
	"time"

	"github.com/glintdev/glint/result"
)

// BenchmarkSession runs whole dynamic sessions (bona fide, real models,
// real signing and outbox) on the simulator's virtual clock and reports the
// stages from the challenge's start to the signed verdict: flash (on the
// session clock: what it lasts live), analysis (flashmark.Analyze + passive
// anti-spoof + evidence encoding), match (embedding + comparison), signing
// (decision, COSE signing, fsync'd outbox). total_ms is their sum, the
// session wall time a kiosk user waits once the screen starts flashing;
// after_flash_ms the part after the last frame.
func BenchmarkSession(b *testing.B) {
	h := newHarness(b)
	var flash, analysis, match, signing, positioning time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := h.runner.Run(context.Background(), Job{Request: Request{Subject: "s", ReferenceID: h.ref.ID}})
		if out.Record.Status != result.StatusApproved {
			b.Fatalf("session %d: %s %v", i, out.Record.Status, out.Record.Reasons)
		}
		t := out.Timings
		flash += t.Flash
		analysis += t.Analysis
		match += t.Match
		signing += t.Signing
		positioning += t.Positioning
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
	b.ReportMetric(ms(flash), "flash_ms")
	b.ReportMetric(ms(analysis), "analysis_ms")
	b.ReportMetric(ms(match), "match_ms")
	b.ReportMetric(ms(signing), "signing_ms")
	b.ReportMetric(ms(analysis+match+signing), "after_flash_ms")
	b.ReportMetric(ms(flash+analysis+match+signing), "total_ms")
}
