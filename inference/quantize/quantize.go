// Package quantize turns the converter's FP32 ONNX models into INT8 models
// in QDQ form (QuantizeLinear/DequantizeLinear pairs that ONNX Runtime fuses
// into integer kernels): weights int8, symmetric, per output channel;
// activations uint8, asymmetric, per tensor, with ranges calibrated
// statically by running the FP32 model on face crops from registry photos.
// Chosen nodes (the first and last layers, where accuracy needs it) stay in
// float.
package quantize

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/glintdev/glint/inference/internal/onnxpb"
)

// Version identifies the quantizer's output, for the manifest.
const Version = "glint-quantize/7"

// Range is an activation's calibrated value range.
type Range struct{ Min, Max float32 }

// Config tunes Quantize.
type Config struct {
	// Exclude lists node names (ONNX node names, which the converter derives
	// from the TF node names) to keep in float.
	Exclude []string
	// KeepFirst and KeepLast keep that many Conv/Gemm nodes in float at the
	// start and end of the graph (in graph order).
	KeepFirst, KeepLast int
	// Ops limits quantization to these op types (default: every type in
	// the quantizable table).
	Ops []string
	// Percentile clips calibrated activation ranges to the [p, 100-p]
	// percentiles; 0 means min/max; negative means the range (min/max
	// shrunk by up to 70%) with the least squared quantization error.
	Percentile float64
	// FloatSkip keeps the tensors that float nodes read in float: a tensor
	// produced by a float node (a residual Add, ReLU, MaxPool, Pad) and read
	// both by a quantized node and by a float one gets its QDQ pair for the
	// quantized reader only, and the float reader keeps the exact value.
	// Without it every reader of a QDQ'd tensor reads the dequantized
	// value. With Ops limited to Conv this quantizes the convolution
	// branches of a residual network and leaves its skip path (the
	// residual stream) in float, so that quantization errors do not
	// accumulate along it.
	FloatSkip bool
}

func (c Config) quantizes(op string) bool {
	if _, ok := quantizable[op]; !ok {
		return false
	}
	if len(c.Ops) == 0 {
		return true
	}
	for _, o := range c.Ops {
		if o == op {
			return true
		}
	}
	return false
}

// quantizable lists the op types that get QDQ and, per op, which inputs
// are quantized (nil: all float inputs).
var quantizable = map[string][]int{
	"Conv":        {0, 1, 2},
	"Gemm":        {0, 1, 2},
	"Add":         nil,
	"MaxPool":     {0},
	"AveragePool": {0},
	"Concat":      nil,
	"Relu":        {0},
	"Pad":         {0},
	"Transpose":   {0},
	"Reshape":     {0},
	"Squeeze":     {0},
}

// Report says what Quantize did.
type Report struct {
	// Quantized and Float count the nodes of quantizable op types that were
	// quantized or kept in float.
	Quantized, Float int
	// Kept names the nodes kept in float on purpose.
	Kept []string
	// QDQ is the number of activation tensors that got a QDQ pair.
	QDQ int
}

// graphInfo indexes a graph.
type graphInfo struct {
	g         *onnxpb.GraphProto
	inits     map[string]*onnxpb.TensorProto
	producer  map[string]*onnxpb.NodeProto
	isFloat   map[string]bool
	graphOuts map[string]bool
}

func index(g *onnxpb.GraphProto) *graphInfo {
	gi := &graphInfo{g: g, inits: map[string]*onnxpb.TensorProto{}, producer: map[string]*onnxpb.NodeProto{},
		isFloat: map[string]bool{}, graphOuts: map[string]bool{}}
	for _, t := range g.GetInitializer() {
		gi.inits[t.GetName()] = t
		gi.isFloat[t.GetName()] = t.GetDataType() == int32(onnxpb.TensorProto_FLOAT)
	}
	for _, in := range g.GetInput() {
		gi.isFloat[in.GetName()] = in.GetType().GetTensorType().GetElemType() == int32(onnxpb.TensorProto_FLOAT)
	}
	for _, o := range g.GetOutput() {
		gi.graphOuts[o.GetName()] = true
	}
	// Nodes are in topological order (the converter writes them so).
	for _, n := range g.GetNode() {
		fl := len(n.GetInput()) > 0 && gi.isFloat[n.GetInput()[0]]
		switch n.GetOpType() {
		case "Shape":
			fl = false
		case "Cast":
			fl = attrInt(n, "to") == int64(onnxpb.TensorProto_FLOAT)
		}
		for _, o := range n.GetOutput() {
			gi.producer[o] = n
			gi.isFloat[o] = fl
		}
	}
	return gi
}

func attrInt(n *onnxpb.NodeProto, name string) int64 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetI()
		}
	}
	return 0
}

// plan decides which nodes are quantized and which activation tensors need
// QDQ pairs.
func plan(gi *graphInfo, cfg Config) (map[*onnxpb.NodeProto]bool, []string, *Report) {
	excl := map[string]bool{}
	for _, e := range cfg.Exclude {
		excl[e] = true
	}
	var heavy []*onnxpb.NodeProto
	for _, n := range gi.g.GetNode() {
		if t := n.GetOpType(); t == "Conv" || t == "Gemm" {
			heavy = append(heavy, n)
		}
	}
	// Tensors that reach a graph output through data movement only stay
	// float, and so do the data-movement nodes producing them: outputs keep
	// full precision.
	final := map[string]bool{}
	for o := range gi.graphOuts {
		final[o] = true
	}
	nodes := gi.g.GetNode()
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		switch n.GetOpType() {
		case "Identity", "Reshape", "Transpose", "Squeeze":
			if len(n.GetOutput()) == 1 && final[n.GetOutput()[0]] {
				final[n.GetInput()[0]] = true
				excl[n.GetName()] = true
			}
		}
	}
	for i, n := range heavy {
		// KeepLast also covers every output head (a Conv/Gemm whose result
		// reaches an output through data movement only).
		head := cfg.KeepLast > 0 && final[n.GetOutput()[0]]
		if i < cfg.KeepFirst || i >= len(heavy)-cfg.KeepLast || head {
			excl[n.GetName()] = true
		}
	}
	rep := &Report{}
	quant := map[*onnxpb.NodeProto]bool{}
	actSet := map[string]bool{}
	var acts []string
	addAct := func(t string) {
		if !actSet[t] && gi.inits[t] == nil && gi.isFloat[t] {
			actSet[t] = true
			acts = append(acts, t)
		}
	}
	for _, n := range gi.g.GetNode() {
		ins := quantizable[n.GetOpType()]
		if !cfg.quantizes(n.GetOpType()) || len(n.GetInput()) == 0 || !gi.isFloat[n.GetInput()[0]] {
			continue
		}
		if excl[n.GetName()] {
			rep.Float++
			rep.Kept = append(rep.Kept, n.GetName())
			continue
		}
		quant[n] = true
		rep.Quantized++
		for i, in := range n.GetInput() {
			if ins != nil && !contains(ins, i) {
				continue
			}
			if (n.GetOpType() == "Conv" || n.GetOpType() == "Gemm") && i > 0 {
				continue // weights and bias: quantized offline
			}
			addAct(in)
		}
		for _, o := range n.GetOutput() {
			if !final[o] {
				addAct(o)
			}
		}
	}
	rep.QDQ = len(acts)
	return quant, acts, rep
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Prepare returns the copy of m that Quantize works on: m with per-channel
// Mul/Add after convolutions folded into them. Calibrate this model.
func Prepare(m *onnxpb.ModelProto) *onnxpb.ModelProto {
	c := proto.Clone(m).(*onnxpb.ModelProto)
	foldAffine(c.GetGraph())
	return c
}

// CalibrationTensors returns the activation tensors Quantize will need
// ranges for, given cfg; m must come from Prepare.
func CalibrationTensors(m *onnxpb.ModelProto, cfg Config) []string {
	c := proto.Clone(m).(*onnxpb.ModelProto)
	_, acts, _ := collapseAndPlan(c.GetGraph(), cfg)
	return acts
}

// collapseAndPlan collapses the activations after nodes that will be
// quantized, then plans the quantization of the resulting graph.
func collapseAndPlan(g *onnxpb.GraphProto, cfg Config) (map[*onnxpb.NodeProto]bool, []string, *Report) {
	quant0, acts0, _ := plan(index(g), cfg)
	qdq := map[string]bool{}
	for _, t := range acts0 {
		qdq[t] = true
	}
	collapseActivations(g, func(n *onnxpb.NodeProto, t string) bool {
		// With FloatSkip a float reader of t would see the unclipped
		// value of a float producer: collapse only after quantized nodes.
		return qdq[t] && (!cfg.FloatSkip || quant0[n])
	})
	return plan(index(g), cfg)
}

// WithOutputs returns a copy of m whose graph also outputs the named
// tensors (for calibration).
func WithOutputs(m *onnxpb.ModelProto, names []string) *onnxpb.ModelProto {
	c := proto.Clone(m).(*onnxpb.ModelProto)
	have := map[string]bool{}
	for _, o := range c.GetGraph().GetOutput() {
		have[o.GetName()] = true
	}
	for _, n := range names {
		if have[n] {
			continue
		}
		c.Graph.Output = append(c.Graph.Output, &onnxpb.ValueInfoProto{
			Name: proto.String(n),
			Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
				ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
			}}},
		})
	}
	return c
}

// uint8Params is the affine uint8 quantisation of r (always including 0,
// so zero pads and ReLU floors are exact).
func uint8Params(r Range) (scale float32, zp uint8) {
	lo, hi := math.Min(float64(r.Min), 0), math.Max(float64(r.Max), 0)
	if hi-lo < 1e-12 {
		return 1, 0
	}
	s := (hi - lo) / 255
	z := math.Round(-lo / s)
	return float32(s), uint8(math.Max(0, math.Min(255, z)))
}

// Quantize returns an INT8 QDQ copy of the prepared FP32 model m (see
// Prepare), given calibrated ranges for every tensor CalibrationTensors(m,
// cfg) names.
func Quantize(m *onnxpb.ModelProto, ranges map[string]Range, cfg Config) (*onnxpb.ModelProto, *Report, error) {
	out := proto.Clone(m).(*onnxpb.ModelProto)
	g := out.GetGraph()
	quant, acts, rep := collapseAndPlan(g, cfg)
	gi := index(g)
	b := &qbuilder{g: g, gi: gi, scales: map[string]float32{}, dq: map[string]string{}, wscales: map[*onnxpb.NodeProto][]float32{}}
	// Activation QDQ pairs.
	for _, t := range acts {
		r, ok := ranges[t]
		if !ok {
			return nil, nil, fmt.Errorf("quantize: no calibrated range for tensor %q", t)
		}
		b.qdqActivation(t, r)
	}
	// Rewire quantized nodes' inputs to the dequantized tensors, and
	// quantize weights, biases and constant operands.
	for _, n := range g.GetNode() {
		if !quant[n] {
			continue
		}
		ins := quantizable[n.GetOpType()]
		for i, in := range n.GetInput() {
			if ins != nil && !contains(ins, i) {
				continue
			}
			switch {
			case in == "":
			case b.dq[in] != "":
				n.Input[i] = b.dq[in]
			case gi.inits[in] != nil && gi.isFloat[in]:
				name, err := b.constant(n, i)
				if err != nil {
					return nil, nil, err
				}
				n.Input[i] = name
			}
		}
	}
	// Float consumers of a QDQ'd tensor read the dequantized value too, so
	// each quantized producer feeds only its Q node (which ORT's QDQ fusion
	// requires). With FloatSkip only the float readers of a quantized
	// node's output do so: the others keep the float tensor.
	for _, n := range g.GetNode() {
		if quant[n] || n.GetOpType() == "QuantizeLinear" {
			continue
		}
		for i, in := range n.GetInput() {
			if d := b.dq[in]; d != "" && (!cfg.FloatSkip || quant[gi.producer[in]]) {
				n.Input[i] = d
			}
		}
	}
	g.Node = append(g.Node, b.nodes...)
	if err := topoSort(g); err != nil {
		return nil, nil, err
	}
	pruneInitializers(g)
	sort.Strings(rep.Kept)
	return out, rep, nil
}

type qbuilder struct {
	g       *onnxpb.GraphProto
	gi      *graphInfo
	nodes   []*onnxpb.NodeProto
	scales  map[string]float32 // activation tensor (and its DQ name) → scale
	dq      map[string]string  // activation tensor → dequantized name
	wscales map[*onnxpb.NodeProto][]float32
	n       int
}

func (b *qbuilder) init(t *onnxpb.TensorProto) string {
	b.g.Initializer = append(b.g.Initializer, t)
	return t.GetName()
}

func (b *qbuilder) node(op string, inputs []string, output string, attrs ...*onnxpb.AttributeProto) {
	b.n++
	b.nodes = append(b.nodes, &onnxpb.NodeProto{
		Name: proto.String(fmt.Sprintf("%s/%s_%d", output, op, b.n)), OpType: proto.String(op),
		Input: inputs, Output: []string{output}, Attribute: attrs,
	})
}

func (b *qbuilder) qdqActivation(t string, r Range) {
	scale, zp := uint8Params(r)
	s := b.init(floatTensor(t+"/scale", nil, []float32{scale}))
	z := b.init(&onnxpb.TensorProto{Name: proto.String(t + "/zero_point"), DataType: proto.Int32(int32(onnxpb.TensorProto_UINT8)), RawData: []byte{zp}})
	b.node("QuantizeLinear", []string{t, s, z}, t+"/q")
	b.node("DequantizeLinear", []string{t + "/q", s, z}, t+"/dq")
	b.scales[t] = scale
	b.scales[t+"/dq"] = scale
	b.dq[t] = t + "/dq"
}

// constant quantizes initializer input i of n offline and returns the name
// of its dequantized value.
func (b *qbuilder) constant(n *onnxpb.NodeProto, i int) (string, error) {
	name := n.GetInput()[i]
	w := b.gi.inits[name]
	vals, err := floats(w)
	if err != nil {
		return "", err
	}
	op := n.GetOpType()
	switch {
	case (op == "Conv" || op == "Gemm") && i == 1:
		axis := 0
		if op == "Gemm" && attrInt(n, "transB") == 0 {
			axis = 1
		}
		return b.weights(n, name, w.GetDims(), vals, axis), nil
	case (op == "Conv" || op == "Gemm") && i == 2:
		return b.bias(n, name, vals)
	default:
		// A constant operand (e.g. of Add): per-tensor uint8 like an
		// activation, from its own range.
		r := Range{Min: vals[0], Max: vals[0]}
		for _, v := range vals {
			r.Min, r.Max = min(r.Min, v), max(r.Max, v)
		}
		scale, zp := uint8Params(r)
		q := make([]byte, len(vals))
		for k, v := range vals {
			q[k] = byte(math.Max(0, math.Min(255, math.Round(float64(v/scale))+float64(zp))))
		}
		base := fmt.Sprintf("%s/in%d", n.GetName(), i)
		qn := b.init(&onnxpb.TensorProto{Name: proto.String(base + "/quantized"), Dims: w.GetDims(), DataType: proto.Int32(int32(onnxpb.TensorProto_UINT8)), RawData: q})
		s := b.init(floatTensor(base+"/scale", nil, []float32{scale}))
		z := b.init(&onnxpb.TensorProto{Name: proto.String(base + "/zero_point"), DataType: proto.Int32(int32(onnxpb.TensorProto_UINT8)), RawData: []byte{zp}})
		b.node("DequantizeLinear", []string{qn, s, z}, base+"/dq")
		return base + "/dq", nil
	}
}

// weights quantizes a Conv/Gemm weight to int8, symmetric, one scale per
// output channel (along axis).
func (b *qbuilder) weights(n *onnxpb.NodeProto, name string, dims []int64, vals []float32, axis int) string {
	chans := int(dims[axis])
	inner := 1
	for _, d := range dims[axis+1:] {
		inner *= int(d)
	}
	maxAbs := make([]float32, chans)
	for k, v := range vals {
		c := (k / inner) % chans
		maxAbs[c] = max(maxAbs[c], float32(math.Abs(float64(v))))
	}
	scales := make([]float32, chans)
	for c, m := range maxAbs {
		scales[c] = m / 127
		if scales[c] == 0 {
			scales[c] = 1e-8 // an all-zero channel
		}
	}
	q := make([]byte, len(vals))
	for k, v := range vals {
		c := (k / inner) % chans
		q[k] = byte(int8(math.Max(-127, math.Min(127, math.Round(float64(v/scales[c]))))))
	}
	base := name + "/" + n.GetName()
	qn := b.init(&onnxpb.TensorProto{Name: proto.String(base + "/int8"), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_INT8)), RawData: q})
	s := b.init(floatTensor(base+"/scale", []int64{int64(chans)}, scales))
	z := b.init(&onnxpb.TensorProto{Name: proto.String(base + "/zero_point"), Dims: []int64{int64(chans)}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT8)), RawData: make([]byte, chans)})
	attrs := []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(axis))}}
	b.node("DequantizeLinear", []string{qn, s, z}, base+"/dq", attrs...)
	b.wscales[n] = scales
	return base + "/dq"
}

// bias quantizes a Conv/Gemm bias to int32 with scale = input scale x
// weight scale per channel, as ORT's integer kernels expect.
func (b *qbuilder) bias(n *onnxpb.NodeProto, name string, vals []float32) (string, error) {
	ws := b.wscales[n]
	xs, ok := b.scales[n.GetInput()[0]] // input 0 is rewired to its DQ by now
	if ws == nil || !ok || len(ws) != len(vals) {
		return "", fmt.Errorf("quantize: node %q: bias without quantized input and weights", n.GetName())
	}
	scales := make([]float32, len(vals))
	raw := make([]byte, 4*len(vals))
	for c, v := range vals {
		scales[c] = xs * ws[c]
		q := math.Round(float64(v / scales[c]))
		q = math.Max(math.MinInt32, math.Min(math.MaxInt32, q))
		binary.LittleEndian.PutUint32(raw[4*c:], uint32(int32(q)))
	}
	base := name + "/" + n.GetName()
	qn := b.init(&onnxpb.TensorProto{Name: proto.String(base + "/int32"), Dims: []int64{int64(len(vals))}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT32)), RawData: raw})
	s := b.init(floatTensor(base+"/scale", []int64{int64(len(vals))}, scales))
	z := b.init(&onnxpb.TensorProto{Name: proto.String(base + "/zero_point"), Dims: []int64{int64(len(vals))}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT32)), RawData: make([]byte, 4*len(vals))})
	attrs := []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(0)}}
	b.node("DequantizeLinear", []string{qn, s, z}, base+"/dq", attrs...)
	return base + "/dq", nil
}

func floatTensor(name string, dims []int64, v []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw}
}

// floats reads a float initializer (raw or float_data).
func floats(t *onnxpb.TensorProto) ([]float32, error) {
	if t.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil, fmt.Errorf("quantize: initializer %q is not float", t.GetName())
	}
	if raw := t.GetRawData(); raw != nil {
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	}
	return t.GetFloatData(), nil
}

// topoSort reorders g's nodes so every node follows its inputs' producers.
func topoSort(g *onnxpb.GraphProto) error {
	avail := map[string]bool{"": true}
	for _, t := range g.GetInitializer() {
		avail[t.GetName()] = true
	}
	for _, in := range g.GetInput() {
		avail[in.GetName()] = true
	}
	rest := g.Node
	var out []*onnxpb.NodeProto
	for len(rest) > 0 {
		var next []*onnxpb.NodeProto
		progress := false
		for _, n := range rest {
			ready := true
			for _, in := range n.GetInput() {
				if !avail[in] {
					ready = false
					break
				}
			}
			if !ready {
				next = append(next, n)
				continue
			}
			out = append(out, n)
			for _, o := range n.GetOutput() {
				avail[o] = true
			}
			progress = true
		}
		if !progress {
			return errors.New("quantize: graph has a cycle or a dangling input")
		}
		rest = next
	}
	g.Node = out
	return nil
}

// pruneInitializers drops initializers no node uses any more (the float
// weights that were replaced by int8 ones).
func pruneInitializers(g *onnxpb.GraphProto) {
	used := map[string]bool{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			used[in] = true
		}
	}
	for _, o := range g.GetOutput() {
		used[o.GetName()] = true
	}
	keep := g.Initializer[:0]
	for _, t := range g.GetInitializer() {
		if used[t.GetName()] {
			keep = append(keep, t)
		}
	}
	g.Initializer = keep
}
