package inference

import (
	"bytes"
	"errors"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/glintdev/glint/inference/manifest"
	"github.com/glintdev/glint/internal/testenv"
)

// One ONNX Runtime environment per test process, shared by the tests.
var shared struct {
	once sync.Once
	rt   *Runtime
	eng  *Engine
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shortOnce.eng != nil {
		shortOnce.eng.Close()
	}
	if shared.eng != nil {
		shared.eng.Close()
	}
	if shared.rt != nil {
		shared.rt.Close()
	}
	os.Exit(code)
}

// testRuntime returns the process's runtime (failing under CI=true, or
// skipping, when make deps has not run).
func testRuntime(t testing.TB) *Runtime {
	t.Helper()
	lib := testenv.ORTLibrary(t)
	testenv.Models(t)
	shared.once.Do(func() {
		shared.rt, shared.err = NewRuntime(RuntimeConfig{LibraryPath: lib})
		if shared.err == nil {
			shared.eng, shared.err = New(shared.rt, Config{ModelsDir: filepath.Join(testenv.Root(t), "models")})
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.rt
}

func testEngine(t testing.TB) *Engine {
	t.Helper()
	testRuntime(t)
	return shared.eng
}

// photo loads a registry photo that make deps (scripts/faces.sh) fetched.
func photo(t testing.TB, rel string) *Image {
	t.Helper()
	p := testenv.Require(t, filepath.Join(testenv.Root(t), ".cache", "faces", rel), "registry photo")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	im, _, err := DecodeImage(b)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// transform resamples im into a w x h image through m (output → source).
func transform(im *Image, w, h int, m Affine) *Image {
	// warp works on squares; use the larger side and crop.
	side := max(w, h)
	buf := make([]float32, side*side*3)
	warp(buf, side, im, m, 1, 0)
	out := &Image{Width: w, Height: h, Pix: make([]byte, w*h*3)}
	for y := 0; y < h; y++ {
		for x := 0; x < w*3; x++ {
			out.Pix[y*w*3+x] = byte(clamp(float64(buf[y*side*3+x])+0.5, 0, 255))
		}
	}
	return out
}

// scaled crops the square (x, y, side) of im and scales it to size.
func scaled(im *Image, x, y, side float64, size int) *Image {
	s := side / float64(size)
	return transform(im, size, size, Affine{A: s, C: x, E: s, F: y})
}

func encodePNG(t *testing.T, im *Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, im.RGBA()); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t *testing.T, im *Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, im.RGBA(), &jpeg.Options{Quality: 92}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDetectRegistryPhotos(t *testing.T) {
	eng := testEngine(t)
	tests := []struct {
		photo    string
		min, max int
	}{
		{"skimage/astronaut.png", 1, 1},
		{"opencv/messi5.jpg", 1, 1},
		{"face-api/sample1.jpg", 2, 4},
		{"face-api/sample6.jpg", 2, 4},
	}
	for _, tt := range tests {
		t.Run(tt.photo, func(t *testing.T) {
			im := photo(t, tt.photo)
			faces, err := eng.Analyze(im)
			if err != nil {
				t.Fatal(err)
			}
			if len(faces) < tt.min || len(faces) > tt.max {
				t.Fatalf("%d faces, want %d..%d", len(faces), tt.min, tt.max)
			}
			for i, f := range faces {
				b := f.Detection.Box
				for _, e := range []Point{f.Landmarks.RightEye, f.Landmarks.LeftEye} {
					if e.X < b.X0 || e.X > b.X1 || e.Y < b.Y0 || e.Y > b.Y1 {
						t.Errorf("face %d: eye %v outside box %v", i, e, b)
					}
				}
				if f.Landmarks.RightEye.X >= f.Landmarks.LeftEye.X {
					t.Errorf("face %d: subject's right eye %v not left of the left eye %v in the image", i, f.Landmarks.RightEye, f.Landmarks.LeftEye)
				}
				if f.Landmarks.Score < 0.9 {
					t.Errorf("face %d: facemesh score %.3f", i, f.Landmarks.Score)
				}
				t.Logf("face %d: box %.0f score %.3f eyes %.1f px pose %+.1f", i, []float64{b.X0, b.Y0, b.X1, b.Y1}, f.Detection.Score, f.Landmarks.Interocular, f.Landmarks.Pose)
			}
		})
	}
}

// portraitBase is the astronaut's face, scaled so the eyes are ~105 px
// apart: a valid enrolment portrait.
func portraitBase(t testing.TB) *Image {
	return scaled(photo(t, "skimage/astronaut.png"), 125, 26, 200, 480)
}

func TestValidatePortrait(t *testing.T) {
	eng := testEngine(t)
	base := portraitBase(t)
	astro := photo(t, "skimage/astronaut.png")
	adjust := func(im *Image, f func(v float64) float64) *Image {
		out := &Image{Width: im.Width, Height: im.Height, Pix: make([]byte, len(im.Pix))}
		for i, v := range im.Pix {
			out.Pix[i] = byte(clamp(f(float64(v)), 0, 255))
		}
		return out
	}
	blur := func(im *Image) *Image {
		// Down to 1/8 and back up: strong low-pass.
		small := scaled(im, 0, 0, float64(im.Width), im.Width/8)
		return scaled(small, 0, 0, float64(small.Width), im.Width)
	}
	twoFaces := func() *Image {
		// Two copies of the face side by side.
		w := 2 * base.Width
		out := &Image{Width: w, Height: base.Height, Pix: make([]byte, w*base.Height*3)}
		for y := 0; y < base.Height; y++ {
			copy(out.Pix[y*w*3:], base.Pix[y*base.Width*3:(y+1)*base.Width*3])
			copy(out.Pix[y*w*3+base.Width*3:], base.Pix[y*base.Width*3:(y+1)*base.Width*3])
		}
		return out
	}
	jpg := encodeJPEG(t, base)
	tests := []struct {
		name string
		data []byte
		want Code // "" = valid
	}{
		{"valid png", encodePNG(t, base), ""},
		{"valid jpeg", jpg, ""},
		{"gif", []byte("GIF89a\x01\x00\x01\x00"), CodeFormat},
		{"too large", append(append([]byte{}, jpg...), make([]byte, MaxPortraitBytes)...), CodeTooLarge},
		{"truncated jpeg", jpg[:len(jpg)/3], CodeUndecodable},
		{"no face", encodePNG(t, scaled(astro, 380, 380, 120, 400)), CodeNoFace},
		{"two faces", encodePNG(t, twoFaces()), CodeMultipleFaces},
		{"eyes 60 px apart", encodePNG(t, scaled(astro, 125, 26, 200, 275)), CodeEyesTooClose},
		// face-api sample5's face turned ~30° away, enlarged to ~100 px
		// between the eyes.
		{"turned away", encodePNG(t, scaled(photo(t, "face-api/sample5.jpg"), 468, 353, 400, 600)), CodeNotFrontal},
		{"blurred", encodePNG(t, blur(base)), CodeBlurred},
		{"overexposed", encodePNG(t, adjust(base, func(v float64) float64 { return 2.2*v + 40 })), CodeOverexposed},
		{"underexposed", encodePNG(t, adjust(base, func(v float64) float64 { return 0.2 * v })), CodeUnderexposed},
	}
	for _, tt := range tests {
		im, _, err := DecodeImage(tt.data)
		if err != nil {
			continue
		}
		faces, _ := eng.Analyze(im)
		if len(faces) == 1 {
			l := faceLuma(im, faces[0])
			m, c := exposure(l, 112)
			t.Logf("%s: sharpness %.1f mean %.0f clipped %.3f", tt.name, sharpness(l, 112), m, c)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := eng.ValidatePortrait(tt.data, DefaultQualityLimits())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("valid portrait rejected: %v", err)
				}
				t.Logf("eyes %.1f px, pose %+.1f", p.Face.Landmarks.Interocular, p.Face.Landmarks.Pose)
				return
			}
			var pe *PortraitError
			if !errors.As(err, &pe) || pe.Code != tt.want {
				t.Fatalf("err = %v, want code %s", err, tt.want)
			}
			if !errors.Is(err, &PortraitError{Issue: Issue{Code: tt.want}}) {
				t.Errorf("errors.Is does not match code %s", tt.want)
			}
		})
	}
}

func TestQualityMetrics(t *testing.T) {
	eng := testEngine(t)
	for _, p := range []string{"skimage/astronaut.png", "opencv/messi5.jpg", "face-api/sample3.jpg"} {
		im := photo(t, p)
		faces, err := eng.Analyze(im)
		if err != nil || len(faces) == 0 {
			t.Fatalf("%s: %v, %d faces", p, err, len(faces))
		}
		l := faceLuma(im, faces[0])
		mean, clipped := exposure(l, 112)
		t.Logf("%s: sharpness %.0f mean %.0f clipped %.3f", p, sharpness(l, 112), mean, clipped)
	}
}

func TestCompareRegistryFaces(t *testing.T) {
	eng := testEngine(t)
	embed := func(im *Image) []float32 {
		t.Helper()
		faces, err := eng.Analyze(im)
		if err != nil || len(faces) == 0 {
			t.Fatalf("analyze: %v, %d faces", err, len(faces))
		}
		e, err := eng.Embed(im, faces[0])
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	astro := photo(t, "skimage/astronaut.png")
	a := embed(astro)
	// The same face at another scale and position, as another photo would
	// show it.
	b := embed(scaled(astro, 100, 0, 300, 420))
	c := embed(photo(t, "opencv/messi5.jpg"))
	same := SimilarityScore(eng.Config().Embedding, Cosine(a, b))
	diff := SimilarityScore(eng.Config().Embedding, Cosine(a, c))
	t.Logf("same face %.1f, different people %.1f", same, diff)
	if same < DefaultMatchThreshold || diff >= DefaultMatchThreshold {
		t.Errorf("same %.1f, different %.1f; threshold %d", same, diff, DefaultMatchThreshold)
	}
	var n float64
	for _, v := range a {
		n += float64(v) * float64(v)
	}
	if n < 0.9999 || n > 1.0001 {
		t.Errorf("embedding squared norm %g, want 1", n)
	}
}

func TestAntiSpoofAndLivenessScores(t *testing.T) {
	eng := testEngine(t)
	im := photo(t, "skimage/astronaut.png")
	faces, err := eng.Analyze(im)
	if err != nil || len(faces) != 1 {
		t.Fatalf("analyze: %v, %d faces", err, len(faces))
	}
	as, err := eng.AntiSpoof(im, faces[0])
	if err != nil {
		t.Fatal(err)
	}
	lv, err := eng.Liveness(im, faces[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("antispoof %.3f liveness %.3f", as, lv)
	for _, s := range []float64{as, lv} {
		if s < 0 || s > 1 {
			t.Errorf("score %g outside 0..1", s)
		}
	}
}

func TestTamperedModel(t *testing.T) {
	rt := testRuntime(t)
	src := filepath.Join(testenv.Root(t), "models")
	dir := t.TempDir()
	man, err := manifest.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := man.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, e := range man.Models {
		if e.Precision != manifest.FP32 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.File))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name == "blazeface" {
			b = b[:len(b)-100] // truncated
		}
		if err := os.WriteFile(filepath.Join(dir, e.File), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err = New(rt, Config{ModelsDir: dir})
	if !errors.Is(err, manifest.ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	if !strings.Contains(err.Error(), "blazeface.onnx") {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestRetrackFollowsFace(t *testing.T) {
	eng := testEngine(t)
	im := photo(t, "skimage/astronaut.png")
	faces, err := eng.Analyze(im)
	if err != nil || len(faces) != 1 {
		t.Fatalf("analyze: %v, %d faces", err, len(faces))
	}
	l := faces[0].Landmarks
	// The same face 12 px to the right, as in the next frame.
	moved := transform(im, im.Width, im.Height, Affine{A: 1, C: -12, E: 1})
	for i := 0; i < 3; i++ {
		if l, err = eng.Retrack(moved, l); err != nil {
			t.Fatal(err)
		}
	}
	want := faces[0].Landmarks.RightEye.X + 12
	if l.Score < 0.9 || math.Abs(l.RightEye.X-want) > 2 {
		t.Errorf("after retracking: score %.3f, right eye x %.1f, want %.1f", l.Score, l.RightEye.X, want)
	}
}
