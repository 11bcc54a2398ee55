package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Range is a closed interval a value is drawn from uniformly. In YAML it
// is [min, max] or a single number (a fixed value).
type Range [2]float64

// UnmarshalYAML accepts [min, max] or a scalar.
func (r *Range) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var v float64
		if err := n.Decode(&v); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		*r = Range{v, v}
		return nil
	case yaml.SequenceNode:
		var v []float64
		if err := n.Decode(&v); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		if len(v) != 2 {
			return fmt.Errorf("line %d: a range is [min, max], got %d values", n.Line, len(v))
		}
		*r = Range{v[0], v[1]}
		return nil
	}
	return fmt.Errorf("line %d: a range is [min, max] or a number", n.Line)
}

func (r Range) draw(rng *rand.Rand) float64 { return r[0] + (r[1]-r[0])*rng.Float64() }

func (r Range) drawInt(rng *rand.Rand) int {
	lo, hi := int(math.Round(r[0])), int(math.Round(r[1]))
	return lo + rng.IntN(hi-lo+1)
}

// Conditions are the randomisation ranges of an evaluation: each attempt
// draws its Params from them. docs/eval-conditions.md documents every key
// with its default; unknown keys are rejected.
type Conditions struct {
	Width  int     `yaml:"width" json:"width"`
	Height int     `yaml:"height" json:"height"`
	FPS    float64 `yaml:"fps" json:"fps"`

	AmbientLux         Range   `yaml:"ambient_lux" json:"ambient_lux"`
	AmbientKelvin      Range   `yaml:"ambient_kelvin" json:"ambient_kelvin"`
	AmbientDrift       Range   `yaml:"ambient_drift" json:"ambient_drift"`
	FlickerProbability float64 `yaml:"flicker_probability" json:"flicker_probability"`
	FlickerDepth       Range   `yaml:"flicker_depth" json:"flicker_depth"`

	DistanceM   Range   `yaml:"distance_m" json:"distance_m"`
	FaceWidthM  Range   `yaml:"face_width_m" json:"face_width_m"`
	BackgroundM Range   `yaml:"background_m" json:"background_m"`
	FaceOffset  Range   `yaml:"face_offset" json:"face_offset"`
	MotionPx    Range   `yaml:"motion_px" json:"motion_px"`
	RotationDeg Range   `yaml:"rotation_deg" json:"rotation_deg"`
	BlinkProb   float64 `yaml:"blink_probability" json:"blink_probability"`

	ScreenDiagonalIn     Range `yaml:"screen_diagonal_in" json:"screen_diagonal_in"`
	ScreenNits           Range `yaml:"screen_nits" json:"screen_nits"`
	DisplayLatencyFrames Range `yaml:"display_latency_frames" json:"display_latency_frames"`

	ExposureMs    Range `yaml:"exposure_ms" json:"exposure_ms"`
	ReadNoise     Range `yaml:"read_noise" json:"read_noise"`
	FullWell      Range `yaml:"full_well_e" json:"full_well_e"`
	FrameJitterMs Range `yaml:"frame_jitter_ms" json:"frame_jitter_ms"`
	ReadoutMs     Range `yaml:"readout_ms" json:"readout_ms"`
	MJPEGQuality  int   `yaml:"mjpeg_quality" json:"mjpeg_quality"`
	AutoExposure  bool  `yaml:"auto_exposure" json:"auto_exposure"`

	PrintTiltDeg     Range   `yaml:"print_tilt_deg" json:"print_tilt_deg"`
	PrintBendRadiusM Range   `yaml:"print_bend_radius_m" json:"print_bend_radius_m"`
	DeviceNits       Range   `yaml:"device_nits" json:"device_nits"`
	MoireProbability float64 `yaml:"moire_probability" json:"moire_probability"`
	MoireDepth       Range   `yaml:"moire_depth" json:"moire_depth"`
	ReplayGain       Range   `yaml:"replay_flash_gain" json:"replay_flash_gain"`
	RelightLatencyMs Range   `yaml:"relight_latency_ms" json:"relight_latency_ms"`
	RelightGain      Range   `yaml:"relight_gain" json:"relight_gain"`
	MaskSpecular     Range   `yaml:"mask_specular" json:"mask_specular"`
	MaskEyeHolesProb float64 `yaml:"mask_eye_holes_probability" json:"mask_eye_holes_probability"`
}

// DefaultConditions are the ranges `glintctl eval` uses without
// --conditions: kiosk-like rooms from dim to bright, faces at 30–65 cm
// (the session's TOO_FAR guidance sends an adult with 63 mm between the
// eyes closer from 56 cm, one with 72 mm from 64 cm: docs/session.md).
func DefaultConditions() Conditions {
	return Conditions{
		Width: 640, Height: 480, FPS: 30,
		AmbientLux: Range{50, 2000}, AmbientKelvin: Range{2700, 6500}, AmbientDrift: Range{0.005, 0.025},
		FlickerProbability: 0.3, FlickerDepth: Range{0.02, 0.15},
		DistanceM: Range{0.3, 0.65}, FaceWidthM: Range{0.13, 0.16}, BackgroundM: Range{0.5, 3},
		FaceOffset: Range{-0.08, 0.08}, MotionPx: Range{0, 3}, RotationDeg: Range{0, 3}, BlinkProb: 0.3,
		ScreenDiagonalIn: Range{7, 13}, ScreenNits: Range{200, 450}, DisplayLatencyFrames: Range{1, 3},
		ExposureMs: Range{8, 30}, ReadNoise: Range{0.002, 0.006}, FullWell: Range{3000, 10000},
		FrameJitterMs: Range{0, 1}, ReadoutMs: Range{15, 30}, AutoExposure: true,
		PrintTiltDeg: Range{-15, 15}, PrintBendRadiusM: Range{0.3, 2}, DeviceNits: Range{150, 500},
		MoireProbability: 0.5, MoireDepth: Range{0.02, 0.15}, ReplayGain: Range{0.05, 0.3},
		RelightLatencyMs: Range{100, 100}, RelightGain: Range{0.03, 0.2},
		MaskSpecular: Range{0.06, 0.2}, MaskEyeHolesProb: 0.5,
	}
}

// LoadConditions reads a YAML conditions file over the defaults: keys it
// sets replace the default ranges; unknown keys and bad ranges are errors.
func LoadConditions(path string) (Conditions, error) {
	c := DefaultConditions()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("conditions: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("conditions %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("conditions %s: %w", path, err)
	}
	return c, nil
}

// Validate checks every range against physical limits.
func (c Conditions) Validate() error {
	type lim struct {
		key    string
		r      Range
		lo, hi float64
	}
	for _, l := range []lim{
		{"ambient_lux", c.AmbientLux, 0, 100000},
		{"ambient_kelvin", c.AmbientKelvin, 1500, 12000},
		{"ambient_drift", c.AmbientDrift, 0, 0.5},
		{"flicker_depth", c.FlickerDepth, 0, 1},
		{"distance_m", c.DistanceM, 0.15, 2},
		{"face_width_m", c.FaceWidthM, 0.08, 0.25},
		{"background_m", c.BackgroundM, 0.3, 20},
		{"face_offset", c.FaceOffset, -0.3, 0.3},
		{"motion_px", c.MotionPx, 0, 40},
		{"rotation_deg", c.RotationDeg, 0, 20},
		{"screen_diagonal_in", c.ScreenDiagonalIn, 3, 40},
		{"screen_nits", c.ScreenNits, 10, 2000},
		{"display_latency_frames", c.DisplayLatencyFrames, 1, 10},
		{"exposure_ms", c.ExposureMs, 0.1, 1000},
		{"read_noise", c.ReadNoise, 0, 0.1},
		{"full_well_e", c.FullWell, 100, 1e6},
		{"frame_jitter_ms", c.FrameJitterMs, 0, 20},
		{"readout_ms", c.ReadoutMs, 0, 100},
		{"print_tilt_deg", c.PrintTiltDeg, -60, 60},
		{"print_bend_radius_m", c.PrintBendRadiusM, 0, 100},
		{"device_nits", c.DeviceNits, 10, 2000},
		{"moire_depth", c.MoireDepth, 0, 1},
		{"replay_flash_gain", c.ReplayGain, 0, 5},
		{"relight_latency_ms", c.RelightLatencyMs, 0, 2000},
		{"relight_gain", c.RelightGain, 0, 5},
		{"mask_specular", c.MaskSpecular, 0, 1},
	} {
		if l.r[0] > l.r[1] {
			return fmt.Errorf("%s: min %g > max %g", l.key, l.r[0], l.r[1])
		}
		if l.r[0] < l.lo || l.r[1] > l.hi {
			return fmt.Errorf("%s: [%g, %g] outside %g..%g", l.key, l.r[0], l.r[1], l.lo, l.hi)
		}
	}
	for _, p := range []struct {
		key string
		v   float64
	}{{"flicker_probability", c.FlickerProbability}, {"blink_probability", c.BlinkProb}, {"moire_probability", c.MoireProbability}, {"mask_eye_holes_probability", c.MaskEyeHolesProb}} {
		if p.v < 0 || p.v > 1 {
			return fmt.Errorf("%s: %g outside 0..1", p.key, p.v)
		}
	}
	p := DefaultParams()
	p.Width, p.Height, p.FPS, p.MJPEGQuality = c.Width, c.Height, c.FPS, c.MJPEGQuality
	if err := p.Validate(); err != nil {
		return err
	}
	return nil
}

// Draw samples one attempt's parameters for a species.
func (c Conditions) Draw(rng *rand.Rand, sp Species) Params {
	p := DefaultParams()
	p.Species = sp
	p.Width, p.Height, p.FPS, p.MJPEGQuality = c.Width, c.Height, c.FPS, c.MJPEGQuality
	ms := func(r Range) time.Duration { return time.Duration(r.draw(rng) * float64(time.Millisecond)) }
	p.AmbientLux, p.AmbientK, p.AmbientDrift = c.AmbientLux.draw(rng), c.AmbientKelvin.draw(rng), c.AmbientDrift.draw(rng)
	p.FlickerHz, p.FlickerDepth = 0, 0
	if rng.Float64() < c.FlickerProbability {
		p.FlickerHz = []float64{100, 120}[rng.IntN(2)]
		p.FlickerDepth = c.FlickerDepth.draw(rng)
	}
	p.DistanceM, p.FaceWidthM = c.DistanceM.draw(rng), c.FaceWidthM.draw(rng)
	p.BackgroundM = math.Max(c.BackgroundM.draw(rng), p.DistanceM+0.2)
	p.FaceOffset = [2]float64{c.FaceOffset.draw(rng), c.FaceOffset.draw(rng)}
	p.MotionPx, p.RotationDeg, p.MotionPhase = c.MotionPx.draw(rng), c.RotationDeg.draw(rng), rng.Float64()
	p.BlinkPeriod = 0
	if rng.Float64() < c.BlinkProb {
		p.BlinkPeriod = time.Duration((2 + 4*rng.Float64()) * float64(time.Second))
	}
	diag := c.ScreenDiagonalIn.draw(rng) * 0.0254 // 16:10 panel
	p.ScreenWM, p.ScreenHM = diag*16/math.Hypot(16, 10), diag*10/math.Hypot(16, 10)
	p.ScreenNits = c.ScreenNits.draw(rng)
	p.DisplayLatencyFrames = c.DisplayLatencyFrames.drawInt(rng)
	p.Exposure = min(ms(c.ExposureMs), time.Duration(float64(time.Second)/p.FPS)-time.Millisecond)
	p.AutoExposure, p.AutoWB = c.AutoExposure, c.AutoExposure
	p.ReadNoise, p.FullWell = c.ReadNoise.draw(rng), c.FullWell.draw(rng)
	p.FrameJitter, p.Readout = ms(c.FrameJitterMs), ms(c.ReadoutMs)
	a := &p.Attack
	a.TiltDeg = [2]float64{c.PrintTiltDeg.draw(rng), c.PrintTiltDeg.draw(rng)}
	a.BendRadiusM = c.PrintBendRadiusM.draw(rng)
	a.DeviceNits = c.DeviceNits.draw(rng)
	a.Moire = 0
	if rng.Float64() < c.MoireProbability {
		a.Moire = c.MoireDepth.draw(rng)
	}
	a.MoireFreq = [2]float64{0.03 + 0.3*rng.Float64(), 0.03 + 0.3*rng.Float64()}
	a.ReplayGain = c.ReplayGain.draw(rng)
	a.RelightLag = ms(c.RelightLatencyMs)
	a.RelightGain = c.RelightGain.draw(rng)
	a.MaskSpec = c.MaskSpecular.draw(rng)
	a.EyeHoles = rng.Float64() < c.MaskEyeHolesProb
	materials := [][3]float64{{0.55, 0.42, 0.35}, {0.62, 0.47, 0.4}, {0.45, 0.33, 0.28}}
	a.MaskAlbedo = materials[rng.IntN(len(materials))]
	return p
}
