package quantize

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"

	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/inference/internal/onnxpb"
	"github.com/glintdev/glint/inference/manifest"
	"github.com/glintdev/glint/internal/testenv"
)

// TestDetectorSweep measures the INT8 variants of both detectors that
// docs/models.md tabulates: box IoU against FP32 per face (check photos as
// they are, by face size, and reframed at kiosk sizes), model run time on
// one thread, and ONNX Runtime's per-operator kernel time. It takes minutes
// and its timings depend on the machine's load, so it runs only with
// GLINT_INT8_SWEEP=1:
//
//	GLINT_INT8_SWEEP=1 go test -run TestDetectorSweep -v -timeout 30m ./inference/quantize
//
// GLINT_INT8_SWEEP=blazeface (or blazeface-front) limits it to one detector.
func TestDetectorSweep(t *testing.T) {
	which := os.Getenv("GLINT_INT8_SWEEP")
	if which == "" {
		t.Skip("opt-in measurement: set GLINT_INT8_SWEEP=1 (see docs/models.md)")
	}
	rt := testRuntime(t)
	models := testenv.Models(t)
	for _, d := range []struct{ name, detector string }{
		{"blazeface", inference.DetectorFull},
		{"blazeface-front", inference.DetectorShort},
	} {
		if which != "1" && which != d.name {
			continue
		}
		t.Run(d.name, func(t *testing.T) { sweepDetector(t, rt, models, d.name, d.detector) })
	}
}

// sweepVariant is one quantization setting of the sweep.
type sweepVariant struct {
	name  string
	cfg   Config
	kiosk bool // calibrate on kiosk reframings of the calibration faces too
	// stage1 quantizes every op up to the first convolution that changes
	// the channel count (blazeface: the 24-channel blocks at 128x128 and
	// 64x64) and nothing after it: one float/INT8 boundary.
	stage1 bool
	// pad32 first pads blazeface's 24-channel blocks to 32 channels (zero
	// weights: the same function) so that MLAS's symmetric depthwise
	// kernel, which needs a multiple of 16 channels, applies; with float
	// set the padded model is timed in FP32 (not quantized).
	pad32, float bool
}

func sweepVariants(convs int) []sweepVariant {
	conv := []string{"Conv"}
	fs := func(keepLast int, p float64) Config {
		return Config{KeepFirst: 1, KeepLast: keepLast, Ops: conv, FloatSkip: true, Percentile: p}
	}
	return []sweepVariant{
		{name: "all ops quantized, min/max (session 1)", cfg: Config{KeepFirst: 1, KeepLast: 1}},
		{name: "all ops quantized, 0.1% percentiles (session 1)", cfg: Config{KeepFirst: 1, KeepLast: 1, Percentile: 0.1}},
		{name: "all ops, last 20 conv float, 0.1%", cfg: Config{KeepFirst: 1, KeepLast: 20, Percentile: 0.1}},
		{name: "conv only, float skip, min/max", cfg: fs(1, 0)},
		{name: "conv only, float skip, 0.1%", cfg: fs(1, 0.1)},
		{name: "conv only, float skip, least-squared error", cfg: fs(1, -1)},
		{name: "pointwise conv only, float skip, min/max", cfg: Config{KeepFirst: 1, KeepLast: 1, Ops: conv, FloatSkip: true, Exclude: []string{"depthwise"}}},
		{name: "conv only, float skip, last 12 float, min/max", cfg: fs(12, 0)},
		{name: "conv only, float skip, last 16 float, min/max", cfg: fs(16, 0)},
		{name: "conv only, float skip, last 20 float, min/max", cfg: fs(20, 0)},
		{name: "conv only, float skip, last 20 float, min/max, kiosk calibration", cfg: fs(20, 0), kiosk: true},
		{name: "conv only, float skip, last 20 float, 0.1%", cfg: fs(20, 0.1)},
		{name: "conv only, float skip, last 20 float, least-squared error (DetectorConfig)", cfg: DetectorConfig()},
		{name: fmt.Sprintf("conv only, float skip, last %d float, min/max", convs/2), cfg: fs(convs/2, 0)},
		{name: "all ops in the 24-channel blocks only, least-squared error", cfg: Config{KeepFirst: 1, Percentile: -1}, stage1: true},
		{name: "same, blocks padded to 32 channels", cfg: Config{KeepFirst: 1, Percentile: -1}, stage1: true, pad32: true},
		{name: "FP32, blocks padded to 32 channels (timing only)", pad32: true, float: true},
	}
}

func sweepDetector(t *testing.T, rt *inference.Runtime, models, name, detector string) {
	man, err := manifest.Load(models)
	if err != nil {
		t.Fatal(err)
	}
	fpBytes, fpEntry, err := man.ReadModel(models, name, manifest.FP32)
	if err != nil {
		t.Fatal(err)
	}
	var raw onnxpb.ModelProto
	if err := proto.Unmarshal(fpBytes, &raw); err != nil {
		t.Fatal(err)
	}
	var convs int
	var depthwise []string
	isConv := map[string]bool{}
	for _, n := range raw.GetGraph().GetNode() {
		if n.GetOpType() == "Conv" {
			convs++
			isConv[n.GetName()] = true
			if attrInt(n, "group") > 1 {
				depthwise = append(depthwise, n.GetName())
			}
		}
	}
	// Calibration inputs: the photos, and their faces reframed at kiosk
	// sizes (slightly larger than the check sizes, so as not to calibrate
	// on the check framing).
	full, err := inference.New(rt, inference.Config{ModelsDir: models})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	var calib, calibKiosk [][]float32
	for _, p := range photoPaths(t, calibPhotos) {
		im := loadPhoto(t, p)
		ins, err := full.ModelInputs(im)
		if err != nil {
			t.Fatal(err)
		}
		calib = append(calib, ins[name]...)
		faces, err := full.Detect(im)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range faces {
			for _, frac := range kioskFractions {
				frame, _ := kioskFrame(im, f.Box, 1.1*frac)
				ins, err := full.ModelInputs(frame)
				if err != nil {
					t.Fatal(err)
				}
				calibKiosk = append(calibKiosk, ins[name]...)
			}
		}
	}
	calibKiosk = append(calibKiosk, calib...)
	photos, kiosk := detectorCases(t, rt, models, detector)
	fpMs, fpOps := sweepSpeed(t, rt, fpBytes, fpEntry, calib[0])
	t.Logf("%s FP32: %.2f ms/run on 1 thread; ORT kernels: %s", name, fpMs, fpOps)
	t.Logf("| %s variant | convs int8 | photos: worst (by face size) | photos mean | kiosk 20/30/45%%: worst | kiosk mean | ms (FP32 %.2f) |", name, fpMs)
	padded := padChannels(t, &raw, 24, 32)
	for _, v := range sweepVariants(convs) {
		if (v.stage1 || v.pad32) && name != "blazeface" {
			continue // blazeface-front's channel count changes at every block
		}
		base := fpBytes
		if v.pad32 {
			base = padded
		}
		if v.float {
			ms, ops := sweepSpeed(t, rt, base, fpEntry, calib[0])
			t.Logf("| %s | 0 of %d | | | | | %.2f |", v.name, convs, ms)
			t.Logf("  ORT kernels: %s", ops)
			continue
		}
		cfg := v.cfg
		if v.stage1 {
			cfg.Exclude = stage1Exclude(&raw)
		}
		if len(cfg.Exclude) == 1 && cfg.Exclude[0] == "depthwise" {
			cfg.Exclude = depthwise
		}
		samples := calib
		if v.kiosk {
			samples = calibKiosk
		}
		qb, _, rep, err := quantizeBytes(rt, base, fpEntry, samples, cfg)
		if err != nil {
			t.Fatal(err)
		}
		q, err := inference.New(rt, inference.Config{ModelsDir: int8ModelsDir(t, models, name, qb), Detector: detector, Precision: manifest.INT8})
		if err != nil {
			t.Fatal(err)
		}
		pi := compareDetector(t, q, photos)
		ki := compareDetector(t, q, kiosk)
		q.Close()
		// Worst IoU per face-size band of the photos as they are.
		bands := map[string]float64{}
		for i, c := range photos {
			b := "≥15%"
			switch {
			case c.frac < 0.09:
				b = "<9%"
			case c.frac < 0.15:
				b = "9-15%"
			}
			if w, ok := bands[b]; !ok || pi[i] < w {
				bands[b] = pi[i]
			}
		}
		var bs []string
		for _, b := range []string{"<9%", "9-15%", "≥15%"} {
			if w, ok := bands[b]; ok {
				bs = append(bs, fmt.Sprintf("%s %.3f", b, w))
			}
		}
		floatConvs := 0
		for _, k := range rep.Kept {
			if isConv[k] {
				floatConvs++
			}
		}
		pw, pm := worstMean(pi)
		kw, km := worstMean(ki)
		ms, ops := sweepSpeed(t, rt, qb, fpEntry, calib[0])
		t.Logf("| %s | %d of %d | %.3f (%s) | %.3f | %.3f | %.3f | %.2f |", v.name, convs-floatConvs, convs, pw, strings.Join(bs, ", "), pm, kw, km, ms)
		t.Logf("  ORT kernels: %s", ops)
	}
	if name == "blazeface" {
		stage1 := Config{KeepFirst: 1, Percentile: -1, Exclude: stage1Exclude(&raw)}
		models := map[string][]byte{"fp32": fpBytes, "fp32, padded to 32": padded}
		for label, q := range map[string]struct {
			base []byte
			cfg  Config
		}{
			"int8 24-channel blocks":               {fpBytes, stage1},
			"int8 24-channel blocks, padded to 32": {padded, stage1},
			"int8 DetectorConfig":                  {fpBytes, DetectorConfig()},
		} {
			qb, _, _, err := quantizeBytes(rt, q.base, fpEntry, calib, q.cfg)
			if err != nil {
				t.Fatal(err)
			}
			models[label] = qb
		}
		sweepInterleaved(t, rt, fpEntry, calib[0], models, "fp32")
	}
}

// sweepInterleaved runs the models alternately on one thread (300 rounds,
// the first 20 not timed), so that all see the same load, and logs each
// one's mean run time and its ratio to the model named ref.
func sweepInterleaved(t *testing.T, rt *inference.Runtime, e *manifest.Model, input []float32, models map[string][]byte, ref string) {
	t.Helper()
	var names []string
	for n := range models {
		names = append(names, n)
	}
	sort.Strings(names)
	specs := func(ts []manifest.Tensor) []inference.TensorSpec {
		var out []inference.TensorSpec
		for _, x := range ts {
			s := append([]int64(nil), x.Shape...)
			s[0] = 1
			out = append(out, inference.TensorSpec{Name: x.Name, Shape: s})
		}
		return out
	}
	sessions := make([]*inference.Session, len(names))
	for i, n := range names {
		s, err := rt.NewSession(n, models[n], specs(e.Inputs), specs(e.Outputs), inference.SessionConfig{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		copy(s.Input(0), input)
		sessions[i] = s
	}
	const rounds, warm = 300, 20
	spent := make([]time.Duration, len(names))
	for r := 0; r < rounds; r++ {
		for i, s := range sessions {
			start := time.Now()
			if err := s.Run(); err != nil {
				t.Fatal(err)
			}
			if r >= warm {
				spent[i] += time.Since(start)
			}
		}
	}
	refSpent := spent[sort.SearchStrings(names, ref)]
	for i, n := range names {
		t.Logf("interleaved, 1 thread: %-38s %6.2f ms/run, %.2fx %s's time", n, float64(spent[i].Microseconds())/1000/(rounds-warm), float64(spent[i])/float64(refSpent), ref)
	}
}

// sweepSpeed times model on one thread (best of 3 x 50 runs after 20 warm-up
// runs) and returns it with ONNX Runtime's profile of the same session: the
// kernel time per operator type (depthwise convolutions apart), ms per run.
func sweepSpeed(t *testing.T, rt *inference.Runtime, model []byte, e *manifest.Model, input []float32) (float64, string) {
	t.Helper()
	dir := t.TempDir()
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	if err := opts.EnableProfiling(filepath.Join(dir, "prof")); err != nil {
		t.Fatal(err)
	}
	shape := append([]int64(nil), e.Inputs[0].Shape...)
	shape[0] = 1
	in, err := ort.NewTensor(ort.NewShape(shape...), append([]float32(nil), input...))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	var outNames []string
	var outs []ort.Value
	for _, o := range e.Outputs {
		s := append([]int64(nil), o.Shape...)
		s[0] = 1
		v, err := ort.NewEmptyTensor[float32](ort.NewShape(s...))
		if err != nil {
			t.Fatal(err)
		}
		defer v.Destroy()
		outNames, outs = append(outNames, o.Name), append(outs, v)
	}
	s, err := ort.NewAdvancedSessionWithONNXData(model, []string{e.Inputs[0].Name}, outNames, []ort.Value{in}, outs, opts)
	if err != nil {
		t.Fatal(err)
	}
	run := func(n int) {
		for i := 0; i < n; i++ {
			if err := s.Run(); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(20)
	best := math.Inf(1)
	for r := 0; r < 3; r++ {
		start := time.Now()
		run(50)
		best = min(best, float64(time.Since(start).Microseconds())/50/1000)
	}
	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "prof*.json"))
	if len(files) != 1 {
		return best, "no profile"
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var events []struct {
		Cat  string `json:"cat"`
		Name string `json:"name"`
		Dur  int64  `json:"dur"`
		Args struct {
			OpName string `json:"op_name"`
		} `json:"args"`
	}
	if err := json.Unmarshal(b, &events); err != nil {
		t.Fatal(err)
	}
	per := map[string]int64{}
	runs := 0
	for _, ev := range events {
		if ev.Cat == "Session" && ev.Name == "model_run" {
			runs++
		}
		if ev.Cat != "Node" || !strings.HasSuffix(ev.Name, "_kernel_time") {
			continue
		}
		k := ev.Args.OpName
		if strings.Contains(k, "Conv") && strings.Contains(ev.Name, "depthwise") {
			k += "(dw)"
		}
		per[k] += ev.Dur
	}
	var keys []string
	var total int64
	for k, v := range per {
		keys = append(keys, k)
		total += v
	}
	sort.Slice(keys, func(i, j int) bool { return per[keys[i]] > per[keys[j]] })
	var sb strings.Builder
	fmt.Fprintf(&sb, "total %.2f:", float64(total)/float64(max(runs, 1))/1000)
	for _, k := range keys {
		fmt.Fprintf(&sb, " %s %.2f", k, float64(per[k])/float64(max(runs, 1))/1000)
	}
	return best, sb.String()
}

// stage1Exclude names the nodes from the block that first changes the
// channel count on: the depthwise convolution before the first 1x1
// convolution whose output and input channel counts differ, and every node
// after it in graph order (the converter writes nodes in topological
// order).
func stage1Exclude(m *onnxpb.ModelProto) []string {
	dims := map[string][]int64{}
	for _, x := range m.GetGraph().GetInitializer() {
		dims[x.GetName()] = x.GetDims()
	}
	nodes := m.GetGraph().GetNode()
	cut := len(nodes)
	for i, n := range nodes {
		if d := dims[n.GetInput()[min(1, len(n.GetInput())-1)]]; n.GetOpType() == "Conv" && i > 0 && len(d) == 4 && d[0] != d[1] && attrInt(n, "group") <= 1 && d[1] != 3 {
			cut = i - 1
			break
		}
	}
	var out []string
	for _, n := range nodes[cut:] {
		out = append(out, n.GetName())
	}
	return out
}

// padChannels returns m with every from-channel tensor of its convolution
// blocks widened to to channels by zero weights and biases (the extra
// channels stay 0 through ReLU, Add, MaxPool and depthwise convolutions,
// so the outputs are unchanged), and the channel Pad where the blocks
// widen to 2*from shortened to match. m is not modified.
func padChannels(t *testing.T, m *onnxpb.ModelProto, from, to int64) []byte {
	t.Helper()
	c := proto.Clone(m).(*onnxpb.ModelProto)
	inits := map[string]*onnxpb.TensorProto{}
	for _, x := range c.GetGraph().GetInitializer() {
		inits[x.GetName()] = x
	}
	for _, n := range c.GetGraph().GetNode() {
		switch n.GetOpType() {
		case "Conv":
			w := inits[n.GetInput()[1]]
			d := w.GetDims()
			o, i, k := d[0], d[1], d[2]*d[3]
			group := attrInt(n, "group")
			widenIn := i == from && group <= 1
			if o != from && !widenIn {
				continue
			}
			v, err := floats(w)
			if err != nil {
				t.Fatal(err)
			}
			no, ni := o, i
			if o == from {
				no = to
			}
			if widenIn {
				ni = to
			}
			nv := make([]float32, no*ni*k)
			for a := int64(0); a < o; a++ {
				for b := int64(0); b < i; b++ {
					copy(nv[(a*ni+b)*k:(a*ni+b+1)*k], v[(a*i+b)*k:(a*i+b+1)*k])
				}
			}
			setFloats(w, nv)
			w.Dims = []int64{no, ni, d[2], d[3]}
			for _, at := range n.GetAttribute() {
				if at.GetName() == "group" && at.GetI() == from {
					at.I = proto.Int64(to)
				}
			}
			if o == from && len(n.GetInput()) > 2 && n.GetInput()[2] != "" {
				bt := inits[n.GetInput()[2]]
				bv, err := floats(bt)
				if err != nil {
					t.Fatal(err)
				}
				setFloats(bt, append(bv, make([]float32, to-from)...))
				bt.Dims = []int64{to}
			}
		case "Pad":
			// pads: int64 [begin N C H W, end N C H W]; the end C entry
			// adds the new channels.
			raw := inits[n.GetInput()[1]].GetRawData()
			if len(raw) == 64 && int64(binary.LittleEndian.Uint64(raw[40:])) == from {
				binary.LittleEndian.PutUint64(raw[40:], uint64(2*from-to))
			}
		}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
