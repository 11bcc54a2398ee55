package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/flashmark"
)

// Clock is the timeline frames are stamped on: CLOCK_MONOTONIC live, the
// simulator's virtual clock in tests (sim.Clock has the same methods).
type Clock interface {
	Now() time.Duration
	WaitUntil(ctx context.Context, t time.Duration) error
}

// Player plays a challenge's colour steps on a display while the session
// reads frames. Live, a goroutine shows each step at its planned time; on
// the simulator's virtual clock, the steps due before the next frame are
// scheduled before that frame is read (as sim.Drive does). The runner calls
// Begin once, Tick before every frame read, and Finish after the last.
type Player interface {
	// Begin starts playing steps, the first at start (clock time); it
	// does not block.
	Begin(ctx context.Context, steps []flashmark.Step, idle flashmark.RGB, start time.Duration) error
	// Tick is called before each frame read.
	Tick(ctx context.Context) error
	// Finish waits until every step was shown (and the idle colour after
	// them) and returns the steps' presentations, in order.
	Finish(ctx context.Context) ([]flashmark.Presentation, error)
}

// plan returns the planned request time of each step and the end.
func plan(steps []flashmark.Step, start time.Duration) ([]time.Duration, time.Duration) {
	at := make([]time.Duration, len(steps))
	t := start
	for i, s := range steps {
		at[i] = t
		t += s.Duration
	}
	return at, t
}

// LivePlayer shows the steps on a real-time display: the framebuffer (whose
// Show blocks until the flip), the kiosk page, or the simulator's screen on
// the real clock.
type LivePlayer struct {
	Display flashmark.Display
	Clock   Clock

	done  chan struct{}
	mu    sync.Mutex
	pres  []flashmark.Presentation
	err   error
	steps int
}

// NewLivePlayer returns a player for d on clock (capture.MonotonicClock when nil).
func NewLivePlayer(d flashmark.Display, clock Clock) *LivePlayer {
	if clock == nil {
		clock = capture.MonotonicClock{}
	}
	return &LivePlayer{Display: d, Clock: clock}
}

// Begin starts the goroutine that shows the steps.
func (p *LivePlayer) Begin(ctx context.Context, steps []flashmark.Step, idle flashmark.RGB, start time.Duration) error {
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return errors.New("player: a challenge is already playing")
		}
	}
	at, end := plan(steps, start)
	p.done = make(chan struct{})
	p.mu.Lock()
	p.pres, p.err, p.steps = nil, nil, len(steps)
	p.mu.Unlock()
	go func() {
		defer close(p.done)
		fail := func(err error) {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
		}
		for i, s := range steps {
			if err := p.Clock.WaitUntil(ctx, at[i]); err != nil {
				fail(err)
				return
			}
			pr, err := p.Display.Show(ctx, s.Color)
			if err != nil {
				fail(fmt.Errorf("show step %d: %w", i, err))
				return
			}
			p.mu.Lock()
			p.pres = append(p.pres, pr)
			p.mu.Unlock()
		}
		if err := p.Clock.WaitUntil(ctx, end); err != nil {
			fail(err)
			return
		}
		if _, err := p.Display.Show(ctx, idle); err != nil {
			fail(fmt.Errorf("show idle: %w", err))
		}
	}()
	return nil
}

// Tick does nothing: the goroutine keeps the pace.
func (p *LivePlayer) Tick(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Finish waits for the goroutine.
func (p *LivePlayer) Finish(ctx context.Context) ([]flashmark.Presentation, error) {
	if p.done == nil {
		return nil, errors.New("player: not begun")
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return nil, p.err
	}
	if len(p.pres) != p.steps {
		return nil, fmt.Errorf("player: %d of %d steps shown", len(p.pres), p.steps)
	}
	return append([]flashmark.Presentation(nil), p.pres...), nil
}

// Scheduler is a display that accepts colours requested at a given time
// (sim.Display.ShowAt): a driver on a virtual clock schedules the steps
// without stepping the clock for each colour.
type Scheduler interface {
	ShowAt(at time.Duration, c flashmark.RGB) flashmark.Presentation
}

// FramePacer says when the next frame will have been read out (the
// simulator's camera: sim.Camera.NextFrameDone).
type FramePacer interface {
	NextFrameDone() time.Duration
}

// VirtualPlayer plays on the simulator's virtual clock: before each frame
// read it schedules the steps whose planned time falls before that frame is
// read out, so the camera renders them.
type VirtualPlayer struct {
	Display Scheduler
	Camera  FramePacer

	steps []flashmark.Step
	idle  flashmark.RGB
	at    []time.Duration
	end   time.Duration
	next  int
	idled bool
	pres  []flashmark.Presentation
}

// Begin plans the steps.
func (p *VirtualPlayer) Begin(_ context.Context, steps []flashmark.Step, idle flashmark.RGB, start time.Duration) error {
	p.steps, p.idle = steps, idle
	p.at, p.end = plan(steps, start)
	p.next, p.idled, p.pres = 0, false, nil
	return nil
}

func (p *VirtualPlayer) showUntil(t time.Duration) {
	for p.next < len(p.steps) && p.at[p.next] <= t {
		p.pres = append(p.pres, p.Display.ShowAt(p.at[p.next], p.steps[p.next].Color))
		p.next++
	}
	if p.next == len(p.steps) && !p.idled && p.end <= t {
		p.Display.ShowAt(p.end, p.idle)
		p.idled = true
	}
}

// Tick schedules what is due before the next frame.
func (p *VirtualPlayer) Tick(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.showUntil(p.Camera.NextFrameDone())
	return nil
}

// Finish schedules the rest.
func (p *VirtualPlayer) Finish(ctx context.Context) ([]flashmark.Presentation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.showUntil(p.end)
	return p.pres, nil
}
