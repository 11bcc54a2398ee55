// Package testenv finds the artefacts make deps prepares (ONNX Runtime
// library, TFJS source models, the Node TFJS reference, the registry
// photos) for the tests, and fails or skips loudly when they are missing: under CI=true a
// missing artefact is a test failure, never a silent skip.
package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Root returns the repository root (the directory holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: go.mod not found above the test directory")
		}
		dir = parent
	}
}

// Require returns path if it exists; otherwise it fails the test under
// CI=true and skips it (saying so) elsewhere.
func Require(t testing.TB, path, what string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing at %s (make deps should have made it): %v", what, path, err)
		}
		t.Skipf("SKIP: %s missing at %s (run make deps): %v", what, path, err)
	}
	return path
}

// ORTLibrary is the ONNX Runtime library for the test binary's architecture.
func ORTLibrary(t testing.TB) string {
	t.Helper()
	return Require(t, filepath.Join(Root(t), "models", "lib", runtime.GOARCH, "libonnxruntime.so.1"), "ONNX Runtime library")
}

// TFJSModels is the directory of the TFJS source models.
func TFJSModels(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(Root(t), ".cache", "tfjs", "human-models")
	Require(t, filepath.Join(dir, "blazeface.json"), "TFJS models")
	return dir
}

// NodeModules is the node_modules directory holding @tensorflow/tfjs.
func NodeModules(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(Root(t), ".cache", "node", "node_modules")
	Require(t, filepath.Join(dir, "@tensorflow", "tfjs"), "@tensorflow/tfjs")
	return dir
}

// Models is the converted models directory (models/).
func Models(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(Root(t), "models")
	Require(t, filepath.Join(dir, "manifest.json"), "converted models")
	return dir
}
