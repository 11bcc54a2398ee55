package sim

import (
	"image"
	"math"
	"math/rand/v2"
	"time"
)

// Scene is an attempt's per-pixel geometry and materials, precomputed once
// so that a frame only relights it. Maps cover the frame plus a margin on
// every side, so that translation is a shifted read.
type Scene struct {
	W, H, M int // frame size and margin
	stride  int // W + 2M

	alb  [3][]float32 // diffuse reflectance (linear)
	albB [3][]float32 // alb with the eyes closed (nil: no blinks)
	px   []pixGeom    // lighting geometry, one record per pixel (one memory stream)

	emit1, emit2 [3][]float32 // emitted radiance patterns (screens, deepfakes)

	// Virtual scenes are injected: the kiosk screen does not light them and
	// no physical sensor sees them (global shutter, clean video).
	Virtual bool
	// Face is the face box in frame pixels when the scene is at rest.
	Face image.Rectangle
	// Regions used by the realism tests (frame pixels at rest): forehead,
	// nose, left and right cheek.
	Regions map[string]image.Rectangle

	motionPx, rotRad, phase float64
	blinkPeriod             time.Duration
}

// pixGeom is a pixel's lighting geometry, kept together so that the render
// loop reads one stream instead of eight.
type pixGeom struct {
	ambF float32    // ambient (sky-dome) shading factor
	nl0  float32    // n·l̂ towards the kiosk screen at rest
	cr   [3]float32 // n × l̂: first-order change of n·l̂ under a rotation
	geo  float32    // screen area · cosθ_screen / d²
	sss  float32    // 1 where skin scatters light below the surface
	spec float32    // specular reflectance of the screen light, incl. geo
}

// skinWrap is the per-channel "wrap" of skin's diffuse falloff: light
// scattered under the skin reaches past the terminator, most in red.
var skinWrap = [3]float32{0.3, 0.15, 0.1}

// frameGeom is the camera projection and the face placement in a frame.
type frameGeom struct {
	p          Params
	f          float64 // focal length, pixels
	cx, cy     float64 // principal point
	fcx, fcy   float64 // face box centre, frame pixels
	wpx, hpx   float64 // face box size, frame pixels
	face       *Face
	scale      float64 // frame pixels per face-crop pixel
	screen     [3]float64
	screenArea float64
}

func newFrameGeom(face *Face, p Params) frameGeom {
	g := frameGeom{p: p, face: face}
	g.f = float64(p.Width) / 2 / math.Tan(p.HFOVDeg*math.Pi/360)
	g.cx, g.cy = float64(p.Width)/2, float64(p.Height)/2
	g.wpx = g.f * p.FaceWidthM / p.DistanceM
	g.scale = g.wpx / face.Box.W
	g.hpx = face.Box.H * g.scale
	g.fcx = g.cx + p.FaceOffset[0]*float64(p.Width)
	g.fcy = g.cy + p.FaceOffset[1]*float64(p.Height)
	// The camera sits on top of the screen's bezel: the screen's centre is
	// below the camera (+y is down) in the camera's plane.
	g.screen = [3]float64{0, p.ScreenHM/2 + 0.015, 0}
	g.screenArea = p.ScreenWM * p.ScreenHM
	return g
}

// photo samples the face crop (bilinear, clamped) at frame pixel (x, y).
func (g *frameGeom) photo(x, y float64) [3]float32 {
	fc := g.face
	u := fc.Box.X + fc.Box.W/2 + (x-g.fcx)/g.scale - 0.5
	v := fc.Box.Y + fc.Box.H/2 + (y-g.fcy)/g.scale - 0.5
	u = math.Max(0, math.Min(float64(fc.W-1), u))
	v = math.Max(0, math.Min(float64(fc.H-1), v))
	x0, y0 := int(u), int(v)
	x1, y1 := min(x0+1, fc.W-1), min(y0+1, fc.H-1)
	fx, fy := float32(u-float64(x0)), float32(v-float64(y0))
	var out [3]float32
	for c := 0; c < 3; c++ {
		l := fc.Lin[c]
		a := l[y0*fc.W+x0]*(1-fx) + l[y0*fc.W+x1]*fx
		b := l[y1*fc.W+x0]*(1-fx) + l[y1*fc.W+x1]*fx
		out[c] = a*(1-fy) + b*fy
	}
	return out
}

// boxUV is a frame pixel in face-box units: centre 0, edges ±0.5.
func (g *frameGeom) boxUV(x, y float64) (float64, float64) {
	return (x - g.fcx) / g.wpx, (y - g.fcy) / g.hpx
}

// relief is the facial relief (metres towards the camera) at box
// coordinates (u, v): nose, brow ridge, eye sockets, cheekbones and chin as
// Gaussian bumps at anthropometric positions relative to the face box.
func relief(u, v float64) float64 {
	bump := func(u0, v0, su, sv, h float64) float64 {
		du, dv := (u-u0)/su, (v-v0)/sv
		return h * math.Exp(-0.5*(du*du+dv*dv))
	}
	r := bump(0, 0.05, 0.07, 0.17, 0.020) + bump(0, 0.16, 0.06, 0.05, 0.008) // nose ridge and tip
	for _, s := range [2]float64{-1, 1} {
		r += bump(s*0.2, -0.3, 0.14, 0.05, 0.006)   // brow ridge
		r += bump(s*0.2, -0.14, 0.09, 0.06, -0.008) // eye socket
		r += bump(s*0.29, 0.07, 0.1, 0.1, 0.006)    // cheekbone
	}
	r += bump(0, 0.45, 0.12, 0.06, 0.004) // chin
	return r
}

// headShape returns the depth (metres) of the coarse head at frame pixel
// (x, y), or ok=false outside it: an ellipsoid around the face box (forehead
// above the box, chin at its bottom) plus the relief.
func (g *frameGeom) headShape(x, y float64) (z float64, ok bool) {
	hx, hy := g.fcx, g.fcy-0.08*g.hpx
	ax, ay := 0.56*g.wpx, 0.64*g.hpx
	du, dv := (x-hx)/ax, (y-hy)/ay
	r2 := du*du + dv*dv
	depth := 0.1 // ellipsoid semi-axis towards the camera, metres
	// Clamped just inside the rim, so that differences across it stay finite.
	z = g.p.DistanceM + depth*(1-math.Sqrt(math.Max(0.01, 1-r2)))
	u, v := g.boxUV(x, y)
	return z - relief(u, v), r2 < 1
}

// surface is what a pixel's ray hits.
type surface struct {
	z   float64    // depth along the optical axis, metres
	n   [3]float64 // unit normal towards the camera side
	alb [3]float32
	sss float32
	ks  float64 // specular reflectance
	exp float64 // Blinn-Phong exponent
}

// fill computes the lighting geometry of pixel i from its surface.
func (s *Scene) fill(g *frameGeom, i int, x, y float64, sf surface) {
	P := [3]float64{(x - g.cx) / g.f * sf.z, (y - g.cy) / g.f * sf.z, sf.z}
	l := [3]float64{g.screen[0] - P[0], g.screen[1] - P[1], g.screen[2] - P[2]}
	d2 := l[0]*l[0] + l[1]*l[1] + l[2]*l[2]
	d := math.Sqrt(d2)
	for k := range l {
		l[k] /= d
	}
	n := sf.n
	// The screen faces +z (the user): cosθ at the screen is P_z / d.
	geo := g.screenArea * math.Max(0, P[2]/d) / d2
	q := &s.px[i]
	q.geo = float32(geo)
	q.nl0 = float32(n[0]*l[0] + n[1]*l[1] + n[2]*l[2])
	q.cr[0] = float32(n[1]*l[2] - n[2]*l[1])
	q.cr[1] = float32(n[2]*l[0] - n[0]*l[2])
	q.cr[2] = float32(n[0]*l[1] - n[1]*l[0])
	q.ambF = float32(math.Max(0.25, math.Min(1, 0.62-0.38*n[1])))
	for c := 0; c < 3; c++ {
		s.alb[c][i] = sf.alb[c]
	}
	q.sss = sf.sss
	if sf.ks > 0 {
		pl := math.Sqrt(P[0]*P[0] + P[1]*P[1] + P[2]*P[2])
		h := [3]float64{l[0] - P[0]/pl, l[1] - P[1]/pl, l[2] - P[2]/pl}
		hl := math.Sqrt(h[0]*h[0] + h[1]*h[1] + h[2]*h[2])
		nh := (n[0]*h[0] + n[1]*h[1] + n[2]*h[2]) / hl
		if nh > 0 && q.nl0 > 0 {
			// Normalised Blinn-Phong: a sharper lobe is brighter at its peak.
			q.spec = float32(sf.ks * (sf.exp + 8) / 8 * math.Pow(nh, sf.exp) * geo)
		}
	}
}

func newSceneMaps(p Params, margin int) *Scene {
	s := &Scene{W: p.Width, H: p.Height, M: margin, stride: p.Width + 2*margin}
	n := s.stride * (p.Height + 2*margin)
	mk := func() []float32 { return make([]float32, n) }
	for c := 0; c < 3; c++ {
		s.alb[c] = mk()
	}
	s.px = make([]pixGeom, n)
	s.motionPx, s.rotRad, s.phase, s.blinkPeriod = p.MotionPx, p.RotationDeg*math.Pi/180, p.MotionPhase, p.BlinkPeriod
	return s
}

// normalOf turns depth differences (metres per pixel step in x and y) at
// depth z into a unit normal facing the camera.
func (g *frameGeom) normalOf(dzdx, dzdy, z float64) [3]float64 {
	mpp := z / g.f // metres per pixel at that depth
	gx, gy := dzdx/mpp, dzdy/mpp
	l := math.Sqrt(gx*gx + gy*gy + 1)
	return [3]float64{gx / l, gy / l, -1 / l}
}

// NewScene builds the scene of one attempt: face photo, species and
// conditions. rng draws the few per-pixel random details (moiré phase).
func NewScene(face *Face, p Params, rng *rand.Rand) (*Scene, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	margin := 4 + int(math.Ceil(2*p.MotionPx))
	s := newSceneMaps(p, margin)
	g := newFrameGeom(face, p)
	s.Face = image.Rect(int(g.fcx-g.wpx/2), int(g.fcy-g.hpx/2), int(g.fcx+g.wpx/2), int(g.fcy+g.hpx/2))
	s.Regions = map[string]image.Rectangle{
		"forehead":    g.region(0, -0.38, 0.3, 0.1),
		"nose":        g.region(0, 0.08, 0.08, 0.12),
		"left_cheek":  g.region(-0.3, 0.12, 0.12, 0.14),
		"right_cheek": g.region(0.3, 0.12, 0.12, 0.14),
	}
	switch p.Species {
	case BonaFide, Mask, Injection:
		s.buildHead(&g, p)
		if p.Species == Injection {
			s.Virtual = true
		}
	case Print:
		s.buildPlane(&g, p, planePrint, rng)
	case Screen, Replay:
		s.buildPlane(&g, p, planeDevice, rng)
	case Relight:
		s.buildRelight(&g, p)
	}
	return s, nil
}

// region is a rectangle centred at box coordinates (u, v), half-sizes hu, hv.
func (g *frameGeom) region(u, v, hu, hv float64) image.Rectangle {
	x, y := g.fcx+u*g.wpx, g.fcy+v*g.hpx
	return image.Rect(int(x-hu*g.wpx), int(y-hv*g.hpx), int(x+hu*g.wpx), int(y+hv*g.hpx))
}

// eye reports whether box coordinates (u, v) fall in an eye opening.
func eye(u, v float64) bool {
	for _, s := range [2]float64{-1, 1} {
		du, dv := (u-s*0.2)/0.1, (v+0.13)/0.045
		if du*du+dv*dv < 1 {
			return true
		}
	}
	return false
}

// forEach runs fn over every map pixel with its frame coordinates.
func (s *Scene) forEach(fn func(i int, x, y float64)) {
	for my := 0; my < s.H+2*s.M; my++ {
		for mx := 0; mx < s.stride; mx++ {
			fn(my*s.stride+mx, float64(mx-s.M)+0.5, float64(my-s.M)+0.5)
		}
	}
}

// buildHead: a live head (or a mask, or the injected video of one) in front
// of the photo's own background, with the torso on a plane just behind.
func (s *Scene) buildHead(g *frameGeom, p Params) {
	mask := p.Species == Mask
	blink := p.BlinkPeriod > 0 && !mask
	if blink {
		for c := 0; c < 3; c++ {
			s.albB[c] = make([]float32, len(s.alb[c]))
		}
	}
	skinTone := g.photo(g.fcx, g.fcy+0.1*g.hpx) // a cheek sample for closed lids
	// Depth map once; normals from its differences.
	rows := s.H + 2*s.M
	zmap := make([]float64, len(s.alb[0]))
	inHead := make([]bool, len(zmap))
	s.forEach(func(i int, x, y float64) { zmap[i], inHead[i] = g.headShape(x, y) })
	at := func(mx, my int) float64 {
		mx, my = max(0, min(s.stride-1, mx)), max(0, min(rows-1, my))
		return zmap[my*s.stride+mx]
	}
	s.forEach(func(i int, x, y float64) {
		alb := g.photo(x, y)
		sf := surface{alb: alb}
		if inHead[i] {
			z := zmap[i]
			mx, my := i%s.stride, i/s.stride
			zx1, zx0, zy1, zy0 := at(mx+1, my), at(mx-1, my), at(mx, my+1), at(mx, my-1)
			sf.z = z
			sf.n = g.normalOf((zx1-zx0)/2, (zy1-zy0)/2, z)
			sf.sss, sf.ks, sf.exp = 1, 0.035, 18
			u, v := g.boxUV(x, y)
			if mask && !(p.Attack.EyeHoles && eye(u, v)) {
				// Painted resin or silicone: the photo's pattern at lower
				// contrast over the material's own colour; glossy; no
				// subsurface scattering.
				for c := 0; c < 3; c++ {
					sf.alb[c] = 0.5*alb[c] + 0.5*float32(p.Attack.MaskAlbedo[c])
				}
				sf.sss, sf.ks, sf.exp = 0, p.Attack.MaskSpec, 45
			}
			if blink {
				b := alb
				if eye(u, v) {
					b = [3]float32{skinTone[0] * 0.85, skinTone[1] * 0.85, skinTone[2] * 0.85}
				}
				for c := 0; c < 3; c++ {
					s.albB[c][i] = b[c]
				}
			}
		} else {
			// Torso below the head sits just behind the face; the rest of
			// the photo is the background plane.
			sf.z = p.BackgroundM
			_, v := g.boxUV(x, y)
			if v > 0.55 {
				sf.z = p.DistanceM + 0.12
			}
			sf.n = [3]float64{0, 0, -1}
			if blink {
				for c := 0; c < 3; c++ {
					s.albB[c][i] = alb[c]
				}
			}
		}
		s.fill(g, i, x, y, sf)
	})
}

type planeKind int

const (
	planePrint  planeKind = iota // matte paper
	planeDevice                  // phone or tablet screen
)

// buildPlane: a flat (or slightly bent) print, or a device screen, held at
// the face distance and tilted, in front of a plain room wall.
func (s *Scene) buildPlane(g *frameGeom, p Params, kind planeKind, rng *rand.Rand) {
	yaw, pitch := p.Attack.TiltDeg[0]*math.Pi/180, p.Attack.TiltDeg[1]*math.Pi/180
	// Artefact extent in face-box units around the face.
	hu, hv := 1.6, 2.0 // an A5 print
	if kind == planeDevice {
		hu, hv = 1.1, 1.9 // a phone / small tablet in portrait
		s.emit1 = [3][]float32{make([]float32, len(s.alb[0])), make([]float32, len(s.alb[0])), make([]float32, len(s.alb[0]))}
		if p.Species == Replay {
			s.emit2 = [3][]float32{make([]float32, len(s.alb[0])), make([]float32, len(s.alb[0])), make([]float32, len(s.alb[0]))}
		}
	}
	wall := [3]float32{0.32, 0.3, 0.27}
	moirePhase := rng.Float64() * 2 * math.Pi
	// A bona fide head, for the video a replay shows.
	var head *frameGeom
	if p.Species == Replay {
		head = g
	}
	s.forEach(func(i int, x, y float64) {
		u, v := g.boxUV(x, y)
		// Depth of the tilted plane through the face centre.
		X := (x - g.fcx) / g.f * p.DistanceM
		Y := (y - g.fcy) / g.f * p.DistanceM
		z := p.DistanceM + X*math.Tan(yaw) + Y*math.Tan(pitch)
		dzdX, dzdY := math.Tan(yaw), math.Tan(pitch)
		if kind == planePrint && p.Attack.BendRadiusM > 0 {
			z += X * X / (2 * p.Attack.BendRadiusM)
			dzdX += X / p.Attack.BendRadiusM
		}
		in := math.Abs(u) < hu && math.Abs(v) < hv
		if !in {
			s.fill(g, i, x, y, surface{z: p.BackgroundM, n: [3]float64{0, 0, -1}, alb: wall})
			return
		}
		l := math.Sqrt(dzdX*dzdX + dzdY*dzdY + 1)
		n := [3]float64{dzdX / l, dzdY / l, -1 / l}
		photo := g.photo(x, y)
		if kind == planePrint {
			var a [3]float32
			for c := 0; c < 3; c++ {
				a[c] = 0.03 + 0.8*photo[c] // ink on paper: no deep black, no full white
			}
			s.fill(g, i, x, y, surface{z: z, n: n, alb: a, ks: 0.015, exp: 4})
			return
		}
		bezel := math.Abs(u) > hu-0.08 || math.Abs(v) > hv-0.08
		// Black glass: almost no diffuse reflection, a glossy reflection of
		// the kiosk screen (Fresnel ~4%), light of its own.
		s.fill(g, i, x, y, surface{z: z, n: n, alb: [3]float32{0.005, 0.005, 0.005}, ks: 0.04, exp: 60})
		if bezel {
			return
		}
		m := float32(1 + p.Attack.Moire*math.Sin(2*math.Pi*(p.Attack.MoireFreq[0]*x+p.Attack.MoireFreq[1]*y)+moirePhase))
		if head == nil {
			for c := 0; c < 3; c++ {
				s.emit1[c][i] = photo[c] * m
			}
			return
		}
		// Replay: the recorded face, shaded by its own head and lit by
		// the recording's ambient (emit1) and by the earlier challenge's
		// flashes (emit2, normalised flash geometry).
		ambF, flash := float32(0.8), float32(0)
		if hz, ok := head.headShape(x, y); ok {
			zx1, _ := head.headShape(x+1, y)
			zy1, _ := head.headShape(x, y+1)
			nn := head.normalOf(zx1-hz, zy1-hz, hz)
			ambF = float32(math.Max(0.25, math.Min(1, 0.62-0.38*nn[1])))
			flash = float32(math.Max(0, -nn[2]))
		}
		for c := 0; c < 3; c++ {
			s.emit1[c][i] = photo[c] * m * ambF
			s.emit2[c][i] = photo[c] * m * flash
		}
	})
}

// buildRelight: a deepfake's output injected into the pipeline: the face
// re-rendered with flat relighting geometry (one shading value everywhere),
// so its response to the screen colour is uniform and comes L late.
func (s *Scene) buildRelight(g *frameGeom, p Params) {
	s.Virtual = true
	n := len(s.alb[0])
	s.emit1 = [3][]float32{make([]float32, n), make([]float32, n), make([]float32, n)}
	s.emit2 = [3][]float32{make([]float32, n), make([]float32, n), make([]float32, n)}
	s.forEach(func(i int, x, y float64) {
		photo := g.photo(x, y)
		s.fill(g, i, x, y, surface{z: p.BackgroundM, n: [3]float64{0, 0, -1}})
		_, inHead := g.headShape(x, y)
		for c := 0; c < 3; c++ {
			s.emit1[c][i] = photo[c]
			if inHead {
				s.emit2[c][i] = photo[c]
			}
		}
	})
}
