package main

import (
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/internal/testenv"
)

// repoRoot is two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// requireDeps returns the models dir and fails (CI=true) or skips when
// make deps has not prepared the models, the ORT library and the photos.
func requireDeps(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	for _, p := range []string{
		filepath.Join(root, "models", "manifest.json"),
		filepath.Join(root, "models", "lib", runtime.GOARCH, inference.LibraryName),
		filepath.Join(root, ".cache", "faces", "skimage", "astronaut.png"),
		filepath.Join(root, ".cache", "faces", "opencv", "messi5.jpg"),
	} {
		testenv.Require(t, p, "make deps artefact")
	}
	return filepath.Join(root, "models")
}

// writeCrop writes the square (x, y, side) of a PNG/JPEG, scaled to size,
// as a PNG.
func writeCrop(t *testing.T, src, dst string, x, y, side, size int) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	im, _, err := inference.DecodeImage(b)
	if err != nil {
		t.Fatal(err)
	}
	rgba := im.RGBA()
	out := image.NewRGBA(image.Rect(0, 0, size, size))
	for v := 0; v < size; v++ {
		for u := 0; u < size; u++ {
			out.Set(u, v, rgba.At(x+u*side/size, y+v*side/size))
		}
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, out); err != nil {
		t.Fatal(err)
	}
}

// writeGrey writes a uniform grey size x size PNG: no face in it.
func writeGrey(t *testing.T, dst string, size int) {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, size, size))
	for i := range img.Pix {
		img.Pix[i] = 128
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func TestFacesCompareExitStatus(t *testing.T) {
	models := requireDeps(t)
	root := repoRoot(t)
	astro := filepath.Join(root, ".cache", "faces", "skimage", "astronaut.png")
	messi := filepath.Join(root, ".cache", "faces", "opencv", "messi5.jpg")
	dir := t.TempDir()
	astro2 := filepath.Join(dir, "astro2.png")
	writeCrop(t, astro, astro2, 100, 0, 300, 420)
	noFace := filepath.Join(dir, "noface.png")
	writeGrey(t, noFace, 300)
	broken := filepath.Join(dir, "broken.jpg")
	if err := os.WriteFile(broken, []byte{0xff, 0xd8, 0xff, 0xe0, 0, 16}, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		a, b   string
		code   int
		stdout string
		stderr string
	}{
		{"same person", astro, astro2, 0, ": match", ""},
		{"different people", astro, messi, 1, ": no match", ""},
		{"no face", astro, noFace, 2, "", "no face"},
		{"undecodable", astro, broken, 2, "", "not a decodable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, "faces", "compare", tt.a, tt.b, "--models", models)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
		})
	}
	code, stdout, stderr := runCmd(t, "faces", "compare", "--json", astro, astro2, "--models", models)
	var res struct {
		Score     float64 `json:"score"`
		Threshold float64 `json:"threshold"`
		Match     bool    `json:"match"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 0 || !res.Match || res.Score < res.Threshold {
		t.Fatalf("--json: exit %d, %+v, %v\n%s%s", code, res, err, stdout, stderr)
	}
}

func TestFacesDetect(t *testing.T) {
	models := requireDeps(t)
	astro := filepath.Join(repoRoot(t), ".cache", "faces", "skimage", "astronaut.png")
	out := filepath.Join(t.TempDir(), "annotated.png")
	code, stdout, stderr := runCmd(t, "faces", "detect", astro, "--out", out, "--json", "--models", models)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Faces []struct {
			Interocular float64           `json:"interocular"`
			Quality     []inference.Issue `json:"quality"`
		} `json:"faces"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Faces) != 1 || res.Faces[0].Interocular < 30 {
		t.Fatalf("faces: %+v", res.Faces)
	}
	// The astronaut's eyes are 43 px apart: too close for a portrait.
	if q := res.Faces[0].Quality; len(q) == 0 || q[0].Code != inference.CodeEyesTooClose {
		t.Errorf("quality %+v, want %s first", q, inference.CodeEyesTooClose)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		t.Errorf("annotated image: %v", err)
	}
}

func TestModelsConvertUnsupportedOp(t *testing.T) {
	dir := t.TempDir()
	model := `{"format":"graph-model","modelTopology":{"node":[
		{"name":"x","op":"Placeholder","attr":{"dtype":{"type":"DT_FLOAT"},"shape":{"shape":{"dim":[{"size":"1"},{"size":"4"}]}}}},
		{"name":"net/odd","op":"FancyOp","input":["x"]}]},"weightsManifest":[]}`
	in := filepath.Join(dir, "m.json")
	if err := os.WriteFile(in, []byte(model), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, "models", "convert", "--in", in, "--out", filepath.Join(dir, "m.onnx"))
	if code != 1 || !strings.Contains(stderr, `"net/odd"`) || !strings.Contains(stderr, `"FancyOp"`) {
		t.Fatalf("exit %d, stderr %q: want the op and node named", code, stderr)
	}
}

func TestFacesValidate(t *testing.T) {
	models := requireDeps(t)
	astro := filepath.Join(repoRoot(t), ".cache", "faces", "skimage", "astronaut.png")
	text := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(text, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file string
		code int
		want inference.Code
	}{
		{astro, 1, inference.CodeEyesTooClose},
		{text, 1, inference.CodeFormat},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCmd(t, "faces", "validate", "--json", tt.file, "--models", models)
		var res struct {
			Valid bool           `json:"valid"`
			Code  inference.Code `json:"code"`
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != tt.code || res.Valid || res.Code != tt.want {
			t.Errorf("%s: exit %d, %+v (%v), want code %s\n%s", tt.file, code, res, err, tt.want, stderr)
		}
	}
}
