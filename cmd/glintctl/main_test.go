package main

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCameraGrabFromFiles(t *testing.T) {
	in := t.TempDir()
	for i := 0; i < 3; i++ {
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		for p := range img.Pix {
			img.Pix[p] = byte(p * (i + 1))
		}
		img.Set(0, 0, color.RGBA{255, 0, 0, 255})
		f, err := os.Create(filepath.Join(in, "f"+string(rune('a'+i))+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		if err := jpeg.Encode(f, img, nil); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	out := filepath.Join(t.TempDir(), "grab")
	code, stdout, stderr := runCmd(t, "camera", "grab", "--device", in, "--frames", "3", "--fps", "100", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "negotiated MJPG 64x48") || !strings.Contains(stdout, "captured 3 frames") {
		t.Fatalf("output:\n%s", stdout)
	}
	written, _ := filepath.Glob(filepath.Join(out, "frame-*.jpg"))
	if len(written) != 3 {
		t.Fatalf("wrote %d frames", len(written))
	}
}

func TestUsageErrors(t *testing.T) {
	cases := [][]string{
		{},
		{"nope"},
		{"camera"},
		{"camera", "grab"},
		{"camera", "grab", "--out", "x", "--frames", "0"},
		{"camera", "grab", "--out", "x", "--formats", "MJPEG"},
		{"camera", "list", "extra"},
	}
	for _, args := range cases {
		code, _, stderr := runCmd(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, stderr)
		}
	}
}

func TestCameraGrabMissingDevice(t *testing.T) {
	code, _, stderr := runCmd(t, "camera", "grab", "--device", "/dev/video-glint-missing", "--frames", "1", "--out", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestCameraListRuns(t *testing.T) {
	code, stdout, stderr := runCmd(t, "camera", "list", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(strings.TrimSpace(stdout), "[") {
		t.Fatalf("not a JSON list: %q", stdout)
	}
}

func TestCameraTestPatternReplays(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "frames")
	code, stdout, stderr := runCmd(t, "camera", "testpattern", "--out", dir, "--frames", "4", "--width", "64", "--height", "48")
	if code != 0 || !strings.Contains(stdout, "wrote 4") {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	out := t.TempDir()
	code, stdout, stderr = runCmd(t, "camera", "grab", "--device", dir, "--frames", "4", "--fps", "0", "--out", out)
	if code != 0 || !strings.Contains(stdout, "MJPG 64x48") {
		t.Fatalf("replaying the pattern: exit %d: %s %s", code, stdout, stderr)
	}
	if code, _, _ := runCmd(t, "camera", "testpattern", "--out", dir, "--width", "4"); code != exitUsage {
		t.Fatalf("tiny size accepted: exit %d", code)
	}
}
