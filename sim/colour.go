package sim

import "math"

// srgbToLinear maps an 8-bit sRGB value to linear light.
var srgbToLinear = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(srgbDecode(float64(i) / 255))
	}
	return t
}()

// encodeLUTSize is the resolution of the linear→sRGB 8-bit table: fine enough
// that the darkest codes are not merged (the sRGB slope near 0 is 12.92).
const encodeLUTSize = 8192

var linearToSRGB8 = func() (t [encodeLUTSize]uint8) {
	for i := range t {
		v := srgbEncode(float64(i)/(encodeLUTSize-1))*255 + 0.5
		t[i] = uint8(math.Min(255, v))
	}
	return t
}()

func srgbDecode(v float64) float64 {
	if v <= 0.04045 {
		return v / 12.92
	}
	return math.Pow((v+0.055)/1.055, 2.4)
}

func srgbEncode(v float64) float64 {
	switch {
	case v <= 0:
		return 0
	case v >= 1:
		return 1
	case v <= 0.0031308:
		return v * 12.92
	}
	return 1.055*math.Pow(v, 1/2.4) - 0.055
}

// luminance of linear sRGB-primaries light.
func luminance(c [3]float64) float64 { return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2] }

// kelvinRGB returns the linear RGB colour of a blackbody-like source at the
// given correlated colour temperature, normalised to luminance 1. It uses
// Tanner Helland's fit of the Planckian locus in sRGB, which is within a few
// percent over 1000–40000 K: plenty for ambient light and white balance.
func kelvinRGB(k float64) [3]float64 {
	t := math.Max(1000, math.Min(40000, k)) / 100
	var r, g, b float64
	if t <= 66 {
		r = 255
		g = 99.4708025861*math.Log(t) - 161.1195681661
	} else {
		r = 329.698727446 * math.Pow(t-60, -0.1332047592)
		g = 288.1221695283 * math.Pow(t-60, -0.0755148492)
	}
	switch {
	case t >= 66:
		b = 255
	case t <= 19:
		b = 0
	default:
		b = 138.5177312231*math.Log(t-10) - 305.0447927307
	}
	c := [3]float64{
		srgbDecode(clamp01(r / 255)),
		srgbDecode(clamp01(g / 255)),
		srgbDecode(clamp01(b / 255)),
	}
	y := luminance(c)
	for i := range c {
		c[i] /= y
	}
	return c
}

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }
