package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"

	"github.com/glintdev/glint/inference"
)

// Exit statuses of glintctl faces compare.
const (
	exitMatch   = 0
	exitNoMatch = 1
)

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// engineFlags are the flags every faces subcommand shares.
type engineFlags struct {
	models, lib, precision, embedding string
	threads                           int
}

func (f *engineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.models, "models", "models", "models directory (make deps)")
	fs.StringVar(&f.lib, "ort-lib", "", "ONNX Runtime library (default MODELS/lib/GOARCH/"+inference.LibraryName+")")
	fs.StringVar(&f.precision, "precision", "fp32", "model precision: fp32 or int8")
	fs.StringVar(&f.embedding, "embedding", "", "embedding model (default: the engine's)")
	fs.IntVar(&f.threads, "threads", 1, "ONNX Runtime intra-op threads per model")
}

func (f *engineFlags) open() (*inference.Runtime, *inference.Engine, error) {
	lib := f.lib
	if lib == "" {
		lib = inference.DefaultLibraryPath(f.models + "/..")
	}
	rt, err := inference.NewRuntime(inference.RuntimeConfig{LibraryPath: lib})
	if err != nil {
		return nil, nil, err
	}
	eng, err := inference.New(rt, inference.Config{
		ModelsDir: f.models, Precision: f.precision, Embedding: f.embedding, IntraOpThreads: f.threads,
	})
	if err != nil {
		rt.Close()
		return nil, nil, err
	}
	return rt, eng, nil
}

func runFaces(args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 {
		return exitUsage, usageError{"faces: missing subcommand (detect, compare, validate, eval)"}
	}
	switch args[0] {
	case "detect":
		return facesDetect(args[1:], stdout, stderr)
	case "compare":
		return facesCompare(args[1:], stdout, stderr)
	case "eval":
		return facesEval(args[1:], stdout, stderr)
	case "validate":
		return facesValidate(args[1:], stdout, stderr)
	}
	return exitUsage, usageError{fmt.Sprintf("faces: unknown subcommand %q", args[0])}
}

func readImage(path string) (*inference.Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	im, _, err := inference.DecodeImage(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return im, nil
}

type faceJSON struct {
	Box         [4]float64        `json:"box"`
	Score       float64           `json:"score"`
	Keypoints   [][2]float64      `json:"keypoints"`
	MeshScore   float64           `json:"mesh_score"`
	RightEye    [2]float64        `json:"right_eye"`
	LeftEye     [2]float64        `json:"left_eye"`
	Interocular float64           `json:"interocular"`
	Pose        inference.Pose    `json:"pose"`
	AntiSpoof   float64           `json:"antispoof"`
	Liveness    float64           `json:"liveness"`
	Quality     []inference.Issue `json:"quality"`
}

func facesDetect(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("faces detect", stderr)
	var ef engineFlags
	ef.register(fs)
	out := fs.String("out", "", "write an annotated PNG here")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(pos) != 1 {
		return exitUsage, usageError{"faces detect: want one IMAGE"}
	}
	im, err := readImage(pos[0])
	if err != nil {
		return exitUsage, err
	}
	rt, eng, err := ef.open()
	if err != nil {
		return exitUsage, err
	}
	defer rt.Close()
	defer eng.Close()
	faces, err := eng.Analyze(im)
	if err != nil {
		return exitUsage, err
	}
	res := make([]faceJSON, 0, len(faces))
	for _, f := range faces {
		j := faceJSON{
			Box:         [4]float64{f.Detection.Box.X0, f.Detection.Box.Y0, f.Detection.Box.X1, f.Detection.Box.Y1},
			Score:       f.Detection.Score,
			MeshScore:   f.Landmarks.Score,
			RightEye:    [2]float64{f.Landmarks.RightEye.X, f.Landmarks.RightEye.Y},
			LeftEye:     [2]float64{f.Landmarks.LeftEye.X, f.Landmarks.LeftEye.Y},
			Interocular: f.Landmarks.Interocular,
			Pose:        f.Landmarks.Pose,
			Quality:     inference.FaceQuality(im, f, inference.DefaultQualityLimits()),
		}
		if j.Quality == nil {
			j.Quality = []inference.Issue{}
		}
		for _, k := range f.Detection.Keypoints {
			j.Keypoints = append(j.Keypoints, [2]float64{k.X, k.Y})
		}
		if j.AntiSpoof, err = eng.AntiSpoof(im, f); err != nil {
			return exitUsage, err
		}
		if j.Liveness, err = eng.Liveness(im, f); err != nil {
			return exitUsage, err
		}
		res = append(res, j)
	}
	if *out != "" {
		if err := writeAnnotated(*out, im, faces); err != nil {
			return exitUsage, err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return 0, enc.Encode(map[string]any{"image": pos[0], "width": im.Width, "height": im.Height, "faces": res})
	}
	fmt.Fprintf(stdout, "%s: %dx%d, %d face(s)\n", pos[0], im.Width, im.Height, len(res))
	for i, f := range res {
		verdict := "ok"
		if len(f.Quality) > 0 {
			verdict = ""
			for k, q := range f.Quality {
				if k > 0 {
					verdict += ","
				}
				verdict += string(q.Code)
			}
		}
		fmt.Fprintf(stdout, "face %d: box [%.0f %.0f %.0f %.0f] score %.3f mesh %.3f eyes %.1f px yaw %.1f pitch %.1f roll %.1f antispoof %.2f liveness %.2f quality %s\n",
			i, f.Box[0], f.Box[1], f.Box[2], f.Box[3], f.Score, f.MeshScore, f.Interocular,
			f.Pose.Yaw, f.Pose.Pitch, f.Pose.Roll, f.AntiSpoof, f.Liveness, verdict)
	}
	return 0, nil
}

// writeAnnotated draws boxes, keypoints and mesh points onto the image.
func writeAnnotated(path string, im *inference.Image, faces []inference.Face) error {
	img := im.RGBA()
	set := func(x, y float64, c color.RGBA, r int) {
		for dy := -r; dy <= r; dy++ {
			for dx := -r; dx <= r; dx++ {
				px, py := int(math.Round(x))+dx, int(math.Round(y))+dy
				if (image.Point{px, py}).In(img.Bounds()) {
					img.SetRGBA(px, py, c)
				}
			}
		}
	}
	green, red, yellow := color.RGBA{0, 255, 0, 255}, color.RGBA{255, 0, 0, 255}, color.RGBA{255, 255, 0, 255}
	for _, f := range faces {
		b := f.Detection.Box
		for t := 0.0; t <= 1; t += 1 / math.Max(b.W(), b.H()) {
			set(b.X0+t*b.W(), b.Y0, green, 0)
			set(b.X0+t*b.W(), b.Y1, green, 0)
			set(b.X0, b.Y0+t*b.H(), green, 0)
			set(b.X1, b.Y0+t*b.H(), green, 0)
		}
		for _, p := range f.Landmarks.Mesh {
			set(p.X, p.Y, yellow, 0)
		}
		for _, k := range f.Detection.Keypoints {
			set(k.X, k.Y, red, 2)
		}
		set(f.Landmarks.RightEye.X, f.Landmarks.RightEye.Y, green, 2)
		set(f.Landmarks.LeftEye.X, f.Landmarks.LeftEye.Y, green, 2)
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(fh, img); err != nil {
		fh.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return fh.Close()
}

func facesCompare(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("faces compare", stderr)
	var ef engineFlags
	ef.register(fs)
	threshold := fs.Float64("threshold", inference.DefaultMatchThreshold, "match threshold on the 0-100 similarity score")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(pos) != 2 {
		return exitUsage, usageError{"faces compare: want two images A B"}
	}
	rt, eng, err := ef.open()
	if err != nil {
		return exitUsage, err
	}
	defer rt.Close()
	defer eng.Close()
	var embs [2][]float32
	for i, p := range pos {
		im, err := readImage(p)
		if err != nil {
			return exitUsage, err
		}
		faces, err := eng.Analyze(im)
		if err != nil {
			return exitUsage, err
		}
		if len(faces) == 0 {
			return exitUsage, fmt.Errorf("%s: %w", p, inference.ErrNoFace)
		}
		if embs[i], err = eng.Embed(im, faces[0]); err != nil {
			return exitUsage, err
		}
	}
	cos := inference.Cosine(embs[0], embs[1])
	score := inference.SimilarityScore(eng.Config().Embedding, cos)
	match := score >= *threshold
	verdict := "no match"
	if match {
		verdict = "match"
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{
			"a": pos[0], "b": pos[1], "embedding": eng.Config().Embedding, "precision": eng.Config().Precision,
			"cosine": cos, "score": score, "threshold": *threshold, "match": match,
		}); err != nil {
			return exitUsage, err
		}
	} else {
		fmt.Fprintf(stdout, "similarity %.1f (cosine %.4f, threshold %.1f): %s\n", score, cos, *threshold, verdict)
	}
	if match {
		return exitMatch, nil
	}
	return exitNoMatch, nil
}

// runFacesMain runs a faces subcommand and maps its outcome to the exit
// status: compare's 0 (match) / 1 (no match), 2 for any error.
func runFacesMain(args []string, stdout, stderr io.Writer) int {
	code, err := runFaces(args, stdout, stderr)
	return exitStatus(code, err, exitUsage, topUsage, stderr)
}

// facesEval scores every pair of photos under DIR/<identity>/ (same folder:
// genuine pair, different folders: impostor pair) and reports the error
// rates, for choosing the embedding model and the threshold.
func facesEval(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("faces eval", stderr)
	var ef engineFlags
	ef.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	threshold := fs.Float64("threshold", inference.DefaultMatchThreshold, "threshold to report each pair's verdict at")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(pos) != 1 {
		return exitUsage, usageError{"faces eval: want one DIR (of identity folders)"}
	}
	dirs, err := os.ReadDir(pos[0])
	if err != nil {
		return exitUsage, fmt.Errorf("faces eval: %w (the evaluation photos are not in the repository; pass their folder)", err)
	}
	rt, eng, err := ef.open()
	if err != nil {
		return exitUsage, err
	}
	defer rt.Close()
	defer eng.Close()
	type sample struct {
		id, path string
		emb      []float32
	}
	var samples []sample
	var skipped []string
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(pos[0] + "/" + d.Name())
		if err != nil {
			return exitUsage, err
		}
		for _, f := range files {
			p := pos[0] + "/" + d.Name() + "/" + f.Name()
			im, err := readImage(p)
			if err != nil {
				skipped = append(skipped, p+": "+err.Error())
				continue
			}
			faces, err := eng.Analyze(im)
			if err != nil {
				return exitUsage, err
			}
			if len(faces) == 0 {
				skipped = append(skipped, p+": no face")
				continue
			}
			emb, err := eng.Embed(im, faces[0])
			if err != nil {
				return exitUsage, err
			}
			samples = append(samples, sample{d.Name(), d.Name() + "/" + f.Name(), emb})
		}
	}
	var pairs []inference.Pair
	for i := range samples {
		for j := i + 1; j < len(samples); j++ {
			cos := inference.Cosine(samples[i].emb, samples[j].emb)
			pairs = append(pairs, inference.Pair{
				A: samples[i].path, B: samples[j].path, Genuine: samples[i].id == samples[j].id, Cosine: cos,
				Score: inference.SimilarityScore(eng.Config().Embedding, cos),
			})
		}
	}
	ops := []inference.OperatingPoint{inference.Operating(pairs, 1e-2), inference.Operating(pairs, 1e-3)}
	var gen, imp, errs int
	for _, p := range pairs {
		if p.Genuine {
			gen++
			if p.Score < *threshold {
				errs++
			}
		} else {
			imp++
			if p.Score >= *threshold {
				errs++
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return 0, enc.Encode(map[string]any{
			"embedding": eng.Config().Embedding, "precision": eng.Config().Precision,
			"samples": len(samples), "skipped": skipped, "genuine_pairs": gen, "impostor_pairs": imp,
			"operating_points": ops, "threshold": *threshold, "errors_at_threshold": errs, "pairs": pairs,
		})
	}
	fmt.Fprintf(stdout, "embedding %s (%s): %d photos, %d genuine pairs, %d impostor pairs\n",
		eng.Config().Embedding, eng.Config().Precision, len(samples), gen, imp)
	for _, s := range skipped {
		fmt.Fprintf(stdout, "skipped %s\n", s)
	}
	for _, p := range pairs {
		kind := "impostor"
		if p.Genuine {
			kind = "genuine "
		}
		verdict := "no match"
		if p.Score >= *threshold {
			verdict = "match"
		}
		fmt.Fprintf(stdout, "%s %5.1f (cos %.3f) %-8s %s %s\n", kind, p.Score, p.Cosine, verdict, p.A, p.B)
	}
	for _, op := range ops {
		note := ""
		if !op.Resolvable {
			note = fmt.Sprintf(" (only %d impostor pairs: cannot resolve FMR %.0e; this is the zero-false-match threshold)", imp, op.TargetFMR)
		}
		fmt.Fprintf(stdout, "FMR target %.0e: threshold %.1f, FMR %.4f, FNMR %.4f%s\n", op.TargetFMR, op.Threshold, op.FMR, op.FNMR, note)
	}
	fmt.Fprintf(stdout, "at threshold %.1f: %d of %d pairs wrong\n", *threshold, errs, len(pairs))
	return 0, nil
}

// facesValidate checks an enrolment portrait: exit 0 valid, 1 invalid (the
// code says why), 2 error.
func facesValidate(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("faces validate", stderr)
	var ef engineFlags
	ef.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(pos) != 1 {
		return exitUsage, usageError{"faces validate: want one PORTRAIT"}
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return exitUsage, err
	}
	rt, eng, err := ef.open()
	if err != nil {
		return exitUsage, err
	}
	defer rt.Close()
	defer eng.Close()
	p, err := eng.ValidatePortrait(data, inference.DefaultQualityLimits())
	var pe *inference.PortraitError
	if err != nil && !errors.As(err, &pe) {
		return exitUsage, err
	}
	res := map[string]any{"portrait": pos[0], "valid": pe == nil}
	if pe != nil {
		res["code"], res["detail"] = pe.Code, pe.Detail
	} else {
		res["interocular"], res["pose"] = p.Face.Landmarks.Interocular, p.Face.Landmarks.Pose
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return exitUsage, err
		}
	} else if pe != nil {
		fmt.Fprintf(stdout, "%s: invalid: %v\n", pos[0], pe)
	} else {
		fmt.Fprintf(stdout, "%s: valid portrait (eyes %.0f px apart)\n", pos[0], p.Face.Landmarks.Interocular)
	}
	if pe != nil {
		return exitNoMatch, nil
	}
	return 0, nil
}
