package session

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/glintdev/glint/inference"
)

// The session runner's tests use the kiosk's engine: the short-range
// detector with auto precision, on the process's one ONNX Runtime
// environment (made by testModels in enrol_models_test.go).
var shortModels struct {
	once sync.Once
	eng  *inference.Engine
	err  error
}

// testEngine returns the shared short-range engine (real models).
func testEngine(t testing.TB) *inference.Engine {
	t.Helper()
	testModels(t) // the runtime; fails or skips without make deps
	shortModels.once.Do(func() {
		shortModels.eng, shortModels.err = inference.New(sharedModels.rt, inference.Config{
			ModelsDir: filepath.Join(repoRoot(t), "models"), Detector: inference.DetectorShort, Precision: inference.PrecisionAuto,
		})
	})
	if shortModels.err != nil {
		t.Fatal(shortModels.err)
	}
	return shortModels.eng
}
