package quantize

import (
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/glintdev/glint/inference/internal/onnxpb"
)

func TestUint8Params(t *testing.T) {
	tests := []struct {
		r     Range
		scale float32
		zp    uint8
	}{
		{Range{0, 6}, 6.0 / 255, 0},
		{Range{-1, 1}, 2.0 / 255, 128},
		{Range{2, 4}, 4.0 / 255, 0},     // 0 is always representable
		{Range{-5, -1}, 5.0 / 255, 255}, // all negative
		{Range{0, 0}, 1, 0},
	}
	for _, tt := range tests {
		s, z := uint8Params(tt.r)
		if math.Abs(float64(s-tt.scale)) > 1e-7 || z != tt.zp {
			t.Errorf("uint8Params(%v) = %g, %d; want %g, %d", tt.r, s, z, tt.scale, tt.zp)
		}
	}
}

// node builds a NodeProto.
func node(op, name string, in []string, out string) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Name: proto.String(name), OpType: proto.String(op), Input: in, Output: []string{out}}
}

// convGraph is x → Conv(W [2,1,1,1], B) → Mul(c) → Add(d) → Relu → y.
func convGraph() *onnxpb.GraphProto {
	return &onnxpb.GraphProto{
		Input: []*onnxpb.ValueInfoProto{{Name: proto.String("x"), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT))}}}}},
		Output: []*onnxpb.ValueInfoProto{{Name: proto.String("y")}},
		Initializer: []*onnxpb.TensorProto{
			floatTensor("W", []int64{2, 1, 1, 1}, []float32{1, -2}),
			floatTensor("B", []int64{2}, []float32{0.5, 1}),
			floatTensor("c", []int64{1, 2, 1, 1}, []float32{3, 4}),
			floatTensor("d", []int64{2, 1, 1}, []float32{10, 20}),
		},
		Node: []*onnxpb.NodeProto{
			node("Conv", "conv", []string{"x", "W", "B"}, "c0"),
			node("Mul", "mul", []string{"c0", "c"}, "m0"),
			node("Add", "add", []string{"m0", "d"}, "a0"),
			node("Relu", "relu", []string{"a0"}, "y"),
		},
	}
}

func TestFoldAffine(t *testing.T) {
	g := convGraph()
	if n := foldAffine(g); n != 2 {
		t.Fatalf("folded %d, want 2 (Mul and Add)", n)
	}
	if len(g.Node) != 2 || g.Node[0].GetOutput()[0] != "a0" {
		t.Fatalf("nodes after folding: %v", g.Node)
	}
	inits := map[string][]float32{}
	for _, t := range g.Initializer {
		inits[t.GetName()], _ = floats(t)
	}
	// W' = W*c, B' = B*c + d.
	want := map[string][]float32{"W": {3, -8}, "B": {11.5, 24}}
	for k, w := range want {
		for i := range w {
			if inits[k][i] != w[i] {
				t.Errorf("%s = %v, want %v", k, inits[k], w)
			}
		}
	}
	if _, ok := inits["c"]; ok {
		t.Error("folded constant c not pruned")
	}
}

func TestCollapseActivationsOnlyWithQDQ(t *testing.T) {
	g := convGraph()
	foldAffine(g)
	// y is a graph output here: no QDQ pair would clip, so nothing collapses.
	if n := collapseActivations(g, func(*onnxpb.NodeProto, string) bool { return false }); n != 0 {
		t.Fatalf("collapsed %d without QDQ", n)
	}
	if n := collapseActivations(g, func(_ *onnxpb.NodeProto, t string) bool { return t == "y" }); n != 0 {
		t.Fatalf("collapsed %d: a graph output must stay", n)
	}
	g.Output[0].Name = proto.String("z")
	g.Node = append(g.Node, node("Identity", "id", []string{"y"}, "z"))
	if n := collapseActivations(g, func(_ *onnxpb.NodeProto, t string) bool { return t == "y" }); n != 1 {
		t.Fatalf("collapsed %d, want 1", n)
	}
	if g.Node[0].GetOutput()[0] != "y" || len(g.Node) != 2 {
		t.Fatalf("Conv should now produce y directly: %v", g.Node)
	}
}

func TestWeightsPerChannel(t *testing.T) {
	b := &qbuilder{g: &onnxpb.GraphProto{}, wscales: map[*onnxpb.NodeProto][]float32{}}
	n := node("Conv", "conv", []string{"x", "W"}, "y")
	vals := []float32{0.5, -1, 0.25, 100, -50, 25} // 2 channels of 3
	b.weights(n, "W", []int64{2, 3, 1, 1}, vals, 0)
	s := b.wscales[n]
	if len(s) != 2 || math.Abs(float64(s[0]-1.0/127)) > 1e-9 || math.Abs(float64(s[1]-100.0/127)) > 1e-6 {
		t.Fatalf("scales %v", s)
	}
	q := b.g.Initializer[0].GetRawData()
	for i, v := range vals {
		got := float32(int8(q[i])) * s[i/3]
		if math.Abs(float64(got-v)) > float64(s[i/3])/2+1e-6 {
			t.Errorf("w[%d] = %g dequantizes to %g", i, v, got)
		}
	}
}

func TestMSERangeIgnoresOutlier(t *testing.T) {
	// A million values in [0, 0.1) and one at 1: the full range wastes
	// resolution on the one, so the least-error range is narrower.
	vals := make([]float32, 1_000_000)
	for i := range vals {
		vals[i] = float32(i%1000) / 10000
	}
	vals[0] = 1
	r := mseRange(vals, Range{0, 1})
	if r.Max >= 1 || r.Min != 0 {
		t.Errorf("range %+v: the outlier should have been clipped", r)
	}
}

// residualGraph is x → Add(x, x) → Relu → a; a → Conv → c; y = Add(a, c):
// a residual block whose skip input a is also a convolution's input.
func residualGraph() *onnxpb.ModelProto {
	in := func(name string) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT))}}}}
	}
	return &onnxpb.ModelProto{Graph: &onnxpb.GraphProto{
		Input:  []*onnxpb.ValueInfoProto{in("x")},
		Output: []*onnxpb.ValueInfoProto{in("y")},
		Initializer: []*onnxpb.TensorProto{
			floatTensor("W", []int64{2, 2, 1, 1}, []float32{1, -2, 0.5, 3}),
			floatTensor("B", []int64{2}, []float32{0.5, 1}),
		},
		Node: []*onnxpb.NodeProto{
			node("Add", "add0", []string{"x", "x"}, "s"),
			node("Relu", "relu", []string{"s"}, "a"),
			node("Conv", "conv", []string{"a", "W", "B"}, "c"),
			node("Add", "add", []string{"a", "c"}, "y"),
		},
	}}
}

// TestFloatSkip: with FloatSkip and only convolutions quantized, the
// residual Add reads the skip input a exactly (not its QDQ pair) and the
// convolution's output through its QDQ pair, and the ReLU before a float
// reader is not absorbed (its clip would be lost on the float path).
// Without FloatSkip every reader of a reads the dequantized value.
func TestFloatSkip(t *testing.T) {
	ranges := map[string]Range{"x": {-1, 1}, "s": {-2, 2}, "a": {0, 2}, "c": {-4, 8}, "y": {-4, 10}}
	inputs := func(cfg Config) (map[string][]string, map[string]bool) {
		t.Helper()
		m := Prepare(residualGraph())
		for _, name := range CalibrationTensors(m, cfg) {
			if _, ok := ranges[name]; !ok {
				t.Fatalf("no test range for %q", name)
			}
		}
		q, _, err := Quantize(m, ranges, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ins := map[string][]string{}
		ops := map[string]bool{}
		for _, n := range q.GetGraph().GetNode() {
			ins[n.GetName()] = n.GetInput()
			ops[n.GetOpType()] = true
		}
		return ins, ops
	}
	ins, ops := inputs(Config{Ops: []string{"Conv"}, FloatSkip: true})
	if got := ins["add"]; len(got) != 2 || got[0] != "a" || got[1] != "c/dq" {
		t.Errorf("float skip: residual Add reads %v, want [a c/dq]", got)
	}
	if got := ins["conv"]; len(got) < 1 || got[0] != "a/dq" {
		t.Errorf("float skip: Conv reads %v, want a/dq first", got)
	}
	if !ops["Relu"] {
		t.Error("float skip: the ReLU before the float Add was absorbed")
	}
	ins, _ = inputs(Config{Ops: []string{"Conv"}})
	if got := ins["add"]; len(got) != 2 || got[0] != "a/dq" {
		t.Errorf("without float skip: residual Add reads %v, want a/dq first", got)
	}
}
