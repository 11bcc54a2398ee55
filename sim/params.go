package sim

import (
	"fmt"
	"time"
)

// Species names a presentation: bona fide or one presentation-attack
// instrument species (ISO/IEC 30107-3 terms).
type Species string

// The species the simulator renders.
const (
	BonaFide  Species = "bona_fide"
	Print     Species = "print"
	Screen    Species = "screen"
	Replay    Species = "replay"
	Injection Species = "injection"
	Relight   Species = "relight"
	Mask      Species = "mask"
)

// AttackSpecies lists every attack species, in report order.
var AttackSpecies = []Species{Print, Screen, Replay, Injection, Relight, Mask}

// ParseSpecies checks a species name.
func ParseSpecies(s string) (Species, error) {
	for _, k := range AttackSpecies {
		if string(k) == s {
			return k, nil
		}
	}
	if s == string(BonaFide) {
		return BonaFide, nil
	}
	return "", fmt.Errorf("unknown species %q (known: print, screen, replay, injection, relight, mask)", s)
}

// Params are the physical conditions of one attempt, drawn from Conditions
// (or DefaultParams for tests). Lengths in metres, times as durations.
type Params struct {
	Species Species

	// Camera.
	Width, Height int
	FPS           float64
	FrameJitter   time.Duration // standard deviation of the frame period
	HFOVDeg       float64
	Readout       time.Duration // rolling-shutter readout of a whole frame
	Exposure      time.Duration // initial (and, when locked, fixed) exposure
	Gain          float64
	AutoExposure  bool
	AutoWB        bool
	AEDelay       int     // frames between a measurement and its effect
	ReadNoise     float64 // read noise, fraction of full scale at gain 1
	FullWell      float64 // electrons at full scale at gain 1 (shot noise)
	MJPEGQuality  int     // 0: RGB24 frames; 1..100: MJPEG at that quality

	// Scene.
	DistanceM    float64    // face (or attack instrument) to camera/screen
	FaceWidthM   float64    // cheek-to-cheek width of the face box
	BackgroundM  float64    // background plane distance
	FaceOffset   [2]float64 // face centre offset, fraction of frame size
	MotionPx     float64    // head / hand translation amplitude, pixels
	RotationDeg  float64    // head / hand rotation amplitude, degrees
	BlinkPeriod  time.Duration
	MotionPhase  float64 // randomises the motion pattern
	AmbientLux   float64
	AmbientK     float64 // colour temperature, kelvin
	FlickerHz    float64 // 0: no mains flicker
	FlickerDepth float64 // modulation depth of the ambient light, 0..1
	// AmbientDrift is the slow fluctuation of the ambient light (people
	// passing, clouds, a monitor nearby), relative amplitude.
	AmbientDrift float64

	// Kiosk screen.
	ScreenWM, ScreenHM   float64
	ScreenNits           float64 // white luminance
	DisplayLatencyFrames int

	// Attack instrument (used by the species that need it).
	Attack AttackParams
}

// AttackParams are the randomised properties of an attack instrument.
type AttackParams struct {
	TiltDeg     [2]float64    // yaw, pitch of a print or device
	BendRadiusM float64       // print bend (0: flat)
	DeviceNits  float64       // phone/tablet brightness (screen, replay, relight)
	Moire       float64       // moiré depth 0..1 (screen, replay)
	MoireFreq   [2]float64    // cycles per pixel
	ReplayGain  float64       // flash response baked into a replayed video, relative
	RelightLag  time.Duration // relight deepfake latency L
	RelightGain float64       // strength of the deepfake's relighting, relative
	MaskAlbedo  [3]float64    // resin / silicone base colour
	MaskSpec    float64
	EyeHoles    bool
}

// DefaultParams is the typical kiosk of the realism tests: a bona fide face
// at 60 cm from a 10-inch tablet-size screen at 300 nits, 300 lux of 4000 K
// ambient, 640x480 at 30 fps with exposure and white balance locked.
func DefaultParams() Params {
	return Params{
		Species: BonaFide,
		Width:   640, Height: 480, FPS: 30, FrameJitter: 300 * time.Microsecond,
		HFOVDeg: 62, Readout: 25 * time.Millisecond, Exposure: 16 * time.Millisecond, Gain: 1,
		AEDelay: 3, ReadNoise: 0.004, FullWell: 6000,
		DistanceM: 0.6, FaceWidthM: 0.145, BackgroundM: 1.5,
		MotionPx: 1.5, RotationDeg: 1.5, MotionPhase: 0.3,
		AmbientLux: 300, AmbientK: 4000, AmbientDrift: 0.015,
		ScreenWM: 0.217, ScreenHM: 0.136, ScreenNits: 350, DisplayLatencyFrames: 2,
		Attack: AttackParams{
			TiltDeg: [2]float64{8, -5}, BendRadiusM: 0.6, DeviceNits: 300, Moire: 0.05,
			MoireFreq: [2]float64{0.11, 0.07}, ReplayGain: 0.2, RelightLag: 100 * time.Millisecond,
			RelightGain: 0.15, MaskAlbedo: [3]float64{0.55, 0.42, 0.35}, MaskSpec: 0.12,
		},
	}
}

// Validate rejects parameters the renderer cannot use.
func (p Params) Validate() error {
	switch {
	case p.Width < 16 || p.Height < 16 || p.Width > 4096 || p.Height > 4096:
		return fmt.Errorf("sim: frame size %dx%d out of range 16..4096", p.Width, p.Height)
	case p.FPS < 1 || p.FPS > 240:
		return fmt.Errorf("sim: fps %.1f out of range 1..240", p.FPS)
	case p.DistanceM < 0.1 || p.DistanceM > 3:
		return fmt.Errorf("sim: distance %.2f m out of range 0.1..3", p.DistanceM)
	case p.BackgroundM <= p.DistanceM:
		return fmt.Errorf("sim: background %.2f m must be behind the face at %.2f m", p.BackgroundM, p.DistanceM)
	case p.HFOVDeg < 10 || p.HFOVDeg > 150:
		return fmt.Errorf("sim: horizontal field of view %.0f° out of range 10..150", p.HFOVDeg)
	case p.Exposure <= 0 || p.Gain < 1:
		return fmt.Errorf("sim: exposure %v and gain %.2f must be positive (gain ≥ 1)", p.Exposure, p.Gain)
	case p.FullWell <= 0 || p.ReadNoise < 0:
		return fmt.Errorf("sim: full well %.0f and read noise %.4f must be positive", p.FullWell, p.ReadNoise)
	case p.MJPEGQuality < 0 || p.MJPEGQuality > 100:
		return fmt.Errorf("sim: MJPEG quality %d out of range 0..100", p.MJPEGQuality)
	case p.DisplayLatencyFrames < 1 || p.DisplayLatencyFrames > 10:
		return fmt.Errorf("sim: display latency %d frames out of range 1..10", p.DisplayLatencyFrames)
	}
	if _, err := ParseSpecies(string(p.Species)); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}
