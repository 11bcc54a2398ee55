package capture

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
)

// ErrBadFrame means a frame's bytes do not match its format and size.
var ErrBadFrame = errors.New("frame data does not match its format")

// BT.601 limited-range ("studio swing") YCbCr → RGB in 16.16-free 8-bit fixed
// point: what UVC cameras deliver as YUYV and NV12. JPEG uses full range and
// is converted by convertYCbCrImage instead.
//
// R = 1.164(Y-16) + 1.596(V-128)
// G = 1.164(Y-16) - 0.392(U-128) - 0.813(V-128)
// B = 1.164(Y-16) + 2.017(U-128)
const (
	coefY  = 298 // 1.164 * 256
	coefRV = 409 // 1.596 * 256
	coefGU = 100 // 0.392 * 256
	coefGV = 208 // 0.813 * 256
	coefBU = 516 // 2.017 * 256
)

func clamp8(v int32) byte {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return byte(v)
}

// grow returns dst resized to n bytes, reusing its storage when large enough.
func grow(dst []byte, n int) []byte {
	if cap(dst) >= n {
		return dst[:n]
	}
	return make([]byte, n)
}

// clampTable maps (v>>8)+clampBias to v>>8 clamped to 0..255 for every
// value the BT.601 fixed-point sums can reach (-277..534): a branch-free
// clamp whose index the &1023 keeps provably in range.
const clampBias = 384

var clampTable = func() (t [1024]byte) {
	for i := range t {
		t[i] = clamp8(int32(i - clampBias))
	}
	return t
}()

// YUYVToRGB converts packed YUYV 4:2:2 to packed RGB24 (3 bytes a pixel).
func YUYVToRGB(dst, src []byte, width, height int) ([]byte, error) {
	if width <= 0 || height <= 0 || width%2 != 0 || len(src) < width*height*2 {
		return nil, fmt.Errorf("YUYV %dx%d with %d bytes: %w", width, height, len(src), ErrBadFrame)
	}
	dst = grow(dst, width*height*3)
	src = src[:width*height*2]
	for si, di := 0, 0; si+3 < len(src) && di+5 < len(dst); si, di = si+4, di+6 {
		s := src[si : si+4 : si+4]
		o := dst[di : di+6 : di+6]
		d := int32(s[1]) - 128
		e := int32(s[3]) - 128
		// The chroma terms are shared by the pair of pixels.
		r, g, b := coefRV*e, -coefGU*d-coefGV*e, coefBU*d
		y0 := coefY*(int32(s[0])-16) + 128
		y1 := coefY*(int32(s[2])-16) + 128
		o[0] = clampTable[((y0+r)>>8+clampBias)&1023]
		o[1] = clampTable[((y0+g)>>8+clampBias)&1023]
		o[2] = clampTable[((y0+b)>>8+clampBias)&1023]
		o[3] = clampTable[((y1+r)>>8+clampBias)&1023]
		o[4] = clampTable[((y1+g)>>8+clampBias)&1023]
		o[5] = clampTable[((y1+b)>>8+clampBias)&1023]
	}
	return dst, nil
}

// YUYVToLuma extracts the Y channel of packed YUYV.
func YUYVToLuma(dst, src []byte, width, height int) ([]byte, error) {
	if width <= 0 || height <= 0 || width%2 != 0 || len(src) < width*height*2 {
		return nil, fmt.Errorf("YUYV %dx%d with %d bytes: %w", width, height, len(src), ErrBadFrame)
	}
	n := width * height
	dst = grow(dst, n)
	for i := 0; i < n; i++ {
		dst[i] = src[2*i]
	}
	return dst, nil
}

// NV12ToRGB converts NV12 (a Y plane, then interleaved Cb/Cr at half
// resolution) to packed RGB24.
func NV12ToRGB(dst, src []byte, width, height int) ([]byte, error) {
	if width <= 0 || height <= 0 || width%2 != 0 || height%2 != 0 || len(src) < width*height*3/2 {
		return nil, fmt.Errorf("NV12 %dx%d with %d bytes: %w", width, height, len(src), ErrBadFrame)
	}
	dst = grow(dst, width*height*3)
	yPlane := src[:width*height]
	uvPlane := src[width*height:]
	for y := 0; y < height; y++ {
		row := yPlane[y*width : (y+1)*width]
		uv := uvPlane[(y/2)*width : (y/2+1)*width]
		out := dst[y*width*3 : (y+1)*width*3]
		for x := 0; x+1 < len(row) && x+1 < len(uv) && 3*x+5 < len(out); x += 2 {
			d := int32(uv[x]) - 128
			e := int32(uv[x+1]) - 128
			// The chroma terms are shared by the pair of pixels.
			r, g, b := coefRV*e, -coefGU*d-coefGV*e, coefBU*d
			y0 := coefY*(int32(row[x])-16) + 128
			y1 := coefY*(int32(row[x+1])-16) + 128
			o := out[3*x : 3*x+6 : 3*x+6]
			o[0] = clampTable[((y0+r)>>8+clampBias)&1023]
			o[1] = clampTable[((y0+g)>>8+clampBias)&1023]
			o[2] = clampTable[((y0+b)>>8+clampBias)&1023]
			o[3] = clampTable[((y1+r)>>8+clampBias)&1023]
			o[4] = clampTable[((y1+g)>>8+clampBias)&1023]
			o[5] = clampTable[((y1+b)>>8+clampBias)&1023]
		}
	}
	return dst, nil
}

// NV12ToLuma copies the Y plane of NV12.
func NV12ToLuma(dst, src []byte, width, height int) ([]byte, error) {
	if width <= 0 || height <= 0 || len(src) < width*height*3/2 {
		return nil, fmt.Errorf("NV12 %dx%d with %d bytes: %w", width, height, len(src), ErrBadFrame)
	}
	dst = grow(dst, width*height)
	copy(dst, src[:width*height])
	return dst, nil
}

// MJPEGToRGB decodes one JPEG frame to packed RGB24.
func MJPEGToRGB(dst, src []byte) (rgb []byte, width, height int, err error) {
	img, err := decodeJPEG(src)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("MJPEG frame: %w: %w", ErrBadFrame, err)
	}
	rgb, width, height = imageToRGB(dst, img)
	return rgb, width, height, nil
}

// MJPEGToLuma decodes one JPEG frame and returns its luma plane.
func MJPEGToLuma(dst, src []byte) (luma []byte, width, height int, err error) {
	img, err := decodeJPEG(src)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("MJPEG frame: %w: %w", ErrBadFrame, err)
	}
	b := img.Bounds()
	width, height = b.Dx(), b.Dy()
	dst = grow(dst, width*height)
	switch m := img.(type) {
	case *image.YCbCr:
		for y := 0; y < height; y++ {
			copy(dst[y*width:(y+1)*width], m.Y[y*m.YStride:y*m.YStride+width])
		}
	case *image.Gray:
		for y := 0; y < height; y++ {
			copy(dst[y*width:(y+1)*width], m.Pix[y*m.Stride:y*m.Stride+width])
		}
	default:
		for y := 0; y < height; y++ {
			for x := 0; x < width; x++ {
				dst[y*width+x] = color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray).Y
			}
		}
	}
	return dst, width, height, nil
}

// imageToRGB converts any decoded image to packed RGB24, with a fast path
// for the YCbCr images the JPEG decoder returns.
func imageToRGB(dst []byte, img image.Image) ([]byte, int, int) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dst = grow(dst, w*h*3)
	switch m := img.(type) {
	case *image.YCbCr:
		convertYCbCrImage(dst, m)
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			out := dst[y*w*3:]
			for x, v := range row {
				out[3*x], out[3*x+1], out[3*x+2] = v, v, v
			}
		}
	default:
		rgba := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
		for i, j := 0, 0; i < len(rgba.Pix); i, j = i+4, j+3 {
			dst[j], dst[j+1], dst[j+2] = rgba.Pix[i], rgba.Pix[i+1], rgba.Pix[i+2]
		}
	}
	return dst, w, h
}

// Full-range (JFIF) YCbCr → RGB in 16-bit fixed point:
// R = Y + 1.402(Cr-128); G = Y - 0.344136(Cb-128) - 0.714136(Cr-128);
// B = Y + 1.772(Cb-128).
func convertYCbCrImage(dst []byte, m *image.YCbCr) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	// Chroma sample shifts for each subsampling ratio.
	var hs, vs uint
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		hs = 1
	case image.YCbCrSubsampleRatio420:
		hs, vs = 1, 1
	case image.YCbCrSubsampleRatio440:
		vs = 1
	case image.YCbCrSubsampleRatio411:
		hs = 2
	case image.YCbCrSubsampleRatio410:
		hs, vs = 2, 1
	}
	for y := 0; y < h; y++ {
		yRow := m.Y[y*m.YStride : y*m.YStride+w]
		cOff := (y >> vs) * m.CStride
		cbRow := m.Cb[cOff:]
		crRow := m.Cr[cOff:]
		out := dst[y*w*3 : (y+1)*w*3]
		for x, yv := range yRow {
			ci := x >> hs
			yy := int32(yv)<<16 + 1<<15
			cb := int32(cbRow[ci]) - 128
			cr := int32(crRow[ci]) - 128
			o := out[3*x : 3*x+3 : 3*x+3]
			o[0] = clamp8((yy + 91881*cr) >> 16)
			o[1] = clamp8((yy - 22554*cb - 46802*cr) >> 16)
			o[2] = clamp8((yy + 116130*cb) >> 16)
		}
	}
}

// RGB converts the frame to packed RGB24 (3 bytes a pixel, rows top to
// bottom), reusing dst when it is large enough.
func (f *Frame) RGB(dst []byte) ([]byte, error) {
	switch f.Format {
	case FormatYUYV:
		return YUYVToRGB(dst, f.Data, f.Width, f.Height)
	case FormatNV12:
		return NV12ToRGB(dst, f.Data, f.Width, f.Height)
	case FormatMJPEG, FormatJPEG:
		rgb, w, h, err := MJPEGToRGB(dst, f.Data)
		if err != nil {
			return nil, err
		}
		if w != f.Width || h != f.Height {
			return nil, fmt.Errorf("MJPEG frame is %dx%d, stream is %dx%d: %w", w, h, f.Width, f.Height, ErrBadFrame)
		}
		return rgb, nil
	case FormatRGB24:
		if len(f.Data) < f.Width*f.Height*3 {
			return nil, fmt.Errorf("RGB24 %dx%d with %d bytes: %w", f.Width, f.Height, len(f.Data), ErrBadFrame)
		}
		dst = grow(dst, f.Width*f.Height*3)
		copy(dst, f.Data)
		return dst, nil
	case FormatGrey:
		if len(f.Data) < f.Width*f.Height {
			return nil, fmt.Errorf("GREY %dx%d with %d bytes: %w", f.Width, f.Height, len(f.Data), ErrBadFrame)
		}
		dst = grow(dst, f.Width*f.Height*3)
		for i, v := range f.Data[:f.Width*f.Height] {
			dst[3*i], dst[3*i+1], dst[3*i+2] = v, v, v
		}
		return dst, nil
	}
	return nil, fmt.Errorf("convert %s to RGB: %w", f.Format, ErrFormatUnsupported)
}

// Luma returns the frame's luma (Y) plane, one byte a pixel.
func (f *Frame) Luma(dst []byte) ([]byte, error) {
	switch f.Format {
	case FormatYUYV:
		return YUYVToLuma(dst, f.Data, f.Width, f.Height)
	case FormatNV12:
		return NV12ToLuma(dst, f.Data, f.Width, f.Height)
	case FormatMJPEG, FormatJPEG:
		l, _, _, err := MJPEGToLuma(dst, f.Data)
		return l, err
	case FormatGrey:
		if len(f.Data) < f.Width*f.Height {
			return nil, fmt.Errorf("GREY %dx%d with %d bytes: %w", f.Width, f.Height, len(f.Data), ErrBadFrame)
		}
		dst = grow(dst, f.Width*f.Height)
		copy(dst, f.Data)
		return dst, nil
	case FormatRGB24:
		if len(f.Data) < f.Width*f.Height*3 {
			return nil, fmt.Errorf("RGB24 %dx%d with %d bytes: %w", f.Width, f.Height, len(f.Data), ErrBadFrame)
		}
		dst = grow(dst, f.Width*f.Height)
		for i := range dst {
			p := f.Data[3*i:]
			// BT.601 luma weights, 8-bit fixed point.
			dst[i] = byte((77*int32(p[0]) + 150*int32(p[1]) + 29*int32(p[2]) + 128) >> 8)
		}
		return dst, nil
	}
	return nil, fmt.Errorf("convert %s to luma: %w", f.Format, ErrFormatUnsupported)
}

// Image returns the frame as an image.Image (for encoding to PNG or JPEG).
func (f *Frame) Image() (image.Image, error) {
	if f.Format == FormatMJPEG || f.Format == FormatJPEG {
		return decodeJPEG(f.Data)
	}
	rgb, err := f.RGB(nil)
	if err != nil {
		return nil, err
	}
	img := image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
	for i, j := 0, 0; j < len(rgb); i, j = i+4, j+3 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = rgb[j], rgb[j+1], rgb[j+2], 255
	}
	return img, nil
}
