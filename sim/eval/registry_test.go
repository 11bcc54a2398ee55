package eval

import (
	"image"
	"image/color"
	"math"
	"path/filepath"
	"testing"

	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/internal/geom"
	"github.com/glintdev/glint/internal/testenv"
	"github.com/glintdev/glint/sim"
)

// TestRegistryBoxesFollowFacemesh: the simulator's face boxes for the
// registry photos sit where the relief expects the face (cheek to cheek,
// chin at the bottom, eyes 0.36 of the height below the top), as facemesh
// finds it on the simulator's own face crops. A box on the hair puts the
// relief's nose on the forehead. Each crop holds that face only: a group
// photo's other faces are blanked.
func TestRegistryBoxesFollowFacemesh(t *testing.T) {
	root := testenv.Root(t)
	dir := testenv.Require(t, filepath.Join(root, ".cache", "faces"), "registry photos")
	rt, err := inference.NewRuntime(inference.RuntimeConfig{LibraryPath: testenv.ORTLibrary(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	eng, err := inference.New(rt, inference.Config{ModelsDir: filepath.Join(root, "models")})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	faces, err := sim.LoadFaces([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(faces) < 19 {
		t.Fatalf("%d registry faces, want 19", len(faces))
	}
	for _, f := range faces {
		found, err := eng.Analyze(inference.FromImage(cropImage(f)))
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 {
			t.Errorf("%s: %d faces in the crop, want 1", f.Name, len(found))
		}
		want := image.Rect(int(f.Box.X), int(f.Box.Y), int(f.Box.X+f.Box.W), int(f.Box.Y+f.Box.H))
		best := 0.0
		var bestBox image.Rectangle
		for _, fc := range found {
			b := meshAnchoredBox(fc.Landmarks)
			if iou := geom.IoU(b, want); iou > best {
				best, bestBox = iou, b
			}
		}
		if best < 0.8 {
			t.Errorf("%s: box %v, facemesh anchors %v: IoU %.2f, want ≥ 0.8", f.Name, want, bestBox, best)
		}
	}
}

// meshAnchoredBox is the face box by the relief's anchors: facemesh's
// cheek points (234, 454) for the sides, its chin (152) for the bottom and
// the eye centres 0.36 of the box height below the top.
func meshAnchoredBox(l *inference.Landmarks) image.Rectangle {
	eyeY := (l.RightEye.Y + l.LeftEye.Y) / 2
	chin := l.Mesh[152].Y
	h := (chin - eyeY) / 0.64
	return image.Rect(int(l.Mesh[234].X), int(chin-h), int(l.Mesh[454].X), int(chin))
}

// cropImage encodes a face crop's linear RGB as sRGB.
func cropImage(f *sim.Face) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, f.W, f.H))
	enc := func(v float32) uint8 {
		x := math.Max(0, math.Min(1, float64(v)))
		if x <= 0.0031308 {
			x *= 12.92
		} else {
			x = 1.055*math.Pow(x, 1/2.4) - 0.055
		}
		return uint8(math.Round(x * 255))
	}
	for i := 0; i < f.W*f.H; i++ {
		img.SetRGBA(i%f.W, i/f.W, color.RGBA{enc(f.Lin[0][i]), enc(f.Lin[1][i]), enc(f.Lin[2][i]), 255})
	}
	return img
}
