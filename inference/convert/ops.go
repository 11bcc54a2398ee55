package convert

import (
	"fmt"
	"sort"

	"github.com/glintdev/glint/inference/internal/onnxpb"
)

// opFunc converts one TF node whose inputs are already converted.
type opFunc func(b *builder, n *NodeDef, ins []*value) (*value, error)

// opTable lists every TF op the converter handles (Const and Placeholder
// are handled by Convert itself).
var opTable map[string]opFunc

func init() {
	opTable = map[string]opFunc{
		"Identity":     identity,
		"StopGradient": identity,
		"Snapshot":     identity,

		"Conv2D":                     conv2D,
		"_FusedConv2D":               conv2D,
		"DepthwiseConv2dNative":      conv2D,
		"FusedDepthwiseConv2dNative": conv2D,
		"MaxPool":                    pool,
		"AvgPool":                    pool,
		"FusedBatchNorm":             fusedBatchNorm,
		"FusedBatchNormV3":           fusedBatchNorm,

		"MatMul":       matMul,
		"_FusedMatMul": matMul,

		"Add":               binaryOp("Add"),
		"AddV2":             binaryOp("Add"),
		"BiasAdd":           binaryOp("Add"),
		"Sub":               binaryOp("Sub"),
		"Mul":               binaryOp("Mul"),
		"RealDiv":           binaryOp("Div"),
		"Div":               binaryOp("Div"),
		"Maximum":           binaryOp("Max"),
		"Minimum":           binaryOp("Min"),
		"Pow":               binaryOp("Pow"),
		"Prelu":             binaryOp("PRelu"),
		"SquaredDifference": squaredDifference,

		"Relu":       unary("Relu"),
		"Sigmoid":    unary("Sigmoid"),
		"Tanh":       unary("Tanh"),
		"Abs":        unary("Abs"),
		"Neg":        unary("Neg"),
		"Exp":        unary("Exp"),
		"Log":        unary("Log"),
		"Sqrt":       unary("Sqrt"),
		"Reciprocal": unary("Reciprocal"),
		"Elu":        unary("Elu"),
		"Selu":       unary("Selu"),
		"Softplus":   unary("Softplus"),
		"Floor":      unary("Floor"),
		"Ceil":       unary("Ceil"),
		"Relu6":      relu6,
		"LeakyRelu":  leakyRelu,
		"Rsqrt":      rsqrt,
		"Square":     square,
		"Softmax":    softmax,

		"Pad":          pad,
		"PadV2":        pad,
		"MirrorPad":    pad,
		"Reshape":      reshape,
		"Squeeze":      squeeze,
		"ExpandDims":   expandDims,
		"ConcatV2":     concat,
		"Transpose":    transpose,
		"Mean":         reduce("ReduceMean"),
		"Sum":          reduce("ReduceSum"),
		"Max":          reduce("ReduceMax"),
		"Min":          reduce("ReduceMin"),
		"Prod":         reduce("ReduceProd"),
		"Shape":        shapeOp,
		"StridedSlice": stridedSlice,
		"Pack":         pack,
		"Cast":         cast,

		"ResizeBilinear":        resize,
		"ResizeNearestNeighbor": resize,
	}
}

// SupportedOps lists the TF ops Convert handles, sorted.
func SupportedOps() []string {
	ops := []string{"Const", "Placeholder"}
	for k := range opTable {
		ops = append(ops, k)
	}
	sort.Strings(ops)
	return ops
}

func needInputs(b *builder, ins []*value, min int) error {
	if len(ins) < min {
		return b.errorf("needs %d inputs, has %d", min, len(ins))
	}
	return nil
}

func identity(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 1); err != nil {
		return nil, err
	}
	return ins[0], nil
}

// out returns a value for ONNX tensor name produced for the current node.
func out(name string, shape []int64, nchw bool) *value {
	return &value{name: name, shape: shape, nchw: nchw}
}

// outName is the ONNX tensor name for the current node's output.
func outName(n *NodeDef, nchw bool) string {
	if nchw {
		return n.Name + "/nchw"
	}
	return n.Name
}

// constFloat returns v's constant data, or an error if v is not a float
// constant.
func constFloat(b *builder, v *value, what string) (*Weight, error) {
	if v.konst == nil || v.konst.F == nil {
		return nil, b.unsupported("%s must be a float constant", what)
	}
	return v.konst, nil
}

func constInts(b *builder, v *value, what string) ([]int64, error) {
	if v.konst == nil {
		return nil, b.unsupported("%s must be a constant", what)
	}
	if v.konst.I == nil {
		return nil, b.errorf("%s must be an integer constant", what)
	}
	return v.konst.I, nil
}

// spatial reads a 4-element NHWC attribute (strides, dilations, ksize) as
// its H and W entries.
func spatial(b *builder, n *NodeDef, key string) ([]int64, error) {
	v, err := n.attrInts(key)
	if err != nil {
		return nil, b.errorf("%v", err)
	}
	if v == nil {
		return []int64{1, 1}, nil
	}
	if len(v) != 4 || v[0] != 1 || v[3] != 1 {
		return nil, b.unsupported("%s %v (batch and channel must be 1)", key, v)
	}
	if v[1] < 1 || v[2] < 1 {
		return nil, b.errorf("%s %v: must be positive", key, v)
	}
	return []int64{v[1], v[2]}, nil
}

// padAttrs converts TF padding (SAME, VALID, EXPLICIT) to ONNX attributes.
// SAME is ONNX SAME_UPPER: the odd pixel goes after, as in TF.
func padAttrs(b *builder, n *NodeDef) ([]*onnxpb.AttributeProto, string, []int64, error) {
	p, _ := n.attrString("padding")
	switch p {
	case "SAME":
		return []*onnxpb.AttributeProto{attrString("auto_pad", "SAME_UPPER")}, p, nil, nil
	case "VALID":
		return []*onnxpb.AttributeProto{attrString("auto_pad", "VALID")}, p, nil, nil
	case "EXPLICIT":
		e, err := n.attrInts("explicit_paddings")
		if err != nil {
			return nil, "", nil, b.errorf("%v", err)
		}
		if len(e) != 8 || e[0]+e[1]+e[6]+e[7] != 0 {
			return nil, "", nil, b.unsupported("explicit_paddings %v", e)
		}
		pads := []int64{e[2], e[4], e[3], e[5]}
		return []*onnxpb.AttributeProto{attrInts("pads", pads...)}, p, pads, nil
	}
	return nil, "", nil, b.unsupported("padding %q", p)
}

// convDim is TF's output size along one spatial axis (-1 if in is unknown).
func convDim(in, k, s, d int64, padding string, pads []int64) int64 {
	if in < 0 {
		return -1
	}
	ke := (k-1)*d + 1
	switch padding {
	case "SAME":
		return (in + s - 1) / s
	case "VALID":
		return (in-ke)/s + 1
	default:
		return (in+pads[0]+pads[1]-ke)/s + 1
	}
}

func checkNHWC(b *builder, n *NodeDef) error {
	if f, ok := n.attrString("data_format"); ok && f != "NHWC" {
		return b.unsupported("data_format %q (only NHWC)", f)
	}
	return nil
}

// conv2D converts Conv2D, DepthwiseConv2dNative and their fused forms.
func conv2D(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 2); err != nil {
		return nil, err
	}
	if err := checkNHWC(b, n); err != nil {
		return nil, err
	}
	x := ins[0]
	if x.rank() != 4 {
		return nil, b.errorf("input rank %d, want 4", x.rank())
	}
	k, err := constFloat(b, ins[1], "kernel")
	if err != nil {
		return nil, err
	}
	if len(k.Shape) != 4 {
		return nil, b.errorf("kernel shape %v, want rank 4", k.Shape)
	}
	strides, err := spatial(b, n, "strides")
	if err != nil {
		return nil, err
	}
	dil, err := spatial(b, n, "dilations")
	if err != nil {
		return nil, err
	}
	attrs, padding, pads, err := padAttrs(b, n)
	if err != nil {
		return nil, err
	}
	kh, kw := k.Shape[0], k.Shape[1]
	depthwise := n.Op == "DepthwiseConv2dNative" || n.Op == "FusedDepthwiseConv2dNative"
	var w Weight
	var cout int64
	if depthwise {
		// [H,W,C,M] → [C*M,1,H,W], group C.
		c, m := k.Shape[2], k.Shape[3]
		t := transposeWeight(*k, []int64{2, 3, 0, 1}) // [C,M,H,W]
		w = Weight{Shape: []int64{c * m, 1, kh, kw}, F: t.F}
		cout = c * m
		attrs = append(attrs, attrInt("group", c))
	} else {
		// HWIO → OIHW.
		w = transposeWeight(*k, []int64{3, 2, 0, 1})
		cout = k.Shape[3]
		if cin := x.shape[3]; cin > 0 && cin != k.Shape[2] {
			if cin%k.Shape[2] != 0 {
				return nil, b.errorf("input has %d channels, kernel expects %d", cin, k.Shape[2])
			}
			attrs = append(attrs, attrInt("group", cin/k.Shape[2]))
		}
	}
	attrs = append(attrs,
		attrInts("kernel_shape", kh, kw),
		attrInts("strides", strides...),
		attrInts("dilations", dil...))
	inputs := []string{b.nchw(x), b.constNamed(n.Name+"/weights", w)}

	fused := n.attrStrings("fused_ops")
	extra := ins[2:]
	if len(fused) > 0 && fused[0] == "BiasAdd" {
		if len(extra) == 0 {
			return nil, b.errorf("BiasAdd without a bias input")
		}
		bias, err := constFloat(b, extra[0], "bias")
		if err != nil {
			return nil, err
		}
		if len(bias.F) != int(cout) {
			return nil, b.errorf("bias has %d values, %d output channels", len(bias.F), cout)
		}
		inputs = append(inputs, b.constNamed(n.Name+"/bias", Weight{Shape: []int64{cout}, F: bias.F}))
		fused, extra = fused[1:], extra[1:]
	}
	padH, padW := []int64{0, 0}, []int64{0, 0}
	if pads != nil { // EXPLICIT: [top, left, bottom, right]
		padH, padW = []int64{pads[0], pads[2]}, []int64{pads[1], pads[3]}
	}
	shape := []int64{x.shape[0],
		convDim(x.shape[1], kh, strides[0], dil[0], padding, padH),
		convDim(x.shape[2], kw, strides[1], dil[1], padding, padW),
		cout}
	y := b.node("Conv", outName(n, true)+"/conv", inputs, attrs...)
	if len(fused) > 0 {
		y, err = b.activation(n, fused, y, extra, true)
		if err != nil {
			return nil, err
		}
	}
	return out(y, shape, true), nil
}

// activation appends the fused activation ops after tensor y; nchw says the
// layout of y (for a Prelu alpha).
func (b *builder) activation(n *NodeDef, fused []string, y string, extra []*value, nchw bool) (string, error) {
	if len(fused) != 1 {
		return "", b.unsupported("fused_ops %v", n.attrStrings("fused_ops"))
	}
	name := outName(n, nchw)
	switch fused[0] {
	case "Relu":
		return b.node("Relu", name, []string{y}), nil
	case "Relu6":
		return b.node("Clip", name, []string{y, b.constScalar(n.Name+"/min", 0), b.constScalar(n.Name+"/max", 6)}), nil
	case "Elu":
		return b.node("Elu", name, []string{y}), nil
	case "Sigmoid":
		return b.node("Sigmoid", name, []string{y}), nil
	case "Tanh":
		return b.node("Tanh", name, []string{y}), nil
	case "LeakyRelu":
		alpha, err := n.attrFloat("leakyrelu_alpha", 0.2)
		if err != nil {
			return "", b.errorf("%v", err)
		}
		return b.node("LeakyRelu", name, []string{y}, attrFloat("alpha", alpha)), nil
	case "Prelu":
		if len(extra) == 0 {
			return "", b.errorf("Prelu without an alpha input")
		}
		var alpha string
		if nchw {
			if extra[0].konst == nil {
				return "", b.unsupported("non-constant Prelu alpha")
			}
			alpha = b.constant(extra[0].konst, true)
		} else {
			alpha = b.nhwc(extra[0])
		}
		return b.node("PRelu", name, []string{y, alpha}), nil
	}
	return "", b.unsupported("fused activation %q", fused[0])
}

func pool(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 1); err != nil {
		return nil, err
	}
	if err := checkNHWC(b, n); err != nil {
		return nil, err
	}
	x := ins[0]
	if x.rank() != 4 {
		return nil, b.errorf("input rank %d, want 4", x.rank())
	}
	ks, err := spatial(b, n, "ksize")
	if err != nil {
		return nil, err
	}
	strides, err := spatial(b, n, "strides")
	if err != nil {
		return nil, err
	}
	attrs, padding, _, err := padAttrs(b, n)
	if err != nil {
		return nil, err
	}
	if padding == "EXPLICIT" {
		return nil, b.unsupported("explicit padding in pooling")
	}
	attrs = append(attrs, attrInts("kernel_shape", ks...), attrInts("strides", strides...))
	op := "MaxPool"
	if n.Op == "AvgPool" {
		op = "AveragePool" // count_include_pad=0, as TF
	}
	shape := []int64{x.shape[0],
		convDim(x.shape[1], ks[0], strides[0], 1, padding, nil),
		convDim(x.shape[2], ks[1], strides[1], 1, padding, nil),
		x.shape[3]}
	return out(b.node(op, outName(n, true), []string{b.nchw(x)}, attrs...), shape, true), nil
}

func fusedBatchNorm(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 5); err != nil {
		return nil, err
	}
	if err := checkNHWC(b, n); err != nil {
		return nil, err
	}
	if n.attrBool("is_training") {
		return nil, b.unsupported("is_training")
	}
	x := ins[0]
	if x.rank() != 4 {
		return nil, b.errorf("input rank %d, want 4", x.rank())
	}
	eps, err := n.attrFloat("epsilon", 1e-3)
	if err != nil {
		return nil, b.errorf("%v", err)
	}
	inputs := []string{b.nchw(x)}
	for i, what := range []string{"scale", "offset", "mean", "variance"} {
		w, err := constFloat(b, ins[1+i], what)
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, b.constNamed(n.Name+"/"+what, *w))
	}
	y := b.node("BatchNormalization", outName(n, true), inputs, attrFloat("epsilon", eps))
	return out(y, x.shape, true), nil
}

// matMul converts MatMul and _FusedMatMul (rank-2 operands) to Gemm.
func matMul(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 2); err != nil {
		return nil, err
	}
	a, w := ins[0], ins[1]
	if a.rank() != 2 || w.rank() != 2 {
		return nil, b.unsupported("operand ranks %d and %d (only 2)", a.rank(), w.rank())
	}
	ta, tb := n.attrBool("transpose_a"), n.attrBool("transpose_b")
	attrs := []*onnxpb.AttributeProto{}
	if ta {
		attrs = append(attrs, attrInt("transA", 1))
	}
	if tb {
		attrs = append(attrs, attrInt("transB", 1))
	}
	inputs := []string{b.nhwc(a), b.nhwc(w)}
	fused := n.attrStrings("fused_ops")
	extra := ins[2:]
	if len(fused) > 0 && fused[0] == "BiasAdd" {
		if len(extra) == 0 {
			return nil, b.errorf("BiasAdd without a bias input")
		}
		inputs = append(inputs, b.nhwc(extra[0]))
		fused, extra = fused[1:], extra[1:]
	}
	rows, cols := a.shape[0], w.shape[1]
	if ta {
		rows = a.shape[1]
	}
	if tb {
		cols = w.shape[0]
	}
	name := n.Name
	if len(fused) > 0 {
		name += "/gemm"
	}
	y := b.node("Gemm", name, inputs, attrs...)
	if len(fused) > 0 {
		var err error
		if y, err = b.activation(n, fused, y, extra, false); err != nil {
			return nil, err
		}
	}
	return out(y, []int64{rows, cols}, false), nil
}

// broadcast is numpy broadcasting of logical shapes (-1 unknown).
func broadcast(shapes ...[]int64) []int64 {
	r := 0
	for _, s := range shapes {
		r = max(r, len(s))
	}
	out := make([]int64, r)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := r - len(s)
		for i, d := range s {
			switch {
			case d == 1:
			case d < 0:
				if out[off+i] == 1 {
					out[off+i] = -1
				}
			default:
				out[off+i] = d
			}
		}
	}
	return out
}

// elementwise converts ins for an elementwise ONNX op: NCHW when the result
// is rank 4 and a non-constant operand is already NCHW, else TF layout.
func (b *builder) elementwise(ins []*value) ([]string, []int64, bool, error) {
	shapes := make([][]int64, len(ins))
	useNCHW := false
	for i, v := range ins {
		shapes[i] = v.shape
		if v.nchw {
			useNCHW = true
		}
	}
	shape := broadcast(shapes...)
	if len(shape) != 4 {
		useNCHW = false
	}
	names := make([]string, len(ins))
	for i, v := range ins {
		switch {
		case !useNCHW:
			names[i] = b.nhwc(v)
		case v.konst != nil:
			names[i] = b.constant(v.konst, true)
		case v.rank() == 4:
			names[i] = b.nchw(v)
		default:
			return nil, nil, false, b.unsupported("broadcasting a rank-%d tensor against an NCHW tensor", v.rank())
		}
	}
	return names, shape, useNCHW, nil
}

func binaryOp(op string) opFunc {
	return func(b *builder, n *NodeDef, ins []*value) (*value, error) {
		if err := needInputs(b, ins, 2); err != nil {
			return nil, err
		}
		if ins[0].konst != nil && ins[1].konst != nil {
			return nil, b.unsupported("both operands constant (fold it in the source model)")
		}
		names, shape, nchw, err := b.elementwise(ins[:2])
		if err != nil {
			return nil, err
		}
		v := out(b.node(op, outName(n, nchw), names), shape, nchw)
		v.isInt = ins[0].isInt && ins[1].isInt
		return v, nil
	}
}

func squaredDifference(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 2); err != nil {
		return nil, err
	}
	names, shape, nchw, err := b.elementwise(ins[:2])
	if err != nil {
		return nil, err
	}
	d := b.node("Sub", outName(n, nchw)+"/sub", names)
	return out(b.node("Mul", outName(n, nchw), []string{d, d}), shape, nchw), nil
}

// operand returns v's tensor in its current layout.
func (b *builder) operand(v *value) string {
	if v.konst != nil {
		return b.constant(v.konst, false)
	}
	return v.name
}

func unary(op string) opFunc {
	return func(b *builder, n *NodeDef, ins []*value) (*value, error) {
		if err := needInputs(b, ins, 1); err != nil {
			return nil, err
		}
		x := ins[0]
		var attrs []*onnxpb.AttributeProto
		if op == "Elu" {
			attrs = append(attrs, attrFloat("alpha", 1))
		}
		return out(b.node(op, outName(n, x.nchw), []string{b.operand(x)}, attrs...), x.shape, x.nchw), nil
	}
}

func relu6(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 1); err != nil {
		return nil, err
	}
	x := ins[0]
	y := b.node("Clip", outName(n, x.nchw), []string{b.operand(x), b.constScalar(n.Name+"/min", 0), b.constScalar(n.Name+"/max", 6)})
	return out(y, x.shape, x.nchw), nil
}

func leakyRelu(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 1); err != nil {
		return nil, err
	}
	x := ins[0]
	alpha, err := n.attrFloat("alpha", 0.2)
	if err != nil {
		return nil, b.errorf("%v", err)
	}
	y := b.node("LeakyRelu", outName(n, x.nchw), []string{b.operand(x)}, attrFloat("alpha", alpha))
	return out(y, x.shape, x.nchw), nil
}

func rsqrt(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 1); err != nil {
		return nil, err
	}
	x := ins[0]
	s := b.node("Sqrt", outName(n, x.nchw)+"/sqrt", []string{b.operand(x)})
	return out(b.node("Reciprocal", outName(n, x.nchw), []string{s}), x.shape, x.nchw), nil
}

func square(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 1); err != nil {
		return nil, err
	}
	x := ins[0]
	xn := b.operand(x)
	return out(b.node("Mul", outName(n, x.nchw), []string{xn, xn}), x.shape, x.nchw), nil
}

// softmax is over the last TF axis, which is axis 1 of an NCHW tensor.
func softmax(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 1); err != nil {
		return nil, err
	}
	x := ins[0]
	axis := int64(-1)
	if x.nchw {
		axis = 1
	}
	return out(b.node("Softmax", outName(n, x.nchw), []string{b.operand(x)}, attrInt("axis", axis)), x.shape, x.nchw), nil
}

func pad(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 2); err != nil {
		return nil, err
	}
	x := ins[0]
	p, err := constInts(b, ins[1], "paddings")
	if err != nil {
		return nil, err
	}
	r := x.rank()
	if len(p) != 2*r {
		return nil, b.errorf("paddings has %d values for rank %d", len(p), r)
	}
	pads := make([]int64, 2*r)
	shape := make([]int64, r)
	for d := 0; d < r; d++ {
		pos := int64(d)
		if x.nchw {
			pos = nhwcAxisToNCHW[d]
		}
		pads[pos], pads[int64(r)+pos] = p[2*d], p[2*d+1]
		shape[d] = x.shape[d]
		if shape[d] >= 0 {
			shape[d] += p[2*d] + p[2*d+1]
		}
	}
	inputs := []string{b.operand(x), b.constInts(n.Name+"/pads", pads...)}
	var attrs []*onnxpb.AttributeProto
	switch n.Op {
	case "PadV2":
		if len(ins) < 3 {
			return nil, b.errorf("PadV2 without a constant value")
		}
		c, err := constFloat(b, ins[2], "constant_values")
		if err != nil || len(c.F) != 1 {
			return nil, b.unsupported("constant_values must be a float scalar")
		}
		inputs = append(inputs, b.constScalar(n.Name+"/value", c.F[0]))
	case "MirrorPad":
		mode, _ := n.attrString("mode")
		if mode != "REFLECT" {
			return nil, b.unsupported("MirrorPad mode %q (only REFLECT)", mode)
		}
		attrs = append(attrs, attrString("mode", "reflect"))
	}
	return out(b.node("Pad", outName(n, x.nchw), inputs, attrs...), shape, x.nchw), nil
}

func reshape(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 2); err != nil {
		return nil, err
	}
	x := ins[0]
	s, err := constInts(b, ins[1], "shape")
	if err != nil {
		return nil, err
	}
	for _, d := range s {
		if d == 0 {
			return nil, b.unsupported("zero-sized dimension in shape %v", s)
		}
	}
	shape := append([]int64(nil), s...)
	// Resolve a -1 when the input size is known.
	total, known := int64(1), true
	for _, d := range x.shape {
		if d < 0 {
			known = false
		}
		total *= d
	}
	if known {
		rest, at := int64(1), -1
		for i, d := range shape {
			if d == -1 {
				at = i
			} else {
				rest *= d
			}
		}
		if at >= 0 && rest > 0 {
			shape[at] = total / rest
		}
	}
	y := b.node("Reshape", n.Name, []string{b.nhwc(x), b.constInts(n.Name+"/shape", s...)})
	return out(y, shape, false), nil
}

// reduceAxes maps TF axes of an NCHW-stored tensor for an op that removes
// them. It reports whether the result (without the removed axes) has the
// same element order as in TF; if not, the caller transposes to NHWC first.
func orderPreserved(removed map[int64]bool) bool {
	var keep []int64
	for d := int64(0); d < 4; d++ {
		if !removed[d] {
			keep = append(keep, d)
		}
	}
	var keepNCHW []int64
	for _, d := range permToNCHW {
		if !removed[d] {
			keepNCHW = append(keepNCHW, d)
		}
	}
	for i := range keep {
		if keep[i] != keepNCHW[i] {
			return false
		}
	}
	return true
}

func normAxes(b *builder, axes []int64, rank int) ([]int64, error) {
	out := make([]int64, len(axes))
	for i, a := range axes {
		if a < 0 {
			a += int64(rank)
		}
		if a < 0 || a >= int64(rank) {
			return nil, b.errorf("axis %d out of range for rank %d", axes[i], rank)
		}
		out[i] = a
	}
	return out, nil
}

func squeeze(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 1); err != nil {
		return nil, err
	}
	x := ins[0]
	dims, err := n.attrInts("squeeze_dims")
	if err != nil {
		return nil, b.errorf("%v", err)
	}
	if len(dims) == 0 {
		for i, d := range x.shape {
			if d < 0 {
				return nil, b.unsupported("Squeeze of all axes with unknown dimensions")
			}
			if d == 1 {
				dims = append(dims, int64(i))
			}
		}
	}
	axes, err := normAxes(b, dims, x.rank())
	if err != nil {
		return nil, err
	}
	removed := make(map[int64]bool)
	for _, a := range axes {
		removed[a] = true
	}
	var shape []int64
	for i, d := range x.shape {
		if !removed[int64(i)] {
			shape = append(shape, d)
		}
	}
	src := b.operand(x)
	onnxAxes := axes
	if x.nchw {
		if orderPreserved(removed) {
			onnxAxes = make([]int64, len(axes))
			for i, a := range axes {
				onnxAxes[i] = nhwcAxisToNCHW[a]
			}
		} else {
			src = b.nhwc(x)
		}
	}
	y := b.node("Squeeze", n.Name, []string{src, b.constInts(n.Name+"/axes", onnxAxes...)})
	return out(y, shape, false), nil
}

func expandDims(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 2); err != nil {
		return nil, err
	}
	x := ins[0]
	a, err := constInts(b, ins[1], "axis")
	if err != nil || len(a) != 1 {
		return nil, b.unsupported("axis must be a constant scalar")
	}
	axis := a[0]
	if axis < 0 {
		axis += int64(x.rank()) + 1
	}
	if axis < 0 || axis > int64(x.rank()) {
		return nil, b.errorf("axis %d out of range", a[0])
	}
	shape := append(append(append([]int64{}, x.shape[:axis]...), 1), x.shape[axis:]...)
	y := b.node("Unsqueeze", n.Name, []string{b.nhwc(x), b.constInts(n.Name+"/axes", axis)})
	return out(y, shape, false), nil
}

func concat(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 2); err != nil {
		return nil, err
	}
	parts, axisV := ins[:len(ins)-1], ins[len(ins)-1]
	a, err := constInts(b, axisV, "axis")
	if err != nil || len(a) != 1 {
		return nil, b.unsupported("axis must be a constant scalar")
	}
	r := parts[0].rank()
	axes, err := normAxes(b, a, r)
	if err != nil {
		return nil, err
	}
	axis := axes[0]
	useNCHW := r == 4
	for _, p := range parts {
		if p.rank() != r {
			return nil, b.errorf("inputs of ranks %d and %d", r, p.rank())
		}
		if p.konst == nil && !p.nchw {
			useNCHW = false
		}
	}
	shape := append([]int64(nil), parts[0].shape...)
	names := make([]string, len(parts))
	for i, p := range parts {
		if useNCHW {
			names[i] = b.nchw(p)
		} else {
			names[i] = b.nhwc(p)
		}
		if i > 0 {
			if shape[axis] >= 0 && p.shape[axis] >= 0 {
				shape[axis] += p.shape[axis]
			} else {
				shape[axis] = -1
			}
		}
	}
	onnxAxis := axis
	if useNCHW {
		onnxAxis = nhwcAxisToNCHW[axis]
	}
	return out(b.node("Concat", outName(n, useNCHW), names, attrInt("axis", onnxAxis)), shape, useNCHW), nil
}

func transpose(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 2); err != nil {
		return nil, err
	}
	x := ins[0]
	perm, err := constInts(b, ins[1], "perm")
	if err != nil {
		return nil, err
	}
	if len(perm) != x.rank() {
		return nil, b.errorf("perm %v for rank %d", perm, x.rank())
	}
	shape := make([]int64, len(perm))
	for i, p := range perm {
		if p < 0 || p >= int64(x.rank()) {
			return nil, b.errorf("perm %v", perm)
		}
		shape[i] = x.shape[p]
	}
	y := b.node("Transpose", n.Name, []string{b.nhwc(x)}, attrInts("perm", perm...))
	return out(y, shape, false), nil
}

// reduce converts Mean, Sum, Max, Min and Prod over constant axes.
func reduce(op string) opFunc {
	return func(b *builder, n *NodeDef, ins []*value) (*value, error) {
		if err := needInputs(b, ins, 2); err != nil {
			return nil, err
		}
		x := ins[0]
		raw, err := constInts(b, ins[1], "reduction_indices")
		if err != nil {
			return nil, err
		}
		axes, err := normAxes(b, raw, x.rank())
		if err != nil {
			return nil, err
		}
		keep := n.attrBool("keep_dims")
		removed := make(map[int64]bool)
		for _, a := range axes {
			removed[a] = true
		}
		var shape []int64
		for i, d := range x.shape {
			switch {
			case !removed[int64(i)]:
				shape = append(shape, d)
			case keep:
				shape = append(shape, 1)
			}
		}
		src := b.operand(x)
		onnxAxes := axes
		nchwOut := false
		if x.nchw {
			if keep || orderPreserved(removed) {
				onnxAxes = make([]int64, len(axes))
				for i, a := range axes {
					onnxAxes[i] = nhwcAxisToNCHW[a]
				}
				nchwOut = keep
			} else {
				src = b.nhwc(x)
			}
		}
		keepAttr := attrInt("keepdims", 0)
		if keep {
			keepAttr = attrInt("keepdims", 1)
		}
		var y string
		if op == "ReduceSum" {
			// ReduceSum takes axes as an input since opset 13.
			y = b.node(op, outName(n, nchwOut), []string{src, b.constInts(n.Name+"/axes", onnxAxes...)}, keepAttr)
		} else {
			y = b.node(op, outName(n, nchwOut), []string{src}, attrInts("axes", onnxAxes...), keepAttr)
		}
		return out(y, shape, nchwOut), nil
	}
}

// shapeOp folds Shape to a constant when the input's shape is static, and
// otherwise emits ONNX Shape on the TF-layout tensor.
func shapeOp(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 1); err != nil {
		return nil, err
	}
	x := ins[0]
	static := true
	for _, d := range x.shape {
		if d < 0 {
			static = false
		}
	}
	if static {
		w := Weight{Shape: []int64{int64(x.rank())}, I: append([]int64{}, x.shape...)}
		return &value{name: n.Name, shape: w.Shape, konst: &w, isInt: true}, nil
	}
	v := out(b.node("Shape", n.Name, []string{b.nhwc(x)}), []int64{int64(x.rank())}, false)
	v.isInt = true
	return v, nil
}

// stridedSlice folds a StridedSlice of constants (begin/end/strides masks and
// shrink_axis_mask; no ellipsis or new axes).
func stridedSlice(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 4); err != nil {
		return nil, err
	}
	x := ins[0]
	if x.konst == nil {
		return nil, b.unsupported("StridedSlice of a non-constant tensor (only constant folding is supported)")
	}
	begin, err1 := constInts(b, ins[1], "begin")
	end, err2 := constInts(b, ins[2], "end")
	strides, err3 := constInts(b, ins[3], "strides")
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			return nil, err
		}
	}
	var masks [5]int64
	for i, k := range []string{"begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask"} {
		v, err := n.attrInt(k, 0)
		if err != nil {
			return nil, b.errorf("%v", err)
		}
		masks[i] = v
	}
	if masks[2] != 0 || masks[3] != 0 {
		return nil, b.unsupported("ellipsis_mask or new_axis_mask")
	}
	w := x.konst
	r := len(w.Shape)
	if len(begin) != len(end) || len(begin) != len(strides) || len(begin) > r {
		return nil, b.errorf("begin/end/strides lengths %d/%d/%d for rank %d", len(begin), len(end), len(strides), r)
	}
	type rng struct{ start, stop, step int64 }
	rs := make([]rng, r)
	var shape []int64
	for d := 0; d < r; d++ {
		dim := w.Shape[d]
		g := rng{0, dim, 1}
		if d < len(begin) {
			g.step = strides[d]
			if g.step == 0 {
				return nil, b.errorf("zero stride")
			}
			clamp := func(v int64, lo, hi int64) int64 {
				if v < 0 {
					v += dim
				}
				return min(max(v, lo), hi)
			}
			if g.step > 0 {
				g.start, g.stop = 0, dim
				if masks[0]&(1<<d) == 0 {
					g.start = clamp(begin[d], 0, dim)
				}
				if masks[1]&(1<<d) == 0 {
					g.stop = clamp(end[d], 0, dim)
				}
			} else {
				g.start, g.stop = dim-1, -1
				if masks[0]&(1<<d) == 0 {
					g.start = clamp(begin[d], -1, dim-1)
				}
				if masks[1]&(1<<d) == 0 {
					g.stop = clamp(end[d], -1, dim-1)
				}
			}
			if masks[4]&(1<<d) != 0 {
				s := begin[d]
				if s < 0 {
					s += dim
				}
				if s < 0 || s >= dim {
					return nil, b.errorf("shrink index %d out of range", begin[d])
				}
				g = rng{s, s + 1, 1}
			}
		}
		rs[d] = g
		cnt := int64(0)
		if g.step > 0 && g.stop > g.start {
			cnt = (g.stop - g.start + g.step - 1) / g.step
		} else if g.step < 0 && g.start > g.stop {
			cnt = (g.start - g.stop - g.step - 1) / -g.step
		}
		if d < len(begin) && masks[4]&(1<<d) != 0 {
			continue
		}
		shape = append(shape, cnt)
	}
	// Enumerate the selected indices.
	stride := make([]int64, r)
	s := int64(1)
	for d := r - 1; d >= 0; d-- {
		stride[d] = s
		s *= w.Shape[d]
	}
	res := Weight{Shape: shape}
	var walk func(d int, off int64)
	walk = func(d int, off int64) {
		if d == r {
			if w.F != nil {
				res.F = append(res.F, w.F[off])
			} else {
				res.I = append(res.I, w.I[off])
			}
			return
		}
		g := rs[d]
		for i := g.start; (g.step > 0 && i < g.stop) || (g.step < 0 && i > g.stop); i += g.step {
			walk(d+1, off+i*stride[d])
		}
	}
	walk(0, 0)
	if w.F != nil && res.F == nil {
		res.F = []float32{}
	}
	if w.F == nil && res.I == nil {
		res.I = []int64{}
	}
	return &value{name: n.Name, shape: shape, konst: &res, isInt: x.isInt}, nil
}

// pack folds a Pack of constant scalars or vectors (axis 0), else stacks at
// run time with Unsqueeze + Concat.
func pack(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 1); err != nil {
		return nil, err
	}
	axis, err := n.attrInt("axis", 0)
	if err != nil {
		return nil, b.errorf("%v", err)
	}
	r := ins[0].rank()
	if axis < 0 {
		axis += int64(r) + 1
	}
	if axis < 0 || axis > int64(r) {
		return nil, b.errorf("axis %d out of range", axis)
	}
	allConst := true
	for _, v := range ins {
		if v.rank() != r {
			return nil, b.errorf("inputs of different ranks")
		}
		if v.konst == nil {
			allConst = false
		}
	}
	shape := append(append(append([]int64{}, ins[0].shape[:axis]...), int64(len(ins))), ins[0].shape[axis:]...)
	if allConst && axis == 0 {
		res := Weight{Shape: shape}
		for _, v := range ins {
			if (v.konst.F == nil) != (ins[0].konst.F == nil) {
				return nil, b.errorf("inputs of different dtypes")
			}
			res.F = append(res.F, v.konst.F...)
			res.I = append(res.I, v.konst.I...)
		}
		return &value{name: n.Name, shape: shape, konst: &res, isInt: ins[0].isInt}, nil
	}
	names := make([]string, len(ins))
	for i, v := range ins {
		names[i] = b.node("Unsqueeze", fmt.Sprintf("%s/unsqueeze%d", n.Name, i), []string{b.nhwc(v), b.constInts(n.Name+"/axes", axis)})
	}
	v := out(b.node("Concat", n.Name, names, attrInt("axis", axis)), shape, false)
	v.isInt = ins[0].isInt
	return v, nil
}

func cast(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 1); err != nil {
		return nil, err
	}
	x := ins[0]
	to := n.Attr["DstT"].Type
	var elem onnxpb.TensorProto_DataType
	switch to {
	case "DT_FLOAT":
		elem = onnxpb.TensorProto_FLOAT
	case "DT_INT32":
		elem = onnxpb.TensorProto_INT64
	default:
		return nil, b.unsupported("cast to %s", to)
	}
	v := out(b.node("Cast", outName(n, x.nchw), []string{b.operand(x)}, attrInt("to", int64(elem))), x.shape, x.nchw)
	v.isInt = to == "DT_INT32"
	return v, nil
}

// resize converts ResizeBilinear / ResizeNearestNeighbor with a constant
// size. The ONNX sizes input is [N,C] of the input (read at run time, so a
// dynamic batch works) followed by the new [H,W].
func resize(b *builder, n *NodeDef, ins []*value) (*value, error) {
	if err := needInputs(b, ins, 2); err != nil {
		return nil, err
	}
	x := ins[0]
	if x.rank() != 4 {
		return nil, b.errorf("input rank %d, want 4", x.rank())
	}
	size, err := constInts(b, ins[1], "size")
	if err != nil || len(size) != 2 {
		return nil, b.unsupported("size must be a constant [height, width]")
	}
	align, half := n.attrBool("align_corners"), n.attrBool("half_pixel_centers")
	mode := "linear"
	nearest := "round_prefer_floor"
	if n.Op == "ResizeNearestNeighbor" {
		mode = "nearest"
		nearest = "floor"
		if align {
			nearest = "round_prefer_ceil"
		}
	}
	coord := "asymmetric"
	switch {
	case align:
		coord = "align_corners"
	case half && n.Op == "ResizeBilinear":
		coord = "half_pixel"
	case half:
		coord = "tf_half_pixel_for_nn"
	}
	xn := b.nchw(x)
	nc := b.node("Shape", n.Name+"/nc", []string{xn}, attrInt("start", 0), attrInt("end", 2))
	sizes := b.node("Concat", n.Name+"/sizes", []string{nc, b.constInts(n.Name+"/hw", size...)}, attrInt("axis", 0))
	y := b.node("Resize", outName(n, true), []string{xn, "", "", sizes},
		attrString("mode", mode),
		attrString("coordinate_transformation_mode", coord),
		attrString("nearest_mode", nearest))
	return out(y, []int64{x.shape[0], size[0], size[1], x.shape[3]}, true), nil
}
