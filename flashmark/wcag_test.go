package flashmark

import (
	"testing"
	"time"
)

func repeatSteps(colours []RGB, each time.Duration, total time.Duration) []Step {
	var out []Step
	for t, i := time.Duration(0), 0; t < total; t, i = t+each, i+1 {
		out = append(out, Step{Color: colours[i%len(colours)], Duration: each})
	}
	return out
}

func TestRelativeLuminance(t *testing.T) {
	cases := []struct {
		c    RGB
		want float64
	}{
		{RGB{0, 0, 0}, 0},
		{RGB{255, 255, 255}, 1},
		{RGB{255, 0, 0}, 0.2126},
		{RGB{0, 255, 0}, 0.7152},
		{RGB{0, 0, 255}, 0.0722},
		{RGB{128, 128, 128}, 0.2159},
	}
	for _, c := range cases {
		if got := c.c.RelativeLuminance(); got < c.want-0.0005 || got > c.want+0.0005 {
			t.Errorf("%v: %.4f want %.4f", c.c, got, c.want)
		}
	}
	if !(RGB{255, 0, 0}).SaturatedRed() || (RGB{255, 128, 128}).SaturatedRed() || (RGB{0, 0, 0}).SaturatedRed() {
		t.Error("saturated red classification")
	}
}

func TestCheckFlashesKnownSequences(t *testing.T) {
	black, white, grey := RGB{0, 0, 0}, RGB{255, 255, 255}, RGB{128, 128, 128}
	red := RGB{255, 0, 0}
	// Within 0.1 of red's luminance, so only the red measure changes.
	darkRed := RGB{200, 0, 0}
	cases := []struct {
		name       string
		idle       RGB
		steps      []Step
		safe       bool
		minGeneral float64
		minRed     float64
	}{
		{"black/white 5 Hz", black, repeatSteps([]RGB{white, black}, 100*time.Millisecond, 2*time.Second), false, 4, 0},
		{"black/white 2 Hz", black, repeatSteps([]RGB{white, black}, 250*time.Millisecond, 2*time.Second), true, 2, 0},
		{"just above: 4 flashes in a second", black, repeatSteps([]RGB{white, black}, 125*time.Millisecond, time.Second), false, 4, 0},
		{"exactly 3 flashes", black, repeatSteps([]RGB{white, black}, 166*time.Millisecond, 6*166*time.Millisecond), true, 3, 0},
		// Bright flicker between two light greys: the darker side is above
		// 0.8, so no general flash by definition.
		{"bright flicker above 0.8", RGB{240, 240, 240}, repeatSteps([]RGB{{255, 255, 255}, {240, 240, 240}}, 50*time.Millisecond, time.Second), true, 0, 0},
		// Small luminance steps (< 0.1) are no transitions.
		{"small steps", grey, repeatSteps([]RGB{{140, 140, 140}, {128, 128, 128}}, 50*time.Millisecond, time.Second), true, 0, 0},
		// A ramp cut into small steps still accumulates into transitions.
		{"sliced ramp", black, repeatSteps([]RGB{{60, 60, 60}, {120, 120, 120}, {180, 180, 180}, {120, 120, 120}, {60, 60, 60}, {0, 0, 0}}, 20*time.Millisecond, time.Second), false, 4, 0},
		// Red against dark red: luminance change < 0.1 until the bright
		// red, but the red measure changes a lot: red flashes.
		{"red/dark red 5 Hz", darkRed, repeatSteps([]RGB{red, darkRed}, 100*time.Millisecond, time.Second), false, 0, 4},
		{"red/black 2 Hz", black, repeatSteps([]RGB{red, black}, 250*time.Millisecond, 2*time.Second), true, 2, 2},
		{"isoluminant hues 8 Hz", IdleColor(), repeatSteps(DefaultPalette(), 125*time.Millisecond, 2*time.Second), true, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := CheckFlashes(c.idle, c.steps)
			if rep.Safe != c.safe {
				t.Fatalf("safe = %v, want %v (%+v)", rep.Safe, c.safe, rep)
			}
			if rep.MaxGeneralFlashes < c.minGeneral || rep.MaxRedFlashes < c.minRed {
				t.Fatalf("flashes general %.1f red %.1f, want at least %.1f / %.1f", rep.MaxGeneralFlashes, rep.MaxRedFlashes, c.minGeneral, c.minRed)
			}
			if c.minGeneral == 0 && rep.MaxGeneralFlashes != 0 {
				t.Fatalf("general flashes %.1f where none are expected", rep.MaxGeneralFlashes)
			}
		})
	}
}

func TestCheckFlashesEmpty(t *testing.T) {
	if rep := CheckFlashes(RGB{}, nil); !rep.Safe || rep.MaxGeneralFlashes != 0 {
		t.Fatalf("%+v", rep)
	}
}

// FuzzCheckFlashes: any sequence is judged without panicking, counts are
// consistent with the verdict, and an isoluminant grey sequence never
// flashes.
func FuzzCheckFlashes(f *testing.F) {
	f.Add([]byte{0, 0, 0, 255, 255, 255, 0, 0, 0}, uint8(10))
	f.Add([]byte{255, 0, 0, 200, 0, 0}, uint8(5))
	f.Fuzz(func(t *testing.T, raw []byte, stepMs uint8) {
		var steps []Step
		for i := 0; i+2 < len(raw) && len(steps) < 200; i += 3 {
			steps = append(steps, Step{Color: RGB{raw[i], raw[i+1], raw[i+2]}, Duration: time.Duration(stepMs) * time.Millisecond})
		}
		rep := CheckFlashes(RGB{}, steps)
		if rep.Safe != (rep.MaxGeneralFlashes <= MaxFlashesPerSecond && rep.MaxRedFlashes <= MaxFlashesPerSecond) {
			t.Fatalf("verdict inconsistent with counts: %+v", rep)
		}
		if rep.MaxGeneralFlashes < 0 || rep.MaxRedFlashes < 0 {
			t.Fatalf("negative counts: %+v", rep)
		}
	})
}
