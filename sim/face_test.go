package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadFaceSources(t *testing.T) {
	dir := t.TempDir()
	blank := drawnBlankPNG(t, filepath.Join(dir, "group.png"))
	for _, tc := range []struct {
		name    string
		sidecar string
		want    int
		wantErr string
	}{
		{"no face, no sidecar", "", 0, "no usable face"},
		{"sidecar with two faces", `{"faces": [[4, 4, 20, 24], [36, 30, 20, 24]]}`, 2, ""},
		{"sidecar with a tiny face", `{"faces": [[4, 4, 5, 5]]}`, 0, "too small"},
		{"bad sidecar", `{"face": []}`, 0, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(blank + ".face.json")
			if tc.sidecar != "" {
				if err := os.WriteFile(blank+".face.json", []byte(tc.sidecar), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fs, err := LoadFace(blank)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(fs) != tc.want {
				t.Fatalf("%d faces, %v; want %d", len(fs), err, tc.want)
			}
			if !strings.HasSuffix(fs[1].Name, "#1") || fs[0].Box.W != faceCropWidth {
				t.Fatalf("face %q box %+v", fs[1].Name, fs[0].Box)
			}
		})
	}
}

// TestRegistryFaces: every registry photo `make deps` fetches is one the
// face-box table knows (its SHA-256 is pinned), and the small ones load
// (skipped before make deps; decoding the 1920-px group photos is left to
// make eval).
func TestRegistryFaces(t *testing.T) {
	dir := filepath.Join("..", ".cache", "faces")
	paths, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	if len(paths) == 0 {
		t.Skipf("%s missing: run make deps", dir)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		boxes, ok := registryFaces[hex.EncodeToString(sum[:])]
		if !ok {
			t.Errorf("%s: not in the registry face table (did the pinned package change?)", p)
			continue
		}
		if len(b) > 200<<10 {
			continue
		}
		fs, err := LoadFace(p)
		if err != nil || len(fs) != len(boxes) {
			t.Errorf("%s: %d faces, %v; want %d", p, len(fs), err, len(boxes))
		}
	}
}

// TestRealClockSource: on the real clock the camera paces frames and stamps
// them on CLOCK_MONOTONIC, like the V4L2 source.
func TestRealClockSource(t *testing.T) {
	p := DefaultParams()
	p.Width, p.Height, p.FPS = 32, 24, 120
	clock := RealClock{}
	a, err := NewAttempt(drawnFace(), p, clock, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.Camera.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Camera.Close()
	before := clock.Now()
	for i := 0; i < 3; i++ {
		f, err := a.Camera.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if now := clock.Now(); f.Timestamp > now || f.Timestamp < before-time.Second {
			t.Fatalf("frame %d stamped %v, clock %v (opened at %v)", i, f.Timestamp, now, before)
		}
	}
	// Close unblocks a reader waiting for its frame.
	done := make(chan error, 1)
	go func() { _, err := a.Camera.ReadFrame(ctx); done <- err }()
	a.Camera.Close()
	if err := <-done; err != nil && err.Error() != "source closed" {
		t.Fatalf("read after close: %v", err)
	}
}
