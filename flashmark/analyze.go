package flashmark

import (
	"fmt"
	"image"
	"math"
	"sort"
	"time"
)

// The measurement behind Analyze. Every frame is reduced to the mean linear
// RGB of a grid of face cells and of two background strips beside the face,
// per row band; the light each cell saw is predicted from the presentation
// timestamps, the frame timestamp, the exposure and the rolling-shutter
// readout (row band by row band), for every candidate loop lag. Per row band
// the model is
//
//	v_c(i) = m(i)·a_c + β_c·e_c(i; lag)
//
// for colour channel c and frame i: a_c·m(i) is the ambient light with a
// per-frame multiplier m shared by the channels (slow drift, mains flicker,
// people passing: all change brightness, not the screen's colour), β_c·e_c is
// the screen's light reflected by the face. Fitted by alternating least
// squares, m absorbs whatever moves all channels together, and what is left
// must follow the emitted colour sequence channel by channel.

// Grid of face cells: rows (row bands, each with its own readout time) by
// columns.
const (
	gridRows = 4
	gridCols = 3
	numCells = gridRows * gridCols
)

// Lag search: the range is wide enough to find a relighting attack's lag
// (so that it is reported, not merely missed) and the step fine enough for
// one-frame (33 ms) decisions.
const (
	lagSearchMin  = -100 * time.Millisecond
	lagSearchMax  = 400 * time.Millisecond
	lagSearchStep = 2 * time.Millisecond
)

// The fine grid: every cell split into fineSplit×fineSplit blocks, 12
// across the face box and 16 down, each about a centimetre of face: the
// size of a brow, an eye or a lip, which the texture check (textureFit)
// needs resolved. Blocks twice as large (2×2 per cell) averaged them with
// the skin around them, and the texture share of a live face 32 cm away
// was uncertain by ±0.15 instead of ±0.07 (TestAnalyzeCloseTexture,
// docs/liveness.md).
const (
	fineSplit = 4
	fineRows  = gridRows * fineSplit
	fineCols  = gridCols * fineSplit
	numFine   = fineRows * fineCols
)

// minCellPixels is the smallest face cell (pixels) worth measuring.
const minCellPixels = 4

// frameSignal is one frame reduced to region means.
type frameSignal struct {
	t      float64 // frame timestamp (end of row 0's exposure), seconds from the first presentation
	cell   [numCells][3]float64
	cellW  [numCells]float64 // pixel counts
	cellRo [numCells]float64 // mid-row fraction of the frame height
	bg     [gridRows][3]float64
	bgW    [gridRows]float64
	bgRo   [gridRows]float64
	// bgGeo is how strongly a screen near the camera lights the
	// background strips relative to the face centre if both were at the
	// same depth, facing the camera: cos⁴ of their angles off the optical
	// axis (distance, emission angle, incidence), as a ratio.
	bgGeo [gridRows]float64
	// clipped is the fraction of the face ellipse's pixels with a channel
	// at full scale: they cannot respond to the flash.
	clipped float64
	// fine holds the mean linear RGB of the blocks the cells are made of
	// (fineW: pixel counts, 0 where a block lies outside the face
	// ellipse); textureFit compares their responses with their colours.
	fine   [numFine][3]float64
	fineW  [numFine]float64
	fineRo [fineRows]float64
	// fineArea is a whole block's pixel count.
	fineArea float64
}

// srgbLinear maps an 8-bit sRGB value to linear light (WCAG's curve).
var srgbLinear = func() (t [256]float64) {
	for i := range t {
		t[i] = linear(uint8(i))
	}
	return t
}()

// timeline is the emitted colour sequence: from at[k] on, colour lin[k]
// (linear RGB); lin[0] holds from -∞.
type timeline struct {
	at  []float64
	lin [][3]float64
}

// mean is the mean emitted colour over [w0, w1] (seconds).
func (tl *timeline) mean(w0, w1 float64) [3]float64 {
	span := w1 - w0
	if !(span > 0) {
		k := 0
		for j := 1; j < len(tl.at); j++ {
			if tl.at[j] <= w0 {
				k = j
			}
		}
		return tl.lin[k]
	}
	var out [3]float64
	for k := range tl.at {
		lo := tl.at[k]
		hi := math.Inf(1)
		if k+1 < len(tl.at) {
			hi = tl.at[k+1]
		}
		lo, hi = math.Max(lo, w0), math.Min(hi, w1)
		if hi <= lo {
			continue
		}
		f := (hi - lo) / span
		for c := range out {
			out[c] += tl.lin[k][c] * f
		}
	}
	return out
}

func linRGB(c RGB) [3]float64 { return [3]float64{linear(c.R), linear(c.G), linear(c.B)} }

// measurement is the prepared input of one analysis.
type measurement struct {
	frames   []frameSignal
	tl       timeline
	exposure float64 // seconds
	readout  float64
	end      float64 // end of the last step, seconds
	// registered counts the frames whose cells followed the face's
	// texture (register.go) rather than the tracker's box.
	registered int
	// w weighs frames in the fits (nil: all 1); frames the face model
	// cannot explain (a blink, a passing shadow) get less.
	w []float64
	// faceWidth is the reference frame's face box width over the focal
	// length in pixels: about the face's angular width in radians, which
	// says how near the face is.
	faceWidth float64
}

// prepare checks the input, builds the emission timeline and reduces
// every usable frame to its region means.
func prepare(in Input, hfov float64) (*measurement, error) {
	ch := in.Challenge
	switch {
	case ch == nil:
		return nil, fmt.Errorf("%w: no challenge", ErrAnalysis)
	case len(ch.Steps) < 2:
		return nil, fmt.Errorf("%w: challenge has %d steps, need at least 2", ErrAnalysis, len(ch.Steps))
	case len(in.Presentations) != len(ch.Steps):
		return nil, fmt.Errorf("%w: %d presentations for %d steps", ErrAnalysis, len(in.Presentations), len(ch.Steps))
	case len(in.Observations) == 0:
		return nil, fmt.Errorf("%w: no frames", ErrAnalysis)
	case in.Exposure <= 0 || in.Exposure > time.Second:
		return nil, fmt.Errorf("%w: exposure %v outside (0, 1s]", ErrAnalysis, in.Exposure)
	case in.Readout < 0 || in.Readout > time.Second:
		return nil, fmt.Errorf("%w: readout %v outside [0, 1s]", ErrAnalysis, in.Readout)
	}
	p0 := in.Presentations[0].Presented
	sec := func(t time.Duration) float64 { return (t - p0).Seconds() }
	m := &measurement{exposure: in.Exposure.Seconds(), readout: in.Readout.Seconds()}
	m.tl.at = append(m.tl.at, math.Inf(-1))
	m.tl.lin = append(m.tl.lin, linRGB(ch.Idle))
	prev := math.Inf(-1)
	for i, p := range in.Presentations {
		if p.Color != ch.Steps[i].Color {
			return nil, fmt.Errorf("%w: presentation %d shows %v, step %d is %v", ErrAnalysis, i, p.Color, i, ch.Steps[i].Color)
		}
		t := sec(p.Presented)
		if t < prev {
			return nil, fmt.Errorf("%w: presentation %d at %v precedes the one before", ErrAnalysis, i, p.Presented)
		}
		if ch.Steps[i].Duration <= 0 {
			return nil, fmt.Errorf("%w: step %d has duration %v", ErrAnalysis, i, ch.Steps[i].Duration)
		}
		prev = t
		m.tl.at = append(m.tl.at, t)
		m.tl.lin = append(m.tl.lin, linRGB(p.Color))
	}
	last := len(in.Presentations) - 1
	m.end = sec(in.Presentations[last].Presented + ch.Steps[last].Duration)
	if m.end > 10 {
		return nil, fmt.Errorf("%w: challenge lasts %.1f s", ErrAnalysis, m.end)
	}
	boxes := smoothBoxes(in.Observations)
	type usable struct {
		i   int
		t   float64
		box image.Rectangle
	}
	var use []usable
	prevT := math.Inf(-1)
	for i, o := range in.Observations {
		f := o.Frame
		if f == nil {
			return nil, fmt.Errorf("%w: observation %d has no frame", ErrAnalysis, i)
		}
		t := sec(f.Timestamp)
		if t <= prevT {
			return nil, fmt.Errorf("%w: frame %d (seq %d) is not after the frame before", ErrAnalysis, i, f.Seq)
		}
		prevT = t
		// Only frames whose face was exposed during the steps: the
		// face-centre row's window, at zero lag, centred inside them.
		box := boxes[i].Intersect(image.Rect(0, 0, f.Width, f.Height))
		if box.Dx() < 2*gridCols || box.Dy() < 2*gridRows || f.Width <= 0 || f.Height <= 0 {
			continue
		}
		mid := t - m.exposure/2 + m.readout*float64(box.Min.Y+box.Max.Y)/2/float64(f.Height)
		if mid < 0 || mid > m.end {
			continue
		}
		if f.Width > 8192 || f.Height > 8192 {
			return nil, fmt.Errorf("%w: frame %d is %dx%d", ErrAnalysis, i, f.Width, f.Height)
		}
		use = append(use, usable{i, t, box})
	}
	if len(use) == 0 {
		return m, nil
	}
	// The middle frame's face is the registration reference.
	ref := use[len(use)/2]
	refFrame := in.Observations[ref.i].Frame
	refRGB, err := refFrame.RGB(nil)
	if err != nil {
		return nil, fmt.Errorf("%w: frame %d: %v", ErrAnalysis, ref.i, err)
	}
	patch, havePatch := newFacePatch(refRGB, refFrame.Width, refFrame.Height, ref.box)
	m.faceWidth = float64(ref.box.Dx()) / focalLength(refFrame.Width, hfov)
	var buf []byte
	centre := func(r image.Rectangle) image.Point { return r.Min.Add(r.Max).Div(2) }
	for _, u := range use {
		f := in.Observations[u.i].Frame
		rgb := refRGB // decoded once, for the patch
		if u.i != ref.i {
			if rgb, err = f.RGB(buf); err != nil {
				return nil, fmt.Errorf("%w: frame %d: %v", ErrAnalysis, u.i, err)
			}
			buf = rgb
		}
		box, registered := u.box, false
		if havePatch && f.Width == refFrame.Width && f.Height == refFrame.Height {
			if shift, ok := patch.register(rgb, f.Width, f.Height, centre(u.box).Sub(centre(ref.box))); ok {
				if b := ref.box.Add(shift); b.In(image.Rect(0, 0, f.Width, f.Height)) {
					box, registered = b, true
				}
			}
		}
		fs, ok := measureFrame(rgb, f.Width, f.Height, box, focalLength(f.Width, hfov))
		if !ok {
			continue
		}
		fs.t = u.t
		m.frames = append(m.frames, fs)
		if registered {
			m.registered++
		}
	}
	return m, nil
}

// focalLength is the focal length in pixels of a camera whose frame is
// width pixels wide with a horizontal field of view of hfov degrees.
func focalLength(width int, hfov float64) float64 {
	return float64(width) / 2 / math.Tan(hfov*math.Pi/360)
}

// boxSmoothFrames is the half-width of the moving average over face-box
// centres: ±4 frames (±130 ms at 30 fps) follows a moving head but
// averages the detector's frame-to-frame jitter.
const boxSmoothFrames = 4

// smoothBoxes steadies the tracker's boxes: every box gets the median size
// of all boxes and the mean centre of the boxes within ±boxSmoothFrames
// observations. A detector's box jitters by a few pixels from frame to
// frame, which slides facial features across the cells and costs more
// than the response being measured; a face moves less in 130 ms. Empty
// boxes stay empty.
func smoothBoxes(obs []Observation) []image.Rectangle {
	out := make([]image.Rectangle, len(obs))
	var ws, hs []int
	for _, o := range obs {
		if !o.Face.Empty() {
			ws = append(ws, o.Face.Dx())
			hs = append(hs, o.Face.Dy())
		}
	}
	if len(ws) == 0 {
		return out
	}
	w, h := medianInt(ws), medianInt(hs)
	for i, o := range obs {
		if o.Face.Empty() {
			continue
		}
		var cx, cy, n float64
		for j := max(0, i-boxSmoothFrames); j <= min(len(obs)-1, i+boxSmoothFrames); j++ {
			if b := obs[j].Face; !b.Empty() {
				cx += float64(b.Min.X+b.Max.X) / 2
				cy += float64(b.Min.Y+b.Max.Y) / 2
				n++
			}
		}
		x0 := int(math.Round(cx/n - float64(w)/2))
		y0 := int(math.Round(cy/n - float64(h)/2))
		out[i] = image.Rect(x0, y0, x0+w, y0+h)
	}
	return out
}

func medianInt(v []int) int {
	s := append([]int(nil), v...)
	sort.Ints(s)
	return s[len(s)/2]
}

// measureFrame sums the face cells and background strips of one frame.
func measureFrame(rgb []byte, w, h int, box image.Rectangle, focal float64) (frameSignal, bool) {
	var fs frameSignal
	frame := image.Rect(0, 0, w, h)
	cos4 := func(x, y float64) float64 {
		dx, dy := x-float64(w)/2, y-float64(h)/2
		c2 := focal * focal / (focal*focal + dx*dx + dy*dy)
		return c2 * c2
	}
	bw, bh := box.Dx(), box.Dy()
	fs.fineArea = float64(bw*bh) / numFine
	var clipped, total float64
	for r := 0; r < gridRows; r++ {
		y0 := box.Min.Y + bh*r/gridRows
		y1 := box.Min.Y + bh*(r+1)/gridRows
		// Each cell is fineSplit×fineSplit blocks: the blocks' bounds
		// include the cells' (bh·2r/8 = bh·r/4 in integers).
		for fr := fineSplit * r; fr < fineSplit*(r+1); fr++ {
			by0 := box.Min.Y + bh*fr/fineRows
			by1 := box.Min.Y + bh*(fr+1)/fineRows
			fs.fineRo[fr] = float64(by0+by1) / 2 / float64(h)
			for fc := 0; fc < fineCols; fc++ {
				bx0 := box.Min.X + bw*fc/fineCols
				bx1 := box.Min.X + bw*(fc+1)/fineCols
				j := fr*fineCols + fc
				s, n, nc := sumEllipse(rgb, w, image.Rect(bx0, by0, bx1, by1), box)
				k := r*gridCols + fc/fineSplit
				for c := 0; c < 3; c++ {
					fs.cell[k][c] += s[c]
				}
				fs.cellW[k] += n
				clipped += nc
				if n > 0 {
					fs.fine[j] = [3]float64{s[0] / n, s[1] / n, s[2] / n}
					fs.fineW[j] = n
				}
			}
		}
		for c := 0; c < gridCols; c++ {
			k := r*gridCols + c
			n := fs.cellW[k]
			if n < minCellPixels {
				return fs, false
			}
			total += n
			fs.cell[k] = [3]float64{fs.cell[k][0] / n, fs.cell[k][1] / n, fs.cell[k][2] / n}
			fs.cellRo[k] = float64(y0+y1) / 2 / float64(h)
		}
		// Background: strips left and right of the face, clear of the
		// head's sides, in the same rows.
		gap, sw := 7*bw/20, max(1, 2*bw/5)
		var sum [3]float64
		var n, geo float64
		faceGeo := cos4(float64(box.Min.X+box.Max.X)/2, float64(y0+y1)/2)
		for _, strip := range []image.Rectangle{
			image.Rect(box.Min.X-gap-sw, y0, box.Min.X-gap, y1),
			image.Rect(box.Max.X+gap, y0, box.Max.X+gap+sw, y1),
		} {
			strip = strip.Intersect(frame)
			if strip.Dx() < 4 {
				continue
			}
			s, k := sumRect(rgb, w, strip)
			for c := range sum {
				sum[c] += s[c]
			}
			n += k
			geo += k * cos4(float64(strip.Min.X+strip.Max.X)/2, float64(y0+y1)/2)
		}
		if n >= minCellPixels {
			fs.bg[r] = [3]float64{sum[0] / n, sum[1] / n, sum[2] / n}
			fs.bgW[r] = n
			fs.bgGeo[r] = geo / n / faceGeo
		}
		fs.bgRo[r] = float64(y0+y1) / 2 / float64(h)
	}
	fs.clipped = clipped / total
	return fs, true
}

// faceEllipse is the face inside its box: an ellipse with these semi-axes
// (fractions of the box size) around the box centre. The box's corners are
// hair, ears and background, which respond to the screen like the
// background does.
const faceEllipse = 0.46

// sumEllipse sums the linear RGB of the pixels of r inside the face
// ellipse of box, and counts them and those with a channel at full scale.
func sumEllipse(rgb []byte, w int, r, box image.Rectangle) (s [3]float64, n, clipped float64) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		x0, x1 := ellipseSpan(r, box, y)
		if x1 <= x0 {
			continue
		}
		row := rgb[(y*w+x0)*3 : (y*w+x1)*3]
		var a, b, c float64
		for i := 0; i+2 < len(row); i += 3 {
			a += srgbLinear[row[i]]
			b += srgbLinear[row[i+1]]
			c += srgbLinear[row[i+2]]
			if row[i] == 255 || row[i+1] == 255 || row[i+2] == 255 {
				clipped++
			}
		}
		s[0] += a
		s[1] += b
		s[2] += c
		n += float64(x1 - x0)
	}
	return s, n, clipped
}

// ellipseSpan is the run [x0, x1) of row y of r inside the face ellipse of
// box (x1 ≤ x0: none).
func ellipseSpan(r, box image.Rectangle, y int) (x0, x1 int) {
	cx, cy := float64(box.Min.X+box.Max.X)/2, float64(box.Min.Y+box.Max.Y)/2
	ax, ay := faceEllipse*float64(box.Dx()), faceEllipse*float64(box.Dy())
	dy := (float64(y) + 0.5 - cy) / ay
	if dy*dy >= 1 {
		return 0, 0
	}
	half := ax * math.Sqrt(1-dy*dy)
	return max(r.Min.X, int(math.Ceil(cx-half-0.5))), min(r.Max.X, int(math.Floor(cx+half-0.5))+1)
}

// sumRect sums the linear RGB of r (inside the frame).
func sumRect(rgb []byte, w int, r image.Rectangle) ([3]float64, float64) {
	var s [3]float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := rgb[(y*w+r.Min.X)*3 : (y*w+r.Max.X)*3]
		var a, b, c float64
		for i := 0; i+2 < len(row); i += 3 {
			a += srgbLinear[row[i]]
			b += srgbLinear[row[i+1]]
			c += srgbLinear[row[i+2]]
		}
		s[0] += a
		s[1] += b
		s[2] += c
	}
	return s, float64(r.Dx() * r.Dy())
}

// emission is the predicted light per frame for a region whose mid row is
// ro (fraction of the frame height), at loop lag lag (seconds).
func (m *measurement) emission(t, ro, lag float64) [3]float64 {
	w1 := t + ro*m.readout - lag
	return m.tl.mean(w1-m.exposure, w1)
}

// bandFit is the model of one row band: v_c(i) = m(i)·a_c + β_c·e_c(i).
type bandFit struct {
	m    []float64
	a, b [3]float64
}

// weight is frame i's weight in the fits: w[i], or 1 when w is nil (all
// frames count alike).
func weight(w []float64, i int) float64 {
	if w == nil {
		return 1
	}
	return w[i]
}

// fitBand fits v ≈ m·a + β·e (m normalised to mean 1). Given the ambient
// colour a, m is eliminated exactly by projecting every frame's colour
// onto the plane orthogonal to a, where β is a 3x3 linear least-squares
// problem; then m follows, then a; a few rounds converge (plain
// alternation between m and β crawls when the screen's colour changes
// lie close to the ambient colour).
func fitBand(v, e [][3]float64, w []float64) bandFit {
	n := len(v)
	f := bandFit{m: make([]float64, n)}
	var sw float64
	for i := range v {
		sw += weight(w, i)
	}
	if !(sw > 0) {
		return f
	}
	for i := range v {
		for c := 0; c < 3; c++ {
			f.a[c] += weight(w, i) * v[i][c] / sw
		}
	}
	for iter := 0; iter < 4; iter++ {
		an := f.a[0]*f.a[0] + f.a[1]*f.a[1] + f.a[2]*f.a[2]
		if !(an > 0) {
			return f
		}
		// P = I − a aᵀ/|a|²; normal equations Σ E P E β = Σ E P v.
		var P [3][3]float64
		for r := 0; r < 3; r++ {
			for c := 0; c < 3; c++ {
				P[r][c] = -f.a[r] * f.a[c] / an
			}
			P[r][r]++
		}
		var A [3][3]float64
		var B [3]float64
		for i := range v {
			wi := weight(w, i)
			for r := 0; r < 3; r++ {
				for c := 0; c < 3; c++ {
					A[r][c] += wi * e[i][r] * P[r][c] * e[i][c]
					B[r] += wi * e[i][r] * P[r][c] * v[i][c]
				}
			}
		}
		b, ok := solve3(A, B)
		if !ok {
			b = [3]float64{}
		}
		f.b = b
		var mean float64
		for i := range v {
			var s float64
			for c := 0; c < 3; c++ {
				s += f.a[c] * (v[i][c] - f.b[c]*e[i][c])
			}
			f.m[i] = s / an
			mean += weight(w, i) * f.m[i] / sw
		}
		if !(mean > 0) {
			return f
		}
		var mm float64
		for i := range f.m {
			f.m[i] /= mean
			mm += weight(w, i) * f.m[i] * f.m[i]
		}
		for c := 0; c < 3; c++ {
			var s float64
			for i := range v {
				s += weight(w, i) * f.m[i] * (v[i][c] - f.b[c]*e[i][c])
			}
			f.a[c] = s / mm
		}
	}
	return f
}

// fit2 is the least-squares fit of v_c ≈ a·m + b·e_c.
func fit2(v, e [][3]float64, m []float64, c int, w []float64) (a, b float64) {
	var smm, sme, see, svm, sve float64
	for i := range v {
		x, y := m[i], e[i][c]
		wi := weight(w, i)
		smm += wi * x * x
		sme += wi * x * y
		see += wi * y * y
		svm += wi * v[i][c] * x
		sve += wi * v[i][c] * y
	}
	det := smm*see - sme*sme
	if !(math.Abs(det) > 1e-18*smm*see) {
		if smm > 0 {
			return svm / smm, 0
		}
		return 0, 0
	}
	return (svm*see - sve*sme) / det, (sve*smm - svm*sme) / det
}

// fitFixed fits v_c ≈ a·m + b·e_c with m given, and returns the standard
// error of b too.
func fitFixed(v, e [][3]float64, m, w []float64) (a, b, se [3]float64) {
	n := 0.0
	for i := range v {
		if w == nil || w[i] > 0 {
			n++
		}
	}
	for c := 0; c < 3; c++ {
		a[c], b[c] = fit2(v, e, m, c, w)
		var rss, smm, sme, see float64
		for i := range v {
			wi := weight(w, i)
			r := v[i][c] - a[c]*m[i] - b[c]*e[i][c]
			rss += wi * r * r
			smm += wi * m[i] * m[i]
			sme += wi * m[i] * e[i][c]
			see += wi * e[i][c] * e[i][c]
		}
		det := smm*see - sme*sme
		if det > 0 && n > 2 {
			se[c] = math.Sqrt(rss / (n - 2) * smm / det)
		} else {
			se[c] = math.Inf(1)
		}
	}
	return a, b, se
}

// lagResult is the face response at one lag.
type lagResult struct {
	lag  float64
	r    [3]float64 // per-channel correlation of the ambient-free face signal with the emission
	mean float64
	// pooled is the correlation of all three channels at once: the
	// square root of the share of the signals' summed variance that the
	// emission explains, negative when it explains them inversely. A
	// channel carries weight by the variance it has: one whose emission
	// barely changed (the challenge's hues all had about the same red)
	// adds its noise, not a vote for a wrong lag.
	pooled       float64
	fits         [gridRows]bandFit
	bandV, bandE [gridRows][][3]float64
}

// faceAt fits the face's row bands at lag and correlates.
func (m *measurement) faceAt(lag float64) lagResult {
	res := lagResult{lag: lag}
	n := len(m.frames)
	var s, x [3][]float64
	for c := range s {
		s[c] = make([]float64, n)
		x[c] = make([]float64, n)
	}
	for r := 0; r < gridRows; r++ {
		v := make([][3]float64, n)
		e := make([][3]float64, n)
		var wb float64
		for i := range m.frames {
			f := &m.frames[i]
			var w float64
			for col := 0; col < gridCols; col++ {
				k := r*gridCols + col
				ek := m.emission(f.t, f.cellRo[k], lag)
				for c := 0; c < 3; c++ {
					v[i][c] += f.cell[k][c] * f.cellW[k]
					e[i][c] += ek[c] * f.cellW[k]
				}
				w += f.cellW[k]
			}
			for c := 0; c < 3; c++ {
				v[i][c] /= w
				e[i][c] /= w
			}
			wb += w
		}
		fit := fitBand(v, e, m.w)
		res.fits[r], res.bandV[r], res.bandE[r] = fit, v, e
		for i := range v {
			for c := 0; c < 3; c++ {
				s[c][i] += v[i][c] - fit.m[i]*fit.a[c]
				x[c][i] += e[i][c]
			}
		}
	}
	var explained, total float64
	for c := 0; c < 3; c++ {
		res.r[c] = pearson(s[c], x[c], m.w)
		res.mean += res.r[c] / 3
		sxy, sxx, syy := moments(s[c], x[c], m.w)
		if syy > 0 {
			explained += math.Copysign(sxy*sxy/syy, sxy)
		}
		total += sxx
	}
	if total > 0 {
		res.pooled = math.Copysign(math.Sqrt(math.Abs(explained)/total), explained)
	}
	return res
}

// pearson is the (weighted, w nil: unweighted) correlation of x and y.
func pearson(x, y, w []float64) float64 {
	sxy, sxx, syy := moments(x, y, w)
	if !(sxx > 0 && syy > 0) {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}

// moments are the (weighted) centred cross and square sums of x and y;
// zero for fewer than three points.
func moments(x, y, w []float64) (sxy, sxx, syy float64) {
	if len(x) < 3 {
		return 0, 0, 0
	}
	var mx, my, n float64
	for i := range x {
		mx += weight(w, i) * x[i]
		my += weight(w, i) * y[i]
		n += weight(w, i)
	}
	if !(n > 0) {
		return 0, 0, 0
	}
	mx, my = mx/n, my/n
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += weight(w, i) * dx * dy
		sxx += weight(w, i) * dx * dx
		syy += weight(w, i) * dy * dy
	}
	return sxy, sxx, syy
}
