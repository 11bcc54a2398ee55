package session

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/internal/testenv"
)

// The session package's tests share one ONNX Runtime environment (a process
// may hold only one) and one engine with the full-range detector. Tests
// that need the real models call testModels; without make deps they fail
// under CI=true and skip (saying so) elsewhere.
var sharedModels struct {
	once sync.Once
	rt   *inference.Runtime
	eng  *inference.Engine
	err  error
}

// repoRoot is the directory holding go.mod, above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found: %v", err)
	}
	return root
}

// requireFile fails under CI=true, and skips elsewhere, when path is
// missing.
func requireFile(t testing.TB, path, what string) string {
	t.Helper()
	return testenv.Require(t, path, what)
}

// testModels returns the shared engine (FP32, full-range detector).
func testModels(t testing.TB) *inference.Engine {
	t.Helper()
	root := repoRoot(t)
	lib := requireFile(t, filepath.Join(root, "models", "lib", runtime.GOARCH, inference.LibraryName), "ONNX Runtime library")
	requireFile(t, filepath.Join(root, "models", "manifest.json"), "converted models")
	sharedModels.once.Do(func() {
		sharedModels.rt, sharedModels.err = inference.NewRuntime(inference.RuntimeConfig{LibraryPath: lib})
		if sharedModels.err == nil {
			sharedModels.eng, sharedModels.err = inference.New(sharedModels.rt, inference.Config{ModelsDir: filepath.Join(root, "models")})
		}
	})
	if sharedModels.err != nil {
		t.Fatal(sharedModels.err)
	}
	return sharedModels.eng
}

// registryPhoto reads a photo make deps fetched into .cache/faces.
func registryPhoto(t testing.TB, rel string) []byte {
	t.Helper()
	p := requireFile(t, filepath.Join(repoRoot(t), ".cache", "faces", rel), "registry photo")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cropPNG crops the square (x, y, side) of a photo, scales it bilinearly to
// size x size and encodes it as PNG.
func cropPNG(t testing.TB, photo []byte, x, y, side float64, size int) []byte {
	t.Helper()
	im, _, err := inference.DecodeImage(photo)
	if err != nil {
		t.Fatal(err)
	}
	out := image.NewRGBA(image.Rect(0, 0, size, size))
	s := side / float64(size)
	at := func(px, py, c int) float64 {
		px = min(max(px, 0), im.Width-1)
		py = min(max(py, 0), im.Height-1)
		return float64(im.Pix[(py*im.Width+px)*3+c])
	}
	for v := range size {
		for u := range size {
			sx, sy := x+(float64(u)+0.5)*s-0.5, y+(float64(v)+0.5)*s-0.5
			x0, y0 := int(sx), int(sy)
			fx, fy := sx-float64(x0), sy-float64(y0)
			var c [3]uint8
			for k := range 3 {
				val := (1-fx)*(1-fy)*at(x0, y0, k) + fx*(1-fy)*at(x0+1, y0, k) + (1-fx)*fy*at(x0, y0+1, k) + fx*fy*at(x0+1, y0+1, k)
				c[k] = uint8(min(max(val+0.5, 0), 255))
			}
			out.SetRGBA(u, v, color.RGBA{c[0], c[1], c[2], 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, out); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// validPortrait is the astronaut's face, eyes about 100 px apart: a
// portrait that passes validation (as in the inference tests).
func validPortrait(t testing.TB) []byte {
	return cropPNG(t, registryPhoto(t, "skimage/astronaut.png"), 125, 26, 200, 480)
}
