package flashmark

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"time"
)

// The challenge: an unpredictable sequence of screen colours with
// unpredictable step lengths, drawn from crypto/rand, that the face must
// reflect in time. Colours change hue at near-constant luminance, so the
// sequence never contains a general flash in WCAG's sense, and no palette
// colour is a saturated red, so it contains no red flash either; every
// generated challenge is still checked (CheckFlashes) before it is used.

// PaletteLuminance is the relative luminance every default palette colour
// and the idle colour share.
const PaletteLuminance = 0.22

// DefaultPalette returns six colours around the hue circle (red, yellow,
// green, cyan, blue, magenta) at relative luminance PaletteLuminance. Skin
// reflects these hues very differently (strong in red, weak in blue), which is
// what the chroma-response analysis measures; equal luminance keeps the
// screen from flashing. Red is desaturated just enough not to count as a
// saturated red.
func DefaultPalette() []RGB {
	hues := []float64{0, 60, 120, 180, 240, 300}
	out := make([]RGB, 0, len(hues))
	for _, h := range hues {
		out = append(out, isoLuminant(h, PaletteLuminance))
	}
	return out
}

// IdleColor is the neutral grey the screen shows before and after a
// challenge, at the palette's luminance.
func IdleColor() RGB { return isoLuminant(-1, PaletteLuminance) }

// isoLuminant returns the colour of the given hue (degrees; negative for
// grey) at relative luminance target: the fully saturated hue in linear light,
// mixed with white until it is no saturated red and bright enough, then
// scaled to the target.
func isoLuminant(hue, target float64) RGB {
	r, g, b := 1.0, 1.0, 1.0
	if hue >= 0 {
		r, g, b = hueLinear(hue)
	}
	mix := func(t float64) {
		r, g, b = r+t*(1-r), g+t*(1-g), b+t*(1-b)
	}
	if sum := r + g + b; r/sum > 0.75 {
		// Mix in white until R/(R+G+B) = 0.75: (r+t(1-r)) = 0.75 (sum+t(3-sum)).
		t := (r - 0.75*sum) / (0.75*(3-sum) - (1 - r))
		mix(t)
	}
	l := 0.2126*r + 0.7152*g + 0.0722*b
	if l < target {
		mix((target - l) / (1 - l))
		l = 0.2126*r + 0.7152*g + 0.0722*b
	}
	k := target / l
	return RGB{encode(r * k), encode(g * k), encode(b * k)}
}

// hueLinear is the fully saturated sRGB colour of a hue, in linear light.
func hueLinear(h float64) (r, g, b float64) {
	h = math.Mod(h, 360) / 60
	x := 1 - math.Abs(math.Mod(h, 2)-1)
	switch int(h) {
	case 0:
		r, g, b = 1, x, 0
	case 1:
		r, g, b = x, 1, 0
	case 2:
		r, g, b = 0, 1, x
	case 3:
		r, g, b = 0, x, 1
	case 4:
		r, g, b = x, 0, 1
	default:
		r, g, b = 1, 0, x
	}
	return linear(encode(r)), linear(encode(g)), linear(encode(b))
}

// encode converts linear light to an 8-bit sRGB value.
func encode(v float64) uint8 {
	v = math.Max(0, math.Min(1, v))
	var c float64
	if v <= 0.0031308 {
		c = v * 12.92
	} else {
		c = 1.055*math.Pow(v, 1/2.4) - 0.055
	}
	return uint8(math.Round(c * 255))
}

// ChallengeConfig shapes the challenges a Generator draws.
type ChallengeConfig struct {
	// Steps is the number of colour steps; default 12.
	Steps int
	// StepMin and StepMax bound one step's length; each step's length is
	// drawn uniformly in StepQuantum increments. Defaults 100 ms and
	// 120 ms: at least 3 frames of a 30 fps camera per step, and twelve
	// steps in 1.44 s at most. Every boundary is a transition at a time
	// the attacker cannot know; with eight steps of 120–180 ms a
	// recording of an earlier session followed the live sequence closely
	// enough, by chance, to score above zero in about 1 replay of 240 on
	// the simulator, with twelve in none of 1,200 (docs/liveness.md).
	StepMin, StepMax time.Duration
	// StepQuantum is the step-length resolution; default 10 ms.
	StepQuantum time.Duration
	// MaxTotal bounds the whole flash; default 1.5 s.
	MaxTotal time.Duration
	// ChannelChanges is how many of the step boundaries (idle to the
	// first step included) must change each colour channel's emission by
	// at least half its range over the palette; default Steps/3, negative
	// for none. A face's response is the screen's light over the room's,
	// channel by channel, so under warm light it is mostly blue: a
	// sequence whose blue changed once leaves the analysis one transition
	// to check, which an unrelated recorded sequence matches by chance
	// (docs/flashmark.md).
	ChannelChanges int
	// Palette to draw from; default DefaultPalette(). Idle is shown before
	// and after; default IdleColor().
	Palette []RGB
	Idle    *RGB
}

// DefaultSteps is ChallengeConfig.Steps when it is 0.
const DefaultSteps = 12

// ErrUnsafeChallenge: no photosensitive-safe challenge could be drawn from
// the configured palette.
var ErrUnsafeChallenge = errors.New("no photosensitive-safe challenge with this palette")

func (c ChallengeConfig) withDefaults() ChallengeConfig {
	if c.Steps == 0 {
		c.Steps = DefaultSteps
	}
	if c.StepMin == 0 {
		c.StepMin = 100 * time.Millisecond
	}
	if c.StepMax == 0 {
		c.StepMax = 120 * time.Millisecond
	}
	if c.StepQuantum == 0 {
		c.StepQuantum = 10 * time.Millisecond
	}
	if c.MaxTotal == 0 {
		c.MaxTotal = 1500 * time.Millisecond
	}
	if len(c.Palette) == 0 {
		c.Palette = DefaultPalette()
	}
	if c.ChannelChanges == 0 {
		c.ChannelChanges = c.Steps / 3
	}
	if c.Idle == nil {
		idle := IdleColor()
		c.Idle = &idle
	}
	return c
}

// Validate reports a configuration that cannot produce challenges.
func (c ChallengeConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Steps < 2 || c.Steps > 64:
		return fmt.Errorf("challenge: steps %d outside 2..64", c.Steps)
	case c.StepQuantum <= 0 || c.StepMin <= 0 || c.StepMax < c.StepMin:
		return fmt.Errorf("challenge: step lengths %v..%v (quantum %v) invalid", c.StepMin, c.StepMax, c.StepQuantum)
	case time.Duration(c.Steps)*c.StepMin > c.MaxTotal:
		return fmt.Errorf("challenge: %d steps of at least %v exceed the maximum total %v", c.Steps, c.StepMin, c.MaxTotal)
	case len(c.Palette) < 2:
		return fmt.Errorf("challenge: palette needs at least 2 colours, has %d", len(c.Palette))
	case c.ChannelChanges > c.Steps:
		return fmt.Errorf("challenge: %d steps have %d boundaries, fewer than the %d channel changes asked for", c.Steps, c.Steps, c.ChannelChanges)
	case colourSequences(c) == 0:
		return fmt.Errorf("challenge: no sequence of %d steps from this palette changes every colour channel at %d boundaries", c.Steps, c.ChannelChanges)
	}
	return nil
}

// channelSwings tells, for every pair of colours (index 0 the idle colour,
// i+1 palette colour i), which colour channels the change from the first to
// the second moves by at least half the channel's range over the palette.
func channelSwings(c ChallengeConfig) [][][3]bool {
	colours := append([]RGB{*c.Idle}, c.Palette...)
	lo, hi := [3]float64{1, 1, 1}, [3]float64{}
	for _, p := range c.Palette {
		l := linRGB(p)
		for k := range l {
			lo[k], hi[k] = math.Min(lo[k], l[k]), math.Max(hi[k], l[k])
		}
	}
	out := make([][][3]bool, len(colours))
	for i, a := range colours {
		out[i] = make([][3]bool, len(colours))
		la := linRGB(a)
		for j, b := range colours {
			lb := linRGB(b)
			for k := range la {
				out[i][j][k] = hi[k] > lo[k] && math.Abs(lb[k]-la[k]) >= (hi[k]-lo[k])/2
			}
		}
	}
	return out
}

// colourSequences counts the colour sequences (no colour twice in a row)
// that change every channel at cfg.ChannelChanges boundaries or more, by
// dynamic programming over the last colour and each channel's count so far
// (capped at the requirement). cfg has its defaults.
func colourSequences(cfg ChallengeConfig) float64 {
	need := max(cfg.ChannelChanges, 0)
	if need > cfg.Steps {
		return 0 // and the table below would be (need+1)³ large
	}
	swings := channelSwings(cfg)
	n := len(cfg.Palette)
	side := need + 1
	key := func(last int, cnt [3]int) int { return ((last*side+cnt[0])*side+cnt[1])*side + cnt[2] }
	ways := make([]float64, (n+1)*side*side*side)
	ways[key(0, [3]int{})] = 1 // idle shown before the first step
	for s := 0; s < cfg.Steps; s++ {
		next := make([]float64, len(ways))
		for last := 0; last <= n; last++ {
			for c0 := 0; c0 < side; c0++ {
				for c1 := 0; c1 < side; c1++ {
					for c2 := 0; c2 < side; c2++ {
						w := ways[key(last, [3]int{c0, c1, c2})]
						if w == 0 {
							continue
						}
						for k := 1; k <= n; k++ {
							if k == last {
								continue
							}
							cnt := [3]int{c0, c1, c2}
							for ch := range cnt {
								if swings[last][k][ch] {
									cnt[ch] = min(cnt[ch]+1, need)
								}
							}
							next[key(k, cnt)] += w
						}
					}
				}
			}
		}
		ways = next
	}
	var total float64
	for last := 1; last <= n; last++ {
		total += ways[key(last, [3]int{need, need, need})]
	}
	return total
}

// Challenge is one drawn sequence.
type Challenge struct {
	// Nonce identifies the challenge in the result record.
	Nonce [16]byte
	// Idle is shown before and after the steps.
	Idle  RGB
	Steps []Step
	// Flash is the photosensitivity check's verdict on Idle+Steps+Idle.
	Flash FlashReport
}

// Total is the challenge's flash time.
func (c *Challenge) Total() time.Duration {
	var t time.Duration
	for _, s := range c.Steps {
		t += s.Duration
	}
	return t
}

// maxDrawAttempts bounds rejection sampling (over-long or unsafe draws).
const maxDrawAttempts = 1000

// NewChallenge draws a challenge from random (crypto/rand.Reader when nil).
// It never returns a sequence that fails CheckFlashes.
func NewChallenge(cfg ChallengeConfig, random io.Reader) (*Challenge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if random == nil {
		random = rand.Reader
	}
	quanta := int((cfg.StepMax-cfg.StepMin)/cfg.StepQuantum) + 1
	swings := channelSwings(cfg)
	for attempt := 0; attempt < maxDrawAttempts; attempt++ {
		ch := &Challenge{Idle: *cfg.Idle, Steps: make([]Step, cfg.Steps)}
		if _, err := io.ReadFull(random, ch.Nonce[:]); err != nil {
			return nil, fmt.Errorf("challenge nonce: %w", err)
		}
		prev := -1
		var total time.Duration
		var changes [3]int
		for i := range ch.Steps {
			n := len(cfg.Palette)
			if prev >= 0 {
				n-- // never the same colour twice in a row
			}
			k, err := randInt(random, n)
			if err != nil {
				return nil, err
			}
			if prev >= 0 && k >= prev {
				k++
			}
			q, err := randInt(random, quanta)
			if err != nil {
				return nil, err
			}
			d := cfg.StepMin + time.Duration(q)*cfg.StepQuantum
			ch.Steps[i] = Step{Color: cfg.Palette[k], Duration: d}
			total += d
			for c, moved := range swings[prev+1][k+1] {
				if moved {
					changes[c]++
				}
			}
			prev = k
		}
		if total > cfg.MaxTotal || min(changes[0], changes[1], changes[2]) < cfg.ChannelChanges {
			continue
		}
		ch.Flash = CheckFlashes(ch.Idle, ch.Steps)
		if !ch.Flash.Safe {
			continue
		}
		return ch, nil
	}
	return nil, ErrUnsafeChallenge
}

func randInt(r io.Reader, n int) (int, error) {
	v, err := rand.Int(r, big.NewInt(int64(n)))
	if err != nil {
		return 0, fmt.Errorf("challenge randomness: %w", err)
	}
	return int(v.Int64()), nil
}

// ChallengeSpace counts the distinct colour-and-timing sequences the
// configuration can draw (colours that change every channel often enough,
// lengths within MaxTotal), as a float64 because it is large. Draws are
// uniform over them (rejection sampling keeps uniformity), so the chance
// that two given challenges are equal is 1/space; among n challenges, about
// n²/(2·space).
func ChallengeSpace(cfg ChallengeConfig) float64 {
	cfg = cfg.withDefaults()
	colours := colourSequences(cfg)
	// Count step-length vectors whose sum stays within MaxTotal, by
	// dynamic programming over the total in quanta above the minimum.
	quanta := int((cfg.StepMax-cfg.StepMin)/cfg.StepQuantum) + 1
	budget := int((cfg.MaxTotal - time.Duration(cfg.Steps)*cfg.StepMin) / cfg.StepQuantum)
	if budget < 0 {
		return 0
	}
	ways := make([]float64, budget+1)
	ways[0] = 1
	for s := 0; s < cfg.Steps; s++ {
		next := make([]float64, budget+1)
		for used, w := range ways {
			if w == 0 {
				continue
			}
			for q := 0; q < quanta && used+q <= budget; q++ {
				next[used+q] += w
			}
		}
		ways = next
	}
	timings := 0.0
	for _, w := range ways {
		timings += w
	}
	return colours * timings
}
