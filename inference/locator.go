package inference

import (
	"errors"
	"fmt"
	"image"
	"math"

	"github.com/glintdev/glint/capture"
)

// Locator follows the primary face through a stream of frames: the
// detector on every frame, the Tracker to keep the same person across
// frames. It is what a challenge needs per frame (a face box to measure),
// and what positioning guidance needs (how many faces). It is not safe for
// concurrent use; the Engine it wraps is, so several Locators may share
// one Engine.
type Locator struct {
	e   *Engine
	tr  *Tracker
	buf []byte

	primary uint64 // track ID of the primary face; 0: none yet
	last    Detection
	lastSeq uint64
	hasLast bool
}

// NewLocator makes a locator over e with a default Tracker.
func NewLocator(e *Engine) *Locator {
	return &Locator{e: e, tr: NewTracker(TrackerConfig{})}
}

// Reset forgets the tracks, for a new session.
func (l *Locator) Reset() {
	l.tr = NewTracker(l.tr.cfg)
	l.primary, l.hasLast = 0, false
}

// Locate finds the faces in f. faces is how many the detector found in
// this frame; box is the primary face: the face tracked since it first
// became primary, else, of the faces at least half as large as the
// largest, the one nearest the frame's centre. While the primary face's track
// coasts through a few missed detections (TrackerConfig.MaxMissed) box is
// its last detected box; it is empty when there is no face at all.
func (l *Locator) Locate(f *capture.Frame) (box image.Rectangle, faces int, err error) {
	im, err := FromFrame(f, l.buf)
	if err != nil {
		return image.Rectangle{}, 0, err
	}
	l.buf = im.Pix
	dets, err := l.e.Detect(im)
	if err != nil {
		return image.Rectangle{}, 0, fmt.Errorf("locate face: %w", err)
	}
	tracks := l.tr.Update(dets)
	var prim *Track
	for i := range tracks {
		t := &tracks[i]
		if t.Missed == 0 {
			faces++
		}
		if t.ID == l.primary {
			prim = t
		}
	}
	if prim == nil {
		prim = pickPrimary(tracks, f.Width, f.Height)
	}
	if prim == nil {
		l.primary, l.hasLast = 0, false
		return image.Rectangle{}, faces, nil
	}
	l.primary = prim.ID
	l.last, l.lastSeq, l.hasLast = prim.Detection, f.Seq, prim.Missed == 0
	return toRect(prim.Detection.Box, f.Width, f.Height), faces, nil
}

// pickPrimary chooses a new primary face among the tracks matched in this
// frame: of the faces at least half as large as the largest (the people
// close to the kiosk), the one nearest the frame's centre (the one facing
// it; bystanders stand to the side).
func pickPrimary(tracks []Track, w, h int) *Track {
	var largest float64
	for _, t := range tracks {
		if t.Missed == 0 {
			largest = math.Max(largest, t.Detection.Box.Area())
		}
	}
	var prim *Track
	best := math.Inf(1)
	for i := range tracks {
		t := &tracks[i]
		if t.Missed != 0 || t.Detection.Box.Area() < largest/2 {
			continue
		}
		c := t.Detection.Box.Center()
		if d := math.Hypot(c.X-float64(w)/2, c.Y-float64(h)/2); d < best {
			best, prim = d, t
		}
	}
	return prim
}

// toRect rounds a box to whole pixels inside a w x h frame.
func toRect(r Rect, w, h int) image.Rectangle {
	return image.Rect(int(math.Round(r.X0)), int(math.Round(r.Y0)), int(math.Round(r.X1)), int(math.Round(r.Y1))).
		Intersect(image.Rect(0, 0, w, h))
}

// Passive is the passive anti-spoof model's live score (0..1) for the face
// in box in frame f: the detection Locate returned for f when box is its
// box, otherwise the detection in f that overlaps box most, otherwise (no
// detection overlaps it) the box itself.
func (l *Locator) Passive(f *capture.Frame, box image.Rectangle) (float64, error) {
	im, err := FromFrame(f, l.buf)
	if err != nil {
		return 0, err
	}
	l.buf = im.Pix
	var d Detection
	if l.hasLast && l.lastSeq == f.Seq && toRect(l.last.Box, f.Width, f.Height) == box {
		d = l.last
	} else {
		dets, err := l.e.Detect(im)
		if err != nil {
			return 0, fmt.Errorf("passive anti-spoof: %w", err)
		}
		want := Rect{float64(box.Min.X), float64(box.Min.Y), float64(box.Max.X), float64(box.Max.Y)}
		best := 0.0
		for _, c := range dets {
			if iou := IoU(c.Box, want); iou > best {
				best, d = iou, c
			}
		}
		if best < 0.3 {
			// No detection there (a face at the frame's edge, a
			// coasting track): score the box itself, level.
			d = Detection{Box: want}
			c := want.Center()
			d.Keypoints[KeypointRightEye] = Point{c.X - want.W()/4, c.Y}
			d.Keypoints[KeypointLeftEye] = Point{c.X + want.W()/4, c.Y}
		}
	}
	return PassiveScore(l.e, im, d)
}

// PassiveScore runs the anti-spoof model on a detection: its crop is the
// detection box, squared and levelled on the detector's eye keypoints
// (the engine's usual crop, without running facemesh).
func PassiveScore(e *Engine, im *Image, d Detection) (float64, error) {
	if e == nil {
		return 0, errors.New("passive anti-spoof: no engine")
	}
	lm := &Landmarks{RightEye: d.Keypoints[KeypointRightEye], LeftEye: d.Keypoints[KeypointLeftEye]}
	return e.AntiSpoof(im, Face{Detection: d, Landmarks: lm})
}
