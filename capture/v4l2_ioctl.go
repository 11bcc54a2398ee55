package capture

import (
	"bytes"
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/glintdev/glint/internal/linuxsys"
)

// The raw V4L2 ioctls that github.com/blackjack/webcam does not expose:
// QUERYCAP with device_caps, QUERYBUF (buffer timestamp, sequence, flags) and
// G_FMT (the size and stride the driver actually chose). Struct layouts are
// those of videodev2.h on 64-bit Linux (amd64 and arm64 agree).

const (
	vidiocQueryCap = 0x80685600 // _IOR('V', 0, struct v4l2_capability)
	vidiocGFmt     = 0xC0D05604 // _IOWR('V', 4, struct v4l2_format)
	vidiocQueryBuf = 0xC0585609 // _IOWR('V', 9, struct v4l2_buffer)

	capVideoCapture      = 0x00000001
	capVideoOutput       = 0x00000002
	capVideoCaptureMPlan = 0x00001000
	capMetaCapture       = 0x00800000
	capStreaming         = 0x04000000
	capDeviceCaps        = 0x80000000

	bufTypeVideoCapture = 1
	memoryMMAP          = 1

	bufFlagError         = 0x00000040
	bufFlagTimestampMask = 0x0000e000
	bufFlagTimestampMono = 0x00002000
	bufFlagTimestampCopy = 0x00004000
)

type v4l2Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32
	DeviceCaps   uint32
	Reserved     [3]uint32
}

type v4l2PixFormat struct {
	Width        uint32
	Height       uint32
	PixelFormat  uint32
	Field        uint32
	BytesPerLine uint32
	SizeImage    uint32
	Colorspace   uint32
	Priv         uint32
	Flags        uint32
	YcbcrEnc     uint32
	Quantization uint32
	XferFunc     uint32
}

type v4l2Format struct {
	Type uint32
	_    uint32 // the union is 8-byte aligned on 64-bit
	Pix  v4l2PixFormat
	_    [200 - unsafe.Sizeof(v4l2PixFormat{})]byte
}

type v4l2Timecode struct {
	Type     uint32
	Flags    uint32
	Frames   uint8
	Seconds  uint8
	Minutes  uint8
	Hours    uint8
	Userbits [4]uint8
}

type v4l2Buffer struct {
	Index     uint32
	Type      uint32
	BytesUsed uint32
	Flags     uint32
	Field     uint32
	_         uint32
	Timestamp unix.Timeval
	Timecode  v4l2Timecode
	Sequence  uint32
	Memory    uint32
	M         uint64 // offset / userptr / planes / fd
	Length    uint32
	Reserved2 uint32
	RequestFD int32
	_         uint32
}

// Compile-time checks of the layouts against the ioctl numbers' sizes.
var (
	_ [104 - unsafe.Sizeof(v4l2Capability{})]struct{}
	_ [unsafe.Sizeof(v4l2Capability{}) - 104]struct{}
	_ [208 - unsafe.Sizeof(v4l2Format{})]struct{}
	_ [unsafe.Sizeof(v4l2Format{}) - 208]struct{}
	_ [88 - unsafe.Sizeof(v4l2Buffer{})]struct{}
	_ [unsafe.Sizeof(v4l2Buffer{}) - 88]struct{}
)

func queryCap(fd uintptr) (v4l2Capability, error) {
	var c v4l2Capability
	err := linuxsys.Ioctl(fd, vidiocQueryCap, unsafe.Pointer(&c))
	return c, err
}

func getPixFormat(fd uintptr) (v4l2PixFormat, error) {
	f := v4l2Format{Type: bufTypeVideoCapture}
	err := linuxsys.Ioctl(fd, vidiocGFmt, unsafe.Pointer(&f))
	return f.Pix, err
}

func queryBuffer(fd uintptr, index uint32) (v4l2Buffer, error) {
	b := v4l2Buffer{Index: index, Type: bufTypeVideoCapture, Memory: memoryMMAP}
	err := linuxsys.Ioctl(fd, vidiocQueryBuf, unsafe.Pointer(&b))
	return b, err
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// isDeviceGone reports whether an ioctl or poll error means the device has
// been unplugged, unbound or its driver removed.
func isDeviceGone(err error) bool {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case unix.ENODEV, unix.ENXIO, unix.EIO, unix.ENOENT, unix.EBADF, unix.EPIPE, unix.ESHUTDOWN:
		return true
	}
	return false
}
