package session

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sim"
)

func TestFeedFanOutOwnsFrames(t *testing.T) {
	f := NewFeed(4)
	// Nobody listens: frames are dropped without cost or error.
	if !f.Offer(&capture.Frame{Seq: 0, Data: []byte{1}}) || f.Listening() {
		t.Fatal("idle feed")
	}
	a, b := f.Open(), f.Open()
	fr := &capture.Frame{Seq: 1, Data: []byte{1, 2, 3}}
	f.Offer(fr)
	ctx := context.Background()
	ga, err := a.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := b.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ga.Seq != 1 || gb.Seq != 1 {
		t.Fatalf("seqs %d %d", ga.Seq, gb.Seq)
	}
	ga.Data[0] = 9
	if gb.Data[0] != 1 {
		t.Error("listeners share pixel memory")
	}
	b.Close()
	// A slow listener keeps the newest frames.
	for i := uint64(2); i < 10; i++ {
		f.Offer(&capture.Frame{Seq: i, Data: []byte{0}})
	}
	g, _ := a.Next(ctx)
	if g.Seq != 6 {
		t.Errorf("after overflow got seq %d, want 6 (oldest dropped)", g.Seq)
	}
	// Camera loss: queued frames first, then ErrCameraLost.
	f.CameraChanged(capture.Status{State: capture.StateRetrying, Lost: true, LastError: "unplugged"})
	for i := 0; i < 3; i++ {
		if _, err := a.Next(ctx); err != nil {
			t.Fatalf("queued frame %d: %v", i, err)
		}
	}
	if _, err := a.Next(ctx); !errors.Is(err, ErrCameraLost) {
		t.Errorf("after loss: %v, want ErrCameraLost", err)
	}
	a.Close()
	if f.Listening() {
		t.Error("closed streams still listening")
	}
	// A stream waits for ctx.
	c := f.Open()
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := c.Next(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("empty stream: %v", err)
	}
}

func TestFeedFromSupervisor(t *testing.T) {
	// The real capture supervisor feeding the feed from the simulator.
	rig, err := sim.NewRig(sim.RigConfig{FacePath: testPhoto(t), Clock: sim.RealClock{}})
	if err != nil {
		t.Fatal(err)
	}
	feed := NewFeed(8)
	sup, err := capture.NewSupervisor(capture.SupervisorConfig{Source: rig, Sink: feed, MinBackoff: time.Second, MaxBackoff: time.Second, OnChange: feed.CameraChanged})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(ctx) }()
	s := feed.Open()
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	defer fcancel()
	var last uint64
	for i := 0; i < 3; i++ {
		fr, err := s.Next(fctx)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && fr.Seq <= last {
			t.Errorf("seq %d after %d", fr.Seq, last)
		}
		last = fr.Seq
	}
	cancel() // the supervisor stops: the stream reports the camera gone
	<-done
	for {
		_, err := s.Next(context.Background())
		if err != nil {
			if !errors.Is(err, ErrCameraLost) {
				t.Errorf("after stop: %v", err)
			}
			break
		}
	}
}

// recDisplay records Show calls (a fake panel; the player's pacing is what
// is tested).
type recDisplay struct {
	clock Clock
	shown []flashmark.RGB
}

func (d *recDisplay) Show(_ context.Context, c flashmark.RGB) (flashmark.Presentation, error) {
	now := d.clock.Now()
	d.shown = append(d.shown, c)
	return flashmark.Presentation{Color: c, Requested: now, Presented: now + 16*time.Millisecond}, nil
}

func TestLivePlayerPaces(t *testing.T) {
	d := &recDisplay{clock: capture.MonotonicClock{}}
	p := NewLivePlayer(d, nil)
	steps := []flashmark.Step{{Color: flashmark.RGB{R: 1}, Duration: 20 * time.Millisecond}, {Color: flashmark.RGB{G: 1}, Duration: 20 * time.Millisecond}}
	idle := flashmark.RGB{R: 5, G: 5, B: 5}
	start := capture.MonotonicClock{}.Now() + 10*time.Millisecond
	if err := p.Begin(context.Background(), steps, idle, start); err != nil {
		t.Fatal(err)
	}
	pres, err := p.Finish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pres) != 2 || pres[0].Requested < start || pres[1].Requested < start+20*time.Millisecond {
		t.Errorf("presentations %+v (start %v)", pres, start)
	}
	if !slices.Equal(d.shown, []flashmark.RGB{steps[0].Color, steps[1].Color, idle}) {
		t.Errorf("shown %v", d.shown)
	}
}

func TestVirtualPlayerSchedulesBeforeFrames(t *testing.T) {
	clock := sim.NewVirtualClock(time.Second)
	rig, err := sim.NewRig(sim.RigConfig{FacePath: testPhoto(t), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rig.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	p := &VirtualPlayer{Display: rig, Camera: rig}
	ch, err := flashmark.NewChallenge(flashmark.ChallengeConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := clock.Now() + 100*time.Millisecond
	if err := p.Begin(context.Background(), ch.Steps, ch.Idle, start); err != nil {
		t.Fatal(err)
	}
	for clock.Now() < start+ch.Total()+100*time.Millisecond {
		if err := p.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Every step scheduled so far was requested no later than the frame.
		done := rig.NextFrameDone()
		if _, err := rig.ReadFrame(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, pr := range p.pres {
			if pr.Requested > done {
				t.Fatalf("step requested at %v after the frame read out at %v", pr.Requested, done)
			}
		}
	}
	pres, err := p.Finish(context.Background())
	if err != nil || len(pres) != len(ch.Steps) {
		t.Fatalf("%d presentations, %v", len(pres), err)
	}
	for i := 1; i < len(pres); i++ {
		if pres[i].Presented < pres[i-1].Presented {
			t.Error("presentations out of order")
		}
	}
}

func TestPolicyDecide(t *testing.T) {
	p := DefaultPolicy()
	p.ReviewBand = 5
	live := &flashmark.Analysis{Score: 90, Live: true, Threshold: 50}
	weak := &flashmark.Analysis{Score: 47, Threshold: 50, Reasons: []string{"FLASH_RESPONSE_WEAK"}}
	dead := &flashmark.Analysis{Score: 10, Threshold: 50, Reasons: []string{"FLASH_CORRELATION_LOW"}}
	for _, tc := range []struct {
		name    string
		m       Measured
		status  result.Status
		reasons []string
	}{
		{"approved", Measured{Mode: result.ModeDynamic, Face: 80, Liveness: live}, result.StatusApproved, []string{}},
		{"mismatch", Measured{Mode: result.ModeDynamic, Face: 20, Liveness: live}, result.StatusDeclined, []string{ReasonFaceMismatch}},
		{"face review", Measured{Mode: result.ModeDynamic, Face: 47, Liveness: live}, result.StatusInReview, []string{ReasonFaceReview}},
		{"liveness review", Measured{Mode: result.ModeDynamic, Face: 80, Liveness: weak}, result.StatusInReview, []string{ReasonLivenessReview}},
		{"spoof", Measured{Mode: result.ModeDynamic, Face: 80, Liveness: dead}, result.StatusDeclined, []string{ReasonLivenessLow, "FLASH_CORRELATION_LOW"}},
		{"both", Measured{Mode: result.ModeDynamic, Face: 48, Liveness: dead}, result.StatusDeclined, []string{ReasonLivenessLow, "FLASH_CORRELATION_LOW", ReasonFaceReview}},
		{"no liveness", Measured{Mode: result.ModeDynamic, Face: 80}, result.StatusDeclined, []string{ReasonLivenessLow}},
		{"closed", Measured{Mode: result.ModeDynamic, Level: flashmark.LevelClosed, Face: 80, Liveness: &flashmark.Analysis{Score: 100, Live: true, Reasons: []string{flashmark.ReasonLivenessDisabled}}}, result.StatusApproved, []string{flashmark.ReasonLivenessDisabled}},
	} {
		st, reasons, snap := p.Decide(tc.m, 8, 20000)
		if st != tc.status || !slices.Equal(reasons, tc.reasons) {
			t.Errorf("%s: %s %v, want %s %v", tc.name, st, reasons, tc.status, tc.reasons)
		}
		wantLevel := cmp.Or(tc.m.Level, p.Level)
		if snap.MinFaceSimilarity != 50 || snap.ReviewBand != 5 || snap.ChallengeSteps != 8 || snap.TimeoutMS != 20000 || snap.LivenessLevel != string(wantLevel) {
			t.Errorf("%s: snapshot %+v", tc.name, snap)
		}
	}
	bad := DefaultPolicy()
	bad.FaceThreshold = 120
	if bad.Validate() == nil {
		t.Error("face threshold 120 accepted")
	}
	bad = DefaultPolicy()
	bad.Level = "MEDIUM"
	if bad.Validate() == nil {
		t.Error("level MEDIUM accepted")
	}
	if g := guardSummary(device.Report{Risk: device.SeverityWarn, Signals: []device.Signal{{Code: "B"}, {Code: "A"}}}, true); g.Risk != "medium" || !slices.Equal(g.Signals, []string{"A", "B"}) {
		t.Errorf("guard summary %+v", g)
	}
}
