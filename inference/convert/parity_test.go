package convert_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/inference/convert"
	"github.com/glintdev/glint/internal/testenv"
)

// parityModels are the TFJS models glint converts, with the input value
// range each expects (parity is checked on inputs in that range).
var parityModels = []struct {
	name   string
	lo, hi float32
}{
	{"blazeface", -1, 1},
	{"blazeface-front", -1, 1},
	{"facemesh", 0, 1},
	{"faceres", 0, 1},
	{"mobilefacenet", 0, 1},
	{"antispoof", 0, 1},
	{"liveness", 0, 1},
}

// maxRelErr is the parity bound: for every output,
//
//	max_i |onnx_i - tfjs_i| / max(max_i |tfjs_i|, 1e-3) ≤ 1e-4
//
// the largest absolute difference relative to the output's magnitude (a
// per-element ratio is meaningless where outputs cross zero). The 1e-3 floor
// matters only for an output that is all but zero, such as facemesh's face
// flag (a saturated sigmoid, ~5e-5) on a random, face-less input: there the
// bound is 1e-7 absolute.
const maxRelErr = 1e-4

// relErr is the parity metric above.
func relErr(got, want []float32) float64 {
	var diff, mag float64
	for i := range want {
		diff = math.Max(diff, math.Abs(float64(got[i])-float64(want[i])))
		mag = math.Max(mag, math.Abs(float64(want[i])))
	}
	return diff / math.Max(mag, 1e-3)
}

// TestParityTFJS converts every model, runs it in ONNX Runtime (FP32) and in
// TFJS's pure-JS CPU backend in Node on the same random inputs, and bounds
// the difference.
func TestParityTFJS(t *testing.T) {
	src := testenv.TFJSModels(t)
	lib := testenv.ORTLibrary(t)
	nodeModules := testenv.NodeModules(t)
	runJS := filepath.Join(testenv.Root(t), "tests", "node", "run.js")
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node not found")
		}
		t.Skip("SKIP: node not found")
	}
	rt, err := inference.NewRuntime(inference.RuntimeConfig{LibraryPath: lib})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ref := tfjsRunner{script: runJS, nodeModules: nodeModules}
	for _, pm := range parityModels {
		t.Run(pm.name, func(t *testing.T) {
			checkParity(t, rt, ref, filepath.Join(src, pm.name+".json"), pm.lo, pm.hi)
		})
	}
	t.Run("synthetic", func(t *testing.T) {
		path := synthModel().write(t, t.TempDir(), "synthetic")
		checkParity(t, rt, ref, path, -1, 1)
	})
}

type tfjsRunner struct{ script, nodeModules string }

// checkParity converts the model at path, runs it in ONNX Runtime and in
// TFJS on the same random inputs in [lo, hi) and checks every output.
func checkParity(t *testing.T, rt *inference.Runtime, ref tfjsRunner, path string, lo, hi float32) {
	t.Helper()
	m, err := convert.ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := convert.New(convert.Config{}).Convert(m)
	if err != nil {
		t.Fatal(err)
	}
	onnx, err := res.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ins := fixedSpecs(t, res.Inputs)
	outs := fixedSpecs(t, res.Outputs)
	sess, err := rt.NewSession(m.Name, onnx, ins, outs, inference.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	rng := rand.New(rand.NewPCG(1, uint64(len(m.Name))))
	dir := t.TempDir()
	req := map[string]any{"model": path, "outDir": dir}
	feeds := map[string]any{}
	for i, spec := range ins {
		data := sess.Input(i)
		for k := range data {
			data[k] = lo + (hi-lo)*rng.Float32()
		}
		file := filepath.Join(dir, fmt.Sprintf("in%d.f32", i))
		writeF32(t, file, data)
		feeds[spec.Name] = map[string]any{"shape": spec.Shape, "file": file}
	}
	req["inputs"] = feeds
	var names []string
	for _, o := range outs {
		names = append(names, o.Name)
	}
	req["outputs"] = names
	if err := sess.Run(); err != nil {
		t.Fatal(err)
	}
	got := runTFJS(t, ref.script, ref.nodeModules, req)
	for i, o := range outs {
		r, ok := got.Outputs[o.Name]
		if !ok {
			t.Fatalf("tfjs gave no output %s", o.Name)
		}
		if fmt.Sprint(r.Shape) != fmt.Sprint(o.Shape) {
			t.Errorf("output %s: onnx shape %v, tfjs %v", o.Name, o.Shape, r.Shape)
		}
		want := readF32(t, r.File)
		have := sess.Output(i)
		if len(have) != len(want) {
			t.Fatalf("output %s: onnx has %d values, tfjs %d (shape %v)", o.Name, len(have), len(want), r.Shape)
		}
		e := relErr(have, want)
		t.Logf("%s output %s %v: relative error %.2e, max abs %.3g (tfjs %s, backend %s)", m.Name, o.Name, o.Shape, e, maxAbs(want), got.Version, got.Backend)
		if e > maxRelErr {
			t.Errorf("output %s: relative error %.3e > %.0e", o.Name, e, maxRelErr)
		}
	}
}

type tfjsResult struct {
	Backend string `json:"backend"`
	Version string `json:"version"`
	Outputs map[string]struct {
		Shape []int64 `json:"shape"`
		File  string  `json:"file"`
	} `json:"outputs"`
}

func runTFJS(t *testing.T, script, nodeModules string, req map[string]any) tfjsResult {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodeModules)
	cmd.Stdin = bytes.NewReader(b)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	var res tfjsResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if res.Backend != "cpu" {
		t.Fatalf("tfjs ran on backend %q, want cpu", res.Backend)
	}
	return res
}

// fixedSpecs turns converter IO info into session specs, fixing a dynamic
// batch to 1.
func fixedSpecs(t *testing.T, io []convert.IOInfo) []inference.TensorSpec {
	t.Helper()
	var out []inference.TensorSpec
	for _, x := range io {
		shape := append([]int64(nil), x.Shape...)
		for i, d := range shape {
			if d < 0 {
				if i != 0 {
					t.Fatalf("%s: dynamic dimension %d in %v", x.Name, i, x.Shape)
				}
				shape[i] = 1
			}
		}
		out = append(out, inference.TensorSpec{Name: x.Name, Shape: shape})
	}
	return out
}

func writeF32(t *testing.T, path string, data []float32) {
	t.Helper()
	b := make([]byte, 4*len(data))
	for i, f := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func maxAbs(x []float32) float64 {
	var m float64
	for _, v := range x {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return m
}
