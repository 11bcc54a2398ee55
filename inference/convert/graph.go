package convert

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/glintdev/glint/inference/internal/onnxpb"
)

// ErrUnsupportedOp is returned (wrapped, with the op and node name) for a
// TFJS op or attribute combination the converter does not handle.
var ErrUnsupportedOp = errors.New("unsupported op")

// Opset is the ONNX default-domain opset the converter targets.
const Opset = 17

// irVersion is the ONNX IR version matching opset 17 (ONNX 1.12).
const irVersion = 8

// Config tunes a Converter.
type Config struct {
	// DynamicDim names unknown (-1) dimensions, usually the batch, in the
	// ONNX inputs and outputs. Default "N".
	DynamicDim string
	// Producer is written into the model's producer_version. Default "dev".
	Producer string
}

// Converter converts TFJS graph models to ONNX. It holds no per-model state;
// one Converter may convert many models (not concurrently).
type Converter struct {
	cfg Config
}

// New returns a Converter with cfg's zero fields set to their defaults.
func New(cfg Config) *Converter {
	if cfg.DynamicDim == "" {
		cfg.DynamicDim = "N"
	}
	if cfg.Producer == "" {
		cfg.Producer = "dev"
	}
	return &Converter{cfg: cfg}
}

// IOInfo describes a model input or output: its ONNX name and its shape
// in TensorFlow layout (-1 for a dynamic dimension).
type IOInfo struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
}

// Result is a converted model and what the manifest records about it.
type Result struct {
	Model   *onnxpb.ModelProto
	Inputs  []IOInfo
	Outputs []IOInfo
	// Ops counts the TFJS ops converted, by op name.
	Ops map[string]int
}

// Marshal serialises the ONNX model. Deterministic, so the same input gives
// the same bytes (and sha256) every time.
func (r *Result) Marshal() ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Model)
	if err != nil {
		return nil, fmt.Errorf("marshal onnx: %w", err)
	}
	return b, nil
}

// value is one TF tensor (a node's output 0) during conversion.
type value struct {
	name  string  // ONNX tensor name
	shape []int64 // logical TF (NHWC) shape, -1 unknown; len is the rank
	nchw  bool    // rank-4 tensor stored as NCHW in the ONNX graph
	konst *Weight // compile-time constant (logical layout), no ONNX tensor yet
	isInt bool    // int32 in TF (int64 in ONNX)
}

func (v *value) rank() int { return len(v.shape) }

// builder is the state of one conversion.
type builder struct {
	cfg    Config
	graph  *onnxpb.GraphProto
	vals   map[string]*value
	names  map[string]bool
	cache  map[string]string // derived tensors (transposes, constants) by key
	tfNode *NodeDef          // node being converted, for error messages
}

// Convert converts m.
func (c *Converter) Convert(m *Model) (*Result, error) {
	b := &builder{
		cfg:   c.cfg,
		graph: &onnxpb.GraphProto{Name: proto.String(m.Name)},
		vals:  make(map[string]*value),
		names: make(map[string]bool),
		cache: make(map[string]string),
	}
	nodes, err := topoSort(m.JSON.ModelTopology.Node)
	if err != nil {
		return nil, err
	}
	res := &Result{Ops: make(map[string]int)}
	for i := range nodes {
		n := nodes[i]
		b.tfNode = n
		ins := make([]*value, 0, len(n.Input))
		for _, in := range n.Input {
			if strings.HasPrefix(in, "^") {
				continue
			}
			src, k, err := splitInput(in)
			if err != nil {
				return nil, b.errorf("%v", err)
			}
			if k != 0 {
				return nil, b.unsupported("output %d of node %q (only single-output producers are supported)", k, src)
			}
			v, ok := b.vals[src]
			if !ok {
				return nil, b.errorf("input %q not converted", src)
			}
			ins = append(ins, v)
		}
		var out *value
		switch n.Op {
		case "Const":
			w, ok := m.Weights[n.Name]
			if !ok {
				return nil, b.errorf("Const has no weight in the manifest")
			}
			out = &value{name: n.Name, shape: w.Shape, konst: &w, isInt: w.F == nil}
		case "Placeholder":
			out, err = b.placeholder(n)
			if err == nil {
				res.Inputs = append(res.Inputs, IOInfo{Name: out.name, Shape: out.shape})
			}
		default:
			conv, ok := opTable[n.Op]
			if !ok {
				return nil, fmt.Errorf("convert: node %q: %w %q", n.Name, ErrUnsupportedOp, n.Op)
			}
			out, err = conv(b, n, ins)
		}
		if err != nil {
			return nil, err
		}
		b.vals[n.Name] = out
		res.Ops[n.Op]++
	}
	b.tfNode = nil
	outs, err := outputNames(m.JSON, nodes)
	if err != nil {
		return nil, err
	}
	for _, o := range outs {
		info, err := b.output(o)
		if err != nil {
			return nil, err
		}
		res.Outputs = append(res.Outputs, info)
	}
	res.Model = &onnxpb.ModelProto{
		IrVersion:       proto.Int64(irVersion),
		ProducerName:    proto.String("glint inference/convert"),
		ProducerVersion: proto.String(c.cfg.Producer),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		Graph:           b.graph,
		DocString:       proto.String(fmt.Sprintf("converted from TFJS graph model %s (%s)", m.Name, m.JSON.ConvertedBy)),
	}
	return res, nil
}

// topoSort orders nodes so that every node follows its inputs (TF graphs in
// model.json are usually, but not always, in that order).
func topoSort(in []NodeDef) ([]*NodeDef, error) {
	idx := make(map[string]int, len(in))
	for i := range in {
		idx[in[i].Name] = i
	}
	indeg := make([]int, len(in))
	users := make([][]int, len(in))
	for i := range in {
		for _, s := range in[i].Input {
			src, _, err := splitInput(strings.TrimPrefix(s, "^"))
			if err != nil {
				return nil, fmt.Errorf("%w: node %q: %v", ErrBadModel, in[i].Name, err)
			}
			j, ok := idx[src]
			if !ok {
				return nil, fmt.Errorf("%w: node %q: input %q is not a node", ErrBadModel, in[i].Name, s)
			}
			indeg[i]++
			users[j] = append(users[j], i)
		}
	}
	var ready, out []int
	for i := range in {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		sort.Ints(ready) // stable: keep the file's order among ready nodes
		i := ready[0]
		ready = ready[1:]
		out = append(out, i)
		for _, u := range users[i] {
			indeg[u]--
			if indeg[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	if len(out) != len(in) {
		return nil, fmt.Errorf("%w: graph has a cycle", ErrBadModel)
	}
	res := make([]*NodeDef, len(out))
	for k, i := range out {
		res[k] = &in[i]
	}
	return res, nil
}

// outputNames returns the model outputs as TFJS does: the signature's
// outputs (sorted by tensor name) when model.json has one, else the nodes no
// other node consumes (Consts excluded), in graph order.
func outputNames(mj *ModelJSON, nodes []*NodeDef) ([]string, error) {
	if mj.Signature != nil && len(mj.Signature.Outputs) > 0 {
		var outs []string
		for _, t := range mj.Signature.Outputs {
			src, k, err := splitInput(t.Name)
			if err != nil || k != 0 {
				return nil, fmt.Errorf("%w: signature output %q", ErrBadModel, t.Name)
			}
			outs = append(outs, src)
		}
		sort.Strings(outs)
		return outs, nil
	}
	used := make(map[string]bool)
	for _, n := range nodes {
		for _, s := range n.Input {
			src, _, _ := splitInput(strings.TrimPrefix(s, "^"))
			used[src] = true
		}
	}
	var outs []string
	for _, n := range nodes {
		if !used[n.Name] && n.Op != "Const" && n.Op != "Placeholder" {
			outs = append(outs, n.Name)
		}
	}
	if len(outs) == 0 {
		return nil, fmt.Errorf("%w: graph has no outputs", ErrBadModel)
	}
	return outs, nil
}

func (b *builder) errorf(format string, args ...any) error {
	return fmt.Errorf("convert: node %q (%s): %s", b.tfNode.Name, b.tfNode.Op, fmt.Sprintf(format, args...))
}

func (b *builder) unsupported(format string, args ...any) error {
	return fmt.Errorf("convert: node %q: %w %q: %s", b.tfNode.Name, ErrUnsupportedOp, b.tfNode.Op, fmt.Sprintf(format, args...))
}

// unique returns name, or name with a numeric suffix if it is taken.
func (b *builder) unique(name string) string {
	n := name
	for i := 1; b.names[n]; i++ {
		n = fmt.Sprintf("%s_%d", name, i)
	}
	b.names[n] = true
	return n
}

// node adds an ONNX node with one output and returns the output's name.
func (b *builder) node(op, outName string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	out := b.unique(outName)
	b.graph.Node = append(b.graph.Node, &onnxpb.NodeProto{
		Name:      proto.String(out),
		OpType:    proto.String(op),
		Input:     inputs,
		Output:    []string{out},
		Attribute: attrs,
	})
	return out
}

func (b *builder) placeholder(n *NodeDef) (*value, error) {
	a, ok := n.Attr["shape"]
	if !ok || a.Shape == nil || a.Shape.UnknownRank {
		return nil, b.errorf("Placeholder without a known rank")
	}
	shape, err := shapeDims(a.Shape)
	if err != nil {
		return nil, b.errorf("%v", err)
	}
	elem := onnxpb.TensorProto_FLOAT
	isInt := false
	if t := n.Attr["dtype"].Type; t == "DT_INT32" {
		elem, isInt = onnxpb.TensorProto_INT64, true
	} else if t != "" && t != "DT_FLOAT" {
		return nil, b.unsupported("input dtype %s", t)
	}
	b.names[n.Name] = true
	b.graph.Input = append(b.graph.Input, b.valueInfo(n.Name, elem, shape))
	return &value{name: n.Name, shape: shape, isInt: isInt}, nil
}

func shapeDims(s *ShapeProto) ([]int64, error) {
	out := make([]int64, len(s.Dim))
	for i, d := range s.Dim {
		if d.Size == "" {
			continue
		}
		v, err := d.Size.Int64()
		if err != nil || v < -1 {
			return nil, fmt.Errorf("bad dimension %q", d.Size)
		}
		out[i] = v
	}
	return out, nil
}

func (b *builder) valueInfo(name string, elem onnxpb.TensorProto_DataType, shape []int64) *onnxpb.ValueInfoProto {
	dims := make([]*onnxpb.TensorShapeProto_Dimension, len(shape))
	for i, d := range shape {
		if d < 0 {
			dims[i] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: b.cfg.DynamicDim}}
		} else {
			dims[i] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}}
		}
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(elem)),
			Shape:    &onnxpb.TensorShapeProto{Dim: dims},
		}}},
	}
}

// output makes TF node name an ONNX graph output of the same name, in TF
// layout.
func (b *builder) output(name string) (IOInfo, error) {
	v, ok := b.vals[name]
	if !ok {
		return IOInfo{}, fmt.Errorf("convert: output %q is not a node", name)
	}
	elem := onnxpb.TensorProto_FLOAT
	if v.isInt {
		elem = onnxpb.TensorProto_INT64
	}
	var src string
	switch {
	case v.konst != nil:
		src = b.constant(v.konst, false)
	case v.nchw:
		src = b.nhwc(v)
	default:
		src = v.name
	}
	if src != name {
		if b.names[name] {
			// The name is an internal tensor already (an intermediate
			// output that needs no transform): use it as is.
			if v.name != name || v.nchw {
				return IOInfo{}, fmt.Errorf("convert: output %q: name clash", name)
			}
		} else {
			b.names[name] = true
			b.graph.Node = append(b.graph.Node, &onnxpb.NodeProto{
				Name: proto.String(name), OpType: proto.String("Identity"),
				Input: []string{src}, Output: []string{name},
			})
		}
	}
	b.graph.Output = append(b.graph.Output, b.valueInfo(name, elem, v.shape))
	return IOInfo{Name: name, Shape: v.shape}, nil
}

// Attribute helpers.

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func attrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func attrString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// Layout helpers.

var (
	permToNCHW = []int64{0, 3, 1, 2}
	permToNHWC = []int64{0, 2, 3, 1}
	// nhwcAxisToNCHW maps an NHWC axis to its NCHW position.
	nhwcAxisToNCHW = []int64{0, 2, 3, 1}
)

// nchw returns v's ONNX tensor in NCHW layout (v must be rank 4).
func (b *builder) nchw(v *value) string {
	if v.konst != nil {
		return b.constant(v.konst, true)
	}
	if v.nchw {
		return v.name
	}
	key := "nchw:" + v.name
	if n, ok := b.cache[key]; ok {
		return n
	}
	n := b.node("Transpose", v.name+"/nchw", []string{v.name}, attrInts("perm", permToNCHW...))
	b.cache[key] = n
	return n
}

// nhwc returns v's ONNX tensor in TF layout.
func (b *builder) nhwc(v *value) string {
	if v.konst != nil {
		return b.constant(v.konst, false)
	}
	if !v.nchw {
		return v.name
	}
	key := "nhwc:" + v.name
	if n, ok := b.cache[key]; ok {
		return n
	}
	base := strings.TrimSuffix(v.name, "/nchw")
	n := b.node("Transpose", base+"/nhwc", []string{v.name}, attrInts("perm", permToNHWC...))
	b.cache[key] = n
	return n
}

// constant adds w as an initializer (once per layout) and returns its name.
// With toNCHW, w is first broadcast to rank 4 (leading 1s) and permuted to
// NCHW, so it broadcasts against an NCHW tensor the way the original did
// against the NHWC one.
func (b *builder) constant(w *Weight, toNCHW bool) string {
	key := fmt.Sprintf("const:%p:%v", w, toNCHW)
	if n, ok := b.cache[key]; ok {
		return n
	}
	t := *w
	if toNCHW {
		t = toRank4NCHW(t)
	}
	base := "const"
	if b.tfNode != nil {
		base = b.tfNode.Name + "/const"
	}
	name := b.unique(base)
	b.graph.Initializer = append(b.graph.Initializer, tensorProto(name, t))
	b.cache[key] = name
	return name
}

// constNamed adds an initializer for t under a name derived from base.
func (b *builder) constNamed(base string, t Weight) string {
	name := b.unique(base)
	b.graph.Initializer = append(b.graph.Initializer, tensorProto(name, t))
	return name
}

func (b *builder) constInts(base string, v ...int64) string {
	return b.constNamed(base, Weight{Shape: []int64{int64(len(v))}, I: v})
}

func (b *builder) constScalar(base string, f float32) string {
	return b.constNamed(base, Weight{Shape: []int64{}, F: []float32{f}})
}

// tensorProto encodes t as a little-endian raw-data initializer.
func tensorProto(name string, t Weight) *onnxpb.TensorProto {
	tp := &onnxpb.TensorProto{Name: proto.String(name), Dims: append([]int64{}, t.Shape...)}
	if t.F != nil {
		tp.DataType = proto.Int32(int32(onnxpb.TensorProto_FLOAT))
		raw := make([]byte, 4*len(t.F))
		for i, f := range t.F {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
		}
		tp.RawData = raw
	} else {
		tp.DataType = proto.Int32(int32(onnxpb.TensorProto_INT64))
		raw := make([]byte, 8*len(t.I))
		for i, v := range t.I {
			binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
		}
		tp.RawData = raw
	}
	return tp
}

// toRank4NCHW pads t's shape to rank 4 with leading 1s and permutes it from
// NHWC to NCHW.
func toRank4NCHW(t Weight) Weight {
	s := make([]int64, 4)
	for i := range s {
		s[i] = 1
	}
	copy(s[4-len(t.Shape):], t.Shape)
	return transposeWeight(Weight{Shape: s, F: t.F, I: t.I}, permToNCHW)
}

// transposeWeight permutes t's axes: out axis i is in axis perm[i].
func transposeWeight(t Weight, perm []int64) Weight {
	r := len(t.Shape)
	out := Weight{Shape: make([]int64, r)}
	for i, p := range perm {
		out.Shape[i] = t.Shape[p]
	}
	n := 1
	for _, d := range t.Shape {
		n *= int(d)
	}
	inStride := make([]int, r)
	s := 1
	for i := r - 1; i >= 0; i-- {
		inStride[i] = s
		s *= int(t.Shape[i])
	}
	if t.F != nil {
		out.F = make([]float32, n)
	} else {
		out.I = make([]int64, n)
	}
	idx := make([]int, r)
	for o := 0; o < n; o++ {
		src := 0
		for i := 0; i < r; i++ {
			src += idx[i] * inStride[perm[i]]
		}
		if t.F != nil {
			out.F[o] = t.F[src]
		} else {
			out.I[o] = t.I[src]
		}
		for i := r - 1; i >= 0; i-- {
			idx[i]++
			if int64(idx[i]) < out.Shape[i] {
				break
			}
			idx[i] = 0
		}
	}
	return out
}
