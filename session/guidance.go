package session

import (
	"image"
	"math"

	"github.com/glintdev/glint/inference"
)

// GuidanceConfig bounds a usable face. The defaults suit a 640x480 kiosk
// camera (62° across) with users at 30–55 cm: farther away the
// screen's flash is too weak on the face for the liveness analysis
// (docs/liveness.md, "Operating distance"); the short-range detector
// covers the range (docs/models.md). They were checked on simulator
// frames (docs/session.md).
type GuidanceConfig struct {
	// MinInterocular and MaxInterocular bound the eye distance in pixels
	// of a 640-pixel-wide frame, scaled with the frame's width (TOO_FAR,
	// TOO_CLOSE): they stand for a distance, which a smaller frame shows
	// with fewer pixels. 60 px is an average adult's 63 mm at 56 cm
	// through the default camera.
	MinInterocular, MaxInterocular float64
	// MaxOffCenter is the largest distance of the face centre from the
	// frame centre, as a fraction of the frame size (OFF_CENTER).
	MaxOffCenter float64
	// MaxYaw and MaxPitch in degrees (LOOK_AT_SCREEN).
	MaxYaw, MaxPitch float64
	// MinLuma and MaxLuma bound the face's mean luma 0–255 (TOO_DARK,
	// TOO_BRIGHT).
	MinLuma, MaxLuma float64
	// BacklitRatio: a background this many times brighter than the face
	// is BACKLIT.
	BacklitRatio float64
	// MinSharpness is the least face sharpness (BLURRY); see Sharpness.
	MinSharpness float64
	// MinMeshScore is the least facemesh presence score of a detected face;
	// below it the face is taken as occluded (FACE_OCCLUDED).
	MinMeshScore float64
}

// guidanceReferenceWidth is the frame width, in pixels, that the
// interocular bounds are given for.
const guidanceReferenceWidth = 640

// DefaultGuidance returns the packaged limits.
func DefaultGuidance() GuidanceConfig {
	return GuidanceConfig{
		MinInterocular: 60, MaxInterocular: 220, MaxOffCenter: 0.22,
		MaxYaw: 20, MaxPitch: 20, MinLuma: 50, MaxLuma: 215, BacklitRatio: 2.2,
		MinSharpness: 2, MinMeshScore: 0.5,
	}
}

// faceCheck is one frame's assessment.
type faceCheck struct {
	Guidance  Guidance // "" when usable
	Face      *inference.Face
	Box       image.Rectangle
	Sharpness float64
	Luma      float64
	// Frontal is |yaw|+|pitch| in degrees (smaller is better).
	Frontal float64
}

// assess picks the main face of a frame (the largest) and says what the
// person should change, if anything. rgb is the frame as packed RGB.
func (g GuidanceConfig) assess(im *inference.Image, faces []inference.Face) faceCheck {
	if len(faces) == 0 {
		return faceCheck{Guidance: GuidanceNoFace}
	}
	// Faces come sorted by interocular distance, largest first; a second
	// face at least half as large is another person in the kiosk's range.
	f := faces[0]
	c := faceCheck{Face: &f, Box: boxOf(f.Detection.Box, im.Width, im.Height)}
	l := f.Landmarks
	c.Frontal = math.Abs(l.Pose.Yaw) + math.Abs(l.Pose.Pitch)
	c.Sharpness = Sharpness(im, c.Box)
	c.Luma = meanLuma(im, inset(c.Box, 0.2))
	set := func(gd Guidance) {
		if c.Guidance == "" {
			c.Guidance = gd
		}
	}
	if len(faces) > 1 && faces[1].Landmarks.Interocular >= 0.5*l.Interocular {
		set(GuidanceMultipleFaces)
	}
	if l.Score < g.MinMeshScore {
		set(GuidanceFaceOccluded)
	}
	eyes := l.Interocular * guidanceReferenceWidth / float64(im.Width)
	switch {
	case eyes < g.MinInterocular:
		set(GuidanceTooFar)
	case eyes > g.MaxInterocular:
		set(GuidanceTooClose)
	}
	ctr := f.Detection.Box.Center()
	if math.Abs(ctr.X/float64(im.Width)-0.5) > g.MaxOffCenter || math.Abs(ctr.Y/float64(im.Height)-0.5) > g.MaxOffCenter {
		set(GuidanceOffCenter)
	}
	bg := backgroundLuma(im, c.Box)
	switch {
	case c.Luma < g.MinLuma && bg > g.BacklitRatio*c.Luma:
		set(GuidanceBacklit)
	case c.Luma < g.MinLuma:
		set(GuidanceTooDark)
	case c.Luma > g.MaxLuma:
		set(GuidanceTooBright)
	}
	if math.Abs(l.Pose.Yaw) > g.MaxYaw || math.Abs(l.Pose.Pitch) > g.MaxPitch {
		set(GuidanceLookAtScreen)
	}
	if c.Sharpness < g.MinSharpness {
		set(GuidanceBlurry)
	}
	return c
}

// boxOf converts a detection box to integer pixels inside the frame.
func boxOf(r inference.Rect, w, h int) image.Rectangle {
	b := image.Rect(int(math.Floor(r.X0)), int(math.Floor(r.Y0)), int(math.Ceil(r.X1)), int(math.Ceil(r.Y1)))
	return b.Intersect(image.Rect(0, 0, w, h))
}

// inset shrinks r by frac of its size on every side.
func inset(r image.Rectangle, frac float64) image.Rectangle {
	dx, dy := int(frac*float64(r.Dx())), int(frac*float64(r.Dy()))
	return image.Rect(r.Min.X+dx, r.Min.Y+dy, r.Max.X-dx, r.Max.Y-dy)
}

func luma(p []byte, o int) float64 {
	return 0.299*float64(p[o]) + 0.587*float64(p[o+1]) + 0.114*float64(p[o+2])
}

// meanLuma is the mean luma of r (0 when empty).
func meanLuma(im *inference.Image, r image.Rectangle) float64 {
	r = r.Intersect(image.Rect(0, 0, im.Width, im.Height))
	if r.Empty() {
		return 0
	}
	var s float64
	var n int
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			s += luma(im.Pix, (y*im.Width+x)*3)
			n++
		}
	}
	return s / float64(n)
}

// backgroundLuma is the mean luma of the frame outside the face box (a
// coarse grid).
func backgroundLuma(im *inference.Image, face image.Rectangle) float64 {
	var s float64
	var n int
	for y := 0; y < im.Height; y += 8 {
		for x := 0; x < im.Width; x += 8 {
			if (image.Point{x, y}).In(face) {
				continue
			}
			s += luma(im.Pix, (y*im.Width+x)*3)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}

// Sharpness is the variance of the 4-neighbour Laplacian of the luma over
// the inner half of the face box, divided by the luma variance there and
// times 100: how much of the face's detail is fine detail, independent of
// contrast and exposure (the measure of inference's portrait check, taken at
// the camera's resolution). Higher is sharper; 0 for a flat or tiny region.
func Sharpness(im *inference.Image, box image.Rectangle) float64 {
	r := inset(box, 0.25).Intersect(image.Rect(1, 1, im.Width-1, im.Height-1))
	if r.Dx() < 4 || r.Dy() < 4 {
		return 0
	}
	w := im.Width
	var s, s2, v, v2, n float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			o := (y*w + x) * 3
			c := luma(im.Pix, o)
			l := 4*c - luma(im.Pix, o-3) - luma(im.Pix, o+3) - luma(im.Pix, o-3*w) - luma(im.Pix, o+3*w)
			s += l
			s2 += l * l
			v += c
			v2 += c * c
			n++
		}
	}
	lap := s2/n - (s/n)*(s/n)
	lum := v2/n - (v/n)*(v/n)
	if lum < 1 {
		return 0
	}
	return 100 * lap / lum
}
