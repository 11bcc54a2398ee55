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
	"github.com/glintdev/glint/internal/fsutil"
)

// ModelConfig is the per-model quantization setting glint uses: the layers
// kept in float where INT8 cost too much accuracy (docs/models.md has the
// measurements).
func ModelConfig(name string) Config {
	switch name {
	case "blazeface", "blazeface-front":
		return DetectorConfig()
	}
	return Config{KeepFirst: 1, KeepLast: 1}
}

// DetectorConfig returns the INT8 setting of both BlazeFace detectors, one
// of the variants measured in docs/models.md whose boxes stay within IoU
// 0.9 of FP32 on every check face: only convolutions are quantized
// (FloatSkip: the residual stream, its Adds, ReLUs, MaxPools and channel
// Pads stay float), the last 20 convolutions (the low-resolution blocks
// and the heads) and the first stay float, and activation ranges are the
// least-squared-error ones. Quantizing the deep blocks, or the residual
// stream along the whole network, moved boxes by up to 5 px of 256 (IoU
// down to 0.60). A blazeface-only variant (every op of its 24-channel
// blocks, nothing after) is as accurate and less slow, but like this one
// slower than FP32, so neither ships (Float).
func DetectorConfig() Config {
	return Config{KeepFirst: 1, KeepLast: 20, Ops: []string{"Conv"}, FloatSkip: true, Percentile: -1}
}

// Float returns why a model stays FP32 in glint's INT8 set, or "" if it is
// quantized. The engine loads the FP32 file for such a model even at INT8
// precision. Candidate still builds its INT8 model, for the accuracy test
// and the benchmarks.
func Float(name string) string {
	switch name {
	case "blazeface", "blazeface-front":
		return "its INT8 model (DetectorConfig) keeps the boxes within IoU 0.9 of FP32 but runs slower than FP32 " +
			"with ONNX Runtime's CPU kernels (int8 depthwise convolutions are 2-4x slower than the float NCHWc ones, " +
			"and every float/int8 boundary adds QuantizeLinear, DequantizeLinear and NHWC transposes): docs/models.md"
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
		b, qb, shape, rep, err := quantizeModel(rt, man, cfg.ModelsDir, name, calib[name], qcfg)
		if err != nil {
			return nil, err
		}
		samples := calib[name]
		acc, err := compare(rt, name, b, qb, fp, shape, check[name])
		if err != nil {
			return nil, err
		}
		report[name] = acc
		file := name + ".int8.onnx"
		if err := fsutil.WriteFileAtomic(filepath.Join(cfg.ModelsDir, file), qb, 0o644); err != nil {
			return nil, err
		}
		e := *fp
		e.Precision, e.File, e.SHA256, e.Bytes = manifest.INT8, file, manifest.SHA256(qb), int64(len(qb))
		e.Converter = stamp
		e.Quantization = fmt.Sprintf("QDQ: weights int8 symmetric per channel, activations uint8 per tensor (%s over %d calibration inputs); %d nodes quantized, %d kept float", rangeRule(qcfg.Percentile), len(samples), rep.Quantized, rep.Float)
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

// rangeRule describes Config.Percentile for the manifest.
func rangeRule(p float64) string {
	switch {
	case p < 0:
		return "least-squared-error ranges"
	case p > 0:
		return fmt.Sprintf("%g-%gth percentile ranges", p, 100-p)
	}
	return "min/max ranges"
}

// quantizeModel quantizes the manifest's FP32 model name with qcfg,
// calibrated on samples (its inputs), and returns the FP32 and INT8 model
// bytes, the input shape (batch 1) and the report.
func quantizeModel(rt *inference.Runtime, man *manifest.Manifest, dir, name string, samples [][]float32, qcfg Config) (fpModel, qModel []byte, shape []int64, rep *Report, err error) {
	b, fp, err := man.ReadModel(dir, name, manifest.FP32)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	qb, shape, rep, err := quantizeBytes(rt, b, fp, samples, qcfg)
	return b, qb, shape, rep, err
}

// quantizeBytes is quantizeModel for the FP32 model b, whose manifest
// entry (inputs, name) is fp.
func quantizeBytes(rt *inference.Runtime, b []byte, fp *manifest.Model, samples [][]float32, qcfg Config) (qModel []byte, shape []int64, rep *Report, err error) {
	name := fp.Name
	var raw onnxpb.ModelProto
	if err := proto.Unmarshal(b, &raw); err != nil {
		return nil, nil, nil, fmt.Errorf("quantize %s: %w", name, err)
	}
	m := Prepare(&raw)
	shape = append([]int64(nil), fp.Inputs[0].Shape...)
	for i := range shape {
		if shape[i] < 0 {
			shape[i] = 1
		}
	}
	if len(samples) == 0 {
		return nil, nil, nil, fmt.Errorf("quantize %s: the calibration photos gave no inputs (no faces?)", name)
	}
	ranges, err := Calibrate(rt, m, shape, samples, CalibrationTensors(m, qcfg), qcfg.Percentile)
	if err != nil {
		return nil, nil, nil, err
	}
	qm, rep, err := Quantize(m, ranges, qcfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("quantize %s: %w", name, err)
	}
	qb, err := proto.MarshalOptions{Deterministic: true}.Marshal(qm)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("quantize %s: %w", name, err)
	}
	return qb, shape, rep, nil
}

// Candidate quantizes the FP32 model name of modelsDir with cfg (normally
// ModelConfig(name)), calibrated on the inputs the engine produces for the
// calibration photos, and returns the INT8 model without writing anything.
// For a model that Float keeps in float it is the INT8 model whose
// accuracy (TestDetectorInt8Accuracy) and speed (the inference benchmarks)
// docs/models.md reports.
func Candidate(rt *inference.Runtime, modelsDir, name string, calibration []string, cfg Config) ([]byte, *Report, error) {
	man, err := manifest.Load(modelsDir)
	if err != nil {
		return nil, nil, err
	}
	eng, err := inference.New(rt, inference.Config{ModelsDir: modelsDir})
	if err != nil {
		return nil, nil, err
	}
	defer eng.Close()
	calib, _, err := photoInputs(eng, calibration)
	if err != nil {
		return nil, nil, err
	}
	_, qb, _, rep, err := quantizeModel(rt, man, modelsDir, name, calib[name], cfg)
	return qb, rep, err
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
