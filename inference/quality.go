package inference

import (
	"errors"
	"fmt"
	"math"
)

// Code is a stable machine code for a face-quality or portrait-validation
// failure (docs/models.md lists them).
type Code string

// Portrait validation codes, in the spirit of ISO/IEC 19794-5.
const (
	CodeFormat        Code = "portrait_format"         // not PNG or JPEG
	CodeTooLarge      Code = "portrait_too_large"      // file over 2 MB or image over 40 MP
	CodeUndecodable   Code = "portrait_undecodable"    // PNG/JPEG that does not decode
	CodeNoFace        Code = "portrait_no_face"        // no face found
	CodeMultipleFaces Code = "portrait_multiple_faces" // more than one face
	CodeEyesTooClose  Code = "portrait_eyes_too_close" // interocular distance < 85 px
	CodeNotFrontal    Code = "portrait_not_frontal"    // |yaw| or |pitch| > 15°
	CodeBlurred       Code = "portrait_blurred"        // too little high-frequency detail
	CodeOverexposed   Code = "portrait_overexposed"    // face too bright / clipped
	CodeUnderexposed  Code = "portrait_underexposed"   // face too dark
)

// Issue is one quality failure.
type Issue struct {
	Code   Code   `json:"code"`
	Detail string `json:"detail"`
}

// PortraitError is a portrait validation failure; errors.Is matches it
// against another *PortraitError with the same Code.
type PortraitError struct {
	Issue
	Err error // underlying error, if any
}

func (e *PortraitError) Error() string {
	if e.Detail == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Detail
}

// Is matches by code.
func (e *PortraitError) Is(target error) bool {
	var t *PortraitError
	return errors.As(target, &t) && t.Code == e.Code
}

func (e *PortraitError) Unwrap() error { return e.Err }

// QualityLimits are the face-quality thresholds.
type QualityLimits struct {
	// MinInterocular in pixels (ISO/IEC 19794-5 token image: 60; glint's
	// enrolment portraits: 85).
	MinInterocular float64
	// MaxYaw and MaxPitch in degrees.
	MaxYaw, MaxPitch float64
	// MinSharpness is the minimum contrast-normalised Laplacian variance of
	// the aligned 112x112 face luma (see sharpness): sharp portraits measured
	// 11-19, the same portrait low-passed to 1/8 resolution 2.
	MinSharpness float64
	// MinMeanLuma and MaxMeanLuma bound the aligned face's mean luma.
	MinMeanLuma, MaxMeanLuma float64
	// MaxClipped is the largest fraction of face pixels at 0-5 or 250-255.
	MaxClipped float64
}

// DefaultQualityLimits are the enrolment-portrait limits.
func DefaultQualityLimits() QualityLimits {
	return QualityLimits{
		MinInterocular: 85, MaxYaw: 15, MaxPitch: 15,
		MinSharpness: 6, MinMeanLuma: 60, MaxMeanLuma: 200, MaxClipped: 0.2,
	}
}

// faceLuma returns the aligned 112x112 face as luma 0..255.
func faceLuma(im *Image, f Face) []float32 {
	const size = 112
	rgb := make([]float32, size*size*3)
	warp(rgb, size, im, alignAffine(f.Landmarks.FivePoints(), size, 1), 1, 0)
	out := make([]float32, size*size)
	for i := range out {
		out[i] = 0.299*rgb[3*i] + 0.587*rgb[3*i+1] + 0.114*rgb[3*i+2]
	}
	return out
}

// sharpness is the variance of the 4-neighbour Laplacian over the inner
// part of the aligned face luma, divided by the luma variance there (so
// contrast and exposure do not count, only how much of the detail is fine),
// times 100. Higher is sharper.
func sharpness(luma []float32, size int) float64 {
	var s, s2, v, v2, n float64
	for y := 8; y < size-8; y++ {
		for x := 8; x < size-8; x++ {
			i := y*size + x
			l := float64(4*luma[i] - luma[i-1] - luma[i+1] - luma[i-size] - luma[i+size])
			s += l
			s2 += l * l
			v += float64(luma[i])
			v2 += float64(luma[i]) * float64(luma[i])
			n++
		}
	}
	lap := s2/n - (s/n)*(s/n)
	lum := v2/n - (v/n)*(v/n)
	if lum < 1 {
		return 0 // flat: no detail at all
	}
	return 100 * lap / lum
}

// exposure returns the mean luma and the clipped fraction of the inner
// face region.
func exposure(luma []float32, size int) (mean, clipped float64) {
	var n float64
	for y := 20; y < size-10; y++ {
		for x := 20; x < size-20; x++ {
			v := float64(luma[y*size+x])
			mean += v
			if v <= 5 || v >= 250 {
				clipped++
			}
			n++
		}
	}
	return mean / n, clipped / n
}

// FaceQuality checks one analysed face against lim and returns every
// failure (none: the face is good).
func FaceQuality(im *Image, f Face, lim QualityLimits) []Issue {
	var out []Issue
	l := f.Landmarks
	if l.Interocular < lim.MinInterocular {
		out = append(out, Issue{CodeEyesTooClose, fmt.Sprintf("interocular distance %.0f px < %.0f", l.Interocular, lim.MinInterocular)})
	}
	if math.Abs(l.Pose.Yaw) > lim.MaxYaw || math.Abs(l.Pose.Pitch) > lim.MaxPitch {
		out = append(out, Issue{CodeNotFrontal, fmt.Sprintf("yaw %.0f°, pitch %.0f° (limit ±%.0f°, ±%.0f°)", l.Pose.Yaw, l.Pose.Pitch, lim.MaxYaw, lim.MaxPitch)})
	}
	luma := faceLuma(im, f)
	if s := sharpness(luma, 112); s < lim.MinSharpness {
		out = append(out, Issue{CodeBlurred, fmt.Sprintf("sharpness %.0f < %.0f", s, lim.MinSharpness)})
	}
	mean, clipped := exposure(luma, 112)
	switch {
	case mean > lim.MaxMeanLuma || (clipped > lim.MaxClipped && mean > 128):
		out = append(out, Issue{CodeOverexposed, fmt.Sprintf("mean luma %.0f, %.0f%% clipped", mean, 100*clipped)})
	case mean < lim.MinMeanLuma || (clipped > lim.MaxClipped && mean <= 128):
		out = append(out, Issue{CodeUnderexposed, fmt.Sprintf("mean luma %.0f, %.0f%% clipped", mean, 100*clipped)})
	}
	return out
}

// MaxPortraitBytes is the largest enrolment portrait file accepted.
const MaxPortraitBytes = 2 << 20

// Portrait is a validated enrolment portrait.
type Portrait struct {
	Image  *Image
	Format string
	Face   Face
}

// ValidatePortrait checks an enrolment portrait file: PNG or JPEG, at most
// 2 MB, exactly one face, and that face passing lim. The error is a
// *PortraitError carrying the first failure's code.
func (e *Engine) ValidatePortrait(data []byte, lim QualityLimits) (*Portrait, error) {
	if len(data) > MaxPortraitBytes {
		return nil, &PortraitError{Issue: Issue{CodeTooLarge, fmt.Sprintf("%d bytes > %d", len(data), MaxPortraitBytes)}}
	}
	im, format, err := DecodeImage(data)
	if err != nil {
		if errors.Is(err, ErrImageTooLarge) {
			return nil, &PortraitError{Issue: Issue{CodeTooLarge, err.Error()}, Err: err}
		}
		if format == "" {
			return nil, &PortraitError{Issue: Issue{CodeFormat, "not PNG or JPEG"}, Err: err}
		}
		return nil, &PortraitError{Issue: Issue{CodeUndecodable, fmt.Sprintf("%s does not decode", format)}, Err: err}
	}
	faces, err := e.Analyze(im)
	if err != nil {
		return nil, err
	}
	switch {
	case len(faces) == 0:
		return nil, &PortraitError{Issue: Issue{CodeNoFace, "no face found"}, Err: ErrNoFace}
	case len(faces) > 1:
		return nil, &PortraitError{Issue: Issue{CodeMultipleFaces, fmt.Sprintf("%d faces", len(faces))}}
	}
	if issues := FaceQuality(im, faces[0], lim); len(issues) > 0 {
		return nil, &PortraitError{Issue: issues[0]}
	}
	return &Portrait{Image: im, Format: format, Face: faces[0]}, nil
}
