package inference

import "math"

// MeshPoints is the number of facemesh landmarks.
const MeshPoints = 468

// Point3 is a facemesh landmark: x, y in image pixels, z in the same scale
// (depth; smaller is nearer the camera).
type Point3 struct{ X, Y, Z float64 }

// Facemesh landmark indices glint uses (MediaPipe's canonical face mesh).
// "Right" is the subject's right (image left when unmirrored).
const (
	meshRightEyeOuter  = 33
	meshRightEyeInner  = 133
	meshLeftEyeInner   = 362
	meshLeftEyeOuter   = 263
	meshNoseTip        = 1
	meshMouthRight     = 61
	meshMouthLeft      = 291
	meshForehead       = 10
	meshChin           = 152
	meshRightCheek     = 234
	meshLeftCheek      = 454
	meshUpperLipCenter = 13
)

// Pose is head orientation in degrees. Yaw > 0: the subject turned to
// their left (their left cheek away from the camera); pitch > 0: chin up;
// roll > 0: the eye line rotated clockwise in the image.
type Pose struct {
	Yaw   float64 `json:"yaw"`
	Pitch float64 `json:"pitch"`
	Roll  float64 `json:"roll"`
}

// Landmarks are the facemesh results for one face.
type Landmarks struct {
	Mesh []Point3
	// Score is facemesh's face-presence probability.
	Score float64
	// RightEye and LeftEye are the eye centres (mean of the eye corners).
	RightEye, LeftEye Point
	// Interocular is the distance between the eye centres in pixels.
	Interocular float64
	Pose        Pose
}

func mid(a, b Point3) Point { return Point{(a.X + b.X) / 2, (a.Y + b.Y) / 2} }

func dist(a, b Point) float64 { return math.Hypot(a.X-b.X, a.Y-b.Y) }

// newLandmarks derives eye centres, interocular distance and pose from a
// mesh in image coordinates.
func newLandmarks(mesh []Point3, score float64) *Landmarks {
	l := &Landmarks{Mesh: mesh, Score: score}
	l.RightEye = mid(mesh[meshRightEyeOuter], mesh[meshRightEyeInner])
	l.LeftEye = mid(mesh[meshLeftEyeOuter], mesh[meshLeftEyeInner])
	l.Interocular = dist(l.RightEye, l.LeftEye)
	l.Pose = headPose(mesh)
	return l
}

type vec3 [3]float64

func sub3(a, b Point3) vec3 { return vec3{a.X - b.X, a.Y - b.Y, a.Z - b.Z} }

func norm3(v vec3) vec3 {
	n := math.Sqrt(v[0]*v[0] + v[1]*v[1] + v[2]*v[2])
	if n == 0 {
		return v
	}
	return vec3{v[0] / n, v[1] / n, v[2] / n}
}

func cross3(a, b vec3) vec3 {
	return vec3{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}

// headPose builds the face's axes from the mesh: x from the right cheek to
// the left (image left to right on a frontal face), y from forehead to chin,
// z their cross product, then reads the Euler angles off that rotation.
func headPose(mesh []Point3) Pose {
	x := norm3(sub3(mesh[meshLeftCheek], mesh[meshRightCheek]))
	y := norm3(sub3(mesh[meshChin], mesh[meshForehead]))
	z := norm3(cross3(x, y))
	y = norm3(cross3(z, x)) // re-orthogonalise: x is the better-measured axis
	deg := 180 / math.Pi
	return Pose{
		Yaw:   math.Asin(clamp(x[2], -1, 1)) * deg,
		Pitch: -math.Asin(clamp(y[2], -1, 1)) * deg,
		Roll:  math.Atan2(x[1], x[0]) * deg,
	}
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// FivePoints are the alignment points: right eye, left eye, nose tip,
// right and left mouth corners.
func (l *Landmarks) FivePoints() [5]Point {
	p := func(i int) Point { return Point{l.Mesh[i].X, l.Mesh[i].Y} }
	return [5]Point{l.RightEye, l.LeftEye, p(meshNoseTip), p(meshMouthRight), p(meshMouthLeft)}
}

// arcfaceTemplate is the standard 5-point template for a 112x112 aligned
// face (subject's right eye on the image left).
var arcfaceTemplate = [5]Point{
	{38.2946, 51.6963}, {73.5318, 51.5014}, {56.0252, 71.7366}, {41.5493, 92.3655}, {70.7299, 92.2041},
}

// similarity estimates the least-squares similarity transform (rotation,
// uniform scale, translation; Umeyama without reflection) mapping src onto
// dst.
func similarity(src, dst []Point) Affine {
	n := float64(len(src))
	var ms, md Point
	for i := range src {
		ms.X += src[i].X / n
		ms.Y += src[i].Y / n
		md.X += dst[i].X / n
		md.Y += dst[i].Y / n
	}
	// For 2D similarity: dst = [a -b; b a] src + t, closed form.
	var num1, num2, den float64
	for i := range src {
		sx, sy := src[i].X-ms.X, src[i].Y-ms.Y
		dx, dy := dst[i].X-md.X, dst[i].Y-md.Y
		num1 += sx*dx + sy*dy
		num2 += sx*dy - sy*dx
		den += sx*sx + sy*sy
	}
	if den == 0 {
		return Affine{A: 1, E: 1}
	}
	a, b := num1/den, num2/den
	return Affine{A: a, B: -b, C: md.X - a*ms.X + b*ms.Y, D: b, E: a, F: md.Y - b*ms.X - a*ms.Y}
}

// alignAffine returns the map from a size x size aligned face onto the
// image: the five points go to the ArcFace template scaled to size and
// shrunk towards the centre by zoom (1 = the template as is; < 1 shows
// more context).
func alignAffine(pts [5]Point, size int, zoom float64) Affine {
	s := float64(size) / 112
	dst := make([]Point, 5)
	c := float64(size) / 2
	for i, t := range arcfaceTemplate {
		dst[i] = Point{c + (t.X*s-c)*zoom, c + (t.Y*s-c)*zoom}
	}
	// Image → aligned, inverted to aligned → image for sampling.
	return similarity(pts[:], dst).Invert()
}
