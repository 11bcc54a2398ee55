package flashmark

import (
	"errors"
	"image"
	"math"
	"testing"
	"time"

	"github.com/glintdev/glint/capture"
)

// faceFrame renders a w×h RGB24 frame: background at bg, the face ellipse
// of box at face, and the first glints of the ellipse's pixels (in raster
// order) at full scale.
func faceFrame(w, h int, box image.Rectangle, bg, face byte, glints int) *capture.Frame {
	rgb := make([]byte, w*h*3)
	cx, cy := float64(box.Min.X+box.Max.X)/2, float64(box.Min.Y+box.Max.Y)/2
	ax, ay := faceEllipse*float64(box.Dx()), faceEllipse*float64(box.Dy())
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			dx, dy := (float64(x)+0.5-cx)/ax, (float64(y)+0.5-cy)/ay
			v := bg
			if image.Pt(x, y).In(box) && dx*dx+dy*dy < 1 {
				v = face
				if glints > 0 {
					v = 255
					glints--
				}
			}
			o := (y*w + x) * 3
			rgb[o], rgb[o+1], rgb[o+2] = v, v, v/2 // skin: red and green brightest
		}
	}
	return &capture.Frame{Width: w, Height: h, Format: capture.FormatRGB24, Data: rgb}
}

func TestMeterFace(t *testing.T) {
	const w, h = 160, 120
	box := image.Rect(40, 20, 120, 110)
	// A bright background (a window) is not the face.
	m, err := MeterFace(faceFrame(w, h, box, 255, 200, 0), box)
	if err != nil {
		t.Fatal(err)
	}
	if m.Highlight != linear(200) || m.Clipped != 0 {
		t.Errorf("face at 200 before a white window: %+v, want highlight %.3f, clipped 0", m, linear(200))
	}
	// A few specular glints stay above the quantile; a clipped face does not.
	m, _ = MeterFace(faceFrame(w, h, box, 0, 200, 40), box)
	if m.Highlight != linear(200) || m.Clipped <= 0 || m.Clipped > 0.02 {
		t.Errorf("face at 200 with 40 glints: %+v", m)
	}
	m, _ = MeterFace(faceFrame(w, h, box, 0, 200, 1000), box)
	if m.Highlight != 1 || math.Abs(m.Clipped-1000/(math.Pi*faceEllipse*faceEllipse*80*90)) > 0.01 {
		t.Errorf("face at 200 with 1000 clipped pixels: %+v", m)
	}
	for _, bad := range []image.Rectangle{image.Rect(0, 0, 4, 4), image.Rect(200, 200, 260, 260), {}} {
		if _, err := MeterFace(faceFrame(w, h, box, 0, 200, 0), bad); !errors.Is(err, ErrAnalysis) {
			t.Errorf("box %v: err %v, want ErrAnalysis", bad, err)
		}
	}
	odd := faceFrame(w, h, box, 0, 200, 0)
	odd.Data = odd.Data[:10]
	if _, err := MeterFace(odd, box); err == nil {
		t.Error("truncated frame: no error")
	}
}

func TestHeadroomExposure(t *testing.T) {
	for _, c := range []struct {
		current   time.Duration
		highlight float64
		want      time.Duration
		change    bool
	}{
		{20 * time.Millisecond, 1, 14 * time.Millisecond, true},
		{20 * time.Millisecond, 0.875, 16 * time.Millisecond, true},
		{20 * time.Millisecond, HighlightTarget, 20 * time.Millisecond, false},
		{20 * time.Millisecond, 0.3, 20 * time.Millisecond, false}, // never lengthened
		{0, 1, 0, false}, // unknown exposure
	} {
		got, change := HeadroomExposure(c.current, FaceMeter{Highlight: c.highlight})
		if got != c.want || change != c.change {
			t.Errorf("%v at highlight %.3f: %v %v, want %v %v", c.current, c.highlight, got, change, c.want, c.change)
		}
	}
}

// meteredCamera renders a face whose sRGB level follows the exposure, as a
// sensor does: linear light proportional to the exposure time.
type meteredCamera struct {
	box      image.Rectangle
	radiance float64 // linear face level per millisecond of exposure
	exposure time.Duration
	sets     []int32
	setErr   error
	reads    int
}

func (c *meteredCamera) set(units int32) error {
	if c.setErr != nil {
		return c.setErr
	}
	c.sets = append(c.sets, units)
	c.exposure = time.Duration(units) * ExposureUnit
	return nil
}

func (c *meteredCamera) next() (*capture.Frame, image.Rectangle, error) {
	c.reads++
	lin := min(1, c.radiance*float64(c.exposure)/float64(time.Millisecond))
	level := byte(math.Round(255 * math.Pow(lin, 1/2.4))) // close enough to sRGB up top
	return faceFrame(160, 120, c.box, 30, level, 0), c.box, nil
}

func TestFaceExposureGivesHeadroom(t *testing.T) {
	box := image.Rect(40, 20, 120, 110)
	// The face would be at twice full scale: the first reading clips, so
	// metering repeats until the face is under the target.
	c := &meteredCamera{box: box, radiance: 0.1, exposure: 20 * time.Millisecond}
	got, err := FaceExposure(c.exposure, c.set, c.next)
	if err != nil {
		t.Fatal(err)
	}
	if got != c.exposure || len(c.sets) < 2 {
		t.Fatalf("exposure %v (camera %v) after %d settings %v", got, c.exposure, len(c.sets), c.sets)
	}
	if lin := c.radiance * float64(got) / float64(time.Millisecond); lin > HighlightTarget*1.05 {
		t.Errorf("face at %.2f of full scale after metering (exposure %v), want ≤ %.2f", lin, got, HighlightTarget)
	}

	// A face with headroom already is left alone, after one reading.
	c = &meteredCamera{box: box, radiance: 0.02, exposure: 20 * time.Millisecond}
	if got, err := FaceExposure(c.exposure, c.set, c.next); err != nil || got != 20*time.Millisecond || len(c.sets) != 0 || c.reads != 1 {
		t.Errorf("dim face: %v, %v, settings %v, reads %d", got, err, c.sets, c.reads)
	}

	// No face: nothing to meter.
	none := func() (*capture.Frame, image.Rectangle, error) {
		return faceFrame(160, 120, box, 255, 255, 0), image.Rectangle{}, nil
	}
	if got, err := FaceExposure(20*time.Millisecond, c.set, none); err != nil || got != 20*time.Millisecond {
		t.Errorf("no face: %v, %v", got, err)
	}

	// A refused setting is reported; the exposure in force is returned.
	c = &meteredCamera{box: box, radiance: 0.1, exposure: 20 * time.Millisecond, setErr: errors.New("control busy")}
	if got, err := FaceExposure(c.exposure, c.set, c.next); err == nil || got != 20*time.Millisecond {
		t.Errorf("refused setting: %v, %v", got, err)
	}
	// A camera that stops is reported too.
	lost := errors.New("camera lost")
	if _, err := FaceExposure(time.Second/60, c.set, func() (*capture.Frame, image.Rectangle, error) { return nil, image.Rectangle{}, lost }); !errors.Is(err, lost) {
		t.Errorf("lost camera: %v", err)
	}
}
