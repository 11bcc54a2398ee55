package inference

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"io"
	"math"

	"github.com/glintdev/glint/capture"
)

// Image is a packed 8-bit RGB image (3 bytes per pixel, rows without
// padding), the form capture.Frame.RGB produces.
type Image struct {
	Width, Height int
	Pix           []byte
}

// ErrImageFormat marks image bytes that are neither PNG nor JPEG or do not
// decode.
var ErrImageFormat = errors.New("image is not a decodable PNG or JPEG")

// ErrImageTooLarge marks an image with more than MaxImagePixels pixels
// (checked from the header, before decoding: a small file can declare a
// huge image).
var ErrImageTooLarge = errors.New("image has too many pixels")

// MaxImagePixels bounds the images DecodeImage accepts (40 MP).
const MaxImagePixels = 40_000_000

// FromFrame converts a captured frame to RGB, reusing buf when large enough.
func FromFrame(f *capture.Frame, buf []byte) (*Image, error) {
	rgb, err := f.RGB(buf)
	if err != nil {
		return nil, fmt.Errorf("frame %d to rgb: %w", f.Seq, err)
	}
	return &Image{Width: f.Width, Height: f.Height, Pix: rgb}, nil
}

// DecodeImage decodes PNG or JPEG bytes (nothing else) to RGB and reports
// which format it was.
func DecodeImage(b []byte) (*Image, string, error) {
	var (
		decode       func(io.Reader) (image.Image, error)
		decodeConfig func(io.Reader) (image.Config, error)
		format       string
	)
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		format, decode, decodeConfig = "png", png.Decode, png.DecodeConfig
	case bytes.HasPrefix(b, []byte{0xff, 0xd8}):
		format, decode, decodeConfig = "jpeg", jpeg.Decode, jpeg.DecodeConfig
	default:
		return nil, "", ErrImageFormat
	}
	cfg, err := decodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, format, errors.Join(ErrImageFormat, err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return nil, format, fmt.Errorf("%w: %dx%d", ErrImageTooLarge, cfg.Width, cfg.Height)
	}
	img, err := decode(bytes.NewReader(b))
	if err != nil {
		return nil, format, errors.Join(ErrImageFormat, err)
	}
	return FromImage(img), format, nil
}

// FromImage converts any image.Image to RGB.
func FromImage(img image.Image) *Image {
	r := img.Bounds()
	rgba, ok := img.(*image.RGBA)
	if !ok || r.Min != (image.Point{}) {
		rgba = image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
		draw.Draw(rgba, rgba.Bounds(), img, r.Min, draw.Src)
	}
	out := &Image{Width: r.Dx(), Height: r.Dy(), Pix: make([]byte, 3*r.Dx()*r.Dy())}
	for y := 0; y < out.Height; y++ {
		src := rgba.Pix[y*rgba.Stride:]
		dst := out.Pix[3*y*out.Width:]
		for x := 0; x < out.Width; x++ {
			dst[3*x], dst[3*x+1], dst[3*x+2] = src[4*x], src[4*x+1], src[4*x+2]
		}
	}
	return out
}

// RGBA returns the image as an image.RGBA (for drawing and encoding).
func (im *Image) RGBA() *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, im.Width, im.Height))
	for i := 0; i < im.Width*im.Height; i++ {
		out.Pix[4*i], out.Pix[4*i+1], out.Pix[4*i+2], out.Pix[4*i+3] = im.Pix[3*i], im.Pix[3*i+1], im.Pix[3*i+2], 255
	}
	return out
}

// Point is an image position in pixels.
type Point struct{ X, Y float64 }

// Affine maps output pixel centres to source image positions:
// src = (A*u + B*v + C, D*u + E*v + F).
type Affine struct{ A, B, C, D, E, F float64 }

// Apply maps p.
func (m Affine) Apply(p Point) Point {
	return Point{m.A*p.X + m.B*p.Y + m.C, m.D*p.X + m.E*p.Y + m.F}
}

// Invert returns the inverse map.
func (m Affine) Invert() Affine {
	det := m.A*m.E - m.B*m.D
	if det == 0 {
		return Affine{}
	}
	a, b, d, e := m.E/det, -m.B/det, -m.D/det, m.A/det
	return Affine{a, b, -(a*m.C + b*m.F), d, e, -(d*m.C + e*m.F)}
}

// warp fills dst (size x size x 3, NHWC float32) with the source image
// sampled bilinearly at m(u, v) for every output pixel centre, normalised as
// v*scale+offset. Positions outside the image read as black. The sample
// position steps by (A, D) along a row, so no per-pixel matrix product; the
// interior takes a fast path without per-tap bounds checks.
func warp(dst []float32, size int, src *Image, m Affine, scale, offset float32) {
	w, h := src.Width, src.Height
	pix := src.Pix
	stride := 3 * w
	for v := 0; v < size; v++ {
		fv := float64(v) + 0.5
		x := m.A*0.5 + m.B*fv + m.C - 0.5
		y := m.D*0.5 + m.E*fv + m.F - 0.5
		o := 3 * v * size
		for u := 0; u < size; u++ {
			ix, iy := int(x), int(y)
			if float64(ix) > x {
				ix--
			}
			if float64(iy) > y {
				iy--
			}
			fx, fy := float32(x-float64(ix)), float32(y-float64(iy))
			w00, w01 := (1-fx)*(1-fy), fx*(1-fy)
			w10, w11 := (1-fx)*fy, fx*fy
			var r, g, b float32
			if ix >= 0 && iy >= 0 && ix+1 < w && iy+1 < h {
				p := iy*stride + 3*ix
				q := p + stride
				r = w00*float32(pix[p]) + w01*float32(pix[p+3]) + w10*float32(pix[q]) + w11*float32(pix[q+3])
				g = w00*float32(pix[p+1]) + w01*float32(pix[p+4]) + w10*float32(pix[q+1]) + w11*float32(pix[q+4])
				b = w00*float32(pix[p+2]) + w01*float32(pix[p+5]) + w10*float32(pix[q+2]) + w11*float32(pix[q+5])
			} else if ix >= -1 && iy >= -1 && ix < w && iy < h {
				// Border: taps outside the image are black.
				for k, wt := range [4]float32{w00, w01, w10, w11} {
					px, py := ix+k&1, iy+k>>1
					if wt == 0 || px < 0 || py < 0 || px >= w || py >= h {
						continue
					}
					p := py*stride + 3*px
					r += wt * float32(pix[p])
					g += wt * float32(pix[p+1])
					b += wt * float32(pix[p+2])
				}
			}
			dst[o] = r*scale + offset
			dst[o+1] = g*scale + offset
			dst[o+2] = b*scale + offset
			o += 3
			x += m.A
			y += m.D
		}
	}
}

// cropAffine maps a size x size output onto the square of side `side`
// centred at c and rotated by angle (radians, counter-clockwise in image
// coordinates is negative: y points down).
func cropAffine(c Point, side, angle float64, size int) Affine {
	s := side / float64(size)
	cos, sin := math.Cos(angle)*s, math.Sin(angle)*s
	half := float64(size) / 2
	// src = c + R(angle)*s*(u - half, v - half)
	return Affine{
		A: cos, B: -sin, C: c.X - cos*half + sin*half,
		D: sin, E: cos, F: c.Y - sin*half - cos*half,
	}
}
