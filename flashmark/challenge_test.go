package flashmark

import (
	"bytes"
	"crypto/rand"
	"math"
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
		if len(ch.Steps) != 8 || ch.Total() > 1500*time.Millisecond || !ch.Flash.Safe {
			t.Fatalf("challenge %d: %d steps, %v total, flash %+v", i, len(ch.Steps), ch.Total(), ch.Flash)
		}
		for k, s := range ch.Steps {
			if s.Duration < 120*time.Millisecond || s.Duration > 180*time.Millisecond || s.Duration%(10*time.Millisecond) != 0 {
				t.Fatalf("step %d duration %v", k, s.Duration)
			}
			if k > 0 && s.Color == ch.Steps[k-1].Color {
				t.Fatalf("step %d repeats the previous colour", k)
			}
		}
		if ch.Flash.MaxGeneralFlashes != 0 || ch.Flash.MaxRedFlashes != 0 {
			t.Fatalf("default palette produced flashes: %+v", ch.Flash)
		}
		key := string(ch.Nonce[:])
		if seen[key] {
			t.Fatal("nonce repeated")
		}
		seen[key] = true
	}
}

func TestNewChallengeDeterministicForAReader(t *testing.T) {
	seed := bytes.Repeat([]byte{7, 1, 200, 33, 90}, 2000)
	a, err := NewChallenge(ChallengeConfig{}, bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewChallenge(ChallengeConfig{}, bytes.NewReader(seed))
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

func TestChallengeSpace(t *testing.T) {
	space := ChallengeSpace(ChallengeConfig{})
	// 6·5^7 colour sequences = 468,750; 7^8 step-length vectors ≈ 5.76e6,
	// all within 1.5 s (8 × 180 ms = 1.44 s).
	want := 6 * math.Pow(5, 7) * math.Pow(7, 8)
	if math.Abs(space-want)/want > 1e-9 {
		t.Fatalf("space %g, want %g", space, want)
	}
	tight := ChallengeSpace(ChallengeConfig{MaxTotal: 8 * 120 * time.Millisecond})
	if tight != 6*math.Pow(5, 7) {
		t.Fatalf("with no timing freedom the space is the colour count, got %g", tight)
	}
	t.Logf("default challenge space %.3g (repeat chance between two challenges ≤ %.2g)", space, 1/space)
}

func BenchmarkNewChallenge(b *testing.B) {
	for b.Loop() {
		if _, err := NewChallenge(ChallengeConfig{}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
