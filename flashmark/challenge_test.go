package flashmark

import (
	"bytes"
	"crypto/rand"
	"math"
	mrand "math/rand/v2"
	"testing"
	"time"
)

func TestDefaultPaletteIsIsoluminantAndNotRed(t *testing.T) {
	pal := append(DefaultPalette(), IdleColor())
	for _, c := range pal {
		l := c.RelativeLuminance()
		if math.Abs(l-PaletteLuminance) > 0.01 {
			t.Errorf("%v: luminance %.4f, want %.2f ± 0.01", c, l, PaletteLuminance)
		}
		if c.SaturatedRed() {
			t.Errorf("%v is a saturated red", c)
		}
	}
	// Distinct hues: every pair differs clearly in chroma.
	for i := range pal {
		for j := i + 1; j < len(pal); j++ {
			a, b := pal[i], pal[j]
			d := math.Abs(float64(a.R)-float64(b.R)) + math.Abs(float64(a.G)-float64(b.G)) + math.Abs(float64(a.B)-float64(b.B))
			if d < 60 {
				t.Errorf("%v and %v are too alike (L1 %f)", a, b, d)
			}
		}
	}
	t.Logf("palette %v idle %v", DefaultPalette(), IdleColor())
}

func TestNewChallengeProperties(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 500; i++ {
		ch, err := NewChallenge(ChallengeConfig{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ch.Steps) != 12 || ch.Total() > 1500*time.Millisecond || !ch.Flash.Safe {
			t.Fatalf("challenge %d: %d steps, %v total, flash %+v", i, len(ch.Steps), ch.Total(), ch.Flash)
		}
		for k, s := range ch.Steps {
			if s.Duration < 100*time.Millisecond || s.Duration > 120*time.Millisecond || s.Duration%(10*time.Millisecond) != 0 {
				t.Fatalf("step %d duration %v", k, s.Duration)
			}
			if k > 0 && s.Color == ch.Steps[k-1].Color {
				t.Fatalf("step %d repeats the previous colour", k)
			}
		}
		if ch.Flash.MaxGeneralFlashes != 0 || ch.Flash.MaxRedFlashes != 0 {
			t.Fatalf("default palette produced flashes: %+v", ch.Flash)
		}
		colours := []RGB{ch.Idle}
		for _, s := range ch.Steps {
			colours = append(colours, s.Color)
		}
		if got := channelMoves(colours, DefaultPalette()); min(got[0], got[1], got[2]) < 4 {
			t.Fatalf("challenge %d changes the channels %v times, want ≥ 4 each: %v", i, got, colours)
		}
		key := string(ch.Nonce[:])
		if seen[key] {
			t.Fatal("nonce repeated")
		}
		seen[key] = true
	}
}

func TestNewChallengeDeterministicForAReader(t *testing.T) {
	seed := [32]byte{7, 1, 200, 33, 90}
	a, err := NewChallenge(ChallengeConfig{}, mrand.NewChaCha8(seed))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewChallenge(ChallengeConfig{}, mrand.NewChaCha8(seed))
	if a.Nonce != b.Nonce || len(a.Steps) != len(b.Steps) {
		t.Fatal("same randomness, different challenges")
	}
	for i := range a.Steps {
		if a.Steps[i] != b.Steps[i] {
			t.Fatal("same randomness, different steps")
		}
	}
	if _, err := NewChallenge(ChallengeConfig{}, bytes.NewReader(nil)); err == nil {
		t.Fatal("exhausted randomness accepted")
	}
}

func TestChallengeConfigValidation(t *testing.T) {
	bad := []ChallengeConfig{
		{Steps: 1},
		{Steps: 20, StepMin: 100 * time.Millisecond},
		{StepMin: 200 * time.Millisecond, StepMax: 100 * time.Millisecond},
		{Palette: []RGB{{1, 2, 3}}},
		{ChannelChanges: 13},                       // 12 boundaries
		{ChannelChanges: 1 << 30},                  // refused before any counting
		{Palette: []RGB{{100, 0, 0}, {200, 0, 0}}}, // never moves green or blue
	}
	for _, c := range bad {
		if _, err := NewChallenge(c, rand.Reader); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestUnsafePaletteIsRefused(t *testing.T) {
	// Black and white alternating every 125 ms: four flashes a second
	// whatever the draw, so no safe challenge exists.
	cfg := ChallengeConfig{Palette: []RGB{{0, 0, 0}, {255, 255, 255}}, StepMin: 125 * time.Millisecond, StepMax: 125 * time.Millisecond}
	if _, err := NewChallenge(cfg, nil); err != ErrUnsafeChallenge {
		t.Fatalf("err = %v, want ErrUnsafeChallenge", err)
	}
}

// channelMoves counts, per linear channel, the changes between consecutive
// colours of at least half the channel's range over the palette.
func channelMoves(colours, palette []RGB) [3]int {
	var lo, hi [3]float64
	for i, p := range palette {
		for k, v := range linRGB(p) {
			if i == 0 || v < lo[k] {
				lo[k] = v
			}
			if i == 0 || v > hi[k] {
				hi[k] = v
			}
		}
	}
	var n [3]int
	for i := 1; i < len(colours); i++ {
		a, b := linRGB(colours[i-1]), linRGB(colours[i])
		for k := range n {
			if math.Abs(b[k]-a[k]) >= (hi[k]-lo[k])/2 {
				n[k]++
			}
		}
	}
	return n
}

// countSequences enumerates every no-repeat colour sequence of the
// default palette and counts those whose every channel changes need times
// (idle before the first step).
func countSequences(steps, need int) float64 {
	pal := DefaultPalette()
	seq := make([]RGB, steps+1)
	seq[0] = IdleColor()
	var count float64
	var walk func(i, last int)
	walk = func(i, last int) {
		if i > steps {
			if m := channelMoves(seq, pal); min(m[0], m[1], m[2]) >= need {
				count++
			}
			return
		}
		for k := range pal {
			if k != last {
				seq[i] = pal[k]
				walk(i+1, k)
			}
		}
	}
	walk(1, -1)
	return count
}

func TestChallengeSpace(t *testing.T) {
	// The dynamic programme against enumeration: 7 steps, every channel
	// changed 3 times (6·5^6 = 93,750 sequences enumerated), and with the
	// rule off.
	small := ChallengeConfig{Steps: 7, ChannelChanges: 3, MaxTotal: 7 * 100 * time.Millisecond}
	want := countSequences(7, 3)
	if got := ChallengeSpace(small); got != want || want == 0 {
		t.Fatalf("7 steps, 3 changes: %g colour sequences, enumeration says %g", got, want)
	}
	small.ChannelChanges = -1
	if got := ChallengeSpace(small); got != 6*math.Pow(5, 6) {
		t.Fatalf("with no channel rule every no-repeat sequence counts: %g", got)
	}
	// Defaults: 12 steps, each channel changed 4 times; 3^12 step-length
	// vectors (100, 110 or 120 ms), all within 1.5 s (12 × 120 ms = 1.44 s).
	colours := ChallengeSpace(ChallengeConfig{MaxTotal: 12 * 100 * time.Millisecond})
	all := 6 * math.Pow(5, 11)
	if colours < 0.3*all || colours > all {
		t.Fatalf("%g of %g colour sequences change every channel 4 times: expected at least 30%%", colours, all)
	}
	space := ChallengeSpace(ChallengeConfig{})
	if want := colours * math.Pow(3, 12); math.Abs(space-want)/want > 1e-9 {
		t.Fatalf("space %g, want %g", space, want)
	}
	// Every step count glintd accepts (2…64) has sequences meeting the
	// default rule, so no configuration is refused for it.
	for steps := 2; steps <= 64; steps++ {
		if err := (ChallengeConfig{Steps: steps, StepMin: 20 * time.Millisecond, StepMax: 20 * time.Millisecond, MaxTotal: 10 * time.Second}).Validate(); err != nil {
			t.Errorf("%d steps: %v", steps, err)
		}
	}
	t.Logf("default: %.4g colour sequences (%.1f%% of all), space %.3g (repeat chance between two challenges %.2g)", colours, 100*colours/all, space, 1/space)
}

func BenchmarkNewChallenge(b *testing.B) {
	for b.Loop() {
		if _, err := NewChallenge(ChallengeConfig{}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
