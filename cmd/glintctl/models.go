package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/inference/convert"
	"github.com/glintdev/glint/inference/manifest"
	"github.com/glintdev/glint/inference/quantize"
	"github.com/glintdev/glint/internal/fsutil"
)

func runModels(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"models: missing subcommand (convert, build, quantize, verify)"}
	}
	switch args[0] {
	case "convert":
		return modelsConvert(args[1:], stdout, stderr)
	case "build":
		return modelsBuild(args[1:], stdout, stderr)
	case "verify":
		return modelsVerify(args[1:], stdout, stderr)
	case "quantize":
		return modelsQuantize(args[1:], stdout, stderr)
	}
	return usageError{fmt.Sprintf("models: unknown subcommand %q", args[0])}
}

// modelsConvert converts one TFJS graph model to ONNX.
func modelsConvert(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("models convert", stderr)
	in := fs.String("in", "", "TFJS graph model: model.json (weight shards beside it)")
	out := fs.String("out", "", "ONNX file to write")
	asJSON := fs.Bool("json", false, "print the inputs, outputs and op counts as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return usageError{"models convert: --in and --out are required"}
	}
	m, err := convert.ReadModel(*in)
	if err != nil {
		return err
	}
	res, err := convert.New(convert.Config{Producer: convert.Version}).Convert(m)
	if err != nil {
		return err
	}
	b, err := res.Marshal()
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(*out, b, 0o644); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"file": *out, "bytes": len(b), "sha256": manifest.SHA256(b), "opset": convert.Opset,
			"inputs": res.Inputs, "outputs": res.Outputs, "ops": res.Ops,
		})
	}
	fmt.Fprintf(stdout, "%s: %d bytes, opset %d, sha256 %s\n", *out, len(b), convert.Opset, manifest.SHA256(b))
	for _, x := range res.Inputs {
		fmt.Fprintf(stdout, "  input  %s %v\n", x.Name, x.Shape)
	}
	for _, x := range res.Outputs {
		fmt.Fprintf(stdout, "  output %s %v\n", x.Name, x.Shape)
	}
	return nil
}

// modelsBuild converts (and records in the manifest) every catalog model.
func modelsBuild(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("models build", stderr)
	src := fs.String("src", filepath.Join(".cache", "tfjs", "human-models"), "directory of the TFJS source models")
	out := fs.String("out", "models", "models directory (ONNX files and manifest.json)")
	only := fs.String("models", "", "comma-separated model names (default: the whole catalog)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg := convert.BuildConfig{Src: *src, Out: *out, Logf: func(format string, a ...any) {
		fmt.Fprintf(stdout, "models: "+format+"\n", a...)
	}}
	if *only != "" {
		cfg.Models = strings.Split(*only, ",")
	}
	_, err := convert.Build(cfg)
	return err
}

// modelsVerify checks every model file against the manifest.
func modelsVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("models verify", stderr)
	dir := fs.String("dir", "models", "models directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	man, err := manifest.Load(*dir)
	if err != nil {
		return err
	}
	bad := 0
	for _, e := range man.Models {
		if _, _, err := man.ReadModel(*dir, e.Name, e.Precision); err != nil {
			fmt.Fprintf(stdout, "FAIL %s %s: %v\n", e.Name, e.Precision, err)
			bad++
			continue
		}
		fmt.Fprintf(stdout, "ok   %s %s %s %d bytes sha256 %s\n", e.Name, e.Precision, e.File, e.Bytes, e.SHA256)
	}
	if bad > 0 {
		return fmt.Errorf("models verify: %d of %d model files do not match the manifest", bad, len(man.Models))
	}
	return nil
}

// globs expands comma-separated glob patterns, sorted.
func globs(patterns string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(patterns, ",") {
		if p == "" {
			continue
		}
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, usageError{fmt.Sprintf("bad pattern %q: %v", p, err)}
		}
		out = append(out, m...)
	}
	return out, nil
}

// Default calibration and check photos (scripts/faces.sh fetches them from
// registry packages): calibration and check are disjoint.
const (
	defaultCalib = ".cache/faces/face-api/sample1.jpg,.cache/faces/face-api/sample2.jpg,.cache/faces/face-api/sample3.jpg,.cache/faces/face-api/sample4.jpg"
	defaultCheck = ".cache/faces/face-api/sample5.jpg,.cache/faces/face-api/sample6.jpg,.cache/faces/skimage/astronaut.png,.cache/faces/opencv/messi5.jpg"
)

// modelsQuantize quantizes the FP32 models to INT8 and reports size and
// accuracy change per model.
func modelsQuantize(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("models quantize", stderr)
	dir := fs.String("dir", "models", "models directory")
	lib := fs.String("ort-lib", "", "ONNX Runtime library (default DIR/lib/GOARCH/"+inference.LibraryName+")")
	calib := fs.String("calib", defaultCalib, "comma-separated calibration photo globs")
	check := fs.String("check", defaultCheck, "comma-separated accuracy-check photo globs (kept apart from calibration)")
	only := fs.String("models", "", "comma-separated model names (default: the whole catalog)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	calibPhotos, err := globs(*calib)
	if err != nil {
		return err
	}
	checkPhotos, err := globs(*check)
	if err != nil {
		return err
	}
	if len(calibPhotos) == 0 {
		return fmt.Errorf("models quantize: no calibration photos match %q (make deps fetches them)", *calib)
	}
	l := *lib
	if l == "" {
		l = filepath.Join(*dir, "lib", runtime.GOARCH, inference.LibraryName)
	}
	rt, err := inference.NewRuntime(inference.RuntimeConfig{LibraryPath: l})
	if err != nil {
		return err
	}
	defer rt.Close()
	cfg := quantize.BuildConfig{ModelsDir: *dir, Calibration: calibPhotos, Check: checkPhotos,
		Logf: func(format string, a ...any) { fmt.Fprintf(stdout, "models: "+format+"\n", a...) }}
	if *only != "" {
		cfg.Models = strings.Split(*only, ",")
	}
	_, err = quantize.Build(rt, cfg)
	return err
}
