package inference

import (
	"bytes"
	"errors"
	"hash/crc32"
	"math"
	"testing"
)

func TestIoU(t *testing.T) {
	tests := []struct {
		a, b Rect
		want float64
	}{
		{Rect{0, 0, 10, 10}, Rect{0, 0, 10, 10}, 1},
		{Rect{0, 0, 10, 10}, Rect{5, 0, 15, 10}, 50.0 / 150},
		{Rect{0, 0, 10, 10}, Rect{10, 10, 20, 20}, 0},
		{Rect{0, 0, 10, 10}, Rect{2, 2, 4, 4}, 4.0 / 100},
	}
	for _, tt := range tests {
		if got := IoU(tt.a, tt.b); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("IoU(%v, %v) = %g, want %g", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestBlazeAnchors(t *testing.T) {
	a := blazeAnchors(256)
	if len(a) != 896 {
		t.Fatalf("%d anchors, want 896 (512 + 384)", len(a))
	}
	checks := []struct {
		i    int
		x, y float64
	}{{0, 8, 8}, {1, 8, 8}, {2, 24, 8}, {511, 248, 248}, {512, 16, 16}, {517, 16, 16}, {518, 48, 16}, {895, 240, 240}}
	for _, c := range checks {
		if a[c.i].x != c.x || a[c.i].y != c.y {
			t.Errorf("anchor %d = %v, want (%g, %g)", c.i, a[c.i], c.x, c.y)
		}
	}
}

func TestDecodeBlazeAndWeightedNMS(t *testing.T) {
	anchors := []anchor{{100, 100}, {104, 100}, {200, 50}}
	logit := func(p float64) float32 { return float32(math.Log(p / (1 - p))) }
	logits := []float32{logit(0.9), logit(0.6), logit(0.2)}
	reg := make([]float32, 16*3)
	for i := range anchors {
		reg[16*i+2], reg[16*i+3] = 40, 40 // 40x40 boxes centred on the anchor
		for k := 0; k < 6; k++ {
			reg[16*i+4+2*k] = float32(k) // keypoint k at anchor + (k, 0)
		}
	}
	dets := decodeBlaze(logits, reg, anchors, 0.5)
	if len(dets) != 2 {
		t.Fatalf("%d detections over 0.5, want 2", len(dets))
	}
	merged := weightedNMS(dets, 0.3)
	if len(merged) != 1 {
		t.Fatalf("%d after NMS, want 1", len(merged))
	}
	m := merged[0]
	// centre x = (0.9*100 + 0.6*104) / 1.5 = 101.6
	if math.Abs(m.Box.Center().X-101.6) > 1e-6 || m.Score != dets[0].Score {
		t.Errorf("merged = %+v", m)
	}
	if math.Abs(m.Keypoints[3].X-104.6) > 1e-6 {
		t.Errorf("keypoint 3 x = %g, want 104.6", m.Keypoints[3].X)
	}
}

func TestLetterboxRoundTrip(t *testing.T) {
	m := letterbox(640, 480, 256)
	// Image corners map to the letterboxed square's content edges.
	p := m.Invert().Apply(Point{0, 0})
	if math.Abs(p.X) > 1e-9 || math.Abs(p.Y-32) > 1e-9 {
		t.Errorf("image (0,0) at input %v, want (0, 32)", p)
	}
	q := m.Apply(Point{256, 224})
	if math.Abs(q.X-640) > 1e-9 || math.Abs(q.Y-480) > 1e-9 {
		t.Errorf("input (256,224) at image %v, want (640, 480)", q)
	}
}

func TestSimilarityRecoversTransform(t *testing.T) {
	// dst = 2*R(30°)*src + (5, -3)
	th := math.Pi / 6
	a, b := 2*math.Cos(th), 2*math.Sin(th)
	want := Affine{a, -b, 5, b, a, -3}
	src := []Point{{0, 0}, {10, 0}, {3, 7}, {-4, 2}, {6, 6}}
	dst := make([]Point, len(src))
	for i, p := range src {
		dst[i] = want.Apply(p)
	}
	got := similarity(src, dst)
	for _, v := range [][2]float64{{got.A, want.A}, {got.B, want.B}, {got.C, want.C}, {got.D, want.D}, {got.E, want.E}, {got.F, want.F}} {
		if math.Abs(v[0]-v[1]) > 1e-9 {
			t.Fatalf("similarity = %+v, want %+v", got, want)
		}
	}
}

func TestHeadPoseFrontal(t *testing.T) {
	mesh := make([]Point3, MeshPoints)
	mesh[meshRightCheek] = Point3{0, 50, 0}
	mesh[meshLeftCheek] = Point3{100, 50, 0}
	mesh[meshForehead] = Point3{50, 0, 0}
	mesh[meshChin] = Point3{50, 100, 0}
	p := headPose(mesh)
	if math.Abs(p.Yaw) > 1e-9 || math.Abs(p.Pitch) > 1e-9 || math.Abs(p.Roll) > 1e-9 {
		t.Errorf("frontal pose = %+v, want zeros", p)
	}
	// Turn: the left cheek 30° away from the camera.
	th := 30 * math.Pi / 180
	mesh[meshRightCheek] = Point3{50 - 50*math.Cos(th), 50, -50 * math.Sin(th)}
	mesh[meshLeftCheek] = Point3{50 + 50*math.Cos(th), 50, 50 * math.Sin(th)}
	if p := headPose(mesh); math.Abs(p.Yaw-30) > 1e-6 {
		t.Errorf("yaw = %g, want 30", p.Yaw)
	}
}

func TestSimilarityScore(t *testing.T) {
	tests := []struct {
		model string
		cos   float64
		want  float64
	}{
		{"faceres", 0.55, 50},
		{"faceres", 0.2, 0},
		{"faceres", 0.95, 100},
		{"mobilefacenet", 0.5, 50},
		{"mobilefacenet", -0.5, 0},
	}
	for _, tt := range tests {
		if got := SimilarityScore(tt.model, tt.cos); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("SimilarityScore(%s, %g) = %g, want %g", tt.model, tt.cos, got, tt.want)
		}
	}
	if c := Cosine([]float32{1, 0}, []float32{0, 2}); c != 0 {
		t.Errorf("Cosine orthogonal = %g", c)
	}
}

func TestOperating(t *testing.T) {
	var pairs []Pair
	for i := 0; i < 100; i++ {
		pairs = append(pairs, Pair{Score: float64(i) / 2}) // impostors 0..49.5
	}
	for _, s := range []float64{40, 60, 70, 80} {
		pairs = append(pairs, Pair{Genuine: true, Score: s})
	}
	op := Operating(pairs, 1e-2)
	// One false match allowed of 100: threshold just above 49.0 (2nd highest).
	if op.FMR != 0.01 || op.FNMR != 0.25 || !op.Resolvable || op.Threshold <= 49 || op.Threshold > 49.0001 {
		t.Errorf("op = %+v", op)
	}
	if op := Operating(pairs, 1e-3); op.Resolvable || op.FMR != 0 {
		t.Errorf("1e-3 op = %+v", op)
	}
}

func TestTracker(t *testing.T) {
	det := func(x float64) Detection {
		d := Detection{Box: Rect{x, 0, x + 100, 100}, Score: 0.9}
		for k := range d.Keypoints {
			d.Keypoints[k] = Point{x + 20 + float64(10*k), 50}
		}
		return d
	}
	tr := NewTracker(TrackerConfig{MaxMissed: 1})
	steps := []struct {
		dets    []Detection
		wantIDs []uint64
	}{
		{[]Detection{det(0)}, []uint64{1}},
		{[]Detection{det(10)}, []uint64{1}},              // moved a little: same track
		{[]Detection{det(15), det(500)}, []uint64{1, 2}}, // new face: new track
		{[]Detection{det(500)}, []uint64{1, 2}},          // 1 missed once: kept
		{[]Detection{det(505)}, []uint64{2}},             // 1 missed twice: dropped
		{[]Detection{det(0)}, []uint64{2, 3}},            // returns: a new track
	}
	for i, s := range steps {
		got := tr.Update(s.dets)
		var ids []uint64
		for _, x := range got {
			ids = append(ids, x.ID)
		}
		if len(ids) != len(s.wantIDs) {
			t.Fatalf("step %d: ids %v, want %v", i, ids, s.wantIDs)
		}
		for k := range ids {
			if ids[k] != s.wantIDs[k] {
				t.Fatalf("step %d: ids %v, want %v", i, ids, s.wantIDs)
			}
		}
	}
}

// BenchmarkWarp is the detector's pre-processing: a 640x480 frame
// letterboxed and normalised into the 256x256 input.
func BenchmarkWarp(b *testing.B) {
	im := &Image{Width: 640, Height: 480, Pix: make([]byte, 640*480*3)}
	for i := range im.Pix {
		im.Pix[i] = byte(i)
	}
	dst := make([]float32, 256*256*3)
	m := letterbox(640, 480, 256)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		warp(dst, 256, im, m, 1/127.5, -1)
	}
}

// warpRef is the straightforward warp: per pixel, per tap.
func warpRef(dst []float32, size int, src *Image, m Affine, scale, offset float32) {
	w, h := src.Width, src.Height
	for v := 0; v < size; v++ {
		for u := 0; u < size; u++ {
			p := m.Apply(Point{float64(u) + 0.5, float64(v) + 0.5})
			x, y := p.X-0.5, p.Y-0.5
			x0, y0 := math.Floor(x), math.Floor(y)
			fx, fy := x-x0, y-y0
			var acc [3]float64
			for k := 0; k < 4; k++ {
				px, py := int(x0)+k&1, int(y0)+k>>1
				wt := []float64{(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy}[k]
				if px < 0 || py < 0 || px >= w || py >= h {
					continue
				}
				for c := 0; c < 3; c++ {
					acc[c] += wt * float64(src.Pix[3*(py*w+px)+c])
				}
			}
			for c := 0; c < 3; c++ {
				dst[3*(v*size+u)+c] = float32(acc[c])*scale + offset
			}
		}
	}
}

func TestWarpMatchesReference(t *testing.T) {
	im := &Image{Width: 37, Height: 23, Pix: make([]byte, 37*23*3)}
	for i := range im.Pix {
		im.Pix[i] = byte(i * 7)
	}
	maps := []Affine{
		letterbox(37, 23, 32),
		cropAffine(Point{18, 11}, 30, 0.4, 32),  // rotated, partly outside
		cropAffine(Point{-5, 30}, 20, -1.2, 32), // mostly outside
		alignAffine([5]Point{{10, 8}, {25, 9}, {17, 14}, {12, 19}, {23, 19}}, 32, 1),
	}
	for i, m := range maps {
		got := make([]float32, 32*32*3)
		want := make([]float32, 32*32*3)
		warp(got, 32, im, m, 1/127.5, -1)
		warpRef(want, 32, im, m, 1/127.5, -1)
		for k := range got {
			if math.Abs(float64(got[k]-want[k])) > 1e-4 {
				t.Fatalf("map %d: value %d = %g, reference %g", i, k, got[k], want[k])
			}
		}
	}
}

func TestDecodeImageLimits(t *testing.T) {
	// A PNG header declaring 100000x100000 pixels: rejected before decoding.
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := []byte{0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0}
	crc := crc32.ChecksumIEEE(ihdr[4:])
	b.Write(ihdr)
	b.Write([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
	if _, _, err := DecodeImage(b.Bytes()); !errors.Is(err, ErrImageTooLarge) {
		t.Errorf("huge PNG: err = %v, want ErrImageTooLarge", err)
	}
	for _, bad := range [][]byte{nil, []byte("GIF89a"), {0xff, 0xd8, 0xff}} {
		if _, _, err := DecodeImage(bad); !errors.Is(err, ErrImageFormat) {
			t.Errorf("%q: err = %v, want ErrImageFormat", bad, err)
		}
	}
}
