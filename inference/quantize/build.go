package quantize

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/inference/internal/onnxpb"
	"github.com/glintdev/glint/inference/manifest"
)

// ModelConfig is the per-model quantization setting glint uses: the layers
// kept in float where INT8 cost too much accuracy (docs/models.md has the
// measurements).
func ModelConfig(name string) Config {
	switch name {
	case "blazeface":
		// Box regression is the most sensitive output: min/max ranges
		// left 5 px (of 256) of error on confident anchors, ranges clipped
		// to the 0.1-99.9th percentiles 2 px. Still not enough: see
		// Float.
		return Config{KeepFirst: 1, KeepLast: 1, Percentile: 0.1}
	}
	return Config{KeepFirst: 1, KeepLast: 1}
}

// Float returns why a model stays FP32 in glint's INT8 set, or "" if it is
// quantized. The engine loads the FP32 file for such a model even at INT8
// precision.
func Float(name string) string {
	if name == "blazeface-front" {
		return "short-range detector kept in float like blazeface (its INT8 accuracy was not measured; FP32 already runs in 1.2-2.1 ms on one thread)"
	}
	if name == "blazeface" {
		return "INT8 detector boxes miss the IoU ≥ 0.9 bar against FP32 (worst of 10 check faces 0.862 with 0.1% percentile " +
			"calibration, 0.680 with min/max, 0.674 with least-squared-error ranges; 0.879 even with all 69 convolutions " +
			"in float, so the 8-bit activations of the residual stream are the cause)"
	}
	return ""
}

// Calibrate runs the FP32 model on every sample and returns each named
// tensor's range: the 0.01th and 99.99th percentiles of its values (over a
// uniform sample of at most calibKeep values per tensor), so that a few
// outliers do not stretch the 256 quantization steps over a range the
// tensor almost never uses. With percentile 0 it is the plain min/max.
func Calibrate(rt *inference.Runtime, m *onnxpb.ModelProto, shape []int64, samples [][]float32, names []string, percentile float64) (map[string]Range, error) {
	withOuts := WithOutputs(m, names)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(withOuts)
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	s, err := rt.NewDynamicSession(m.GetGraph().GetName()+" (calibration)", b, m.GetGraph().GetInput()[0].GetName(), names, inference.SessionConfig{})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	vals := make([][]float32, len(names))
	mins := make([]float32, len(names))
	maxs := make([]float32, len(names))
	for i := range names {
		mins[i], maxs[i] = float32(math.Inf(1)), float32(math.Inf(-1))
	}
	for _, x := range samples {
		outs, err := s.Run(shape, x)
		if err != nil {
			return nil, err
		}
		for i := range names {
			o := outs[i]
			step := max(1, len(o)*len(samples)/calibKeep)
			for k, v := range o {
				mins[i], maxs[i] = min(mins[i], v), max(maxs[i], v)
				if k%step == 0 {
					vals[i] = append(vals[i], v)
				}
			}
		}
	}
	ranges := make(map[string]Range, len(names))
	for i, name := range names {
		r := Range{mins[i], maxs[i]}
		if percentile < 0 && len(vals[i]) > 0 {
			r = mseRange(vals[i], r)
		} else if percentile > 0 && len(vals[i]) > 0 {
			v := vals[i]
			sort.Slice(v, func(a, b int) bool { return v[a] < v[b] })
			lo := v[int(float64(len(v)-1)*percentile/100)]
			hi := v[int(float64(len(v)-1)*(1-percentile/100))]
			r = Range{lo, hi}
		}
		ranges[name] = r
	}
	return ranges, nil
}

// mseRange shrinks r towards 0 by the factor (1, 0.95, ..., 0.3) that
// minimises the squared uint8 quantization error over vals.
func mseRange(vals []float32, r Range) Range {
	best, bestErr := r, math.Inf(1)
	for a := 1.0; a > 0.29; a -= 0.05 {
		c := Range{r.Min * float32(a), r.Max * float32(a)}
		s, z := uint8Params(c)
		var e float64
		for _, x := range vals {
			q := math.Max(0, math.Min(255, math.Round(float64(x/s))+float64(z)))
			d := float64(x) - (q-float64(z))*float64(s)
			e += d * d
		}
		if e < bestErr {
			best, bestErr = c, e
		}
	}
	return best
}

// calibKeep bounds the values kept per tensor for the percentiles.
const calibKeep = 200000

// BuildConfig says what Build quantizes.
type BuildConfig struct {
	// ModelsDir holds the FP32 models and the manifest; INT8 models are
	// written beside them as NAME.int8.onnx.
	ModelsDir string
	// Calibration photos (face crops are taken from them); Check photos,
	// kept apart from calibration, for the accuracy report.
	Calibration, Check []string
	// Models to quantize; default: the whole catalog.
	Models []string
	// Logf prints progress; nil for silence.
	Logf func(format string, args ...any)
}

// Accuracy compares INT8 against FP32 outputs on the check photos.
type Accuracy struct {
	Samples int
	// MeanCosine and MinCosine are over the samples' flattened outputs
	// (embedding cosine for embedding models).
	MeanCosine, MinCosine float64
	// MaxAbsDiff is the largest absolute output difference.
	MaxAbsDiff float64
}

// photoInputs runs the FP32 engine over photos and collects every model's
// inputs, plus a digest of the photo bytes.
func photoInputs(eng *inference.Engine, photos []string) (map[string][][]float32, string, error) {
	sorted := append([]string(nil), photos...)
	sort.Strings(sorted)
	h := sha256.New()
	all := map[string][][]float32{}
	for _, p := range sorted {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, "", fmt.Errorf("calibration photo: %w", err)
		}
		h.Write(b)
		im, _, err := inference.DecodeImage(b)
		if err != nil {
			return nil, "", fmt.Errorf("calibration photo %s: %w", p, err)
		}
		ins, err := eng.ModelInputs(im)
		if err != nil {
			return nil, "", err
		}
		for k, v := range ins {
			all[k] = append(all[k], v...)
		}
	}
	return all, hex.EncodeToString(h.Sum(nil)), nil
}

// Build quantizes the manifest's FP32 models to INT8 (calibrated on
// cfg.Calibration), checks them on cfg.Check, and records them in the
// manifest. An INT8 model whose FP32 base, calibration photos and quantizer
// version are unchanged is left alone.
func Build(rt *inference.Runtime, cfg BuildConfig) (map[string]Accuracy, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if len(cfg.Calibration) == 0 {
		return nil, fmt.Errorf("quantize: no calibration photos")
	}
	man, err := manifest.Load(cfg.ModelsDir)
	if err != nil {
		return nil, err
	}
	names := cfg.Models
	if len(names) == 0 {
		for _, s := range manifest.Catalog() {
			names = append(names, s.Name)
		}
	}
	eng, err := inference.New(rt, inference.Config{ModelsDir: cfg.ModelsDir})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	calib, digest, err := photoInputs(eng, cfg.Calibration)
	if err != nil {
		return nil, err
	}
	check, _, err := photoInputs(eng, cfg.Check)
	if err != nil {
		return nil, err
	}
	report := map[string]Accuracy{}
	for _, name := range names {
		fp, err := man.Find(name, manifest.FP32)
		if err != nil {
			return nil, err
		}
		if why := Float(name); why != "" {
			if man.Remove(name, manifest.INT8) {
				if err := man.Save(cfg.ModelsDir); err != nil {
					return nil, err
				}
				os.Remove(filepath.Join(cfg.ModelsDir, name+".int8.onnx"))
			}
			logf("%s stays fp32: %s", name, why)
			continue
		}
		qcfg := ModelConfig(name)
		stamp := fmt.Sprintf("%s %s %+v", fp.Converter, Version, qcfg)
		if e, err := man.Find(name, manifest.INT8); err == nil && e.Base == fp.SHA256 && e.Calibration == digest && e.Converter == stamp {
			if _, _, err := man.ReadModel(cfg.ModelsDir, name, manifest.INT8); err == nil {
				logf("%s int8 up to date", name)
				continue
			}
		}
		b, _, err := man.ReadModel(cfg.ModelsDir, name, manifest.FP32)
		if err != nil {
			return nil, err
		}
		var raw onnxpb.ModelProto
		if err := proto.Unmarshal(b, &raw); err != nil {
			return nil, fmt.Errorf("quantize %s: %w", name, err)
		}
		m := Prepare(&raw)
		shape := append([]int64(nil), fp.Inputs[0].Shape...)
		for i := range shape {
			if shape[i] < 0 {
				shape[i] = 1
			}
		}
		samples := calib[name]
		if len(samples) == 0 {
			return nil, fmt.Errorf("quantize %s: the calibration photos gave no inputs (no faces?)", name)
		}
		ranges, err := Calibrate(rt, m, shape, samples, CalibrationTensors(m, qcfg), qcfg.Percentile)
		if err != nil {
			return nil, err
		}
		qm, rep, err := Quantize(m, ranges, qcfg)
		if err != nil {
			return nil, fmt.Errorf("quantize %s: %w", name, err)
		}
		qb, err := proto.MarshalOptions{Deterministic: true}.Marshal(qm)
		if err != nil {
			return nil, fmt.Errorf("quantize %s: %w", name, err)
		}
		acc, err := compare(rt, name, b, qb, fp, shape, check[name])
		if err != nil {
			return nil, err
		}
		report[name] = acc
		file := name + ".int8.onnx"
		if err := manifest.WriteFileAtomic(filepath.Join(cfg.ModelsDir, file), qb); err != nil {
			return nil, err
		}
		e := *fp
		e.Precision, e.File, e.SHA256, e.Bytes = manifest.INT8, file, manifest.SHA256(qb), int64(len(qb))
		e.Converter = stamp
		e.Quantization = fmt.Sprintf("QDQ: weights int8 symmetric per channel, activations uint8 per tensor (min/max over %d calibration inputs); %d nodes quantized, %d kept float", len(samples), rep.Quantized, rep.Float)
		e.Base, e.Calibration = fp.SHA256, digest
		man.Put(e)
		if err := man.Save(cfg.ModelsDir); err != nil {
			return nil, err
		}
		logf("%s int8: %d → %d bytes (%.0f%%); vs fp32 on %d check inputs: output cosine mean %.4f min %.4f, max abs diff %.4g",
			name, len(b), len(qb), 100*float64(len(qb))/float64(len(b)), acc.Samples, acc.MeanCosine, acc.MinCosine, acc.MaxAbsDiff)
	}
	return report, nil
}

// compare runs the FP32 and INT8 models on the check inputs and compares
// their (first) outputs.
func compare(rt *inference.Runtime, name string, fp32, int8 []byte, e *manifest.Model, shape []int64, samples [][]float32) (Accuracy, error) {
	var acc Accuracy
	if len(samples) == 0 {
		return acc, nil
	}
	var outNames []string
	for _, o := range e.Outputs {
		outNames = append(outNames, o.Name)
	}
	run := func(model []byte, tag string) ([][][]float32, error) {
		s, err := rt.NewDynamicSession(name+" "+tag, model, e.Inputs[0].Name, outNames, inference.SessionConfig{})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		var res [][][]float32
		for _, x := range samples {
			o, err := s.Run(shape, x)
			if err != nil {
				return nil, err
			}
			res = append(res, o)
		}
		return res, nil
	}
	a, err := run(fp32, "fp32")
	if err != nil {
		return acc, err
	}
	b, err := run(int8, "int8")
	if err != nil {
		return acc, err
	}
	acc.MinCosine = 1
	for i := range a {
		var fa, fb []float32
		for k := range a[i] {
			fa = append(fa, a[i][k]...)
			fb = append(fb, b[i][k]...)
			for j := range a[i][k] {
				acc.MaxAbsDiff = math.Max(acc.MaxAbsDiff, math.Abs(float64(a[i][k][j]-b[i][k][j])))
			}
		}
		c := inference.Cosine(fa, fb)
		acc.MeanCosine += c
		acc.MinCosine = math.Min(acc.MinCosine, c)
	}
	acc.Samples = len(a)
	acc.MeanCosine /= float64(len(a))
	return acc, nil
}
