package sim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/flashmark"
)

// NextFrameDone is when the camera's next frame will have been read out
// (nominal, without jitter): a driver on a virtual clock schedules the
// screen colours due before it, then reads the frame.
func (c *Camera) NextFrameDone() time.Duration { return c.nextFrameDone() }

// catchUp skips the frames whose readout ended more than a frame period
// before now, as a real camera drops frames nobody dequeued: a renderer
// slower than real time (a loaded machine, the race detector) then delivers
// fewer, current frames instead of ever older ones. It returns how many
// frames it skipped. On a virtual clock it never skips (the clock only
// advances to a frame's readout).
func (c *Camera) catchUp(now time.Duration) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.opened {
		return 0
	}
	ro := c.p.Readout
	if c.scene.Virtual {
		ro = 0
	}
	p := c.period()
	done := c.start + time.Duration(c.seq)*p + c.st.Exposure + ro
	if now-done <= p {
		return 0
	}
	n := uint64((now - done) / p)
	c.seq += n
	return n
}

// ExposureTime is the current exposure time.
func (c *Camera) ExposureTime() time.Duration { return c.State().Exposure }

// RigConfig configures a Rig.
type RigConfig struct {
	// FacePath is the face photo (JPEG or PNG; see LoadFace for which
	// photos are usable) and FaceIndex the face to use in a group photo.
	FacePath  string
	FaceIndex int
	// Face, when set, is used instead of FacePath.
	Face *Face
	// Params are the physical conditions; zero means DefaultRigParams().
	// Species is overridden by SetSpecies.
	Params *Params
	// Clock paces the camera: RealClock{} (default) for a live daemon, a
	// VirtualClock in tests.
	Clock Clock
	// Seed makes the presentations reproducible; each SetSpecies draws the
	// next seed.
	Seed uint64
}

// DefaultRigParams are the kiosk glintd simulates: DefaultParams with the
// user at 50 cm from a camera of 55° horizontal field of view (the face is
// about 28% of the frame width, inside the short-range detector's measured
// range) and auto exposure and white balance on, as a webcam starts (the
// session locks them during the challenge).
func DefaultRigParams() Params {
	p := DefaultParams()
	p.DistanceM = 0.5
	p.HFOVDeg = 55
	p.AutoExposure = true
	p.AutoWB = true
	return p
}

// Rig is a live simulated kiosk for glintd (camera.source: sim) and for
// session tests: a camera (capture.Source and capture.Controls) and its
// screen (flashmark.Display) looking at one face, whose presentation (bona
// fide or an attack species) can be switched at any time. Switching builds
// a new attempt; the camera changes over at its next frame, keeping the
// frame sequence and the manual/automatic control settings.
type Rig struct {
	face  *Face
	base  Params
	clock Clock

	mu       sync.Mutex
	seed     uint64
	species  Species
	cur      *Attempt // the attempt the camera reads
	pending  *Attempt // switched to, taken over at the next frame
	open     bool
	seq      uint64
	autoExp  bool
	autoWB   bool
	exposure int32 // manual exposure set by SetExposure (0: none)
	wbK      int32 // manual white balance set (0: none)
}

// NewRig loads the face and builds the bona fide presentation.
func NewRig(cfg RigConfig) (*Rig, error) {
	face := cfg.Face
	if face == nil {
		if cfg.FacePath == "" {
			return nil, errors.New("sim rig: no face photo")
		}
		faces, err := LoadFace(cfg.FacePath)
		if err != nil {
			return nil, fmt.Errorf("sim rig: %w", err)
		}
		if cfg.FaceIndex < 0 || cfg.FaceIndex >= len(faces) {
			return nil, fmt.Errorf("sim rig: face index %d: %s has %d faces", cfg.FaceIndex, cfg.FacePath, len(faces))
		}
		face = faces[cfg.FaceIndex]
	}
	p := DefaultRigParams()
	if cfg.Params != nil {
		p = *cfg.Params
	}
	p.Species = BonaFide
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("sim rig: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	r := &Rig{face: face, base: p, clock: cfg.Clock, seed: cfg.Seed, autoExp: p.AutoExposure, autoWB: p.AutoWB}
	a, err := r.build(BonaFide)
	if err != nil {
		return nil, err
	}
	r.cur, r.species = a, BonaFide
	return r, nil
}

// Face is the face the rig shows.
func (r *Rig) Face() *Face {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.face
}

func (r *Rig) build(sp Species) (*Attempt, error) {
	p := r.base
	p.Species = sp
	r.seed++
	a, err := NewAttempt(r.face, p, r.clock, r.seed)
	if err != nil {
		return nil, fmt.Errorf("sim rig: %s: %w", sp, err)
	}
	return a, nil
}

// SetSpecies switches the presentation in front of the camera.
func (r *Rig) SetSpecies(sp Species) error {
	if _, err := ParseSpecies(string(sp)); err != nil {
		return fmt.Errorf("sim rig: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a, err := r.build(sp)
	if err != nil {
		return err
	}
	r.pending, r.species = a, sp
	return nil
}

// SetFace switches the face photo in front of the camera (index: the face
// in a group photo), keeping the species.
func (r *Rig) SetFace(path string, index int) error {
	faces, err := LoadFace(path)
	if err != nil {
		return fmt.Errorf("sim rig: %w", err)
	}
	if index < 0 || index >= len(faces) {
		return fmt.Errorf("sim rig: face index %d: %s has %d faces", index, path, len(faces))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.face
	r.face = faces[index]
	a, err := r.build(r.species)
	if err != nil {
		r.face = old
		return err
	}
	r.pending = a
	return nil
}

// Species is the presentation shown (or about to be, from the next frame).
func (r *Rig) Species() Species {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.species
}

// Open starts the camera.
func (r *Rig) Open(ctx context.Context) (capture.Format, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open {
		return capture.Format{}, errors.New("sim rig: already open")
	}
	r.takePending()
	f, err := r.cur.Camera.Open(ctx)
	if err != nil {
		return capture.Format{}, err
	}
	r.applyControls(r.cur.Camera)
	r.open = true
	return f, nil
}

// takePending makes a switched-to attempt current (camera closed).
func (r *Rig) takePending() {
	if r.pending == nil {
		return
	}
	_ = r.cur.Camera.Close()
	r.cur, r.pending = r.pending, nil
}

func (r *Rig) applyControls(c *Camera) {
	_ = c.SetAutoExposure(r.autoExp)
	_ = c.SetAutoWhiteBalance(r.autoWB)
	if !r.autoExp && r.exposure > 0 {
		_ = c.SetExposure(r.exposure)
	}
	if !r.autoWB && r.wbK > 0 {
		_ = c.SetWhiteBalanceTemperature(r.wbK)
	}
}

// camera returns the camera to read, changing over to a switched-to
// presentation first.
func (r *Rig) camera(ctx context.Context) (*Camera, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.open {
		return nil, capture.ErrClosed
	}
	if r.pending != nil {
		r.takePending()
		if _, err := r.cur.Camera.Open(ctx); err != nil {
			r.open = false
			return nil, err
		}
		r.applyControls(r.cur.Camera)
	}
	return r.cur.Camera, nil
}

// ReadFrame renders the next frame, numbered in the rig's own sequence
// (which continues across presentation switches and shows dropped frames
// as gaps).
func (r *Rig) ReadFrame(ctx context.Context) (*capture.Frame, error) {
	c, err := r.camera(ctx)
	if err != nil {
		return nil, err
	}
	skipped := c.catchUp(r.clock.Now())
	f, err := c.ReadFrame(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.seq += skipped // a gap, as a driver reports dropped frames
	f.Seq = r.seq
	r.seq++
	r.mu.Unlock()
	return f, nil
}

// Close stops the camera; a blocked ReadFrame returns capture.ErrClosed.
func (r *Rig) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open = false
	return r.cur.Camera.Close()
}

func (r *Rig) current() *Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending != nil {
		return r.pending
	}
	return r.cur
}

// Show implements flashmark.Display on the presentation's screen.
func (r *Rig) Show(ctx context.Context, c flashmark.RGB) (flashmark.Presentation, error) {
	return r.current().Display.Show(ctx, c)
}

// ShowAt schedules a colour on a virtual clock (see Display.ShowAt).
func (r *Rig) ShowAt(at time.Duration, c flashmark.RGB) flashmark.Presentation {
	return r.current().Display.ShowAt(at, c)
}

// NextFrameDone is when the next ReadFrame's frame will have been read out
// (see Camera.NextFrameDone). Call it from the reading goroutine: it changes
// over to a switched-to presentation first, as that read would.
func (r *Rig) NextFrameDone() time.Duration {
	if c, err := r.camera(context.Background()); err == nil {
		return c.NextFrameDone()
	}
	return r.current().Camera.NextFrameDone()
}

// ExposureTime is the current camera's exposure time.
func (r *Rig) ExposureTime() time.Duration { return r.current().Camera.ExposureTime() }

// Readout is the camera's rolling-shutter readout time.
func (r *Rig) Readout() time.Duration { return r.base.Readout }

// Clock is the rig's clock.
func (r *Rig) Clock() Clock { return r.clock }

// SetAutoExposure implements capture.Controls.
func (r *Rig) SetAutoExposure(on bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.autoExp = on
	return r.cur.Camera.SetAutoExposure(on)
}

// SetExposure implements capture.Controls.
func (r *Rig) SetExposure(v int32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.cur.Camera.SetExposure(v); err != nil {
		return err
	}
	r.exposure = v
	return nil
}

// SetAutoWhiteBalance implements capture.Controls.
func (r *Rig) SetAutoWhiteBalance(on bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.autoWB = on
	return r.cur.Camera.SetAutoWhiteBalance(on)
}

// SetWhiteBalanceTemperature implements capture.Controls.
func (r *Rig) SetWhiteBalanceTemperature(k int32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.cur.Camera.SetWhiteBalanceTemperature(k); err != nil {
		return err
	}
	r.wbK = k
	return nil
}

var (
	_ capture.Source    = (*Rig)(nil)
	_ capture.Controls  = (*Rig)(nil)
	_ flashmark.Display = (*Rig)(nil)
)
