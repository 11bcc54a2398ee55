package convert_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glintdev/glint/inference/convert"
	"github.com/glintdev/glint/inference/manifest"
)

// TestBuildRedoesOnlyWhatChanged builds a (synthetic) catalog model twice,
// then after its output was tampered with, then after its source changed.
func TestBuildRedoesOnlyWhatChanged(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	synthModel().write(t, src, "liveness") // any catalog name
	if err := os.WriteFile(filepath.Join(src, "SOURCE"), []byte("test-package@1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := func() string {
		t.Helper()
		var log []string
		_, err := convert.Build(convert.BuildConfig{Src: src, Out: out, Models: []string{"liveness"},
			Logf: func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(log, "\n")
	}
	steps := []struct {
		before func()
		want   string
	}{
		{nil, "liveness fp32 converted"},
		{nil, "liveness fp32 up to date"},
		{func() { // tampered output
			if err := os.WriteFile(filepath.Join(out, "liveness.onnx"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "liveness fp32 converted"},
		{func() { // new source
			s := synthModel()
			s.constF("extra", "float32", 2)
			s.write(t, src, "liveness")
		}, "liveness fp32 converted"},
		{nil, "liveness fp32 up to date"},
	}
	for i, s := range steps {
		if s.before != nil {
			s.before()
		}
		if got := build(); !strings.HasPrefix(got, s.want) {
			t.Fatalf("step %d: log %q, want %q", i, got, s.want)
		}
	}
	man, err := manifest.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	e, err := man.Find("liveness", manifest.FP32)
	if err != nil {
		t.Fatal(err)
	}
	if e.Opset != convert.Opset || e.Source.Package != "test-package@1.0.0" || len(e.Source.Files) != 2 || e.Layout != "NHWC" {
		t.Errorf("manifest entry %+v", e)
	}
	if _, _, err := man.ReadModel(out, "liveness", manifest.FP32); err != nil {
		t.Error(err)
	}
}
