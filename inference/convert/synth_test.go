package convert_test

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// synth builds a TFJS graph model (model.json + one shard) in a test, so
// the converter's ops beyond those of the shipped models are checked against
// TFJS too.
type synth struct {
	nodes   []map[string]any
	weights []map[string]any
	data    []byte
	rng     *rand.Rand
}

func newSynth() *synth { return &synth{rng: rand.New(rand.NewPCG(7, 7))} }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func ints(v ...int) map[string]any {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return map[string]any{"list": map[string]any{"i": s}}
}

func str(s string) map[string]any { return map[string]any{"s": b64(s)} }

func strs(v ...string) map[string]any {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = b64(x)
	}
	return map[string]any{"list": map[string]any{"s": s}}
}

func (s *synth) node(name, op string, attr map[string]any, inputs ...string) string {
	n := map[string]any{"name": name, "op": op, "input": inputs}
	if attr != nil {
		n["attr"] = attr
	}
	s.nodes = append(s.nodes, n)
	return name
}

func (s *synth) placeholder(name string, shape ...int) string {
	dims := make([]map[string]any, len(shape))
	for i, d := range shape {
		dims[i] = map[string]any{"size": strconv.Itoa(d)}
	}
	return s.node(name, "Placeholder", map[string]any{
		"dtype": map[string]any{"type": "DT_FLOAT"},
		"shape": map[string]any{"shape": map[string]any{"dim": dims}},
	})
}

// constF adds a float32 weight with random values in [-1, 1), stored as
// dtype: "float32", "float16" or "uint8" (affine quantised).
func (s *synth) constF(name, stored string, shape ...int) string {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = 2*s.rng.Float32() - 1
	}
	return s.constValues(name, stored, shape, v)
}

func (s *synth) constValues(name, stored string, shape []int, v []float32) string {
	spec := map[string]any{"name": name, "shape": shape, "dtype": "float32"}
	switch stored {
	case "float32":
		for _, f := range v {
			s.data = binary.LittleEndian.AppendUint32(s.data, math.Float32bits(f))
		}
	case "float16":
		spec["quantization"] = map[string]any{"dtype": "float16", "original_dtype": "float32"}
		for _, f := range v {
			s.data = binary.LittleEndian.AppendUint16(s.data, floatToHalf(f))
		}
	case "uint8":
		lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
		for _, f := range v {
			lo, hi = min(lo, f), max(hi, f)
		}
		scale := (hi - lo) / 255
		spec["quantization"] = map[string]any{"dtype": "uint8", "scale": scale, "min": lo, "original_dtype": "float32"}
		for _, f := range v {
			s.data = append(s.data, byte(math.Round(float64((f-lo)/scale))))
		}
	}
	s.weights = append(s.weights, spec)
	return s.node(name, "Const", map[string]any{"dtype": map[string]any{"type": "DT_FLOAT"}})
}

func (s *synth) constI(name string, v ...int) string {
	return s.constIS(name, []int{len(v)}, v...)
}

func (s *synth) constIS(name string, shape []int, v ...int) string {
	for _, x := range v {
		s.data = binary.LittleEndian.AppendUint32(s.data, uint32(int32(x)))
	}
	s.weights = append(s.weights, map[string]any{"name": name, "shape": shape, "dtype": "int32"})
	return s.node(name, "Const", map[string]any{"dtype": map[string]any{"type": "DT_INT32"}})
}

func (s *synth) scalarI(name string, v int) string {
	s.data = binary.LittleEndian.AppendUint32(s.data, uint32(int32(v)))
	s.weights = append(s.weights, map[string]any{"name": name, "shape": []int{}, "dtype": "int32"})
	return s.node(name, "Const", map[string]any{"dtype": map[string]any{"type": "DT_INT32"}})
}

// write writes model.json and its shard into dir and returns model.json's
// path.
func (s *synth) write(t *testing.T, dir, name string) string {
	t.Helper()
	mj := map[string]any{
		"format": "graph-model", "generatedBy": "glint test", "convertedBy": "glint test",
		"modelTopology":   map[string]any{"node": s.nodes, "library": map[string]any{}, "versions": map[string]any{}},
		"weightsManifest": []any{map[string]any{"paths": []string{name + ".bin"}, "weights": s.weights}},
	}
	b, err := json.Marshal(mj)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".bin"), s.data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// floatToHalf rounds f to binary16 (normal range, round to nearest even).
func floatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	frac := b & 0x7fffff
	if exp <= 0 {
		return sign // flush tiny values to zero (test data avoids them)
	}
	h := uint32(exp)<<10 | frac>>13
	rem := frac & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}

// synthModel is a graph using ops beyond the shipped models': explicit
// Pad, depthwise with channel multiplier, AvgPool, ResizeBilinear, ConcatV2,
// Mean/Sum with and without keep_dims, constant-folded
// Shape/StridedSlice/Pack feeding Reshape, Squeeze, fused MatMul, Softmax,
// Relu6/LeakyRelu/Tanh/Abs/Exp/Neg, nearest-neighbour resizes, and float16
// + uint8 weights.
func synthModel() *synth {
	s := newSynth()
	x := s.placeholder("input", 1, 16, 16, 3)
	c1 := s.node("c1", "_FusedConv2D", map[string]any{
		"strides": ints(1, 2, 2, 1), "padding": str("SAME"), "data_format": str("NHWC"),
		"dilations": ints(1, 1, 1, 1), "fused_ops": strs("BiasAdd", "Relu6"), "num_args": map[string]any{"i": "1"},
	}, x, s.constF("k1", "uint8", 3, 3, 3, 4), s.constF("b1", "float16", 4))
	p := s.node("pad", "Pad", nil, c1, s.constIS("paddings", []int{4, 2}, 0, 0, 1, 1, 1, 1, 0, 0))
	d := s.node("dw", "DepthwiseConv2dNative", map[string]any{
		"strides": ints(1, 1, 1, 1), "padding": str("VALID"), "data_format": str("NHWC"), "dilations": ints(1, 1, 1, 1),
	}, p, s.constF("kd", "float16", 3, 3, 4, 2))
	a := s.node("avg", "AvgPool", map[string]any{
		"ksize": ints(1, 3, 3, 1), "strides": ints(1, 1, 1, 1), "padding": str("SAME"), "data_format": str("NHWC"),
	}, d)
	r := s.node("resize", "ResizeBilinear", map[string]any{"align_corners": map[string]any{"b": false}, "half_pixel_centers": map[string]any{"b": true}},
		a, s.constI("size", 12, 12))
	lr := s.node("lrelu", "LeakyRelu", map[string]any{"alpha": map[string]any{"f": 0.1}}, r)
	th := s.node("tanh", "Tanh", nil, r)
	cat := s.node("cat", "ConcatV2", nil, lr, th, s.scalarI("axis", -1))
	mx := s.node("maxpool", "MaxPool", map[string]any{
		"ksize": ints(1, 2, 2, 1), "strides": ints(1, 2, 2, 1), "padding": str("VALID"), "data_format": str("NHWC"),
	}, cat)
	mean := s.node("mean", "Mean", map[string]any{"keep_dims": map[string]any{"b": false}}, mx, s.constI("axes", 1, 2))
	fm := s.node("fc", "_FusedMatMul", map[string]any{
		"fused_ops": strs("BiasAdd", "Relu"), "num_args": map[string]any{"i": "1"}, "transpose_a": map[string]any{"b": false}, "transpose_b": map[string]any{"b": false},
	}, mean, s.constF("w", "float32", 16, 5), s.constF("bw", "float32", 5))
	s.node("probs", "Softmax", nil, fm)

	// Channel sum, non-order-preserving reduce: [1,6,6,16] → [1,6,6].
	ab := s.node("abs", "Abs", nil, mx)
	s.node("chansum", "Sum", map[string]any{"keep_dims": map[string]any{"b": false}}, ab, s.scalarI("chanaxis", 3))

	// Reshape to [batch, -1] with a constant-folded shape.
	sq := s.node("square", "Square", nil, mx)
	sum := s.node("sum", "Sum", map[string]any{"keep_dims": map[string]any{"b": true}}, sq, s.constI("sumaxes", 3))
	mxm := s.node("maxim", "Maximum", nil, sum, s.constValues("eps", "float32", []int{}, []float32{1e-3}))
	rs := s.node("rsqrt", "Rsqrt", nil, mxm)
	shp := s.node("shape", "Shape", map[string]any{"out_type": map[string]any{"type": "DT_INT32"}}, rs)
	bat := s.node("batch", "StridedSlice", map[string]any{"shrink_axis_mask": map[string]any{"i": "1"}},
		shp, s.constI("ss_b", 0), s.constI("ss_e", 1), s.constI("ss_s", 1))
	pk := s.node("pack", "Pack", map[string]any{"axis": map[string]any{"i": "0"}}, bat, s.scalarI("minus1", -1))
	s.node("flat", "Reshape", nil, rs, pk)

	// Squeeze after keep_dims Mean, then Sub/Mul/Exp/Neg/Minimum.
	mk := s.node("meankeep", "Mean", map[string]any{"keep_dims": map[string]any{"b": true}}, cat, s.constI("axes2", 1, 2))
	sqz := s.node("squeeze", "Squeeze", map[string]any{"squeeze_dims": ints(1, 2)}, mk)
	sub := s.node("sub", "Sub", nil, sqz, mean)
	mul := s.node("mul", "Mul", nil, sub, s.constF("scale", "float32", 16))
	ng := s.node("neg", "Neg", nil, mul)
	s.node("expmin", "Minimum", nil, s.node("exp", "Exp", nil, ng), s.constValues("cap", "float32", []int{}, []float32{2}))

	// Nearest-neighbour resizes (half-pixel and align-corners), upsampling
	// and downsampling, and a Relu6 / Sigmoid on the way.
	nn1 := s.node("nn_half", "ResizeNearestNeighbor", map[string]any{"align_corners": map[string]any{"b": false}, "half_pixel_centers": map[string]any{"b": true}},
		a, s.constI("nnsize1", 9, 7))
	nn2 := s.node("nn_align", "ResizeNearestNeighbor", map[string]any{"align_corners": map[string]any{"b": true}, "half_pixel_centers": map[string]any{"b": false}},
		s.node("relu6", "Relu6", nil, nn1), s.constI("nnsize2", 5, 6))
	s.node("nn_out", "Sigmoid", nil, nn2)
	return s
}
