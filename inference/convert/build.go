package convert

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/glintdev/glint/inference/manifest"
	"github.com/glintdev/glint/internal/fsutil"
)

// Version identifies the converter's output; bump it when a change to the
// converter changes the ONNX it writes, so make deps rebuilds the models.
const Version = "glint-convert/1"

// BuildConfig says what Build converts.
type BuildConfig struct {
	// Src holds the TFJS models (NAME.json + shards) and a SOURCE file
	// naming the npm package they came from.
	Src string
	// Out is the models directory (ONNX files + manifest.json).
	Out string
	// Models to build; default: every model of manifest.Catalog.
	Models []string
	// Logf prints a progress line; nil for silence.
	Logf func(format string, args ...any)
}

// Build converts the catalog's models from cfg.Src into cfg.Out and records
// them in the manifest. A model whose source, converter version and output
// file are unchanged is left alone, so re-running does only what changed.
func Build(cfg BuildConfig) (*manifest.Manifest, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("models dir: %w", err)
	}
	pkg := "unknown"
	if b, err := os.ReadFile(filepath.Join(cfg.Src, "SOURCE")); err == nil {
		pkg = strings.TrimSpace(string(b))
	}
	man, err := manifest.Load(cfg.Out)
	if errors.Is(err, fs.ErrNotExist) {
		man, err = &manifest.Manifest{Version: manifest.Version}, nil
	}
	if err != nil {
		return nil, err
	}
	names := cfg.Models
	if len(names) == 0 {
		for _, s := range manifest.Catalog() {
			names = append(names, s.Name)
		}
	}
	conv := New(Config{Producer: Version})
	for _, name := range names {
		spec, ok := manifest.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("build: %q is not in the model catalog", name)
		}
		src := filepath.Join(cfg.Src, name+".json")
		files, sum, err := sourceDigest(src)
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		if e, err := man.Find(name, manifest.FP32); err == nil && e.Source.SHA256 == sum && e.Converter == Version {
			if _, _, err := man.ReadModel(cfg.Out, name, manifest.FP32); err == nil {
				logf("%s fp32 up to date", name)
				continue
			}
		}
		m, err := ReadModel(src)
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		res, err := conv.Convert(m)
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		b, err := res.Marshal()
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		file := name + ".onnx"
		if err := fsutil.WriteFileAtomic(filepath.Join(cfg.Out, file), b, 0o644); err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		man.Put(manifest.Model{
			Name: name, Precision: manifest.FP32, File: file,
			SHA256: manifest.SHA256(b), Bytes: int64(len(b)), Opset: Opset,
			Layout: "NHWC", Normalization: spec.Normalization,
			Inputs: ioTensors(res.Inputs), Outputs: ioTensors(res.Outputs),
			Source:    manifest.Source{Package: pkg, Files: files, SHA256: sum},
			Converter: Version,
		})
		if err := man.Save(cfg.Out); err != nil {
			return nil, err
		}
		logf("%s fp32 converted: %d bytes, %d ONNX nodes", name, len(b), len(res.Model.GetGraph().GetNode()))
	}
	return man, nil
}

func ioTensors(io []IOInfo) []manifest.Tensor {
	out := make([]manifest.Tensor, len(io))
	for i, x := range io {
		out[i] = manifest.Tensor{Name: x.Name, Shape: x.Shape}
	}
	return out
}

// sourceDigest returns the model's files (model.json, then its shards) and
// the sha256 over their contents in that order.
func sourceDigest(modelJSON string) ([]string, string, error) {
	b, err := os.ReadFile(modelJSON)
	if err != nil {
		return nil, "", fmt.Errorf("read model: %w", err)
	}
	mj, err := ParseModelJSON(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", modelJSON, err)
	}
	h := sha256.New()
	h.Write(b)
	files := []string{filepath.Base(modelJSON)}
	for _, g := range mj.WeightsManifest {
		for _, p := range g.Paths {
			s, err := os.ReadFile(filepath.Join(filepath.Dir(modelJSON), p))
			if err != nil {
				return nil, "", fmt.Errorf("read weight shard: %w", err)
			}
			h.Write(s)
			files = append(files, p)
		}
	}
	return files, hex.EncodeToString(h.Sum(nil)), nil
}
