package convert

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrBadModel marks a model.json or weight shard that cannot be read as a
// TFJS graph model.
var ErrBadModel = errors.New("bad tfjs model")

// maxWeightElems bounds a single weight tensor (256 Mi elements), so a
// hostile manifest cannot make the reader allocate without limit.
const maxWeightElems = 1 << 28

// ModelJSON is the subset of a TFJS graph model's model.json that the
// converter reads.
type ModelJSON struct {
	Format          string           `json:"format"`
	GeneratedBy     string           `json:"generatedBy"`
	ConvertedBy     string           `json:"convertedBy"`
	ModelTopology   Topology         `json:"modelTopology"`
	WeightsManifest []WeightGroup    `json:"weightsManifest"`
	Signature       *Signature       `json:"signature,omitempty"`
	UserMetadata    *json.RawMessage `json:"userDefinedMetadata,omitempty"`
}

// Topology is a TensorFlow GraphDef in its JSON form.
type Topology struct {
	Node []NodeDef `json:"node"`
}

// NodeDef is one TensorFlow graph node.
type NodeDef struct {
	Name  string          `json:"name"`
	Op    string          `json:"op"`
	Input []string        `json:"input,omitempty"`
	Attr  map[string]Attr `json:"attr,omitempty"`
}

// Attr is a TensorFlow AttrValue in its JSON form. Integers arrive as
// strings (int64 in proto JSON), byte strings as base64.
type Attr struct {
	S      []byte       `json:"s,omitempty"`
	I      json.Number  `json:"i,omitempty"`
	F      *json.Number `json:"f,omitempty"`
	B      *bool        `json:"b,omitempty"`
	Type   string       `json:"type,omitempty"`
	Shape  *ShapeProto  `json:"shape,omitempty"`
	Tensor *TensorAttr  `json:"tensor,omitempty"`
	List   *AttrList    `json:"list,omitempty"`
}

// AttrList is a list-valued AttrValue.
type AttrList struct {
	S    [][]byte      `json:"s,omitempty"`
	I    []json.Number `json:"i,omitempty"`
	F    []json.Number `json:"f,omitempty"`
	B    []bool        `json:"b,omitempty"`
	Type []string      `json:"type,omitempty"`
}

// ShapeProto is a TensorShapeProto; size -1 is an unknown dimension.
type ShapeProto struct {
	Dim         []struct{ Size json.Number } `json:"dim,omitempty"`
	UnknownRank bool                         `json:"unknownRank,omitempty"`
}

// TensorAttr is the tensor of a Const node; TFJS keeps the values in the
// weight shards, so only dtype and shape are here.
type TensorAttr struct {
	Dtype       string      `json:"dtype"`
	TensorShape *ShapeProto `json:"tensorShape,omitempty"`
}

// Signature names the model's inputs and outputs (key → tensor "node:0").
type Signature struct {
	Inputs  map[string]TensorInfo `json:"inputs"`
	Outputs map[string]TensorInfo `json:"outputs"`
}

// TensorInfo is one signature entry.
type TensorInfo struct {
	Name string `json:"name"`
}

// WeightGroup is one group of the weights manifest: shard paths (relative to
// model.json) and the weights stored in them, in order.
type WeightGroup struct {
	Paths   []string     `json:"paths"`
	Weights []WeightSpec `json:"weights"`
}

// WeightSpec describes one weight tensor in the shards.
type WeightSpec struct {
	Name         string        `json:"name"`
	Shape        []int64       `json:"shape"`
	Dtype        string        `json:"dtype"`
	Quantization *Quantization `json:"quantization,omitempty"`
}

// Quantization is TFJS weight quantisation: float16, or affine uint8/uint16
// (value = q*scale + min).
type Quantization struct {
	Dtype         string   `json:"dtype"`
	Scale         *float64 `json:"scale,omitempty"`
	Min           *float64 `json:"min,omitempty"`
	OriginalDtype string   `json:"original_dtype,omitempty"`
}

// ParseModelJSON decodes and checks a model.json.
func ParseModelJSON(data []byte) (*ModelJSON, error) {
	var m ModelJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: decode model.json: %v", ErrBadModel, err)
	}
	if m.Format != "" && m.Format != "graph-model" {
		return nil, fmt.Errorf("%w: format %q, want graph-model", ErrBadModel, m.Format)
	}
	if len(m.ModelTopology.Node) == 0 {
		return nil, fmt.Errorf("%w: no nodes in modelTopology", ErrBadModel)
	}
	seen := make(map[string]bool, len(m.ModelTopology.Node))
	for i, n := range m.ModelTopology.Node {
		if n.Name == "" || n.Op == "" {
			return nil, fmt.Errorf("%w: node %d has no name or op", ErrBadModel, i)
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("%w: duplicate node %q", ErrBadModel, n.Name)
		}
		seen[n.Name] = true
	}
	for _, n := range m.ModelTopology.Node {
		for _, in := range n.Input {
			if strings.HasPrefix(in, "^") {
				continue // control dependency
			}
			src, _, err := splitInput(in)
			if err != nil {
				return nil, fmt.Errorf("%w: node %q: %v", ErrBadModel, n.Name, err)
			}
			if !seen[src] {
				return nil, fmt.Errorf("%w: node %q: input %q is not a node", ErrBadModel, n.Name, in)
			}
		}
	}
	for _, g := range m.WeightsManifest {
		for _, w := range g.Weights {
			if _, err := w.byteSize(); err != nil {
				return nil, fmt.Errorf("%w: weight %q: %v", ErrBadModel, w.Name, err)
			}
		}
	}
	return &m, nil
}

// splitInput splits "node:1" into ("node", 1); "node" is output 0.
func splitInput(in string) (string, int, error) {
	i := strings.LastIndexByte(in, ':')
	if i < 0 {
		return in, 0, nil
	}
	k, err := strconv.Atoi(in[i+1:])
	if err != nil || k < 0 {
		return "", 0, fmt.Errorf("bad input reference %q", in)
	}
	return in[:i], k, nil
}

// elems is the element count of shape, checked against maxWeightElems. The
// product of the non-zero dimensions is bounded too, so an empty tensor
// with huge dimensions cannot make a loop over its index space run long.
func elems(shape []int64) (int, error) {
	n, nz := int64(1), int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in %v", shape)
		}
		if d == 0 {
			n = 0
			continue
		}
		if nz > maxWeightElems/d {
			return 0, fmt.Errorf("shape %v too large", shape)
		}
		nz *= d
		n *= d
	}
	return int(n), nil
}

// storedDtype is the dtype of the bytes in the shard.
func (w WeightSpec) storedDtype() string {
	if w.Quantization != nil && w.Quantization.Dtype != "" {
		return w.Quantization.Dtype
	}
	return w.Dtype
}

func (w WeightSpec) byteSize() (int, error) {
	n, err := elems(w.Shape)
	if err != nil {
		return 0, err
	}
	switch w.Dtype {
	case "float32", "int32", "bool":
	default:
		return 0, fmt.Errorf("unsupported dtype %q", w.Dtype)
	}
	switch dt := w.storedDtype(); dt {
	case "float32", "int32":
		return 4 * n, nil
	case "float16", "uint16", "int16":
		if dt != "float16" && (w.Quantization.Scale == nil || w.Quantization.Min == nil) {
			return 0, fmt.Errorf("%s quantisation without scale and min", dt)
		}
		return 2 * n, nil
	case "uint8", "int8":
		if w.Quantization != nil && (w.Quantization.Scale == nil || w.Quantization.Min == nil) {
			return 0, fmt.Errorf("%s quantisation without scale and min", dt)
		}
		return n, nil
	case "bool":
		return n, nil
	default:
		return 0, fmt.Errorf("unsupported stored dtype %q", dt)
	}
}

// Weight is a decoded weight: float32 data for float weights, int64 for
// int32 weights (ONNX wants int64 for shapes and axes).
type Weight struct {
	Shape []int64
	F     []float32
	I     []int64
}

// DecodeWeights reads every weight of the manifest from the concatenated
// shard bytes.
func DecodeWeights(manifest []WeightGroup, data []byte) (map[string]Weight, error) {
	out := make(map[string]Weight)
	off := 0
	for _, g := range manifest {
		for _, w := range g.Weights {
			size, err := w.byteSize()
			if err != nil {
				return nil, fmt.Errorf("%w: weight %q: %v", ErrBadModel, w.Name, err)
			}
			if off+size > len(data) {
				return nil, fmt.Errorf("%w: weight %q needs bytes %d..%d, shards hold %d", ErrBadModel, w.Name, off, off+size, len(data))
			}
			v, err := decodeWeight(w, data[off:off+size])
			if err != nil {
				return nil, fmt.Errorf("%w: weight %q: %v", ErrBadModel, w.Name, err)
			}
			out[w.Name] = v
			off += size
		}
	}
	if off != len(data) {
		return nil, fmt.Errorf("%w: manifest uses %d bytes, shards hold %d", ErrBadModel, off, len(data))
	}
	return out, nil
}

func decodeWeight(w WeightSpec, b []byte) (Weight, error) {
	n, _ := elems(w.Shape)
	v := Weight{Shape: append([]int64(nil), w.Shape...)}
	le := binary.LittleEndian
	if w.Dtype == "int32" || w.Dtype == "bool" {
		v.I = make([]int64, n)
		switch w.storedDtype() {
		case "int32":
			for i := range v.I {
				v.I[i] = int64(int32(le.Uint32(b[4*i:])))
			}
		case "bool", "uint8":
			for i := range v.I {
				v.I[i] = int64(b[i])
			}
		default:
			return v, fmt.Errorf("%s stored as %s is not supported", w.Dtype, w.storedDtype())
		}
		return v, nil
	}
	v.F = make([]float32, n)
	switch dt := w.storedDtype(); dt {
	case "float32":
		for i := range v.F {
			v.F[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case "float16":
		for i := range v.F {
			v.F[i] = halfToFloat(le.Uint16(b[2*i:]))
		}
	case "uint8":
		scale, lo := float32(*w.Quantization.Scale), float32(*w.Quantization.Min)
		for i := range v.F {
			v.F[i] = float32(b[i])*scale + lo
		}
	case "int8":
		scale, lo := float32(*w.Quantization.Scale), float32(*w.Quantization.Min)
		for i := range v.F {
			v.F[i] = float32(int8(b[i]))*scale + lo
		}
	case "uint16":
		scale, lo := float32(*w.Quantization.Scale), float32(*w.Quantization.Min)
		for i := range v.F {
			v.F[i] = float32(le.Uint16(b[2*i:]))*scale + lo
		}
	case "int16":
		scale, lo := float32(*w.Quantization.Scale), float32(*w.Quantization.Min)
		for i := range v.F {
			v.F[i] = float32(int16(le.Uint16(b[2*i:])))*scale + lo
		}
	default:
		return v, fmt.Errorf("float32 stored as %s is not supported", dt)
	}
	return v, nil
}

// halfToFloat widens an IEEE 754 binary16 value.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for frac&0x400 == 0 {
			frac <<= 1
			e--
		}
		frac &= 0x3ff
		return math.Float32frombits(sign | e<<23 | frac<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}

// Model is a TFJS graph model read from disk.
type Model struct {
	// Name is model.json's base name without extension, e.g. "blazeface".
	Name    string
	JSON    *ModelJSON
	Weights map[string]Weight
}

// maxShardBytes bounds the total weight bytes read for one model.
const maxShardBytes = 1 << 30

// ReadModel reads model.json at path and the weight shards it names (paths
// relative to its directory).
func ReadModel(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	mj, err := ParseModelJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	var shards []byte
	for _, g := range mj.WeightsManifest {
		for _, p := range g.Paths {
			if filepath.IsAbs(p) || strings.Contains(filepath.ToSlash(p), "..") {
				return nil, fmt.Errorf("%s: %w: shard path %q leaves the model directory", path, ErrBadModel, p)
			}
			b, err := os.ReadFile(filepath.Join(dir, p))
			if err != nil {
				return nil, fmt.Errorf("%s: read weight shard: %w", path, err)
			}
			if len(shards)+len(b) > maxShardBytes {
				return nil, fmt.Errorf("%s: %w: weight shards exceed %d bytes", path, ErrBadModel, maxShardBytes)
			}
			shards = append(shards, b...)
		}
	}
	w, err := DecodeWeights(mj.WeightsManifest, shards)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if name == "model" {
		name = filepath.Base(dir)
	}
	return &Model{Name: name, JSON: mj, Weights: w}, nil
}

// attribute accessors; missing attributes give the zero value and ok=false.

func (n *NodeDef) attrString(key string) (string, bool) {
	a, ok := n.Attr[key]
	if !ok || a.S == nil {
		return "", false
	}
	return string(a.S), true
}

func (n *NodeDef) attrInts(key string) ([]int64, error) {
	a, ok := n.Attr[key]
	if !ok || a.List == nil {
		return nil, nil
	}
	out := make([]int64, len(a.List.I))
	for i, s := range a.List.I {
		v, err := s.Int64()
		if err != nil {
			return nil, fmt.Errorf("attr %s: %v", key, err)
		}
		out[i] = v
	}
	return out, nil
}

func (n *NodeDef) attrInt(key string, def int64) (int64, error) {
	a, ok := n.Attr[key]
	if !ok || a.I == "" {
		return def, nil
	}
	v, err := a.I.Int64()
	if err != nil {
		return 0, fmt.Errorf("attr %s: %v", key, err)
	}
	return v, nil
}

func (n *NodeDef) attrFloat(key string, def float32) (float32, error) {
	a, ok := n.Attr[key]
	if !ok || a.F == nil {
		return def, nil
	}
	v, err := a.F.Float64()
	if err != nil {
		return 0, fmt.Errorf("attr %s: %v", key, err)
	}
	return float32(v), nil
}

func (n *NodeDef) attrBool(key string) bool {
	a, ok := n.Attr[key]
	return ok && a.B != nil && *a.B
}

func (n *NodeDef) attrStrings(key string) []string {
	a, ok := n.Attr[key]
	if !ok || a.List == nil {
		return nil
	}
	out := make([]string, len(a.List.S))
	for i, s := range a.List.S {
		out[i] = string(s)
	}
	return out
}
