package inference

import (
	"image"
	"testing"

	"github.com/glintdev/glint/capture"
)

func frameOf(im *Image, seq uint64) *capture.Frame {
	return &capture.Frame{Seq: seq, Width: im.Width, Height: im.Height, Format: capture.FormatRGB24, Data: im.Pix}
}

// TestLocator follows the astronaut through frames with the short-range
// detector (the session engine's), and finds nothing in an empty frame.
func TestLocator(t *testing.T) {
	e := shortEngine(t)
	im := photo(t, "skimage/astronaut.png")
	dets, err := e.Detect(im)
	if err != nil || len(dets) == 0 {
		t.Fatalf("detector found %d faces: %v", len(dets), err)
	}
	want := toRect(dets[0].Box, im.Width, im.Height)
	l := NewLocator(e)
	var first image.Rectangle
	for i := uint64(0); i < 3; i++ {
		box, n, err := l.Locate(frameOf(im, i))
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 || box != want {
			t.Fatalf("frame %d: %d faces, box %v; want 1 and %v", i, n, box, want)
		}
		if i == 0 {
			first = box
		}
	}
	p, err := l.Passive(frameOf(im, 2), first)
	if err != nil || p < 0 || p > 1 {
		t.Fatalf("passive %v, %v", p, err)
	}
	// The same score when the box comes from elsewhere (re-detected), and
	// a score for a box with no face in it (scored as is), never an error.
	p2, err := l.Passive(frameOf(im, 99), first)
	if err != nil || p2 != p {
		t.Errorf("passive on a re-detected face %v (%v), want %v", p2, err, p)
	}
	if _, err := l.Passive(frameOf(im, 100), image.Rect(0, 0, 40, 40)); err != nil {
		t.Errorf("passive on a face-less box: %v", err)
	}

	blank := &Image{Width: 320, Height: 240, Pix: make([]byte, 320*240*3)}
	l.Reset()
	box, n, err := l.Locate(frameOf(blank, 0))
	if err != nil || n != 0 || !box.Empty() {
		t.Errorf("blank frame: %v, %d faces, %v", box, n, err)
	}
	bad := &capture.Frame{Width: 64, Height: 48, Format: capture.FormatRGB24, Data: make([]byte, 10)}
	if _, _, err := l.Locate(bad); err == nil {
		t.Error("truncated frame accepted")
	}
}

// TestPickPrimary: of two equally large faces, the central one; a much
// smaller central face does not win over a large one.
func TestPickPrimary(t *testing.T) {
	mk := func(x0, y0, x1, y1 float64) Track {
		return Track{Detection: Detection{Box: Rect{x0, y0, x1, y1}}}
	}
	tracks := []Track{mk(500, 100, 640, 240), mk(250, 150, 390, 290), mk(300, 200, 330, 230)}
	tracks[0].ID, tracks[1].ID, tracks[2].ID = 1, 2, 3
	if p := pickPrimary(tracks, 640, 480); p == nil || p.ID != 2 {
		t.Fatalf("primary %+v, want track 2", p)
	}
	tracks[1].Missed = 1
	if p := pickPrimary(tracks, 640, 480); p == nil || p.ID != 1 {
		t.Fatalf("primary %+v with track 2 missed, want track 1", p)
	}
}
