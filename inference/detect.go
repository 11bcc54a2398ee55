package inference

import (
	"math"
	"sort"
)

// Rect is an axis-aligned box in pixels: [X0,X1) x [Y0,Y1).
type Rect struct{ X0, Y0, X1, Y1 float64 }

// W is the width.
func (r Rect) W() float64 { return r.X1 - r.X0 }

// H is the height.
func (r Rect) H() float64 { return r.Y1 - r.Y0 }

// Center is the box centre.
func (r Rect) Center() Point { return Point{(r.X0 + r.X1) / 2, (r.Y0 + r.Y1) / 2} }

// Area is the area (0 for an empty box).
func (r Rect) Area() float64 { return math.Max(0, r.W()) * math.Max(0, r.H()) }

// IoU is the intersection over union of a and b.
func IoU(a, b Rect) float64 {
	in := Rect{math.Max(a.X0, b.X0), math.Max(a.Y0, b.Y0), math.Min(a.X1, b.X1), math.Min(a.Y1, b.Y1)}
	if in.W() <= 0 || in.H() <= 0 {
		return 0
	}
	i := in.Area()
	return i / (a.Area() + b.Area() - i)
}

// BlazeFace keypoints, in Detection.Keypoints order. "Right" is the
// subject's right, which appears on the left of an unmirrored image.
const (
	KeypointRightEye = iota
	KeypointLeftEye
	KeypointNose
	KeypointMouth
	KeypointRightEar
	KeypointLeftEar
	numKeypoints
)

// Detection is one face found by the detector, in image pixels.
type Detection struct {
	Box       Rect
	Score     float64
	Keypoints [numKeypoints]Point
}

// anchor is a BlazeFace anchor centre in detector-input pixels.
type anchor struct{ x, y float64 }

// blazeAnchors returns the anchors of a size x size BlazeFace model: a
// 16x16 grid (stride size/16) with 2 anchors per cell, then an 8x8 grid
// (stride size/8) with 6, in the order of the model's outputs (512 then
// 384). For the 256x256 full-range model the strides are 16 and 32; for the
// 128x128 short-range ("front") model 8 and 16, which is MediaPipe's
// short-range configuration (strides [8,16,16,16], two anchors per layer,
// the stride-16 layers sharing one grid): 896 anchors either way. The
// regression outputs are in input pixels (MediaPipe's x/y/w/h scale = size).
func blazeAnchors(size int) []anchor {
	var out []anchor
	for _, l := range []struct{ stride, per int }{{size / 16, 2}, {size / 8, 6}} {
		n := (size + l.stride - 1) / l.stride
		for gy := 0; gy < n; gy++ {
			for gx := 0; gx < n; gx++ {
				for k := 0; k < l.per; k++ {
					out = append(out, anchor{float64(l.stride) * (float64(gx) + 0.5), float64(l.stride) * (float64(gy) + 0.5)})
				}
			}
		}
	}
	return out
}

// decodeBlaze turns raw BlazeFace outputs into detections in detector-input
// pixels: for anchor i, logits[i] is the score logit and reg[16*i:] holds
// the box centre offset, box size and six keypoint offsets (x, y pairs),
// all relative to the anchor centre. Detections under minScore are dropped.
func decodeBlaze(logits, reg []float32, anchors []anchor, minScore float64) []Detection {
	var out []Detection
	// Compare logits, not probabilities: no exp for the ~900 anchors that
	// are not faces.
	minLogit := math.Log(minScore / (1 - minScore))
	for i, a := range anchors {
		if float64(logits[i]) < minLogit {
			continue
		}
		score := 1 / (1 + math.Exp(-float64(logits[i])))
		r := reg[16*i : 16*i+16]
		cx, cy := a.x+float64(r[0]), a.y+float64(r[1])
		w, h := float64(r[2]), float64(r[3])
		d := Detection{Box: Rect{cx - w/2, cy - h/2, cx + w/2, cy + h/2}, Score: score}
		for k := range d.Keypoints {
			d.Keypoints[k] = Point{a.x + float64(r[4+2*k]), a.y + float64(r[5+2*k])}
		}
		out = append(out, d)
	}
	return out
}

// weightedNMS is BlazeFace's blending non-maximum suppression: detections
// overlapping the best remaining one by more than iouThreshold are merged
// into it, box and keypoints averaged weighted by score; the merged
// detection keeps the best score. Output is sorted by score, descending.
func weightedNMS(dets []Detection, iouThreshold float64) []Detection {
	rest := append([]Detection(nil), dets...)
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].Score > rest[j].Score })
	var out []Detection
	for len(rest) > 0 {
		top := rest[0]
		var keep []Detection
		var sum float64
		var merged Detection
		for _, d := range rest {
			if IoU(top.Box, d.Box) > iouThreshold || d == top {
				w := d.Score
				sum += w
				merged.Box.X0 += w * d.Box.X0
				merged.Box.Y0 += w * d.Box.Y0
				merged.Box.X1 += w * d.Box.X1
				merged.Box.Y1 += w * d.Box.Y1
				for k := range merged.Keypoints {
					merged.Keypoints[k].X += w * d.Keypoints[k].X
					merged.Keypoints[k].Y += w * d.Keypoints[k].Y
				}
				continue
			}
			keep = append(keep, d)
		}
		merged.Box = Rect{merged.Box.X0 / sum, merged.Box.Y0 / sum, merged.Box.X1 / sum, merged.Box.Y1 / sum}
		for k := range merged.Keypoints {
			merged.Keypoints[k] = Point{merged.Keypoints[k].X / sum, merged.Keypoints[k].Y / sum}
		}
		merged.Score = top.Score
		out = append(out, merged)
		rest = keep
	}
	return out
}

// letterbox returns the map from a size x size detector input onto the
// image, which is scaled to fit and centred (the rest is black).
func letterbox(w, h, size int) Affine {
	s := float64(max(w, h)) / float64(size)
	padX := (float64(size) - float64(w)/s) / 2
	padY := (float64(size) - float64(h)/s) / 2
	return Affine{A: s, C: -padX * s, E: s, F: -padY * s}
}

// mapDetection maps a detection through m (detector input → image).
func mapDetection(d Detection, m Affine) Detection {
	p0 := m.Apply(Point{d.Box.X0, d.Box.Y0})
	p1 := m.Apply(Point{d.Box.X1, d.Box.Y1})
	d.Box = Rect{p0.X, p0.Y, p1.X, p1.Y}
	for k := range d.Keypoints {
		d.Keypoints[k] = m.Apply(d.Keypoints[k])
	}
	return d
}
