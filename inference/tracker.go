package inference

import "math"

// TrackerConfig tunes a Tracker.
type TrackerConfig struct {
	// MinIoU is the least box overlap for a detection to continue a track;
	// default 0.3.
	MinIoU float64
	// MaxKeypointShift bounds the mean keypoint displacement, as a fraction
	// of the track's box size, for a detection to continue it; default 0.5.
	MaxKeypointShift float64
	// MaxMissed is how many frames a track survives without a detection;
	// default 5.
	MaxMissed int
}

// Track is one face followed across frames.
type Track struct {
	ID        uint64
	Detection Detection
	// Age counts the frames the track was matched in; Missed the frames
	// since it was last matched.
	Age, Missed int
}

// Tracker associates detections across frames by IoU plus keypoint
// agreement (greedy, best pair first), so glint follows one person through
// a session. Not safe for concurrent use: one goroutine feeds it frames.
type Tracker struct {
	cfg    TrackerConfig
	next   uint64
	tracks []*Track
}

// NewTracker returns a Tracker with cfg's zero fields defaulted.
func NewTracker(cfg TrackerConfig) *Tracker {
	if cfg.MinIoU == 0 {
		cfg.MinIoU = 0.3
	}
	if cfg.MaxKeypointShift == 0 {
		cfg.MaxKeypointShift = 0.5
	}
	if cfg.MaxMissed == 0 {
		cfg.MaxMissed = 5
	}
	return &Tracker{cfg: cfg, next: 1}
}

// keypointShift is the mean keypoint displacement between a and b relative
// to a's box size.
func keypointShift(a, b Detection) float64 {
	var s float64
	for k := range a.Keypoints {
		s += dist(a.Keypoints[k], b.Keypoints[k])
	}
	size := math.Max(1, math.Max(a.Box.W(), a.Box.H()))
	return s / float64(len(a.Keypoints)) / size
}

// Update feeds one frame's detections and returns the live tracks (matched
// this frame or missed for at most MaxMissed frames), oldest first.
func (t *Tracker) Update(dets []Detection) []Track {
	type cand struct {
		ti, di int
		cost   float64
	}
	var cands []cand
	for ti, tr := range t.tracks {
		for di, d := range dets {
			iou := IoU(tr.Detection.Box, d.Box)
			shift := keypointShift(tr.Detection, d)
			if iou < t.cfg.MinIoU || shift > t.cfg.MaxKeypointShift {
				continue
			}
			cands = append(cands, cand{ti, di, (1 - iou) + shift})
		}
	}
	// Greedy assignment, cheapest first (few faces: no need for Hungarian).
	for i := 1; i < len(cands); i++ {
		for j := i; j > 0 && cands[j].cost < cands[j-1].cost; j-- {
			cands[j], cands[j-1] = cands[j-1], cands[j]
		}
	}
	usedT := make([]bool, len(t.tracks))
	usedD := make([]bool, len(dets))
	for _, c := range cands {
		if usedT[c.ti] || usedD[c.di] {
			continue
		}
		usedT[c.ti], usedD[c.di] = true, true
		tr := t.tracks[c.ti]
		tr.Detection, tr.Missed = dets[c.di], 0
		tr.Age++
	}
	live := t.tracks[:0]
	for i, tr := range t.tracks {
		if !usedT[i] {
			tr.Missed++
		}
		if tr.Missed <= t.cfg.MaxMissed {
			live = append(live, tr)
		}
	}
	t.tracks = live
	for di, d := range dets {
		if !usedD[di] {
			t.tracks = append(t.tracks, &Track{ID: t.next, Detection: d, Age: 1})
			t.next++
		}
	}
	out := make([]Track, len(t.tracks))
	for i, tr := range t.tracks {
		out[i] = *tr
	}
	return out
}
