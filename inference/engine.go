package inference

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/glintdev/glint/inference/manifest"
)

// Config configures an Engine.
type Config struct {
	// ModelsDir holds the ONNX models and manifest.json (make deps: models/).
	ModelsDir string
	// Precision of the models to load: manifest.FP32 (default),
	// manifest.INT8 (every model that has an INT8 file; the detector, kept
	// in float on purpose, loads as FP32) or PrecisionAuto (per model the
	// faster of the two as measured by make bench: INT8 for the embedding
	// models, FP32 for the rest; see docs/models.md).
	Precision string
	// IntraOpThreads per session; 0 means 1.
	IntraOpThreads int
	// Embedding is the face-descriptor model; default "faceres" (chosen by
	// measurement over mobilefacenet, see docs/models.md).
	Embedding string
	// MinDetectionScore drops weaker detections; default 0.5.
	MinDetectionScore float64
	// NMSThreshold is the IoU above which detections merge; default 0.3.
	NMSThreshold float64
	// MaxFaces bounds the faces analysed per image; default 4.
	MaxFaces int
	// Detector is the face detector: DetectorFull (default), the 256x256
	// full-range BlazeFace, or DetectorShort, the 128x128 short-range
	// ("front") BlazeFace: about 5x cheaper, but measured reliable only
	// for faces at least 20% of the frame's width (a kiosk user close to
	// the camera). On smaller faces it misses or returns wrong boxes, with
	// no error: see docs/models.md for the measured range.
	Detector string
}

// Detector choices (Config.Detector).
const (
	DetectorFull  = "full"
	DetectorShort = "short"
)

// detectorModel is the catalog model of a Config.Detector value.
func detectorModel(d string) (string, error) {
	switch d {
	case DetectorFull:
		return "blazeface", nil
	case DetectorShort:
		return "blazeface-front", nil
	}
	return "", fmt.Errorf("inference: unknown detector %q (want %q or %q)", d, DetectorFull, DetectorShort)
}

func (c *Config) setDefaults() {
	if c.Precision == "" {
		c.Precision = manifest.FP32
	}
	if c.Embedding == "" {
		c.Embedding = "faceres"
	}
	if c.MinDetectionScore == 0 {
		c.MinDetectionScore = 0.5
	}
	if c.NMSThreshold == 0 {
		c.NMSThreshold = 0.3
	}
	if c.MaxFaces == 0 {
		c.MaxFaces = 4
	}
	if c.Detector == "" {
		c.Detector = DetectorFull
	}
}

// PrecisionAuto picks, per model, the precision that measured faster.
const PrecisionAuto = "auto"

// autoPrecision is PrecisionAuto's choice for a model. INT8 pays off only
// for the large embedding models (faceres 3x faster); facemesh, antispoof
// and liveness ran slower in INT8 (ORT keeps their PRelu, MaxPool and small
// layers in float, so the QDQ graph adds layout transposes and Q/DQ
// pairs), and the detector has no INT8 model.
func autoPrecision(name string) string {
	switch name {
	case "faceres", "mobilefacenet":
		return manifest.INT8
	}
	return manifest.FP32
}

// ErrNoFace is returned when an operation needs a face and none is found.
var ErrNoFace = errors.New("no face found")

// model is one loaded model: its catalog spec, manifest entry and session.
type model struct {
	spec  manifest.Spec
	entry *manifest.Model
	sess  *Session
}

// output returns the index of the output whose shape (batch dropped) is
// shape, or -1.
func (m *model) output(shape ...int64) int {
	for i, o := range m.entry.Outputs {
		if len(o.Shape) == len(shape)+1 {
			ok := true
			for k, d := range shape {
				if o.Shape[k+1] != d {
					ok = false
				}
			}
			if ok {
				return i
			}
		}
	}
	return -1
}

// Engine runs the face models: detection, landmarks, embedding, anti-spoof
// and liveness. Its methods are safe for concurrent use (they serialise on
// the sessions).
type Engine struct {
	cfg Config

	mu      sync.Mutex
	det     *model
	mesh    *model
	emb     *model
	spoof   *model
	live    *model
	anchors []anchor
	// output indices resolved at load time
	detScores512, detReg512, detScores384, detReg384 int
	meshPoints, meshFlag                             int
	embOut                                           int
}

// New loads the models named by cfg from cfg.ModelsDir, checking each file
// against the manifest, and creates their sessions on rt.
func New(rt *Runtime, cfg Config) (*Engine, error) {
	cfg.setDefaults()
	detName, err := detectorModel(cfg.Detector)
	if err != nil {
		return nil, err
	}
	man, err := manifest.Load(cfg.ModelsDir)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg}
	load := func(name string) (*model, error) {
		spec, ok := manifest.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("model %q is not in the catalog", name)
		}
		precision := cfg.Precision
		if precision == PrecisionAuto {
			precision = autoPrecision(name)
		}
		if _, err := man.Find(name, precision); errors.Is(err, manifest.ErrUnknownModel) && precision == manifest.INT8 {
			// A model kept in float on purpose (see quantize.Float)
			// has no INT8 entry: use its FP32 file.
			precision = manifest.FP32
		}
		b, entry, err := man.ReadModel(cfg.ModelsDir, name, precision)
		if err != nil {
			return nil, err
		}
		fix := func(ts []manifest.Tensor) []TensorSpec {
			out := make([]TensorSpec, len(ts))
			for i, t := range ts {
				shape := append([]int64(nil), t.Shape...)
				for k := range shape {
					if shape[k] < 0 {
						shape[k] = 1 // one image at a time
					}
				}
				out[i] = TensorSpec{Name: t.Name, Shape: shape}
			}
			return out
		}
		s, err := rt.NewSession(name, b, fix(entry.Inputs), fix(entry.Outputs), SessionConfig{IntraOpThreads: cfg.IntraOpThreads})
		if err != nil {
			return nil, err
		}
		return &model{spec: spec, entry: entry, sess: s}, nil
	}
	for _, x := range []struct {
		dst  **model
		name string
	}{{&e.det, detName}, {&e.mesh, "facemesh"}, {&e.emb, cfg.Embedding}, {&e.spoof, "antispoof"}, {&e.live, "liveness"}} {
		m, err := load(x.name)
		if err != nil {
			e.Close()
			return nil, err
		}
		*x.dst = m
	}
	// Both detectors have the same two anchor levels, scaled to their
	// input: 256 → strides 16 and 32, 128 → strides 8 and 16 (MediaPipe's
	// short-range strides [8,16,16,16], the three stride-16 layers of two
	// anchors each merged into one level of six).
	e.anchors = blazeAnchors(e.det.spec.Size)
	e.detScores512, e.detReg512 = e.det.output(512, 1), e.det.output(512, 16)
	e.detScores384, e.detReg384 = e.det.output(384, 1), e.det.output(384, 16)
	e.meshPoints, e.meshFlag = e.mesh.output(1404), e.mesh.output(1)
	switch cfg.Embedding {
	case "faceres":
		e.embOut = e.emb.output(1024)
	default:
		e.embOut = 0
	}
	for _, i := range []int{e.detScores512, e.detReg512, e.detScores384, e.detReg384, e.meshPoints, e.meshFlag, e.embOut} {
		if i < 0 {
			e.Close()
			return nil, errors.New("inference: a model's outputs do not have the expected shapes")
		}
	}
	return e, nil
}

// Close releases the sessions.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, m := range []**model{&e.det, &e.mesh, &e.emb, &e.spoof, &e.live} {
		if *m != nil {
			errs = append(errs, (*m).sess.Close())
			*m = nil
		}
	}
	return errors.Join(errs...)
}

// Config returns the engine's effective configuration.
func (e *Engine) Config() Config { return e.cfg }

// Detect finds faces in im, best first.
func (e *Engine) Detect(im *Image) ([]Detection, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.detect(im)
}

func (e *Engine) detect(im *Image) ([]Detection, error) {
	if e.det == nil {
		return nil, errors.New("inference: engine closed")
	}
	size := e.det.spec.Size
	m := letterbox(im.Width, im.Height, size)
	warp(e.det.sess.Input(0), size, im, m, e.det.spec.Scale, e.det.spec.Offset)
	if err := e.det.sess.Run(); err != nil {
		return nil, err
	}
	out := e.det.sess.Output
	// The two anchor levels come as separate outputs: 512 then 384 anchors.
	dets := decodeBlaze(out(e.detScores512), out(e.detReg512), e.anchors[:512], e.cfg.MinDetectionScore)
	dets = append(dets, decodeBlaze(out(e.detScores384), out(e.detReg384), e.anchors[512:], e.cfg.MinDetectionScore)...)
	dets = weightedNMS(dets, e.cfg.NMSThreshold)
	for i := range dets {
		dets[i] = mapDetection(dets[i], m)
	}
	return dets, nil
}

// meshCrop is the facemesh input square for a detection: centred on the
// box, 1.5x its larger side, rotated so the eyes are level.
func meshCrop(d Detection, size int) Affine {
	re, le := d.Keypoints[KeypointRightEye], d.Keypoints[KeypointLeftEye]
	angle := math.Atan2(le.Y-re.Y, le.X-re.X)
	side := 1.5 * math.Max(d.Box.W(), d.Box.H())
	return cropAffine(d.Box.Center(), side, angle, size)
}

// Retrack runs facemesh on the crop the previous frame's landmarks give
// (their bounding box, eyes level), without the detector: the cheap
// tracking step between detections. A result whose Score has dropped
// (below ~0.5) means the face was lost and the detector must run again.
func (e *Engine) Retrack(im *Image, prev *Landmarks) (*Landmarks, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	box := Rect{X0: math.Inf(1), Y0: math.Inf(1), X1: math.Inf(-1), Y1: math.Inf(-1)}
	for _, p := range prev.Mesh {
		box.X0, box.Y0 = math.Min(box.X0, p.X), math.Min(box.Y0, p.Y)
		box.X1, box.Y1 = math.Max(box.X1, p.X), math.Max(box.Y1, p.Y)
	}
	// The mesh box spans forehead to chin, a little larger than the
	// detector's box: shrink it so the crop matches what facemesh saw.
	c := box.Center()
	half := 0.4 * math.Max(box.W(), box.H())
	d := Detection{Box: Rect{c.X - half, c.Y - half, c.X + half, c.Y + half}, Score: prev.Score}
	d.Keypoints[KeypointRightEye], d.Keypoints[KeypointLeftEye] = prev.RightEye, prev.LeftEye
	return e.landmarks(im, d)
}

// Landmarks runs facemesh on the face found by d.
func (e *Engine) Landmarks(im *Image, d Detection) (*Landmarks, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.landmarks(im, d)
}

func (e *Engine) landmarks(im *Image, d Detection) (*Landmarks, error) {
	if e.mesh == nil {
		return nil, errors.New("inference: engine closed")
	}
	size := e.mesh.spec.Size
	m := meshCrop(d, size)
	warp(e.mesh.sess.Input(0), size, im, m, e.mesh.spec.Scale, e.mesh.spec.Offset)
	if err := e.mesh.sess.Run(); err != nil {
		return nil, err
	}
	raw := e.mesh.sess.Output(e.meshPoints)
	score := float64(e.mesh.sess.Output(e.meshFlag)[0])
	// z is in crop pixels; scale it like x and y.
	zs := math.Hypot(m.A, m.D)
	mesh := make([]Point3, MeshPoints)
	for i := range mesh {
		p := m.Apply(Point{float64(raw[3*i]), float64(raw[3*i+1])})
		mesh[i] = Point3{p.X, p.Y, float64(raw[3*i+2]) * zs}
	}
	return newLandmarks(mesh, score), nil
}

// Face is one analysed face.
type Face struct {
	Detection Detection
	Landmarks *Landmarks
}

// Analyze detects faces and runs facemesh on each (at most MaxFaces, best
// detection first, then sorted by interocular distance, largest first).
func (e *Engine) Analyze(im *Image) ([]Face, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	dets, err := e.detect(im)
	if err != nil {
		return nil, err
	}
	if len(dets) > e.cfg.MaxFaces {
		dets = dets[:e.cfg.MaxFaces]
	}
	faces := make([]Face, 0, len(dets))
	for _, d := range dets {
		l, err := e.landmarks(im, d)
		if err != nil {
			return nil, err
		}
		faces = append(faces, Face{Detection: d, Landmarks: l})
	}
	sort.SliceStable(faces, func(i, j int) bool { return faces[i].Landmarks.Interocular > faces[j].Landmarks.Interocular })
	return faces, nil
}

// embedZoom is how tightly each embedding model's input is cropped around
// the five-point template (1 = the ArcFace 112x112 framing). 0.8 for faceres
// gave the widest genuine/impostor gap of 0.7, 0.8, 0.9 and 1.0.
func embedZoom(name string) float64 {
	if name == "faceres" {
		return 0.8
	}
	return 1
}

// Embed returns the L2-normalised face descriptor of f.
func (e *Engine) Embed(im *Image, f Face) ([]float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.emb == nil {
		return nil, errors.New("inference: engine closed")
	}
	size := e.emb.spec.Size
	m := alignAffine(f.Landmarks.FivePoints(), size, embedZoom(e.emb.spec.Name))
	warp(e.emb.sess.Input(0), size, im, m, e.emb.spec.Scale, e.emb.spec.Offset)
	if err := e.emb.sess.Run(); err != nil {
		return nil, err
	}
	return l2normalize(e.emb.sess.Output(e.embOut)), nil
}

func l2normalize(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if s == 0 {
		return out
	}
	n := float32(1 / math.Sqrt(s))
	for i, x := range v {
		out[i] = x * n
	}
	return out
}

// faceSquare is the face crop used by the anti-spoof and liveness models:
// the detection box, squared and level.
func faceSquare(f Face, size int) Affine {
	d := f.Detection
	angle := math.Atan2(f.Landmarks.LeftEye.Y-f.Landmarks.RightEye.Y, f.Landmarks.LeftEye.X-f.Landmarks.RightEye.X)
	return cropAffine(d.Box.Center(), math.Max(d.Box.W(), d.Box.H()), angle, size)
}

// AntiSpoof returns the passive anti-spoof model's "real face" score, 0..1.
func (e *Engine) AntiSpoof(im *Image, f Face) (float64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.spoof == nil {
		return 0, errors.New("inference: engine closed")
	}
	size := e.spoof.spec.Size
	warp(e.spoof.sess.Input(0), size, im, faceSquare(f, size), e.spoof.spec.Scale, e.spoof.spec.Offset)
	if err := e.spoof.sess.Run(); err != nil {
		return 0, err
	}
	return float64(e.spoof.sess.Output(0)[0]), nil
}

// Liveness returns the liveness model's "live" probability (softmax class
// 0), 0..1.
func (e *Engine) Liveness(im *Image, f Face) (float64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.live == nil {
		return 0, errors.New("inference: engine closed")
	}
	size := e.live.spec.Size
	warp(e.live.sess.Input(0), size, im, faceSquare(f, size), e.live.spec.Scale, e.live.spec.Offset)
	if err := e.live.sess.Run(); err != nil {
		return 0, err
	}
	return float64(e.live.sess.Output(0)[0]), nil
}

// ModelInputs returns, for every catalog model, the input tensors the
// engine would feed it for im: the letterboxed image for the detector and,
// per detected face, the facemesh crop, the aligned embedding crops and the
// anti-spoof and liveness squares. Used to calibrate INT8 quantization on
// real face crops and to check INT8 against FP32 accuracy.
func (e *Engine) ModelInputs(im *Image) (map[string][][]float32, error) {
	faces, err := e.Analyze(im)
	if err != nil {
		return nil, err
	}
	out := map[string][][]float32{}
	for _, spec := range manifest.Catalog() {
		n := spec.Size
		one := func(m Affine) {
			buf := make([]float32, n*n*3)
			warp(buf, n, im, m, spec.Scale, spec.Offset)
			out[spec.Name] = append(out[spec.Name], buf)
		}
		switch spec.Role {
		case "detector":
			one(letterbox(im.Width, im.Height, n))
			continue
		}
		for _, f := range faces {
			switch spec.Role {
			case "landmarks":
				one(meshCrop(f.Detection, n))
			case "embedding":
				one(alignAffine(f.Landmarks.FivePoints(), n, embedZoom(spec.Name)))
			default:
				one(faceSquare(f, n))
			}
		}
	}
	return out, nil
}
