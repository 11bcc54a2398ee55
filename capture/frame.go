package capture

import (
	"fmt"
	"time"
)

// PixelFormat is a V4L2 fourcc code (see videodev2.h).
type PixelFormat uint32

// Fourcc builds a PixelFormat from its four-character code.
func Fourcc(code string) PixelFormat {
	if len(code) != 4 {
		return 0
	}
	return PixelFormat(uint32(code[0]) | uint32(code[1])<<8 | uint32(code[2])<<16 | uint32(code[3])<<24)
}

// The pixel formats glint negotiates and converts.
var (
	FormatMJPEG = Fourcc("MJPG")
	FormatJPEG  = Fourcc("JPEG")
	FormatYUYV  = Fourcc("YUYV")
	FormatNV12  = Fourcc("NV12")
	FormatRGB24 = Fourcc("RGB3")
	FormatGrey  = Fourcc("GREY")
)

// String returns the four-character code, e.g. "YUYV".
func (f PixelFormat) String() string {
	b := []byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f >> 24)}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("0x%08x", uint32(f))
		}
	}
	return string(b)
}

// TimestampSource says where a frame's timestamp came from, and so how much
// it can be trusted (see docs/capture.md for the measured accuracy).
type TimestampSource uint8

const (
	// TimestampDriver is the V4L2 buffer timestamp (CLOCK_MONOTONIC), taken
	// by the driver when the frame was captured (usually start or end of
	// exposure / first byte received, see the buffer flags).
	TimestampDriver TimestampSource = iota + 1
	// TimestampDequeue is CLOCK_MONOTONIC read when the frame was dequeued
	// by glint: later than capture by the scheduling and transfer delay.
	TimestampDequeue
	// TimestampSynthetic is a timestamp computed by a file or simulated
	// source from the nominal frame rate.
	TimestampSynthetic
)

func (s TimestampSource) String() string {
	switch s {
	case TimestampDriver:
		return "driver"
	case TimestampDequeue:
		return "dequeue"
	case TimestampSynthetic:
		return "synthetic"
	}
	return "unknown"
}

// Frame is one captured image. Data is owned by the frame: it never aliases
// driver memory and the consumer may keep or modify it.
type Frame struct {
	// Seq is the frame's sequence number as counted by the source, starting
	// at 0 when streaming starts. A gap means frames were dropped.
	Seq uint64
	// Timestamp is the capture time on the CLOCK_MONOTONIC timeline.
	Timestamp time.Duration
	// TimestampSource says where Timestamp came from.
	TimestampSource TimestampSource
	// Width and Height in pixels.
	Width, Height int
	// Format is the pixel format of Data.
	Format PixelFormat
	// Data holds the image bytes in Format.
	Data []byte
}

// Format describes a negotiated capture format.
type Format struct {
	PixelFormat PixelFormat
	Width       int
	Height      int
	// FPS is the frame rate the device reports after negotiation.
	FPS float64
}

func (f Format) String() string {
	return fmt.Sprintf("%s %dx%d @ %.2f fps", f.PixelFormat, f.Width, f.Height, f.FPS)
}
