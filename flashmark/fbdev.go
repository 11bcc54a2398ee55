package flashmark

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/glintdev/glint/internal/linuxsys"
)

// The Linux framebuffer backend: the whole screen filled with one colour
// through an mmap of /dev/fbN. Geometry comes from FBIOGET_VSCREENINFO and
// FBIOGET_FSCREENINFO; presentation is the next vertical blank when the
// driver supports FBIO_WAITFORVSYNC, otherwise the write plus one refresh
// period (the accuracy documented in docs/flashmark.md).

const (
	fbioGetVScreenInfo = 0x4600
	fbioGetFScreenInfo = 0x4602
	fbioWaitForVSync   = 0x40044620 // _IOW('F', 0x20, __u32)
)

type fbBitfield struct {
	Offset   uint32
	Length   uint32
	MSBRight uint32
}

// fbVarScreenInfo is struct fb_var_screeninfo (160 bytes).
type fbVarScreenInfo struct {
	XRes, YRes, XResVirtual, YResVirtual, XOffset, YOffset uint32
	BitsPerPixel, Grayscale                                uint32
	Red, Green, Blue, Transp                               fbBitfield
	NonStd, Activate, Height, Width, AccelFlags            uint32
	PixClock, LeftMargin, RightMargin, UpperMargin         uint32
	LowerMargin, HSyncLen, VSyncLen, Sync, VMode, Rotate   uint32
	Colorspace                                             uint32
	Reserved                                               [4]uint32
}

// fbFixScreenInfo is struct fb_fix_screeninfo on 64-bit Linux (80 bytes).
type fbFixScreenInfo struct {
	ID                             [16]byte
	SmemStart                      uint64
	SmemLen, Type, TypeAux, Visual uint32
	XPanStep, YPanStep, YWrapStep  uint16
	_                              uint16
	LineLength                     uint32
	_                              uint32
	MMIOStart                      uint64
	MMIOLen, Accel                 uint32
	Capabilities                   uint16
	Reserved                       [2]uint16
	_                              uint16
}

var (
	_ [160 - unsafe.Sizeof(fbVarScreenInfo{})]struct{}
	_ [unsafe.Sizeof(fbVarScreenInfo{}) - 160]struct{}
	_ [80 - unsafe.Sizeof(fbFixScreenInfo{})]struct{}
	_ [unsafe.Sizeof(fbFixScreenInfo{}) - 80]struct{}
)

// FBGeometry is what the backend needs to know of a framebuffer: the
// visible size, the row stride, the pixel depth and where each channel
// sits in a pixel.
type FBGeometry struct {
	Width, Height int
	// Stride is bytes per row (line_length); XOffset/YOffset locate the
	// visible area in the virtual one (panning).
	Stride           int
	XOffset, YOffset int
	BitsPerPixel     int
	// Red, Green, Blue: bit offset and length of each channel.
	RedOffset, RedLength     int
	GreenOffset, GreenLength int
	BlueOffset, BlueLength   int
	// RefreshHz is the panel's refresh rate (60 when unknown).
	RefreshHz float64
}

// Validate checks that the geometry describes a fillable truecolour buffer.
func (g FBGeometry) Validate() error {
	switch {
	case g.Width <= 0 || g.Height <= 0:
		return fmt.Errorf("framebuffer: size %dx%d", g.Width, g.Height)
	case g.BitsPerPixel != 16 && g.BitsPerPixel != 24 && g.BitsPerPixel != 32:
		return fmt.Errorf("framebuffer: %d bits per pixel unsupported (16, 24 or 32 truecolour)", g.BitsPerPixel)
	case g.Stride < (g.XOffset+g.Width)*g.BitsPerPixel/8:
		return fmt.Errorf("framebuffer: stride %d too small for %d pixels of %d bits", g.Stride, g.XOffset+g.Width, g.BitsPerPixel)
	}
	for _, c := range []struct{ off, n int }{{g.RedOffset, g.RedLength}, {g.GreenOffset, g.GreenLength}, {g.BlueOffset, g.BlueLength}} {
		if c.n < 1 || c.n > 8 || c.off < 0 || c.off+c.n > g.BitsPerPixel {
			return fmt.Errorf("framebuffer: channel at bit %d length %d does not fit %d bits per pixel", c.off, c.n, g.BitsPerPixel)
		}
	}
	return nil
}

// size is the mapping needed to reach the last visible pixel.
func (g FBGeometry) size() int {
	return (g.YOffset+g.Height-1)*g.Stride + (g.XOffset+g.Width)*g.BitsPerPixel/8
}

// pixel encodes c in the buffer's pixel format, little-endian.
func (g FBGeometry) pixel(c RGB) []byte {
	put := func(v uint8, off, n int) uint32 { return uint32(v>>(8-n)) << off }
	p := put(c.R, g.RedOffset, g.RedLength) | put(c.G, g.GreenOffset, g.GreenLength) | put(c.B, g.BlueOffset, g.BlueLength)
	out := make([]byte, g.BitsPerPixel/8)
	for i := range out {
		out[i] = byte(p >> (8 * i))
	}
	return out
}

// FramebufferConfig configures a Framebuffer.
type FramebufferConfig struct {
	// Path is the device, e.g. /dev/fb0.
	Path string
	// Geometry overrides what the ioctls report. It is required when Path
	// is a regular file standing in for the device (tests); the fill code
	// path is the same mmap either way.
	Geometry *FBGeometry
}

// Framebuffer is a Display on a Linux framebuffer device.
type Framebuffer struct {
	mu    sync.Mutex
	f     *os.File
	mem   []byte
	geom  FBGeometry
	vsync bool
	row   []byte
}

// ErrNotFramebuffer: the path is not a framebuffer and no geometry was given.
var ErrNotFramebuffer = errors.New("not a framebuffer device")

// OpenFramebuffer opens and maps the framebuffer.
func OpenFramebuffer(cfg FramebufferConfig) (*Framebuffer, error) {
	f, err := os.OpenFile(cfg.Path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("framebuffer: %w", err)
	}
	fb := &Framebuffer{f: f}
	if cfg.Geometry != nil {
		fb.geom = *cfg.Geometry
	} else if fb.geom, err = queryGeometry(f.Fd()); err != nil {
		f.Close()
		return nil, fmt.Errorf("framebuffer %s: %w", cfg.Path, err)
	}
	if fb.geom.RefreshHz <= 0 {
		fb.geom.RefreshHz = 60
	}
	if err := fb.geom.Validate(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	fb.mem, err = unix.Mmap(int(f.Fd()), 0, fb.geom.size(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("framebuffer %s: mmap %d bytes: %w", cfg.Path, fb.geom.size(), err)
	}
	// Probe vsync support once: drivers without it answer ENOTTY/EINVAL.
	var crtc uint32
	fb.vsync = linuxsys.Ioctl(f.Fd(), fbioWaitForVSync, unsafe.Pointer(&crtc)) == nil
	fb.row = make([]byte, fb.geom.Width*fb.geom.BitsPerPixel/8)
	return fb, nil
}

func queryGeometry(fd uintptr) (FBGeometry, error) {
	var v fbVarScreenInfo
	if err := linuxsys.Ioctl(fd, fbioGetVScreenInfo, unsafe.Pointer(&v)); err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			return FBGeometry{}, fmt.Errorf("%w (FBIOGET_VSCREENINFO: %v)", ErrNotFramebuffer, err)
		}
		return FBGeometry{}, fmt.Errorf("FBIOGET_VSCREENINFO: %w", err)
	}
	var fx fbFixScreenInfo
	if err := linuxsys.Ioctl(fd, fbioGetFScreenInfo, unsafe.Pointer(&fx)); err != nil {
		return FBGeometry{}, fmt.Errorf("FBIOGET_FSCREENINFO: %w", err)
	}
	g := FBGeometry{
		Width: int(v.XRes), Height: int(v.YRes), Stride: int(fx.LineLength),
		XOffset: int(v.XOffset), YOffset: int(v.YOffset), BitsPerPixel: int(v.BitsPerPixel),
		RedOffset: int(v.Red.Offset), RedLength: int(v.Red.Length),
		GreenOffset: int(v.Green.Offset), GreenLength: int(v.Green.Length),
		BlueOffset: int(v.Blue.Offset), BlueLength: int(v.Blue.Length),
	}
	// Refresh rate from the timings: pixclock is picoseconds per pixel.
	if v.PixClock > 0 {
		htotal := float64(v.XRes + v.LeftMargin + v.RightMargin + v.HSyncLen)
		vtotal := float64(v.YRes + v.UpperMargin + v.LowerMargin + v.VSyncLen)
		if hz := 1e12 / float64(v.PixClock) / (htotal * vtotal); hz >= 20 && hz <= 500 {
			g.RefreshHz = hz
		}
	}
	return g, nil
}

// Geometry returns the framebuffer's geometry.
func (fb *Framebuffer) Geometry() FBGeometry { return fb.geom }

// VSync reports whether presentation times come from the vertical blank.
func (fb *Framebuffer) VSync() bool { return fb.vsync }

// Show fills the visible area with c and reports when it was presented.
func (fb *Framebuffer) Show(ctx context.Context, c RGB) (Presentation, error) {
	if err := ctx.Err(); err != nil {
		return Presentation{}, err
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.mem == nil {
		return Presentation{}, errors.New("framebuffer: closed")
	}
	requested := linuxsys.Monotonic()
	// Build one row, then copy it into every visible row.
	px := fb.geom.pixel(c)
	for i := 0; i < len(fb.row); i += len(px) {
		copy(fb.row[i:], px)
	}
	bpp := fb.geom.BitsPerPixel / 8
	for y := 0; y < fb.geom.Height; y++ {
		off := (fb.geom.YOffset+y)*fb.geom.Stride + fb.geom.XOffset*bpp
		copy(fb.mem[off:off+len(fb.row)], fb.row)
	}
	p := Presentation{Color: c, Requested: requested}
	if fb.vsync {
		// The blank after the write starts the first refresh that scans
		// the new colour out.
		var crtc uint32
		if err := linuxsys.Ioctl(fb.f.Fd(), fbioWaitForVSync, unsafe.Pointer(&crtc)); err != nil {
			return Presentation{}, fmt.Errorf("framebuffer: wait for vsync: %w", err)
		}
		p.Presented = linuxsys.Monotonic()
	} else {
		// Without vsync the scan-out that shows the colour starts within
		// one refresh period of the write.
		p.Presented = linuxsys.Monotonic() + time.Duration(float64(time.Second)/fb.geom.RefreshHz)
	}
	return p, nil
}

// Close unmaps and closes the device.
func (fb *Framebuffer) Close() error {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.mem == nil {
		return nil
	}
	err := unix.Munmap(fb.mem)
	fb.mem = nil
	if cerr := fb.f.Close(); err == nil {
		err = cerr
	}
	return err
}

var _ Display = (*Framebuffer)(nil)
