package convert

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestHalfToFloat(t *testing.T) {
	tests := []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0},
		{0x3c00, 1},
		{0xc000, -2},
		{0x3555, 0.333251953125},
		{0x7bff, 65504},
		{0x0001, 5.960464477539063e-08}, // smallest subnormal
		{0x03ff, 6.097555160522461e-05}, // largest subnormal
		{0x7c00, float32(math.Inf(1))},
	}
	for _, tt := range tests {
		if got := halfToFloat(tt.h); got != tt.want {
			t.Errorf("halfToFloat(%#04x) = %g, want %g", tt.h, got, tt.want)
		}
	}
	if got := halfToFloat(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("halfToFloat(NaN) = %g", got)
	}
}

func TestParseModelJSONErrors(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"not json", `{`, "decode model.json"},
		{"layers model", `{"format":"layers-model","modelTopology":{"node":[{"name":"a","op":"Relu"}]}}`, "want graph-model"},
		{"no nodes", `{"format":"graph-model","modelTopology":{"node":[]}}`, "no nodes"},
		{"unnamed node", `{"modelTopology":{"node":[{"op":"Relu"}]}}`, "no name or op"},
		{"duplicate", `{"modelTopology":{"node":[{"name":"a","op":"Relu"},{"name":"a","op":"Relu"}]}}`, "duplicate node"},
		{"dangling input", `{"modelTopology":{"node":[{"name":"a","op":"Relu","input":["b"]}]}}`, `input "b" is not a node`},
		{"bad input ref", `{"modelTopology":{"node":[{"name":"a","op":"Relu","input":["a:x"]}]}}`, "bad input reference"},
		{"huge weight", `{"modelTopology":{"node":[{"name":"a","op":"Const"}]},"weightsManifest":[{"paths":[],"weights":[{"name":"a","shape":[100000,100000],"dtype":"float32"}]}]}`, "too large"},
		{"bad dtype", `{"modelTopology":{"node":[{"name":"a","op":"Const"}]},"weightsManifest":[{"paths":[],"weights":[{"name":"a","shape":[1],"dtype":"complex64"}]}]}`, "unsupported dtype"},
		{"uint8 without scale", `{"modelTopology":{"node":[{"name":"a","op":"Const"}]},"weightsManifest":[{"paths":[],"weights":[{"name":"a","shape":[1],"dtype":"float32","quantization":{"dtype":"uint8"}}]}]}`, "without scale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseModelJSON([]byte(tt.json))
			if !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrBadModel containing %q", err, tt.want)
			}
		})
	}
}

func TestDecodeWeights(t *testing.T) {
	scale, lo := 0.5, -1.0
	manifest := []WeightGroup{{Weights: []WeightSpec{
		{Name: "f", Shape: []int64{2}, Dtype: "float32"},
		{Name: "h", Shape: []int64{1}, Dtype: "float32", Quantization: &Quantization{Dtype: "float16"}},
		{Name: "q", Shape: []int64{2}, Dtype: "float32", Quantization: &Quantization{Dtype: "uint8", Scale: &scale, Min: &lo}},
		{Name: "i", Shape: []int64{1}, Dtype: "int32"},
	}}}
	data := []byte{
		0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, // 1, -2
		0x00, 0x3c, // half 1
		0, 4, // uint8 → -1, 1
		0xff, 0xff, 0xff, 0xff, // -1
	}
	w, err := DecodeWeights(manifest, data)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want []float32) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s = %v, want %v", name, got, want)
			}
		}
	}
	check("f", w["f"].F, []float32{1, -2})
	check("h", w["h"].F, []float32{1})
	check("q", w["q"].F, []float32{-1, 1})
	if got := w["i"].I; len(got) != 1 || got[0] != -1 {
		t.Fatalf("i = %v", got)
	}
	if _, err := DecodeWeights(manifest, data[:len(data)-1]); !errors.Is(err, ErrBadModel) {
		t.Fatalf("short shards: err = %v", err)
	}
	if _, err := DecodeWeights(manifest, append(data, 0)); !errors.Is(err, ErrBadModel) {
		t.Fatalf("long shards: err = %v", err)
	}
}

func TestTransposeWeight(t *testing.T) {
	// [2,3] → [3,2]
	w := Weight{Shape: []int64{2, 3}, F: []float32{1, 2, 3, 4, 5, 6}}
	got := transposeWeight(w, []int64{1, 0})
	want := []float32{1, 4, 2, 5, 3, 6}
	for i := range want {
		if got.F[i] != want[i] {
			t.Fatalf("transpose = %v, want %v", got.F, want)
		}
	}
	// [C] → rank-4 NCHW [1,C,1,1]
	c := toRank4NCHW(Weight{Shape: []int64{3}, F: []float32{1, 2, 3}})
	if s := c.Shape; s[0] != 1 || s[1] != 3 || s[2] != 1 || s[3] != 1 {
		t.Fatalf("toRank4NCHW shape = %v", s)
	}
}

func TestConvertUnsupportedOp(t *testing.T) {
	mj, err := ParseModelJSON([]byte(`{"modelTopology":{"node":[
		{"name":"x","op":"Placeholder","attr":{"dtype":{"type":"DT_FLOAT"},"shape":{"shape":{"dim":[{"size":"1"},{"size":"4"}]}}}},
		{"name":"model/weird_layer","op":"FancyOp","input":["x"]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{}).Convert(&Model{Name: "t", JSON: mj, Weights: map[string]Weight{}})
	if !errors.Is(err, ErrUnsupportedOp) {
		t.Fatalf("err = %v, want ErrUnsupportedOp", err)
	}
	for _, want := range []string{`"model/weird_layer"`, `"FancyOp"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func FuzzParseModelJSON(f *testing.F) {
	f.Add([]byte(`{"format":"graph-model","modelTopology":{"node":[{"name":"x","op":"Placeholder"},{"name":"y","op":"Relu","input":["x:0","^x"]}]},"weightsManifest":[{"paths":["a.bin"],"weights":[{"name":"w","shape":[2,2],"dtype":"float32","quantization":{"dtype":"uint8","scale":0.1,"min":-1}}]}]}`))
	f.Add([]byte(`{"modelTopology":{"node":[{"name":"c","op":"Const","attr":{"value":{"tensor":{"dtype":"DT_FLOAT","tensorShape":{"dim":[{"size":"-1"}]}}}}}]}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		mj, err := ParseModelJSON(data)
		if err != nil {
			return
		}
		// A model that parses must convert or fail with an error, never
		// panic; weights come from a zero shard of the declared size.
		size := 0
		for _, g := range mj.WeightsManifest {
			for _, w := range g.Weights {
				n, _ := w.byteSize()
				size += n
			}
		}
		if size > 1<<20 {
			return
		}
		weights, err := DecodeWeights(mj.WeightsManifest, make([]byte, size))
		if err != nil {
			return
		}
		_, _ = New(Config{}).Convert(&Model{Name: "fuzz", JSON: mj, Weights: weights})
	})
}
