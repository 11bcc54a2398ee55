package inference

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/glintdev/glint/inference/manifest"
	"github.com/glintdev/glint/internal/testenv"
)

// int8CheckPhotos are registry photos kept apart from the INT8 calibration
// set (glintctl models quantize calibrates on face-api samples 1-4).
var int8CheckPhotos = []string{"face-api/sample5.jpg", "face-api/sample6.jpg", "skimage/astronaut.png", "opencv/messi5.jpg"}

// TestInt8Accuracy checks the INT8 models against FP32 on the check photos:
// detector boxes IoU ≥ 0.9 (for a detector that ships in INT8), embedding
// cosine ≥ 0.99 on average and ≥ 0.98 at worst, anti-spoof (and liveness)
// score change ≤ 0.02, facemesh points within 2% of the eye distance on
// average.
func TestInt8Accuracy(t *testing.T) {
	fp := testEngine(t)
	man, err := manifest.Load(testenv.Models(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := man.Find("faceres", manifest.INT8); err != nil {
		testenv.Require(t, filepath.Join(testenv.Models(t), "faceres.int8.onnx"), "INT8 models")
	}
	q, err := New(shared.rt, Config{ModelsDir: testenv.Models(t), Precision: manifest.INT8})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// The detectors that ship in INT8 (none today: quantize.Float keeps
	// both in FP32 because INT8 runs slower; the INT8 engine then loads the
	// FP32 file, and quantize's TestDetectorInt8Accuracy checks the INT8
	// models docs/models.md measures).
	for _, det := range []struct{ name, detector string }{{"blazeface", DetectorFull}, {"blazeface-front", DetectorShort}} {
		if _, err := man.Find(det.name, manifest.INT8); err != nil {
			t.Logf("detector %s: ships FP32 only (quantize.Float); INT8 accuracy is checked by quantize.TestDetectorInt8Accuracy", det.name)
			continue
		}
		checkDetectorInt8(t, det.name, det.detector)
	}
	var cosSum, cosMin, spoofMax, liveMax, meshMax float64 = 0, 1, 0, 0, 0
	n := 0
	for _, p := range int8CheckPhotos {
		im := photo(t, p)
		ff, err := fp.Analyze(im)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range ff {
			// Embedding and anti-spoof on the same (FP32) face geometry, so
			// only the model's precision differs.
			ef, err := fp.Embed(im, f)
			if err != nil {
				t.Fatal(err)
			}
			eq, err := q.Embed(im, f)
			if err != nil {
				t.Fatal(err)
			}
			c := Cosine(ef, eq)
			cosSum += c
			cosMin = math.Min(cosMin, c)
			n++
			sf, err := fp.AntiSpoof(im, f)
			if err != nil {
				t.Fatal(err)
			}
			sq, err := q.AntiSpoof(im, f)
			if err != nil {
				t.Fatal(err)
			}
			spoofMax = math.Max(spoofMax, math.Abs(sf-sq))
			lf, err := fp.Liveness(im, f)
			if err != nil {
				t.Fatal(err)
			}
			lq, err := q.Liveness(im, f)
			if err != nil {
				t.Fatal(err)
			}
			liveMax = math.Max(liveMax, math.Abs(lf-lq))
			// Landmarks: mean point displacement relative to the eye
			// distance.
			mq, err := q.Landmarks(im, f.Detection)
			if err != nil {
				t.Fatal(err)
			}
			var d float64
			for k, p := range f.Landmarks.Mesh {
				d += math.Hypot(p.X-mq.Mesh[k].X, p.Y-mq.Mesh[k].Y)
			}
			meshMax = math.Max(meshMax, d/float64(len(f.Landmarks.Mesh))/f.Landmarks.Interocular)
		}
	}
	if n == 0 {
		t.Fatal("no faces in the check photos")
	}
	mean := cosSum / float64(n)
	t.Logf("%d faces: embedding cosine mean %.4f min %.4f; anti-spoof max change %.4f; liveness max change %.4f; landmarks mean shift max %.4f of the eye distance",
		n, mean, cosMin, spoofMax, liveMax, meshMax)
	if mean < 0.99 || cosMin < 0.98 {
		t.Errorf("embedding cosine INT8 vs FP32: mean %.4f (want ≥ 0.99), min %.4f (want ≥ 0.98)", mean, cosMin)
	}
	if spoofMax > 0.02 {
		t.Errorf("anti-spoof score change %.4f > 0.02", spoofMax)
	}
	if liveMax > 0.02 {
		t.Errorf("liveness score change %.4f > 0.02", liveMax)
	}
	if meshMax > 0.02 {
		t.Errorf("landmarks moved %.4f of the eye distance on average (> 0.02)", meshMax)
	}
}

// checkDetectorInt8 compares a detector's shipped INT8 model with its FP32
// model on the check photos: every FP32 box has an INT8 box with IoU ≥ 0.9.
func checkDetectorInt8(t *testing.T, name, detector string) {
	t.Helper()
	dir := testenv.Models(t)
	fp, err := New(shared.rt, Config{ModelsDir: dir, Detector: detector})
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	q, err := New(shared.rt, Config{ModelsDir: dir, Detector: detector, Precision: manifest.INT8})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	worst, faces := 1.0, 0
	for _, p := range int8CheckPhotos {
		im := photo(t, p)
		fd, err := fp.Detect(im)
		if err != nil {
			t.Fatal(err)
		}
		qd, err := q.Detect(im)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range fd {
			best := 0.0
			for _, d := range qd {
				best = math.Max(best, IoU(f.Box, d.Box))
			}
			worst, faces = math.Min(worst, best), faces+1
			if best < 0.9 {
				t.Errorf("%s: %s face %d: best INT8 box IoU %.3f < 0.9", name, p, i, best)
			}
		}
	}
	if faces == 0 {
		t.Fatalf("%s: no faces in the check photos", name)
	}
	t.Logf("detector %s INT8: %d faces, box IoU min %.3f", name, faces, worst)
}
