package flashmark_test

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/internal/testenv"
	"github.com/glintdev/glint/sim"
	"github.com/glintdev/glint/sim/eval"
)

// testFace is a drawn portrait the simulator's skin detector finds: no
// download needed, so these tests run anywhere.
var testFace struct {
	once sync.Once
	face *sim.Face
	err  error
}

func drawnFace(t testing.TB) *sim.Face {
	t.Helper()
	testFace.once.Do(func() {
		dir, err := os.MkdirTemp("", "flashmark-face")
		if err != nil {
			testFace.err = err
			return
		}
		defer os.RemoveAll(dir)
		img := image.NewRGBA(image.Rect(0, 0, 200, 200))
		for y := 0; y < 200; y++ {
			for x := 0; x < 200; x++ {
				c := color.RGBA{110, 115, 120, 255}
				if du, dv := float64(x-100)/40, float64(y-100)/52; du*du+dv*dv < 1 {
					c = color.RGBA{210, 155, 130, 255}
					if math.Abs(math.Abs(float64(x-100))-16) < 6 && math.Abs(float64(y-90)) < 3 {
						c = color.RGBA{40, 30, 30, 255}
					}
				}
				img.Set(x, y, c)
			}
		}
		f, err := os.Create(filepath.Join(dir, "face.png"))
		if err != nil {
			testFace.err = err
			return
		}
		if err := png.Encode(f, img); err != nil {
			testFace.err = err
		}
		f.Close()
		faces, err := sim.LoadFaces([]string{dir})
		if err != nil {
			testFace.err = err
			return
		}
		testFace.face = faces[0]
	})
	if testFace.err != nil {
		t.Fatal(testFace.err)
	}
	return testFace.face
}

// record runs a simulated session of species sp with the drawn face under
// the realism tests' default conditions (DefaultParams) and returns the
// analysis input, with the simulator's ground-truth face box.
func record(t testing.TB, sp sim.Species, mod func(*sim.Params), seed uint64) *flashmark.Input {
	t.Helper()
	return recordFace(t, drawnFace(t), sp, mod, seed)
}

// registryFace is a real photo from the registry package (make deps): the
// checks that look at a face's texture need one.
func registryFace(t testing.TB, rel string) *sim.Face {
	t.Helper()
	return registryFaceAt(t, rel, 0)
}

// registryFaceAt is the i-th face the simulator finds in a registry photo
// (docs/liveness.md names faces as photo#i).
func registryFaceAt(t testing.TB, rel string, i int) *sim.Face {
	t.Helper()
	dir := testenv.Require(t, filepath.Join(testenv.Root(t), ".cache", "faces"), "registry photos")
	faces, err := sim.LoadFace(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	if i >= len(faces) {
		t.Fatalf("%s holds %d faces, want #%d", rel, len(faces), i)
	}
	return faces[i]
}

// recordFace is record with a given face.
func recordFace(t testing.TB, face *sim.Face, sp sim.Species, mod func(*sim.Params), seed uint64) *flashmark.Input {
	t.Helper()
	p := sim.DefaultParams()
	p.Species = sp
	p.Width, p.Height = 320, 240
	if mod != nil {
		mod(&p)
	}
	a, err := sim.NewAttempt(face, p, sim.NewVirtualClock(time.Second), seed)
	if err != nil {
		t.Fatal(err)
	}
	in, err := eval.Flashmark{}.Record(context.Background(), a, rand.New(rand.NewPCG(seed, 7)))
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestAnalyzeSpecies: a bona fide face passes; every attack that the
// flash checks should stop fails, with the reason that explains why. A
// real photo: the drawn face has too little texture for the texture check
// (texture_unmeasured), which is the one that stops screens.
func TestAnalyzeSpecies(t *testing.T) {
	face := registryFace(t, "skimage/astronaut.png")
	for _, tc := range []struct {
		name    string
		species sim.Species
		mod     func(*sim.Params)
		live    bool
		reason  string // one of the reasons it must give
	}{
		{"bona fide", sim.BonaFide, nil, true, ""},
		{"bona fide, dim room", sim.BonaFide, func(p *sim.Params) { p.AmbientLux = 80 }, true, ""},
		{"print", sim.Print, nil, false, flashmark.ReasonFlatShading}, // held where the face would be: no relief
		{"screen", sim.Screen, nil, false, flashmark.ReasonUntextured},
		{"replay", sim.Replay, nil, false, ""},
		{"injection", sim.Injection, nil, false, flashmark.ReasonCorrelationLow},
		{"relight 100 ms", sim.Relight, nil, false, flashmark.ReasonLagOutOfWindow},
		{"relight 33 ms", sim.Relight, func(p *sim.Params) { p.Attack.RelightLag = 33 * time.Millisecond }, false, flashmark.ReasonLagOutOfWindow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := recordFace(t, face, tc.species, tc.mod, 11)
			res, err := flashmark.Analyze(*in, flashmark.AnalysisConfig{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("score %.1f lag %v corr %.3f reasons %v evidence %v", res.Score, res.Lag, res.Correlation, res.Reasons, res.Evidence)
			if res.Live != tc.live {
				t.Fatalf("live = %v, want %v (score %.1f, threshold %.0f, reasons %v)", res.Live, tc.live, res.Score, res.Threshold, res.Reasons)
			}
			if tc.live && len(res.Reasons) != 0 {
				t.Errorf("live with reasons %v", res.Reasons)
			}
			if !tc.live && len(res.Reasons) == 0 {
				t.Errorf("rejected without a reason")
			}
			if tc.reason != "" && !slices.Contains(res.Reasons, tc.reason) {
				t.Errorf("reasons %v lack %s", res.Reasons, tc.reason)
			}
			if res.Threshold != flashmark.LevelStandard.Threshold() {
				t.Errorf("threshold %v", res.Threshold)
			}
		})
	}
}

// TestAnalyzeFollowsSway: a head swaying by 3 px is registered frame by
// frame (the cells follow its texture, not the tracker's still box), and
// the face stays live. A real photo: the drawn face's only texture, two
// eye bars placed symmetrically, is as smooth across the blocks as a
// glass's glare lobe (texture 0.22 ± 0.27).
func TestAnalyzeFollowsSway(t *testing.T) {
	in := recordFace(t, registryFace(t, "skimage/astronaut.png"), sim.BonaFide, func(p *sim.Params) { p.MotionPx = 3; p.MotionPhase = 0.1 }, 11)
	res, err := flashmark.Analyze(*in, flashmark.AnalysisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Evidence["registered"]; got < 0.9 {
		t.Errorf("registered %.2f of the frames, want ≥ 0.9", got)
	}
	if !res.Live {
		t.Errorf("swaying face declined: score %.1f, reasons %v, evidence %v", res.Score, res.Reasons, res.Evidence)
	}
}

// TestAnalyzeCloseTexture: 32 cm from the camera, the displays whose
// picture showed through their glare on held-out seeds (docs/liveness.md:
// face-api sample5 #2 on seeds 37 and 43, sample6 #3 on seed 101) and the
// live face with the thinnest texture (sample3 #2) stay apart in texture
// share, with the texture check's ramp (0.35–0.55) between them. The fine
// grid resolves brows, eyes and lips: with blocks twice as large the
// displays read up to 0.37 and the live face's share is uncertain by
// ±0.15 (±0.07 on the fine grid).
func TestAnalyzeCloseTexture(t *testing.T) {
	near := func(p *sim.Params) {
		p.DistanceM = 0.32
		p.Attack.TiltDeg = [2]float64{3, 2} // held nearly square to the camera
	}
	for _, tc := range []struct {
		name    string
		photo   string
		face    int
		species sim.Species
	}{
		{"display, sample5 #2", "face-api/sample5.jpg", 2, sim.Screen},
		{"display, sample6 #3", "face-api/sample6.jpg", 3, sim.Screen},
		{"live, sample3 #2", "face-api/sample3.jpg", 2, sim.BonaFide},
	} {
		face := registryFaceAt(t, tc.photo, tc.face)
		for seed := uint64(1); seed <= 3; seed++ {
			in := recordFace(t, face, tc.species, near, seed)
			res, err := flashmark.Analyze(*in, flashmark.AnalysisConfig{})
			if err != nil {
				t.Fatal(err)
			}
			share, se := res.Evidence["face_texture"], res.Evidence["face_texture_se"]
			t.Logf("%s, seed %d: texture %.2f ± %.2f", tc.name, seed, share, se)
			if tc.species == sim.BonaFide && !(share >= 0.55 && se <= 0.1) {
				t.Errorf("%s, seed %d: texture share %.2f ± %.2f, want ≥ 0.55 (skin) within ±0.1", tc.name, seed, share, se)
			}
			if tc.species == sim.Screen && !(share <= 0.35) {
				t.Errorf("%s, seed %d: texture share %.2f ± %.2f, want ≤ 0.35 (glass)", tc.name, seed, share, se)
			}
			if tc.species == sim.Screen && res.Live {
				t.Errorf("%s, seed %d: display accepted (score %.1f)", tc.name, seed, res.Score)
			}
		}
	}
}

// TestAnalyzeLag: the measured loop latency is the face's (a few ms of
// scan-out) for bona fide, and the deepfake's own latency plus that for a
// relighting attack, so one frame late is told apart.
func TestAnalyzeLag(t *testing.T) {
	bona, err := flashmark.Analyze(*record(t, sim.BonaFide, nil, 3), flashmark.AnalysisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	late, err := flashmark.Analyze(*record(t, sim.Relight, func(p *sim.Params) {
		p.Attack.RelightLag = 33 * time.Millisecond
		p.Attack.RelightGain = 0.2
	}, 3), flashmark.AnalysisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if bona.Lag < flashmark.DefaultLatencyMin || bona.Lag > flashmark.DefaultLatencyMax {
		t.Errorf("bona fide lag %v outside the default window", bona.Lag)
	}
	if d := late.Lag - bona.Lag; d < 25*time.Millisecond || d > 60*time.Millisecond {
		t.Errorf("relight 33 ms measured %v, bona fide %v: difference %v, want about 33 ms plus the readout offset", late.Lag, bona.Lag, d)
	}
	// A window calibrated to include 33 ms accepts the late relight's
	// lag: the window, not the correlation, is what rejects it.
	wide, err := flashmark.Analyze(*record(t, sim.Relight, func(p *sim.Params) {
		p.Attack.RelightLag = 33 * time.Millisecond
		p.Attack.RelightGain = 0.2
	}, 3), flashmark.AnalysisConfig{LatencyMin: -10 * time.Millisecond, LatencyMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(wide.Reasons, flashmark.ReasonLagOutOfWindow) {
		t.Errorf("lag %v inside [-10ms, 100ms] still reported out of window", wide.Lag)
	}
}

func TestAnalyzeLevels(t *testing.T) {
	in := record(t, sim.Print, nil, 5)
	closed, err := flashmark.Analyze(*in, flashmark.AnalysisConfig{Level: flashmark.LevelClosed})
	if err != nil {
		t.Fatal(err)
	}
	if !closed.Live || !slices.Contains(closed.Reasons, flashmark.ReasonLivenessDisabled) || closed.Evidence["closed"] != 1 {
		t.Errorf("CLOSED: %+v", closed)
	}
	// CLOSED does not even look at the input.
	if res, err := flashmark.Analyze(flashmark.Input{}, flashmark.AnalysisConfig{Level: flashmark.LevelClosed}); err != nil || !res.Live {
		t.Errorf("CLOSED on an empty input: %v, %v", res, err)
	}
	var prev float64 = -1
	for _, l := range []flashmark.Level{flashmark.LevelLoose, flashmark.LevelStandard, flashmark.LevelStrict} {
		res, err := flashmark.Analyze(*in, flashmark.AnalysisConfig{Level: l})
		if err != nil {
			t.Fatal(err)
		}
		if res.Threshold != l.Threshold() || res.Threshold <= prev {
			t.Errorf("%s: threshold %v after %v", l, res.Threshold, prev)
		}
		prev = res.Threshold
		if res.Live != (res.Score >= res.Threshold) {
			t.Errorf("%s: live %v with score %v", l, res.Live, res.Score)
		}
	}
	for _, s := range []string{"loose", "STANDARD", " Strict ", "closed"} {
		if _, err := flashmark.ParseLevel(s); err != nil {
			t.Errorf("ParseLevel(%q): %v", s, err)
		}
	}
	if _, err := flashmark.ParseLevel("MEDIUM"); err == nil {
		t.Error("ParseLevel(MEDIUM) accepted")
	}
	if _, err := flashmark.Analyze(*in, flashmark.AnalysisConfig{Level: "MEDIUM"}); !errors.Is(err, flashmark.ErrAnalysis) {
		t.Errorf("unknown level: %v", err)
	}
}

func TestAnalyzeExpress(t *testing.T) {
	for _, tc := range []struct {
		passive float64
		level   flashmark.Level
		live    bool
		err     bool
	}{
		{0.95, flashmark.LevelStandard, true, false},
		{0.1, flashmark.LevelStandard, false, false},
		{0.6, flashmark.LevelStrict, false, false},
		{0.6, flashmark.LevelLoose, true, false},
		{-1, flashmark.LevelStandard, false, true},
		{math.NaN(), flashmark.LevelStandard, false, true},
		{-1, flashmark.LevelClosed, true, false},
	} {
		res, err := flashmark.AnalyzeExpress(tc.passive, flashmark.AnalysisConfig{Level: tc.level})
		if tc.err {
			if !errors.Is(err, flashmark.ErrAnalysis) {
				t.Errorf("%v %s: err %v, want ErrAnalysis", tc.passive, tc.level, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v %s: %v", tc.passive, tc.level, err)
		}
		if res.Live != tc.live {
			t.Errorf("%v %s: live %v (score %v threshold %v)", tc.passive, tc.level, res.Live, res.Score, res.Threshold)
		}
		if tc.level != flashmark.LevelClosed && res.Evidence["express"] != 1 {
			t.Errorf("express not marked: %v", res.Evidence)
		}
		if !res.Live && !slices.Contains(res.Reasons, flashmark.ReasonPassiveSpoof) {
			t.Errorf("rejected without PASSIVE_SPOOF: %v", res.Reasons)
		}
	}
}

// TestAnalyzeBadInput: inputs that cannot be analysed are ErrAnalysis
// errors naming the problem, never a panic or a verdict.
func TestAnalyzeBadInput(t *testing.T) {
	good := record(t, sim.BonaFide, nil, 9)
	noFace := *good
	noFace.Observations = nil
	for _, o := range good.Observations {
		noFace.Observations = append(noFace.Observations, flashmark.Observation{Frame: o.Frame})
	}
	fewFrames := *good
	fewFrames.Observations = good.Observations[:8]
	wrongColour := *good
	wrongColour.Presentations = slices.Clone(good.Presentations)
	wrongColour.Presentations[2].Color = flashmark.RGB{R: 1, G: 2, B: 3}
	missing := *good
	missing.Presentations = good.Presentations[:len(good.Presentations)-1]
	backwards := *good
	backwards.Presentations = slices.Clone(good.Presentations)
	backwards.Presentations[3].Presented = backwards.Presentations[2].Presented - time.Millisecond
	outOfOrder := *good
	outOfOrder.Observations = slices.Clone(good.Observations)
	outOfOrder.Observations[5], outOfOrder.Observations[6] = outOfOrder.Observations[6], outOfOrder.Observations[5]
	badFrame := *good
	badFrame.Observations = slices.Clone(good.Observations)
	mid := len(badFrame.Observations) / 2
	bf := *badFrame.Observations[mid].Frame
	bf.Data = bf.Data[:10]
	badFrame.Observations[mid].Frame = &bf
	nilFrame := *good
	nilFrame.Observations = slices.Clone(good.Observations)
	nilFrame.Observations[mid].Frame = nil
	noExposure := *good
	noExposure.Exposure = 0
	badPassive := *good
	badPassive.Passive = 1.5
	for _, tc := range []struct {
		name string
		in   flashmark.Input
	}{
		{"no challenge", flashmark.Input{Presentations: good.Presentations, Observations: good.Observations, Exposure: good.Exposure}},
		{"no frames", flashmark.Input{Challenge: good.Challenge, Presentations: good.Presentations, Exposure: good.Exposure}},
		{"no face in any frame", noFace},
		{"too few frames", fewFrames},
		{"presentation of another colour", wrongColour},
		{"presentation missing", missing},
		{"presentations out of order", backwards},
		{"frames out of order", outOfOrder},
		{"truncated frame", badFrame},
		{"nil frame", nilFrame},
		{"no exposure", noExposure},
		{"passive above 1", badPassive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := flashmark.Analyze(tc.in, flashmark.AnalysisConfig{})
			if !errors.Is(err, flashmark.ErrAnalysis) {
				t.Fatalf("got %+v, %v; want an ErrAnalysis error", res, err)
			}
		})
	}
	if _, err := flashmark.Analyze(*good, flashmark.AnalysisConfig{LatencyMin: 50 * time.Millisecond, LatencyMax: 10 * time.Millisecond}); !errors.Is(err, flashmark.ErrAnalysis) {
		t.Errorf("inverted latency window: %v", err)
	}
}

// TestCalibrateLatency: the window comes from the calibration sessions'
// lags and needs enough of them.
func TestCalibrateLatency(t *testing.T) {
	var lags []time.Duration
	for i := 0; i < 30; i++ {
		lags = append(lags, 8*time.Millisecond+time.Duration(i%5-2)*time.Millisecond)
	}
	lo, hi, err := flashmark.CalibrateLatency(lags)
	if err != nil {
		t.Fatal(err)
	}
	if lo >= 6*time.Millisecond || hi <= 10*time.Millisecond || hi >= 33*time.Millisecond+8*time.Millisecond {
		t.Errorf("window [%v, %v] for lags 6..10 ms", lo, hi)
	}
	if _, _, err := flashmark.CalibrateLatency(lags[:10]); err == nil {
		t.Error("10 sessions accepted")
	}
}

// FuzzAnalyze: any input is analysed or rejected with ErrAnalysis, never a
// panic.
func FuzzAnalyze(f *testing.F) {
	f.Add(uint64(1), uint8(8), uint8(20), int64(16e6), int64(25e6), uint16(100), int16(0), 0.5)
	f.Add(uint64(2), uint8(2), uint8(0), int64(0), int64(-1), uint16(0), int16(-5), -1.0)
	f.Add(uint64(3), uint8(30), uint8(60), int64(1e9), int64(5e8), uint16(9000), int16(3000), 2.0)
	f.Fuzz(func(t *testing.T, seed uint64, steps, frames uint8, exposure, readout int64, boxSize uint16, jitter int16, passive float64) {
		rng := rand.New(rand.NewPCG(seed, 1))
		pal := flashmark.DefaultPalette()
		ch := &flashmark.Challenge{Idle: flashmark.IdleColor()}
		var pres []flashmark.Presentation
		t0 := time.Duration(rng.Int64N(int64(time.Second)))
		for i := 0; i < int(steps%12); i++ {
			c := pal[rng.IntN(len(pal))]
			d := time.Duration(rng.Int64N(int64(200*time.Millisecond))) - 10*time.Millisecond
			ch.Steps = append(ch.Steps, flashmark.Step{Color: c, Duration: d})
			pres = append(pres, flashmark.Presentation{Color: c, Presented: t0 + time.Duration(jitter)*time.Millisecond*time.Duration(i%2)})
			t0 += d
		}
		const w, h = 24, 18
		var obs []flashmark.Observation
		ts := time.Duration(rng.Int64N(int64(time.Second)))
		for i := 0; i < int(frames%64); i++ {
			data := make([]byte, w*h*3)
			for k := range data {
				data[k] = byte(rng.Uint32())
			}
			if rng.IntN(10) == 0 {
				data = data[:rng.IntN(len(data))]
			}
			ts += time.Duration(rng.Int64N(int64(50*time.Millisecond))) - 5*time.Millisecond
			x, y := rng.IntN(w+10)-5, rng.IntN(h+10)-5
			s := int(boxSize % 64)
			obs = append(obs, flashmark.Observation{
				Frame: &capture.Frame{Seq: uint64(i), Timestamp: ts, Width: w, Height: h, Format: capture.FormatRGB24, Data: data},
				Face:  image.Rect(x, y, x+s, y+s*4/3),
			})
		}
		in := flashmark.Input{Challenge: ch, Presentations: pres, Observations: obs,
			Exposure: time.Duration(exposure), Readout: time.Duration(readout), Passive: passive}
		res, err := flashmark.Analyze(in, flashmark.AnalysisConfig{})
		if err != nil {
			if !errors.Is(err, flashmark.ErrAnalysis) {
				t.Fatalf("error not ErrAnalysis: %v", err)
			}
			return
		}
		if math.IsNaN(res.Score) || res.Score < 0 || res.Score > 100 {
			t.Fatalf("score %v", res.Score)
		}
		for k, v := range res.Evidence {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("evidence %s = %v", k, v)
			}
		}
	})
}

// BenchmarkAnalyze is the analysis of one default challenge at 640x480
// (about 40 frames): the part of a session's 150 ms budget for analysis,
// match and signing that the liveness check takes.
func BenchmarkAnalyze(b *testing.B) {
	p := sim.DefaultParams()
	a, err := sim.NewAttempt(drawnFace(b), p, sim.NewVirtualClock(time.Second), 1)
	if err != nil {
		b.Fatal(err)
	}
	in, err := eval.Flashmark{}.Record(context.Background(), a, rand.New(rand.NewPCG(1, 7)))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := flashmark.Analyze(*in, flashmark.AnalysisConfig{}); err != nil {
			b.Fatal(err)
		}
	}
}
