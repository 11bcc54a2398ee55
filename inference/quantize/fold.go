package quantize

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/glintdev/glint/inference/internal/onnxpb"
)

// foldAffine folds per-channel Mul and Add by constants that directly
// follow a Conv (unfused batch normalisation, as in faceres and
// mobilefacenet) into the Conv's weights and bias. Without it the Conv's
// output would be quantized per tensor before the per-channel scale, and
// channels with small ranges would lose all precision.
func foldAffine(g *onnxpb.GraphProto) int {
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = t
	}
	outs := map[string]bool{}
	for _, o := range g.GetOutput() {
		outs[o.GetName()] = true
	}
	folded := 0
	for changed := true; changed; {
		changed = false
		consumers := map[string][]*onnxpb.NodeProto{}
		for _, n := range g.GetNode() {
			for _, in := range n.GetInput() {
				consumers[in] = append(consumers[in], n)
			}
		}
		for _, n := range g.GetNode() {
			if n.GetOpType() != "Conv" || len(n.GetInput()) < 2 {
				continue
			}
			y := n.GetOutput()[0]
			cs := consumers[y]
			if len(cs) != 1 || outs[y] {
				continue
			}
			c := cs[0]
			if (c.GetOpType() != "Mul" && c.GetOpType() != "Add") || len(c.GetInput()) != 2 {
				continue
			}
			other := c.GetInput()[0]
			if other == y {
				other = c.GetInput()[1]
			}
			ct, ok := inits[other]
			w, wok := inits[n.GetInput()[1]]
			if !ok || !wok || ct.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
				continue
			}
			chans := int(w.GetDims()[0])
			cv, _ := floats(ct)
			if !perChannel(ct.GetDims(), len(cv), chans) {
				continue
			}
			at := func(o int) float32 {
				if len(cv) == 1 {
					return cv[0]
				}
				return cv[o]
			}
			wv, _ := floats(w)
			var bias *onnxpb.TensorProto
			if len(n.GetInput()) > 2 && n.GetInput()[2] != "" {
				bias = inits[n.GetInput()[2]]
			}
			var bv []float32
			if bias != nil {
				bv, _ = floats(bias)
			} else {
				bv = make([]float32, chans)
			}
			if c.GetOpType() == "Mul" {
				inner := len(wv) / chans
				for o := 0; o < chans; o++ {
					for k := 0; k < inner; k++ {
						wv[o*inner+k] *= at(o)
					}
					bv[o] *= at(o)
				}
				setFloats(w, wv)
			} else {
				for o := 0; o < chans; o++ {
					bv[o] += at(o)
				}
			}
			if bias == nil {
				bias = floatTensor(n.GetName()+"/folded_bias", []int64{int64(chans)}, bv)
				g.Initializer = append(g.Initializer, bias)
				inits[bias.GetName()] = bias
				for len(n.Input) < 3 {
					n.Input = append(n.Input, "")
				}
				n.Input[2] = bias.GetName()
			} else {
				setFloats(bias, bv)
			}
			// The Conv now produces what the Mul/Add produced.
			n.Output[0] = c.GetOutput()[0]
			removeNode(g, c)
			folded++
			changed = true
			break
		}
	}
	if folded > 0 {
		pruneInitializers(g)
	}
	return folded
}

// perChannel reports whether a constant of dims (n values) broadcasts
// against an NCHW tensor with chans channels one value per channel (or is
// a scalar).
func perChannel(dims []int64, n, chans int) bool {
	if n == 1 {
		return true
	}
	if n != chans {
		return false
	}
	// [C,1,1] or [1,C,1,1]: the channel axis is third from the end.
	r := len(dims)
	return r >= 3 && dims[r-3] == int64(chans) && dims[r-2] == 1 && dims[r-1] == 1
}

func setFloats(t *onnxpb.TensorProto, v []float32) {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	t.RawData = raw
	t.FloatData = nil
	if t.GetDataType() == 0 {
		t.DataType = proto.Int32(int32(onnxpb.TensorProto_FLOAT))
	}
}

func removeNode(g *onnxpb.GraphProto, n *onnxpb.NodeProto) {
	out := g.Node[:0]
	for _, x := range g.GetNode() {
		if x != n {
			out = append(out, x)
		}
	}
	g.Node = out
}

// collapseActivations removes ReLU-like activations (Relu; Clip(0, c);
// Relu→Min(c)→Max(0) as TF's ReLU6 appears in faceres) that directly
// follow a Conv, Gemm or Add, making that node produce the activation's
// output tensor. Valid only in a quantized graph: the tensor's QDQ pair
// then does the clipping exactly (its range starts at 0, so negatives
// quantize to the zero point, and values above the calibrated maximum
// saturate), and the node keeps its full 8-bit range for the non-negative
// half. Only chains whose output tensor gets a QDQ pair (qdq(n, tensor), n
// the node before the activation) are collapsed: without one nothing would
// clip. Returns the number collapsed.
func collapseActivations(g *onnxpb.GraphProto, qdq func(n *onnxpb.NodeProto, tensor string) bool) int {
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = t
	}
	outs := map[string]bool{}
	for _, o := range g.GetOutput() {
		outs[o.GetName()] = true
	}
	consumers := map[string][]*onnxpb.NodeProto{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			consumers[in] = append(consumers[in], n)
		}
	}
	sole := func(t string) *onnxpb.NodeProto {
		if c := consumers[t]; len(c) == 1 && !outs[t] {
			return c[0]
		}
		return nil
	}
	scalar := func(name string) (float32, bool) {
		t, ok := inits[name]
		if !ok {
			return 0, false
		}
		v, err := floats(t)
		if err != nil || len(v) != 1 {
			return 0, false
		}
		return v[0], true
	}
	// operandConst returns the constant operand of a binary node whose
	// other operand is x.
	operandConst := func(n *onnxpb.NodeProto, x string) (float32, bool) {
		if len(n.GetInput()) != 2 {
			return 0, false
		}
		o := n.GetInput()[0]
		if o == x {
			o = n.GetInput()[1]
		}
		return scalar(o)
	}
	remove := map[*onnxpb.NodeProto]bool{}
	count := 0
	for _, n := range g.GetNode() {
		switch n.GetOpType() {
		case "Conv", "Gemm", "Add":
		default:
			continue
		}
		y := n.GetOutput()[0]
		a := sole(y)
		if a == nil || remove[a] {
			continue
		}
		var chain []*onnxpb.NodeProto
		switch a.GetOpType() {
		case "Relu":
			chain = append(chain, a)
			// TF ReLU6: Relu → Minimum(6) → Maximum(0).
			if m := sole(a.GetOutput()[0]); m != nil && m.GetOpType() == "Min" {
				if c, ok := operandConst(m, a.GetOutput()[0]); ok && c > 0 {
					if x := sole(m.GetOutput()[0]); x != nil && x.GetOpType() == "Max" {
						if c0, ok := operandConst(x, m.GetOutput()[0]); ok && c0 == 0 {
							chain = append(chain, m, x)
						}
					}
				}
			}
		case "Clip":
			if len(a.GetInput()) >= 2 {
				if lo, ok := scalar(a.GetInput()[1]); ok && lo == 0 {
					chain = append(chain, a)
				}
			}
		}
		if len(chain) == 0 {
			continue
		}
		// A graph output reads the tensor itself, not its QDQ pair: it
		// would see the unclipped value.
		if z := chain[len(chain)-1].GetOutput()[0]; !qdq(n, z) || outs[z] {
			continue
		}
		n.Output[0] = chain[len(chain)-1].GetOutput()[0]
		for _, c := range chain {
			remove[c] = true
		}
		count++
	}
	if count > 0 {
		kept := g.Node[:0]
		for _, n := range g.GetNode() {
			if !remove[n] {
				kept = append(kept, n)
			}
		}
		g.Node = kept
		pruneInitializers(g)
	}
	return count
}
