package inference

import "testing"

// Test hooks for the external test package (benchmarks), which shares this
// test binary's one ONNX Runtime environment.

func SharedRuntime(t testing.TB) *Runtime { return testRuntime(t) }

func SharedEngine(t testing.TB) *Engine { return testEngine(t) }

func Photo(t testing.TB, rel string) *Image { return photo(t, rel) }

// Scaled crops the square (x, y, side) of im and scales it to w x h.
func Scaled(im *Image, x, y, side float64, w, h int) *Image {
	s := side / float64(max(w, h))
	return transform(im, w, h, Affine{A: s, C: x, E: s, F: y})
}
