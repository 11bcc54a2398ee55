package inference_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/inference/manifest"
	"github.com/glintdev/glint/inference/quantize"
	"github.com/glintdev/glint/internal/testenv"
)

// fixed turns manifest tensors into session specs with batch 1.
func fixed(ts []manifest.Tensor) []inference.TensorSpec {
	out := make([]inference.TensorSpec, len(ts))
	for i, t := range ts {
		s := append([]int64(nil), t.Shape...)
		for k := range s {
			if s[k] < 0 {
				s[k] = 1
			}
		}
		out[i] = inference.TensorSpec{Name: t.Name, Shape: s}
	}
	return out
}

// detectorInt8 quantizes detector name in-process with its INT8 setting
// (quantize.ModelConfig, calibrated on glintctl models quantize's default
// photos): glint ships the detectors in FP32 (quantize.Float says why), so
// this is how their INT8 speed is measured.
func detectorInt8(b *testing.B, rt *inference.Runtime, dir, name string) []byte {
	b.Helper()
	var calib []string
	for _, p := range []string{"sample1.jpg", "sample2.jpg", "sample3.jpg", "sample4.jpg"} {
		calib = append(calib, testenv.Require(b, filepath.Join(testenv.Root(b), ".cache", "faces", "face-api", p), "registry photo"))
	}
	q, _, err := quantize.Candidate(rt, dir, name, calib, quantize.ModelConfig(name))
	if err != nil {
		b.Fatal(err)
	}
	return q
}

// BenchmarkModel runs each model's session (inference only, preallocated
// tensors) at FP32 and INT8 with 1 and 2 intra-op threads.
func BenchmarkModel(b *testing.B) {
	rt := inference.SharedRuntime(b)
	dir := testenv.Models(b)
	man, err := manifest.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, spec := range manifest.Catalog() {
		for _, prec := range []string{manifest.FP32, manifest.INT8} {
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", spec.Name, prec, threads), func(b *testing.B) {
					fp, e, err := man.ReadModel(dir, spec.Name, manifest.FP32)
					if err != nil {
						b.Fatal(err)
					}
					model := fp
					if prec == manifest.INT8 {
						if q, _, err := man.ReadModel(dir, spec.Name, manifest.INT8); err == nil {
							model = q
						} else if spec.Role == "detector" && quantize.Float(spec.Name) != "" {
							model = detectorInt8(b, rt, dir, spec.Name)
						} else if why := quantize.Float(spec.Name); why != "" {
							b.Skip("no INT8 model: " + why)
						} else {
							b.Fatal(err)
						}
					}
					s, err := rt.NewSession(spec.Name, model, fixed(e.Inputs), fixed(e.Outputs), inference.SessionConfig{IntraOpThreads: threads})
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					in := s.Input(0)
					for i := range in {
						in[i] = float32(i%255) * spec.Scale
					}
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if err := s.Run(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// engine opens an Engine at precision on the shared runtime, with the
// default detector.
func engine(b *testing.B, precision string, threads int) *inference.Engine {
	return engineWith(b, precision, threads, "")
}

// engineWith opens an Engine at precision with detector (a Config.Detector
// value) on the shared runtime.
func engineWith(b *testing.B, precision string, threads int, detector string) *inference.Engine {
	b.Helper()
	rt := inference.SharedRuntime(b)
	e, err := inference.New(rt, inference.Config{ModelsDir: filepath.Join(testenv.Root(b), "models"), Precision: precision, IntraOpThreads: threads, Detector: detector})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkTrackingStep is one tracking step on a 640x480 frame: detect,
// then facemesh on the face, including pre- and post-processing in Go. The
// sub-benchmarks without a detector= prefix use the default (full-range)
// detector; detector=short/... the short-range one. The astronaut's face is
// ~20% of the frame's width, inside the short-range detector's range.
func BenchmarkTrackingStep(b *testing.B) {
	frame := inference.Scaled(inference.Photo(b, "skimage/astronaut.png"), 0, 0, 512, 640, 480)
	for _, det := range []string{"", inference.DetectorShort} {
		for _, prec := range []string{manifest.FP32, manifest.INT8, inference.PrecisionAuto} {
			name := prec + "/threads=1"
			if det != "" {
				name = "detector=" + det + "/" + name
			}
			trackingStep(b, name, frame, prec, det)
		}
	}
}

// trackingStep runs one BenchmarkTrackingStep case.
func trackingStep(b *testing.B, name string, frame *inference.Image, prec, det string) {
	b.Run(name, func(b *testing.B) {
		eng := engineWith(b, prec, 1, det)
		defer eng.Close()
		tr := inference.NewTracker(inference.TrackerConfig{})
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			dets, err := eng.Detect(frame)
			if err != nil || len(dets) == 0 {
				b.Fatalf("detect: %v, %d faces", err, len(dets))
			}
			if _, err := eng.Landmarks(frame, dets[0]); err != nil {
				b.Fatal(err)
			}
			tr.Update(dets)
		}
	})
}

// BenchmarkRetrack is the tracking step between detections: facemesh on
// the crop the previous landmarks give, no detector.
func BenchmarkRetrack(b *testing.B) {
	frame := inference.Scaled(inference.Photo(b, "skimage/astronaut.png"), 0, 0, 512, 640, 480)
	eng := engine(b, manifest.FP32, 1)
	defer eng.Close()
	faces, err := eng.Analyze(frame)
	if err != nil || len(faces) == 0 {
		b.Fatalf("analyze: %v", err)
	}
	l := faces[0].Landmarks
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if l, err = eng.Retrack(frame, l); err != nil || l.Score < 0.5 {
			b.Fatalf("retrack: %v, score %v", err, l)
		}
	}
}

// BenchmarkEmbed is alignment plus the embedding model for one face.
func BenchmarkEmbed(b *testing.B) {
	im := inference.Photo(b, "skimage/astronaut.png")
	for _, prec := range []string{manifest.FP32, manifest.INT8} {
		b.Run(prec+"/threads=1", func(b *testing.B) {
			eng := engine(b, prec, 1)
			defer eng.Close()
			faces, err := eng.Analyze(im)
			if err != nil || len(faces) == 0 {
				b.Fatalf("analyze: %v", err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := eng.Embed(im, faces[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDetectorInt8VsFP32 runs each detector's FP32 model, its INT8
// model (quantize.ModelConfig, built as detectorInt8 does) and the fastest
// INT8 form measured (every op quantized, session 1's setting, whose boxes
// miss the IoU bar) alternately on one thread, so that all see the same
// load on a shared machine, and reports their mean run times and the
// ratios to FP32 (> 1: slower than FP32).
func BenchmarkDetectorInt8VsFP32(b *testing.B) {
	rt := inference.SharedRuntime(b)
	dir := testenv.Models(b)
	man, err := manifest.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	var calib []string
	for _, p := range []string{"sample1.jpg", "sample2.jpg", "sample3.jpg", "sample4.jpg"} {
		calib = append(calib, testenv.Require(b, filepath.Join(testenv.Root(b), ".cache", "faces", "face-api", p), "registry photo"))
	}
	for _, name := range []string{"blazeface", "blazeface-front"} {
		b.Run(name, func(b *testing.B) {
			fp, e, err := man.ReadModel(dir, name, manifest.FP32)
			if err != nil {
				b.Fatal(err)
			}
			models := [][]byte{fp}
			for _, cfg := range []quantize.Config{quantize.ModelConfig(name), {KeepFirst: 1, KeepLast: 1, Percentile: 0.1}} {
				q, _, err := quantize.Candidate(rt, dir, name, calib, cfg)
				if err != nil {
					b.Fatal(err)
				}
				models = append(models, q)
			}
			spec, _ := manifest.Lookup(name)
			var sessions []*inference.Session
			for _, model := range models {
				s, err := rt.NewSession(name, model, fixed(e.Inputs), fixed(e.Outputs), inference.SessionConfig{IntraOpThreads: 1})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				in := s.Input(0)
				for k := range in {
					in[k] = float32(k%255)*spec.Scale + spec.Offset
				}
				sessions = append(sessions, s)
			}
			spent := make([]time.Duration, len(sessions))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k, s := range sessions {
					start := time.Now()
					if err := s.Run(); err != nil {
						b.Fatal(err)
					}
					spent[k] += time.Since(start)
				}
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(ms(spent[0]), "fp32-ms")
			b.ReportMetric(ms(spent[1]), "int8-ms")
			b.ReportMetric(float64(spent[1])/float64(spent[0]), "int8/fp32")
			b.ReportMetric(float64(spent[2])/float64(spent[0]), "allops-int8/fp32")
		})
	}
}
