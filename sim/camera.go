package sim

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/glintdev/glint/capture"
)

// sensorK converts scene radiance (×π, lux-equivalent) times exposure
// seconds into full-scale sensor signal at gain 1: 300 lux on a 50% grey
// face at 1/60 s reads about 0.35.
const sensorK = 0.175

// aeTarget is the mean linear luminance auto exposure aims the centre of
// the frame at (sRGB ≈ 118).
const aeTarget = 0.18

// noiseTableSize holds pre-drawn standard normal samples; each row reads
// them from a random offset, which is indistinguishable from fresh draws
// for this purpose and far cheaper.
const noiseTableSize = 1 << 16

// World is what lights a scene besides its own geometry: the kiosk screen
// and the emission of attack instruments. The camera asks it per row.
type World struct {
	// Display is the kiosk screen; nil for a dark screen.
	Display *Display
	// Emit1 is the constant radiance (linear RGB) of the scene's first
	// emission pattern (phone screens, deepfake video).
	Emit1 [3]float64
	// Emit2 gives the time-varying radiance (linear RGB) of the second
	// pattern over an interval: a replay's baked-in flashes, a deepfake's
	// relighting.
	Emit2 func(t0, t1 time.Duration) [3]float64
}

// CameraState is a snapshot of the camera's exposure and white balance.
type CameraState struct {
	AutoExposure, AutoWB bool
	Exposure             time.Duration
	Gain                 float64
	WB                   [3]float64 // per-channel gains, green = 1
}

type pendingAE struct {
	seq      uint64
	exposure time.Duration
	gain     float64
	wb       [3]float64
	setWB    bool
	setExp   bool
}

// Camera is the simulated camera. It implements capture.Source and
// capture.Controls; frames are stamped on the Clock's timeline with the end
// of the first row's exposure (when readout starts), as a UVC driver does.
type Camera struct {
	p     Params
	scene *Scene
	world World
	clock Clock

	mu      sync.Mutex
	st      CameraState
	pending []pendingAE
	opened  bool
	seq     uint64
	start   time.Duration
	prevT   time.Duration
	cancel  context.CancelFunc
	runCtx  context.Context
	rng     *rand.Rand
	noise   *[noiseTableSize]float32
	sigma   [256]float32
	ambient [3]float64
}

// NewCamera makes a camera looking at scene in world. seed makes its noise,
// jitter and motion reproducible.
func NewCamera(p Params, scene *Scene, world World, clock Clock, seed uint64) (*Camera, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if scene == nil || scene.W != p.Width || scene.H != p.Height {
		return nil, fmt.Errorf("sim camera: scene does not match %dx%d", p.Width, p.Height)
	}
	c := &Camera{p: p, scene: scene, world: world, clock: clock, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
	c.noise = new([noiseTableSize]float32)
	for i := range c.noise {
		c.noise[i] = float32(c.rng.NormFloat64())
	}
	amb := kelvinRGB(p.AmbientK)
	for k := range amb {
		c.ambient[k] = amb[k] * p.AmbientLux
	}
	c.st = CameraState{AutoExposure: p.AutoExposure, AutoWB: p.AutoWB, Exposure: p.Exposure, Gain: p.Gain, WB: wbForKelvin(p.AmbientK)}
	c.st.Exposure = min(c.st.Exposure, c.maxExposure())
	return c, nil
}

// wbForKelvin are the gains that make a grey lit at k kelvin neutral.
func wbForKelvin(k float64) [3]float64 {
	c := kelvinRGB(k)
	return [3]float64{c[1] / c[0], 1, c[1] / c[2]}
}

func (c *Camera) period() time.Duration { return time.Duration(float64(time.Second) / c.p.FPS) }

func (c *Camera) maxExposure() time.Duration { return c.period() - time.Millisecond }

// Open starts streaming.
func (c *Camera) Open(ctx context.Context) (capture.Format, error) {
	if err := ctx.Err(); err != nil {
		return capture.Format{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opened {
		return capture.Format{}, fmt.Errorf("sim camera: already open")
	}
	c.opened = true
	c.seq = 0
	c.start = c.clock.Now()
	c.prevT = c.start - c.period()
	c.runCtx, c.cancel = context.WithCancel(context.Background())
	return c.format(), nil
}

func (c *Camera) format() capture.Format {
	pf := capture.FormatRGB24
	if c.p.MJPEGQuality > 0 {
		pf = capture.FormatMJPEG
	}
	return capture.Format{PixelFormat: pf, Width: c.p.Width, Height: c.p.Height, FPS: c.p.FPS}
}

// Close stops streaming; a blocked ReadFrame returns ErrClosed.
func (c *Camera) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
	c.opened = false
	return nil
}

// ReadFrame waits until the next frame has been read out and returns it.
func (c *Camera) ReadFrame(ctx context.Context) (*capture.Frame, error) {
	c.mu.Lock()
	if !c.opened {
		c.mu.Unlock()
		return nil, capture.ErrClosed
	}
	seq := c.seq
	c.seq++
	c.applyPending(seq)
	st := c.st
	// Frame start with jitter, never before the previous frame's start.
	t0 := c.start + time.Duration(seq)*c.period() + time.Duration(c.rng.NormFloat64()*float64(c.p.FrameJitter))
	t0 = max(t0, c.prevT+c.period()/2)
	c.prevT = t0
	runCtx := c.runCtx
	c.mu.Unlock()

	readout := c.p.Readout
	if c.scene.Virtual {
		readout = 0
	}
	done := t0 + st.Exposure + readout
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(runCtx, cancel)
	err := c.clock.WaitUntil(wctx, done)
	stop()
	cancel()
	if runCtx.Err() != nil {
		return nil, capture.ErrClosed
	}
	if err != nil {
		return nil, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.opened {
		return nil, capture.ErrClosed
	}
	rgb := make([]byte, c.p.Width*c.p.Height*3)
	c.render(rgb, t0, st)
	c.autoAdjust(rgb, seq, st)
	f := &capture.Frame{
		Seq: seq, Timestamp: t0 + st.Exposure, TimestampSource: capture.TimestampSynthetic,
		Width: c.p.Width, Height: c.p.Height, Format: capture.FormatRGB24, Data: rgb,
	}
	if c.p.MJPEGQuality > 0 {
		img := &image.RGBA{Pix: make([]byte, c.p.Width*c.p.Height*4), Stride: 4 * c.p.Width, Rect: image.Rect(0, 0, c.p.Width, c.p.Height)}
		for i, j := 0, 0; i < len(rgb); i, j = i+3, j+4 {
			img.Pix[j], img.Pix[j+1], img.Pix[j+2], img.Pix[j+3] = rgb[i], rgb[i+1], rgb[i+2], 255
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: c.p.MJPEGQuality}); err != nil {
			return nil, fmt.Errorf("sim camera: encode MJPEG frame %d: %w", seq, err)
		}
		f.Format, f.Data = capture.FormatMJPEG, b.Bytes()
	}
	return f, nil
}

// State returns the current exposure and white balance.
func (c *Camera) State() CameraState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// Scene returns the scene the camera looks at.
func (c *Camera) Scene() *Scene { return c.scene }

// SetAutoExposure switches auto exposure; switching it off keeps the
// current exposure and gain (V4L2's manual mode does the same).
func (c *Camera) SetAutoExposure(on bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.AutoExposure = on
	if !on {
		c.dropPending(false)
	}
	return nil
}

// SetExposure sets the exposure in 100 µs units (exposure_time_absolute).
func (c *Camera) SetExposure(value int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	maxV := int32(c.maxExposure() / (100 * time.Microsecond))
	if value < 1 || value > maxV {
		return fmt.Errorf("sim camera: exposure %d outside 1..%d (100 µs units at %.0f fps)", value, maxV, c.p.FPS)
	}
	c.st.Exposure = time.Duration(value) * 100 * time.Microsecond
	return nil
}

// SetAutoWhiteBalance switches auto white balance; switching it off keeps
// the current gains.
func (c *Camera) SetAutoWhiteBalance(on bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.AutoWB = on
	if !on {
		c.dropPending(true)
	}
	return nil
}

// SetWhiteBalanceTemperature sets the manual white balance in kelvin.
func (c *Camera) SetWhiteBalanceTemperature(kelvin int32) error {
	if kelvin < 2000 || kelvin > 10000 {
		return fmt.Errorf("sim camera: white balance %d K outside 2000..10000", kelvin)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.WB = wbForKelvin(float64(kelvin))
	return nil
}

func (c *Camera) dropPending(wb bool) {
	out := c.pending[:0]
	for _, p := range c.pending {
		if wb {
			p.setWB = false
		} else {
			p.setExp = false
		}
		if p.setWB || p.setExp {
			out = append(out, p)
		}
	}
	c.pending = out
}

func (c *Camera) applyPending(seq uint64) {
	out := c.pending[:0]
	for _, p := range c.pending {
		if p.seq > seq {
			out = append(out, p)
			continue
		}
		if p.setExp && c.st.AutoExposure {
			c.st.Exposure, c.st.Gain = p.exposure, p.gain
		}
		if p.setWB && c.st.AutoWB {
			c.st.WB = p.wb
		}
	}
	c.pending = out
}

// autoAdjust measures the frame (centre-weighted luminance, grey-world
// colour) and schedules AE/AWB corrections AEDelay frames later, damped, as
// camera firmware does: this is what undoes a colour flash if not locked.
func (c *Camera) autoAdjust(rgb []byte, seq uint64, st CameraState) {
	if !st.AutoExposure && !st.AutoWB {
		return
	}
	w, h := c.p.Width, c.p.Height
	var sum [3]float64
	var n float64
	for y := h / 4; y < 3*h/4; y += 4 {
		for x := w / 4; x < 3*w/4; x += 4 {
			o := (y*w + x) * 3
			for k := 0; k < 3; k++ {
				sum[k] += float64(srgbToLinear[rgb[o+k]])
			}
			n++
		}
	}
	for k := range sum {
		sum[k] = sum[k]/n + 1e-4
	}
	p := pendingAE{seq: seq + uint64(max(1, c.p.AEDelay))}
	if st.AutoExposure {
		y := luminance(sum)
		f := math.Pow(aeTarget/y, 0.5) // damped
		total := st.Exposure.Seconds() * st.Gain * f
		exp := math.Min(total, c.maxExposure().Seconds())
		exp = math.Max(exp, 50e-6)
		p.exposure = time.Duration(exp * float64(time.Second))
		p.gain = math.Max(1, math.Min(16, total/exp))
		p.setExp = true
	}
	if st.AutoWB {
		for k := range p.wb {
			target := st.WB[k] * sum[1] / sum[k] / (st.WB[1])
			p.wb[k] = st.WB[k] + 0.5*(target-st.WB[k])
		}
		p.wb[1] = 1
		p.setWB = true
	}
	c.pending = append(c.pending, p)
}

// rowTime: start-of-exposure offset between consecutive rows.
func (c *Camera) rowTime() time.Duration {
	if c.scene.Virtual {
		return 0
	}
	return c.p.Readout / time.Duration(c.p.Height)
}

// flickerMean is the mean of the mains-flicker modulation over [t0, t1].
func (c *Camera) flickerMean(t0, t1 time.Duration) float64 {
	if c.p.FlickerHz <= 0 || c.p.FlickerDepth <= 0 {
		return 1
	}
	w := 2 * math.Pi * c.p.FlickerHz
	a, b := t0.Seconds(), t1.Seconds()
	if b-a < 1e-7 {
		return 1 + c.p.FlickerDepth*math.Cos(w*a)
	}
	return 1 + c.p.FlickerDepth*(math.Sin(w*b)-math.Sin(w*a))/(w*(b-a))
}

// drift is the slow ambient fluctuation at t: three incommensurate
// sinusoids with per-attempt phases.
func (c *Camera) drift(t time.Duration) float64 {
	if c.p.AmbientDrift == 0 {
		return 1
	}
	ts := t.Seconds()
	ph := c.scene.phase * 2 * math.Pi
	return 1 + c.p.AmbientDrift*(math.Sin(2*math.Pi*0.7*ts+4*ph)+0.7*math.Sin(2*math.Pi*1.9*ts+6*ph)+0.5*math.Sin(2*math.Pi*3.1*ts+ph))/2.2
}

// motion returns the integer translation and the small rotation vector of
// the scene at time t: slow sways with incommensurate periods.
func (c *Camera) motion(t time.Duration) (dx, dy int, rot [3]float32) {
	s := c.scene
	ts := t.Seconds()
	ph := s.phase * 2 * math.Pi
	dx = int(math.Round(s.motionPx * math.Sin(2*math.Pi*0.47*ts+ph)))
	dy = int(math.Round(0.6 * s.motionPx * math.Sin(2*math.Pi*0.31*ts+2*ph)))
	dx = max(-s.M, min(s.M, dx))
	dy = max(-s.M, min(s.M, dy))
	rot = [3]float32{
		float32(s.rotRad * math.Sin(2*math.Pi*0.23*ts+3*ph)),
		float32(s.rotRad * math.Sin(2*math.Pi*0.37*ts+5*ph)),
		float32(0.3 * s.rotRad * math.Sin(2*math.Pi*0.19*ts+ph)),
	}
	return dx, dy, rot
}

func (c *Camera) blinking(t time.Duration) bool {
	s := c.scene
	if s.albB[0] == nil || s.blinkPeriod <= 0 {
		return false
	}
	phase := (t + time.Duration(s.phase*float64(s.blinkPeriod))) % s.blinkPeriod
	return phase < 150*time.Millisecond
}

// render relights the scene for a frame whose first row starts exposing at
// t0 and writes 8-bit sRGB into dst.
func (c *Camera) render(dst []byte, t0 time.Duration, st CameraState) {
	s := c.scene
	w, h := c.p.Width, c.p.Height
	exp := st.Exposure
	// K: radiance×π → full-scale signal, per channel.
	var K [3]float32
	for k := range K {
		K[k] = float32(exp.Seconds() * st.Gain * st.WB[k] * sensorK)
	}
	// Noise: σ(signal) from shot and read noise, tabulated per frame.
	readN := c.p.ReadNoise * st.Gain
	shot := st.Gain / c.p.FullWell
	if s.Virtual {
		readN, shot = 0.002, 0.3/c.p.FullWell // the injected video's own, mild, noise
	}
	for i := range c.sigma {
		v := float64(i) / 255
		c.sigma[i] = float32(math.Sqrt(v*shot + readN*readN))
	}
	var segs []segment
	var period time.Duration
	if c.world.Display != nil && !s.Virtual {
		c.world.Display.mu.Lock()
		segs = append(segs, c.world.Display.segs...)
		c.world.Display.mu.Unlock()
		period = c.world.Display.period
	}
	mid := t0 + exp/2 + c.p.Readout/2
	dx, dy, rot := c.motion(mid)
	alb := s.alb
	if c.blinking(mid) {
		alb = s.albB
	}
	var wrapK [3]float32
	for k := range wrapK {
		wrapK[k] = skinWrap[k] / (1 + skinWrap[k])
	}
	rt := c.rowTime()
	for y := 0; y < h; y++ {
		r0 := t0 + time.Duration(y)*rt
		r1 := r0 + exp
		fl := float32(c.flickerMean(r0, r1) * c.drift(r0))
		var A, S, E1, E2 [3]float32
		var scr [3]float64
		if segs != nil {
			scr = meanEmission(segs, period, r0, r1)
		}
		var e2 [3]float64
		if c.world.Emit2 != nil && s.emit2[0] != nil {
			e2 = c.world.Emit2(r0, r1)
		}
		for k := 0; k < 3; k++ {
			A[k] = float32(c.ambient[k]) * fl * K[k]
			S[k] = float32(c.p.ScreenNits*scr[k]) * K[k]
			E1[k] = float32(c.world.Emit1[k]) * K[k]
			E2[k] = float32(e2[k]) * K[k]
		}
		base := (y+s.M+dy)*s.stride + s.M + dx
		out := dst[y*w*3 : (y+1)*w*3]
		nb := int(c.rng.Uint32()) & (noiseTableSize - 1)
		c.renderRow(out, s, alb, base, w, rot, A, S, E1, E2, wrapK, nb)
	}
}

// renderRow is the hot loop: one row of relit, noisy, encoded pixels.
// Channels are unrolled and every map re-sliced to the row so that the
// compiler drops bounds checks.
func (c *Camera) renderRow(out []byte, s *Scene, alb [3][]float32, base, w int, rot [3]float32, A, S, E1, E2, wrapK [3]float32, nb int) {
	if s.emit1[0] != nil {
		c.emitRow(out, s, alb, base, w, rot, A, S, E1, E2, wrapK, nb)
		return
	}
	albR, albG, albB := alb[0][base:base+w], alb[1][base:base+w], alb[2][base:base+w]
	px := s.px[base : base+w]
	albR, albG, albB = albR[:len(px)], albG[:len(px)], albB[:len(px)] // bounds-check hints
	out = out[:3*len(px)]
	wr, wg, wb := skinWrap[0], skinWrap[1], skinWrap[2]
	kr, kg, kb := wrapK[0], wrapK[1], wrapK[2]
	for x := range px {
		q := &px[x]
		ndl := q.nl0 + rot[0]*q.cr[0] + rot[1]*q.cr[1] + rot[2]*q.cr[2]
		ss, g, a, sp := q.sss, q.geo, q.ambF, q.spec
		dr, dg, db := ndl+ss*wr, ndl+ss*wg, ndl+ss*wb
		dr = max(dr, 0) * g * (1 - ss*kr)
		dg = max(dg, 0) * g * (1 - ss*kg)
		db = max(db, 0) * g * (1 - ss*kb)
		vr := albR[x]*(A[0]*a+S[0]*dr) + sp*S[0]
		vg := albG[x]*(A[1]*a+S[1]*dg) + sp*S[1]
		vb := albB[x]*(A[2]*a+S[2]*db) + sp*S[2]
		o := out[3*x : 3*x+3 : 3*x+3]
		o[0] = c.encode(vr, nb)
		o[1] = c.encode(vg, nb+1)
		o[2] = c.encode(vb, nb+2)
		nb = (nb + 3) & (noiseTableSize - 1)
	}
}

// encode adds sensor noise to a full-scale signal and quantises it to
// 8-bit sRGB. The noise index wraps (callers pass nb+k < table+3).
func (c *Camera) encode(v float32, nb int) uint8 {
	v = min(max(v, 0), 1)
	v += c.sigma[uint8(v*255)] * c.noise[nb&(noiseTableSize-1)]
	v = min(max(v, 0), 1)
	// Masks let the compiler drop bounds checks: v ≤ 1 keeps the index in range anyway.
	return linearToSRGB8[int(v*(encodeLUTSize-1))&(encodeLUTSize-1)]
}

// emitRow renders a row of a scene with emission (screens, deepfakes):
// the reflective terms of renderRow plus one or two emission patterns.
func (c *Camera) emitRow(out []byte, s *Scene, alb [3][]float32, base, w int, rot [3]float32, A, S, E1, E2, wrapK [3]float32, nb int) {
	albR, albG, albB := alb[0][base:base+w], alb[1][base:base+w], alb[2][base:base+w]
	px := s.px[base : base+w]
	e1r, e1g, e1b := s.emit1[0][base:base+w], s.emit1[1][base:base+w], s.emit1[2][base:base+w]
	// Without a second pattern, read the first twice at zero weight.
	e2r, e2g, e2b := e1r, e1g, e1b
	if s.emit2[0] != nil {
		e2r, e2g, e2b = s.emit2[0][base:base+w], s.emit2[1][base:base+w], s.emit2[2][base:base+w]
	} else {
		E2 = [3]float32{}
	}
	albR, albG, albB = albR[:len(px)], albG[:len(px)], albB[:len(px)] // bounds-check hints
	e1r, e1g, e1b = e1r[:len(px)], e1g[:len(px)], e1b[:len(px)]
	e2r, e2g, e2b = e2r[:len(px)], e2g[:len(px)], e2b[:len(px)]
	out = out[:3*len(px)]
	wr, wg, wb := skinWrap[0], skinWrap[1], skinWrap[2]
	kr, kg, kb := wrapK[0], wrapK[1], wrapK[2]
	for x := range px {
		q := &px[x]
		ndl := q.nl0 + rot[0]*q.cr[0] + rot[1]*q.cr[1] + rot[2]*q.cr[2]
		ss, g, a, sp := q.sss, q.geo, q.ambF, q.spec
		dr := max(ndl+ss*wr, 0) * g * (1 - ss*kr)
		dg := max(ndl+ss*wg, 0) * g * (1 - ss*kg)
		db := max(ndl+ss*wb, 0) * g * (1 - ss*kb)
		vr := albR[x]*(A[0]*a+S[0]*dr) + sp*S[0] + e1r[x]*E1[0] + e2r[x]*E2[0]
		vg := albG[x]*(A[1]*a+S[1]*dg) + sp*S[1] + e1g[x]*E1[1] + e2g[x]*E2[1]
		vb := albB[x]*(A[2]*a+S[2]*db) + sp*S[2] + e1b[x]*E1[2] + e2b[x]*E2[2]
		o := out[3*x : 3*x+3 : 3*x+3]
		o[0] = c.encode(vr, nb)
		o[1] = c.encode(vg, nb+1)
		o[2] = c.encode(vb, nb+2)
		nb = (nb + 3) & (noiseTableSize - 1)
	}
}

var (
	_ capture.Source   = (*Camera)(nil)
	_ capture.Controls = (*Camera)(nil)
)
