package inference

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/glintdev/glint/internal/testenv"
)

// The short-range ("front", 128x128) detector against the full-range one
// (256x256): on the registry photos, and on those faces reframed as a kiosk
// camera sees them. docs/models.md has the measured range.

// shortOnce is an Engine with the short-range detector on the shared
// runtime, opened once (TestMain closes it).
var shortOnce struct {
	once sync.Once
	eng  *Engine
	err  error
}

func shortEngine(t testing.TB) *Engine {
	t.Helper()
	rt := testRuntime(t)
	shortOnce.once.Do(func() {
		shortOnce.eng, shortOnce.err = New(rt, Config{ModelsDir: filepath.Join(testenv.Root(t), "models"), Detector: DetectorShort})
	})
	if shortOnce.err != nil {
		t.Fatal(shortOnce.err)
	}
	return shortOnce.eng
}

// registryPhotos are the photos scripts/faces.sh fetches.
var registryPhotos = []string{
	"skimage/astronaut.png", "opencv/messi5.jpg",
	"face-api/sample1.jpg", "face-api/sample2.jpg", "face-api/sample3.jpg",
	"face-api/sample4.jpg", "face-api/sample5.jpg", "face-api/sample6.jpg",
}

// bestMatch returns the detection of dets that overlaps box most, and the
// IoU (0 and false when none overlaps).
func bestMatch(box Rect, dets []Detection) (Detection, float64, bool) {
	var best Detection
	var iou float64
	for _, d := range dets {
		if v := IoU(box, d.Box); v > iou {
			best, iou = d, v
		}
	}
	return best, iou, iou > 0
}

// faceFraction is a detection's width over the image's longer side: the
// measure of the short-range detector's range.
func faceFraction(d Detection, im *Image) float64 {
	return d.Box.W() / float64(max(im.Width, im.Height))
}

// kioskFrame reframes im into a 640x480 frame in which the face box is
// frac of the frame's width, centred; it returns the frame and the box in
// frame pixels.
func kioskFrame(im *Image, box Rect, frac float64) (*Image, Rect) {
	side := box.W() / frac
	c := box.Center()
	x, y := c.X-side/2, c.Y-0.375*side
	s := side / 640
	frame := transform(im, 640, 480, Affine{A: s, C: x, E: s, F: y})
	return frame, Rect{(box.X0 - x) / s, (box.Y0 - y) / s, (box.X1 - x) / s, (box.Y1 - y) / s}
}

// compareDetectors runs both detectors on im and returns, for the face at
// box (image pixels), the full-range detection, the short-range one and
// their IoU (ok false when either detector misses the face).
func compareDetectors(t *testing.T, im *Image, box Rect) (full, short Detection, iou float64, ok bool) {
	t.Helper()
	fd, err := testEngine(t).Detect(im)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := shortEngine(t).Detect(im)
	if err != nil {
		t.Fatal(err)
	}
	full, _, okf := bestMatch(box, fd)
	if !okf {
		return full, short, 0, false
	}
	short, iou, oks := bestMatch(full.Box, sd)
	return full, short, iou, oks
}

// unsureScore: a full-range detection under this score is not a firm
// reference box at the smallest kiosk framing (20%): two such faces
// (face-api sample2 and sample3, scores 0.63-0.64) give
// IoU 0.62-0.63 there, and ≥ 0.7 from 30% on.
const unsureScore = 0.7

// minShortIoU is the bar: the short-range box against the full-range box
// of the same face.
const minShortIoU = 0.7

// TestShortRangeDetectorRegistryPhotos: where the face is large enough,
// the short-range detector finds it and its box agrees with the full-range
// detector's (IoU ≥ 0.7). Of the registry photos as they are, only the
// astronaut's face (20% of the image width) is in range; the others
// (messi5 7%, face-api 8-13%) are group photos taken from afar, see
// TestShortRangeFarFaces. Every face of every photo is also reframed into a
// 640x480 frame with the face 20%, 30% and 45% of the frame width, which
// is a kiosk user at about 65, 43 and 29 cm with a 60° camera (16%, about
// 80 cm, is below the measured range: docs/models.md); at 20%
// the faces the full-range detector itself is unsure of (unsureScore) are
// logged, not checked.
func TestShortRangeDetectorRegistryPhotos(t *testing.T) {
	t.Run("astronaut as is", func(t *testing.T) {
		im := photo(t, "skimage/astronaut.png")
		fd, err := testEngine(t).Detect(im)
		if err != nil || len(fd) != 1 {
			t.Fatalf("full-range: %v, %d faces", err, len(fd))
		}
		sd, err := shortEngine(t).Detect(im)
		if err != nil || len(sd) != 1 {
			t.Fatalf("short-range: %v, %d faces, want 1", err, len(sd))
		}
		iou := IoU(fd[0].Box, sd[0].Box)
		t.Logf("face %.0f%% of the width: IoU %.3f, scores full %.3f short %.3f", 100*faceFraction(fd[0], im), iou, fd[0].Score, sd[0].Score)
		if iou < minShortIoU {
			t.Errorf("IoU %.3f < %.1f", iou, minShortIoU)
		}
	})
	worst, checked := 1.0, 0
	for _, p := range registryPhotos {
		src := photo(t, p)
		faces, err := testEngine(t).Detect(src)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range faces {
			for _, frac := range []float64{0.2, 0.3, 0.45} {
				frame, box := kioskFrame(src, f.Box, frac)
				full, short, iou, ok := compareDetectors(t, frame, box)
				if !ok {
					t.Errorf("%s face %d at %.0f%% of the width: short-range detector missed it (full-range box %.0f)", p, i, 100*frac, full.Box)
					continue
				}
				if frac < 0.3 && f.Score < unsureScore {
					// The reference box itself is unsure: logged only.
					t.Logf("%s face %d at %.0f%% (full-range score %.3f): IoU %.3f", p, i, 100*frac, f.Score, iou)
					continue
				}
				worst, checked = min(worst, iou), checked+1
				if iou < minShortIoU {
					t.Errorf("%s face %d at %.0f%%: IoU %.3f < %.1f (full %.0f, short %.0f)", p, i, 100*frac, iou, minShortIoU, full.Box, short.Box)
				}
			}
		}
	}
	t.Logf("kiosk-framed faces (20-45%% of the width): %d checked, worst IoU short vs full %.3f", checked, worst)
}

// TestShortRangeFarFaces documents the short-range detector's limit: a
// face under ~12% of the image's longer side (a user beyond ~1.5 m with a
// 60° camera, or the face-api group photos as they are) is out of its
// range. There it misses the face or returns a box that disagrees with the
// full-range detector's (the test fails if that ever changes, so that
// docs/models.md is revisited); glint must use the full-range detector
// wherever faces can be that small.
func TestShortRangeFarFaces(t *testing.T) {
	agree, total := 0, 0
	for _, p := range registryPhotos {
		src := photo(t, p)
		faces, err := testEngine(t).Detect(src)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range faces {
			check := func(what string, im *Image, box Rect) {
				_, short, iou, ok := compareDetectors(t, im, box)
				frac := box.W() / float64(max(im.Width, im.Height))
				total++
				if ok && iou >= minShortIoU {
					agree++
				}
				t.Logf("%s face %d %s (%.0f%% of the longer side): short-range found %v, IoU %.3f, score %.3f", p, i, what, 100*frac, ok, iou, short.Score)
			}
			if faceFraction(f, src) < 0.12 {
				check("as is", src, f.Box)
			}
			for _, frac := range []float64{0.06, 0.08} {
				frame, box := kioskFrame(src, f.Box, frac)
				check("reframed", frame, box)
			}
		}
	}
	t.Logf("far faces: short-range box agrees (IoU ≥ %.1f) with the full-range one on %d of %d", minShortIoU, agree, total)
	// Out of range: the short-range detector is not to be trusted there.
	// More than a fifth agreeing would mean the documented range is too
	// conservative.
	if total == 0 || float64(agree) > 0.2*float64(total) {
		t.Errorf("far faces: %d of %d agree; docs/models.md says the short-range detector is out of range there", agree, total)
	}
}

// TestShortRangeAnchors: the 128x128 model's anchors are MediaPipe's
// short-range ones: 16x16 cells of stride 8 with 2 anchors, then 8x8 cells
// of stride 16 with 6, 896 in all, centred in their cells.
func TestShortRangeAnchors(t *testing.T) {
	a := blazeAnchors(128)
	if len(a) != 896 {
		t.Fatalf("%d anchors, want 896", len(a))
	}
	for _, c := range []struct {
		i    int
		x, y float64
	}{{0, 4, 4}, {1, 4, 4}, {2, 12, 4}, {511, 124, 124}, {512, 8, 8}, {517, 8, 8}, {518, 24, 8}, {895, 120, 120}} {
		if a[c.i].x != c.x || a[c.i].y != c.y {
			t.Errorf("anchor %d at (%v, %v), want (%v, %v)", c.i, a[c.i].x, a[c.i].y, c.x, c.y)
		}
	}
}

// TestDetectorConfig: an unknown Config.Detector is an error naming the
// choices, before any model is loaded.
func TestDetectorConfig(t *testing.T) {
	_, err := New(nil, Config{ModelsDir: t.TempDir(), Detector: "medium"})
	if err == nil || !strings.Contains(err.Error(), `"medium"`) || !strings.Contains(err.Error(), `"short"`) {
		t.Errorf("err = %v, want an unknown-detector error", err)
	}
	for d, want := range map[string]string{"": "blazeface", DetectorFull: "blazeface", DetectorShort: "blazeface-front"} {
		c := Config{Detector: d}
		c.setDefaults()
		if got, err := detectorModel(c.Detector); err != nil || got != want {
			t.Errorf("detector %q: model %q, %v; want %q", d, got, err, want)
		}
	}
}
