package sim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/flashmark"
)

func TestRigSwitchesPresentation(t *testing.T) {
	clock := NewVirtualClock(time.Second)
	r, err := NewRig(RigConfig{Face: testFace(t), Clock: clock, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := r.ReadFrame(ctx); !errors.Is(err, capture.ErrClosed) {
		t.Errorf("read before open: %v", err)
	}
	f, err := r.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.Width != 640 || f.Height != 480 {
		t.Errorf("format %v", f)
	}
	defer r.Close()
	// The session locks the controls; a switch keeps them.
	if err := r.SetAutoExposure(false); err != nil {
		t.Fatal(err)
	}
	if err := r.SetAutoWhiteBalance(false); err != nil {
		t.Fatal(err)
	}
	var last uint64
	read := func(i int) *capture.Frame {
		t.Helper()
		done := r.NextFrameDone()
		fr, err := r.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && fr.Seq != last+1 {
			t.Errorf("seq %d after %d", fr.Seq, last)
		}
		if fr.Timestamp > done {
			t.Errorf("frame stamped %v after its announced readout %v", fr.Timestamp, done)
		}
		last = fr.Seq
		return fr
	}
	for i := 0; i < 3; i++ {
		read(i)
	}
	mean := func(fr *capture.Frame) [3]float64 {
		m, err := MeanLinear(fr, r.current().Scene.Face)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	bona := mean(read(3))
	if err := r.SetSpecies(Replay); err != nil {
		t.Fatal(err)
	}
	if r.Species() != Replay {
		t.Errorf("species %s", r.Species())
	}
	fr := read(4)
	st := r.current().Camera.State()
	if st.AutoExposure || st.AutoWB {
		t.Errorf("controls after the switch: %+v", st)
	}
	if m := mean(fr); m == bona {
		t.Error("the replay renders exactly like the live face")
	}
	// The screen follows the presentation: a colour shown now lights the
	// next frames.
	p, err := r.Show(ctx, flashmark.RGB{R: 200, G: 40, B: 40})
	if err != nil || p.Presented < p.Requested {
		t.Fatalf("show: %+v %v", p, err)
	}
	if err := r.SetSpecies("hologram"); err == nil {
		t.Error("unknown species accepted")
	}
	if r.ExposureTime() <= 0 || r.Readout() <= 0 {
		t.Errorf("exposure %v readout %v", r.ExposureTime(), r.Readout())
	}
	// Closed: reads fail, and it opens again.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadFrame(ctx); !errors.Is(err, capture.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
	if _, err := r.Open(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRigNeedsAFace(t *testing.T) {
	if _, err := NewRig(RigConfig{}); err == nil {
		t.Error("rig without a face")
	}
	if _, err := NewRig(RigConfig{FacePath: "/nonexistent.png"}); err == nil {
		t.Error("rig with a missing photo")
	}
	p := DefaultRigParams()
	p.FPS = 0
	if _, err := NewRig(RigConfig{Face: testFace(t), Params: &p}); err == nil {
		t.Error("rig with invalid params")
	}
}
