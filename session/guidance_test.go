package session

import (
	"math/rand/v2"
	"testing"

	"github.com/glintdev/glint/inference"
)

// scene paints a 640x480 frame: background luma bg everywhere, and inside
// the face box a textured patch around luma face (texture amplitude tex;
// 0 gives a perfectly flat, i.e. blurred, face).
func scene(bg, face, tex float64, box inference.Rect) *inference.Image {
	return sceneSized(640, 480, bg, face, tex, box)
}

// sceneSized is scene in a w×h frame.
func sceneSized(w, h int, bg, face, tex float64, box inference.Rect) *inference.Image {
	im := &inference.Image{Width: w, Height: h, Pix: make([]byte, w*h*3)}
	rng := rand.New(rand.NewPCG(1, 2))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := bg
			if float64(x) >= box.X0 && float64(x) < box.X1 && float64(y) >= box.Y0 && float64(y) < box.Y1 {
				v = face + tex*(rng.Float64()-0.5)
			}
			b := byte(min(255, max(0, v)))
			o := (y*w + x) * 3
			im.Pix[o], im.Pix[o+1], im.Pix[o+2] = b, b, b
		}
	}
	return im
}

// face is a detected face whose box is box, with the given eye distance,
// mesh score and pose.
func face(box inference.Rect, interocular, score, yaw, pitch float64) inference.Face {
	return inference.Face{
		Detection: inference.Detection{Box: box, Score: 0.9},
		Landmarks: &inference.Landmarks{Score: score, Interocular: interocular, Pose: inference.Pose{Yaw: yaw, Pitch: pitch}},
	}
}

// TestGuidanceCodes drives assess through every guidance code, one cause
// at a time, from a usable face.
func TestGuidanceCodes(t *testing.T) {
	g := DefaultGuidance()
	centre := inference.Rect{X0: 240, Y0: 160, X1: 400, Y1: 320}
	corner := inference.Rect{X0: 10, Y0: 10, X1: 170, Y1: 170}
	good := scene(110, 130, 80, centre)
	for _, tc := range []struct {
		name  string
		im    *inference.Image
		faces []inference.Face
		want  Guidance
	}{
		{"usable", good, []inference.Face{face(centre, 70, 0.95, 3, -2)}, ""},
		{"no face", good, nil, GuidanceNoFace},
		{"two people", good, []inference.Face{face(centre, 70, 0.95, 0, 0), face(corner, 50, 0.9, 0, 0)}, GuidanceMultipleFaces},
		{"small face behind", good, []inference.Face{face(centre, 70, 0.95, 0, 0), face(corner, 20, 0.9, 0, 0)}, ""},
		{"occluded", good, []inference.Face{face(centre, 70, 0.2, 0, 0)}, GuidanceFaceOccluded},
		{"too far", good, []inference.Face{face(centre, 25, 0.95, 0, 0)}, GuidanceTooFar},
		{"too close", good, []inference.Face{face(centre, 260, 0.95, 0, 0)}, GuidanceTooClose},
		{"off centre", scene(110, 130, 80, corner), []inference.Face{face(corner, 70, 0.95, 0, 0)}, GuidanceOffCenter},
		{"too dark", scene(30, 30, 20, centre), []inference.Face{face(centre, 70, 0.95, 0, 0)}, GuidanceTooDark},
		{"backlit", scene(200, 35, 20, centre), []inference.Face{face(centre, 70, 0.95, 0, 0)}, GuidanceBacklit},
		{"too bright", scene(200, 235, 20, centre), []inference.Face{face(centre, 70, 0.95, 0, 0)}, GuidanceTooBright},
		{"looking away", good, []inference.Face{face(centre, 70, 0.95, 35, 0)}, GuidanceLookAtScreen},
		{"chin up", good, []inference.Face{face(centre, 70, 0.95, 0, -30)}, GuidanceLookAtScreen},
		{"blurred", scene(110, 130, 0, centre), []inference.Face{face(centre, 70, 0.95, 0, 0)}, GuidanceBlurry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := g.assess(tc.im, tc.faces)
			if c.Guidance != tc.want {
				t.Fatalf("guidance %q, want %q (luma %.0f, sharpness %.1f)", c.Guidance, tc.want, c.Luma, c.Sharpness)
			}
		})
	}
}

// TestSharpnessOrdersDetail: fine texture scores higher than the same
// texture smoothed, and a flat or tiny region scores 0.
func TestSharpnessOrdersDetail(t *testing.T) {
	box := inference.Rect{X0: 200, Y0: 100, X1: 440, Y1: 380}
	sharp := scene(100, 120, 80, box)
	blurred := &inference.Image{Width: sharp.Width, Height: sharp.Height, Pix: make([]byte, len(sharp.Pix))}
	// A 5x5 box blur of the sharp frame.
	w, h := sharp.Width, sharp.Height
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var s, n float64
			for dy := -2; dy <= 2; dy++ {
				for dx := -2; dx <= 2; dx++ {
					if yy, xx := y+dy, x+dx; yy >= 0 && yy < h && xx >= 0 && xx < w {
						s += float64(sharp.Pix[(yy*w+xx)*3])
						n++
					}
				}
			}
			o := (y*w + x) * 3
			v := byte(s / n)
			blurred.Pix[o], blurred.Pix[o+1], blurred.Pix[o+2] = v, v, v
		}
	}
	r := boxOf(box, w, h)
	s1, s2 := Sharpness(sharp, r), Sharpness(blurred, r)
	if !(s1 > 4*s2) {
		t.Fatalf("sharp %.2f vs blurred %.2f: want the sharp face clearly sharper", s1, s2)
	}
	if s := Sharpness(scene(100, 120, 0, box), r); s != 0 {
		t.Fatalf("flat face sharpness %.2f, want 0", s)
	}
	if s := Sharpness(sharp, boxOf(inference.Rect{X0: 10, Y0: 10, X1: 14, Y1: 14}, w, h)); s != 0 {
		t.Fatalf("tiny box sharpness %.2f, want 0", s)
	}
}

// TestGuidanceDistanceScalesWithFrame: the eye-distance bounds stand for a
// distance, so a 320-pixel-wide frame needs half the pixels.
func TestGuidanceDistanceScalesWithFrame(t *testing.T) {
	g := DefaultGuidance()
	box := inference.Rect{X0: 120, Y0: 80, X1: 200, Y1: 160}
	small := sceneSized(320, 240, 110, 130, 80, box)
	for _, tc := range []struct {
		interocular float64
		want        Guidance
	}{
		{35, ""},                // 70 px at 640
		{25, GuidanceTooFar},    // 50 px at 640
		{115, GuidanceTooClose}, // 230 px at 640
	} {
		if c := g.assess(small, []inference.Face{face(box, tc.interocular, 0.95, 0, 0)}); c.Guidance != tc.want {
			t.Errorf("eye distance %.0f px in a 320-pixel frame: guidance %q, want %q", tc.interocular, c.Guidance, tc.want)
		}
	}
}
