package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/glintdev/glint/flashmark"
)

// Attempt is one closed-loop presentation: a scene of the chosen species, the
// kiosk screen and the camera, on one clock. Liveness code drives
// Attempt.Display (flashmark.Display) and reads Attempt.Camera
// (capture.Source + capture.Controls).
type Attempt struct {
	Params  Params
	Face    *Face
	Scene   *Scene
	Display *Display
	Camera  *Camera
	Clock   Clock
}

// NewAttempt wires an attempt. The display starts on flashmark.IdleColor.
// seed fixes every random detail (noise, jitter, moiré, the earlier
// challenge of a replay).
func NewAttempt(face *Face, p Params, clock Clock, seed uint64) (*Attempt, error) {
	if face == nil {
		return nil, fmt.Errorf("sim attempt: no face")
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	scene, err := NewScene(face, p, rng)
	if err != nil {
		return nil, err
	}
	disp, err := NewDisplay(DisplayConfig{
		LatencyFrames: p.DisplayLatencyFrames,
		Phase:         time.Duration(rng.Float64() * float64(time.Second/60)),
	}, clock, flashmark.IdleColor())
	if err != nil {
		return nil, err
	}
	world := World{Display: disp}
	switch p.Species {
	case Screen:
		world.Emit1 = grey(math.Pi * p.Attack.DeviceNits)
	case Replay:
		world.Emit1 = grey(math.Pi * p.Attack.DeviceNits)
		old, err := earlierChallenge(rng, clock.Now())
		if err != nil {
			return nil, err
		}
		gain := math.Pi * p.Attack.DeviceNits * p.Attack.ReplayGain
		world.Emit2 = func(t0, t1 time.Duration) [3]float64 {
			e := meanEmission(old, time.Second/60, t0, t1)
			return [3]float64{e[0] * gain, e[1] * gain, e[2] * gain}
		}
	case Relight:
		// The deepfake's video is exposed like a face under the ambient
		// light (and its colour); its relighting adds the colour it saw L
		// ago, uniformly.
		base := 0.8 * p.AmbientLux
		amb := kelvinRGB(p.AmbientK)
		world.Emit1 = [3]float64{base * amb[0], base * amb[1], base * amb[2]}
		gain := base * p.Attack.RelightGain
		lag := p.Attack.RelightLag
		world.Emit2 = func(t0, t1 time.Duration) [3]float64 {
			e := disp.MeanEmission(t0-lag, t1-lag)
			return [3]float64{e[0] * gain, e[1] * gain, e[2] * gain}
		}
	}
	cam, err := NewCamera(p, scene, world, clock, rng.Uint64())
	if err != nil {
		return nil, err
	}
	return &Attempt{Params: p, Face: face, Scene: scene, Display: disp, Camera: cam, Clock: clock}, nil
}

// earlierChallenge is the colour timeline a replayed video carries: the
// flashes of genuine sessions recorded at a glint kiosk, so challenges from
// the product's own generator (default configuration), played back to back
// as a loop of recordings, the first starting a random time before now.
// Unrelated to the current challenge, but drawn like it: same palette, same
// step lengths, the same rules, which is the replay that comes closest to it
// by chance.
func earlierChallenge(rng *rand.Rand, now time.Duration) ([]segment, error) {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	src := rand.NewChaCha8(seed)
	idle := flashmark.IdleColor()
	segs := []segment{{at: -1 << 62, rgb: idle, lin: linearOf(idle)}}
	t := now - time.Duration(rng.Float64()*float64(time.Second))
	// Five recordings cover the warm-up, the face exposure and the
	// challenge of an attempt (about six seconds).
	for n := 0; n < 5; n++ {
		ch, err := flashmark.NewChallenge(flashmark.ChallengeConfig{}, src)
		if err != nil {
			return nil, fmt.Errorf("replay's recorded challenge: %w", err)
		}
		for _, st := range ch.Steps {
			segs = append(segs, segment{at: t, rgb: st.Color, lin: linearOf(st.Color)})
			t += st.Duration
		}
	}
	return segs, nil
}

func grey(v float64) [3]float64 { return [3]float64{v, v, v} }
