package main

import (
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeDrawnFace writes a portrait the simulator's skin detector finds.
func writeDrawnFace(t *testing.T, dir string) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 200, 200))
	for y := 0; y < 200; y++ {
		for x := 0; x < 200; x++ {
			c := color.RGBA{110, 115, 120, 255}
			if du, dv := float64(x-100)/40, float64(y-100)/52; du*du+dv*dv < 1 {
				c = color.RGBA{210, 155, 130, 255}
				if math.Abs(math.Abs(float64(x-100))-16) < 6 && math.Abs(float64(y-90)) < 3 {
					c = color.RGBA{40, 30, 30, 255}
				}
			}
			img.Set(x, y, c)
		}
	}
	f, err := os.Create(filepath.Join(dir, "face.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func TestEvalBadInput(t *testing.T) {
	faces := t.TempDir()
	writeDrawnFace(t, faces)
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "readme.txt"), []byte("no photos"), 0o644); err != nil {
		t.Fatal(err)
	}
	cond := func(body string) string {
		p := filepath.Join(t.TempDir(), "cond.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := t.TempDir()
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown species", []string{"--faces", faces, "--species", "print,hologram", "--out", out}, exitUsage, `unknown species "hologram"`},
		{"unknown conditions key", []string{"--faces", faces, "--conditions", cond("ambient: 3\n"), "--out", out}, 1, "field ambient not found"},
		{"malformed conditions", []string{"--faces", faces, "--conditions", cond("distance_m: [0.9, 0.2]\n"), "--out", out}, 1, "distance_m: min 0.9 > max 0.2"},
		{"no usable face", []string{"--faces", empty, "--out", out}, 1, empty + ": no usable face"},
		{"missing out", []string{"--faces", faces}, exitUsage, "--out"},
		{"unknown scorer", []string{"--faces", faces, "--scorer", "oracle", "--out", out}, exitUsage, `unknown scorer "oracle"`},
		{"closed level", []string{"--faces", faces, "--level", "closed", "--out", out}, exitUsage, `--level: "closed"`},
		{"unknown level", []string{"--faces", faces, "--level", "medium", "--out", out}, exitUsage, `--level: "medium"`},
		{"unknown variant", []string{"--faces", faces, "--variants", "relight-1ms", "--out", out}, exitUsage, `unknown variant "relight-1ms"`},
		{"unknown locator", []string{"--faces", faces, "--locator", "psychic", "--out", out}, exitUsage, `unknown locator "psychic"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, append([]string{"eval", "--quiet", "--bona-fide", "1", "--attacks-per-species", "1"}, tc.args...)...)
			if code != tc.wantCode || !strings.Contains(stderr, tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.wantCode, tc.wantErr)
			}
		})
	}
}

// TestEvalBaselineRuns: a tiny evaluation completes, writes the three
// report files, and the trivial baseline fails (APCER_max > 5%).
func TestEvalBaselineRuns(t *testing.T) {
	faces := t.TempDir()
	writeDrawnFace(t, faces)
	cond := filepath.Join(t.TempDir(), "small.yaml")
	if err := os.WriteFile(cond, []byte("width: 96\nheight: 72\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "report")
	code, stdout, stderr := runCmd(t, "eval", "--scorer", "baseline", "--faces", faces, "--seed", "3", "--bona-fide", "4",
		"--attacks-per-species", "2", "--species", "print,screen,replay,injection,relight,mask",
		"--conditions", cond, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "attempts") {
		t.Errorf("no progress bar on stderr: %q", stderr)
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Seed     uint64 `json:"seed"`
		BonaFide struct {
			Attempts int `json:"attempts"`
		} `json:"bona_fide"`
		APCERMax float64 `json:"apcer_max"`
		Species  map[string]struct {
			Attempts int `json:"attempts"`
		} `json:"species"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Seed != 3 || r.BonaFide.Attempts != 4 || len(r.Species) != 6 || r.Species["relight"].Attempts != 2 {
		t.Fatalf("report %+v", r)
	}
	if r.APCERMax <= 0.05 {
		t.Errorf("trivial baseline APCER_max %.2f: the harness should show it failing (%s)", r.APCERMax, stdout)
	}
	for _, f := range []string{"report.md", "det.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestEvalFlashmarkRuns: the default scorer is the pipeline end to end
// (face detector, passive model, flashmark analysis): a small run on a
// registry photo writes reasons and evidence per attempt, the relight
// variant is reported as its own species, and the relighting attacks are
// rejected for their lag.
func TestEvalFlashmarkRuns(t *testing.T) {
	models := requireDeps(t)
	faces := filepath.Join(filepath.Dir(models), ".cache", "faces", "skimage")
	cond := filepath.Join(t.TempDir(), "kiosk.yaml")
	if err := os.WriteFile(cond, []byte("width: 320\nheight: 240\ndistance_m: [0.35, 0.5]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "report")
	code, stdout, stderr := runCmd(t, "eval", "--quiet", "--models", models, "--faces", faces, "--seed", "5",
		"--bona-fide", "2", "--attacks-per-species", "2", "--species", "relight", "--variants", "relight-33ms",
		"--conditions", cond, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Scorer  string `json:"scorer"`
		Species map[string]struct {
			Attempts int            `json:"attempts"`
			Accepted int            `json:"accepted"`
			Reasons  map[string]int `json:"reasons"`
		} `json:"species"`
		Attempts []struct {
			Species  string             `json:"species"`
			Evidence map[string]float64 `json:"evidence"`
		} `json:"attempts"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Scorer != "flashmark" || len(r.Attempts) != 6 {
		t.Fatalf("scorer %q, %d attempts (%s)", r.Scorer, len(r.Attempts), stdout)
	}
	for _, sp := range []string{"relight", "relight-33ms"} {
		st := r.Species[sp]
		if st.Attempts != 2 || st.Accepted != 0 || st.Reasons["FLASH_LAG_OUT_OF_WINDOW"] != 2 {
			t.Errorf("%s: %+v", sp, st)
		}
	}
	for _, a := range r.Attempts {
		if p, ok := a.Evidence["passive"]; !ok || p < 0 || p > 1 {
			t.Errorf("%s: passive model did not run: %v", a.Species, a.Evidence)
		}
	}
}

func TestSimRender(t *testing.T) {
	faces := t.TempDir()
	writeDrawnFace(t, faces)
	out := t.TempDir()
	code, _, stderr := runCmd(t, "sim", "render", "--faces", faces, "--out", out, "--width", "64", "--height", "48")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, n := range []string{"bona_fide_red", "bona_fide_blue", "print", "screen", "replay", "injection", "relight", "mask"} {
		if _, err := os.Stat(filepath.Join(out, n+".png")); err != nil {
			t.Error(err)
		}
	}
}
