package capture

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blackjack/webcam"
	"golang.org/x/sys/unix"
)

// V4L2Config configures a V4L2Source.
type V4L2Config struct {
	// Device is the node to open, e.g. /dev/video0. It may be empty when
	// BusInfo or Serial identify the camera.
	Device string
	// BusInfo (QUERYCAP bus_info, e.g. "usb-0000:00:14.0-1") and Serial
	// (USB serial from sysfs) identify the camera across replugs, when the
	// node number may change. Either may be empty.
	BusInfo string
	Serial  string
	// Width, Height and FPS requested; the nearest the device offers is
	// chosen and reported by Open.
	Width, Height int
	FPS           float64
	// Formats in order of preference; default MJPEG, YUYV, NV12.
	Formats []PixelFormat
	// Buffers is the number of driver buffers; default 4.
	Buffers int
	// FrameTimeout is how long ReadFrame waits for a frame before
	// ErrTimeout; default 2 s.
	FrameTimeout time.Duration
}

// DefaultFormats is the format preference: MJPEG keeps USB bandwidth low at
// high resolutions, YUYV and NV12 are uncompressed fallbacks.
var DefaultFormats = []PixelFormat{FormatMJPEG, FormatYUYV, FormatNV12}

// pollSlice bounds how long ReadFrame holds the device lock while waiting,
// so that Close from another goroutine is served promptly.
const pollSlice = 50 * time.Millisecond

// V4L2Source captures from a V4L2 device through github.com/blackjack/webcam,
// using GetFrame → copy → ReleaseFrame so no frame aliases driver memory.
type V4L2Source struct {
	cfg V4L2Config

	mu       sync.Mutex // guards everything below and the device itself
	cam      *webcam.Webcam
	fd       uintptr
	path     string
	identity DeviceInfo // of the device opened last, to find it again
	format   Format
	pix      v4l2PixFormat
	first    bool
	seq      uint64
	closing  atomic.Bool

	stats V4L2Stats
}

// V4L2Stats counts frames a V4L2Source discarded.
type V4L2Stats struct {
	// Stale counts buffers dropped as stale or invalid (a first buffer
	// with full-buffer length, a JPEG without SOI/EOI, a short buffer).
	Stale uint64
	// Errored counts buffers the driver flagged V4L2_BUF_FLAG_ERROR.
	Errored uint64
	// DriverTimestamps and DequeueTimestamps count which clock stamped
	// the delivered frames.
	DriverTimestamps  uint64
	DequeueTimestamps uint64
	// DriverToDequeue summarises, over frames with a driver timestamp, how
	// long after that timestamp glint dequeued the frame: the error of
	// using dequeue time instead (see docs/capture.md).
	DriverToDequeueMin, DriverToDequeueMax, DriverToDequeueSum time.Duration
	// LastBufferFlags and LastRawTimestamp are the V4L2 flags and
	// timestamp of the last buffer, for diagnosing a driver's clock.
	LastBufferFlags  uint32
	LastRawTimestamp time.Duration
	// QueryBufErrors counts failed VIDIOC_QUERYBUF calls (timestamp and
	// sequence then come from glint's own clock and counter).
	QueryBufErrors uint64
}

// NewV4L2Source returns a source for the configured device; nothing is
// opened until Open.
func NewV4L2Source(cfg V4L2Config) *V4L2Source {
	if len(cfg.Formats) == 0 {
		cfg.Formats = DefaultFormats
	}
	if cfg.Buffers <= 0 {
		cfg.Buffers = 4
	}
	if cfg.FrameTimeout <= 0 {
		cfg.FrameTimeout = 2 * time.Second
	}
	return &V4L2Source{cfg: cfg}
}

// Stats returns the discard counters.
func (s *V4L2Source) Stats() V4L2Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Device returns the facts of the device opened last.
func (s *V4L2Source) Device() DeviceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identity
}

// resolve finds the node to open: the configured path when it is the right
// device, otherwise the capture node matching the remembered or configured
// bus_info/serial.
func (s *V4L2Source) resolve() (string, error) {
	busInfo, serial := s.cfg.BusInfo, s.cfg.Serial
	if s.identity.BusInfo != "" && busInfo == "" && serial == "" && s.cfg.Device == "" {
		busInfo, serial = s.identity.BusInfo, s.identity.Serial()
	}
	matches := func(d DeviceInfo) bool {
		return d.CanCapture && (busInfo == "" || d.BusInfo == busInfo) && (serial == "" || d.Serial() == serial)
	}
	if s.cfg.Device != "" {
		d, err := queryDeviceIn(s.cfg.Device, "/sys", false)
		if err == nil && matches(d) {
			return s.cfg.Device, nil
		}
		if busInfo == "" && serial == "" {
			if err != nil {
				return "", err
			}
			return "", fmt.Errorf("%s (%s, driver %s) cannot capture: %w", s.cfg.Device, d.Card, d.Driver, ErrNoDevice)
		}
	}
	if busInfo == "" && serial == "" {
		return "", fmt.Errorf("v4l2: no device, bus_info or serial configured: %w", ErrNoDevice)
	}
	devs, _ := ListDevices()
	for _, d := range devs {
		if matches(d) {
			return d.Path, nil
		}
	}
	return "", fmt.Errorf("v4l2: no capture device with bus_info %q serial %q: %w", busInfo, serial, ErrNoDevice)
}

// Open opens the device, negotiates format, size and frame rate, and starts
// streaming.
func (s *V4L2Source) Open(ctx context.Context) (Format, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cam != nil {
		return Format{}, fmt.Errorf("v4l2 %s: already open", s.path)
	}
	s.closing.Store(false)
	path, err := s.resolve()
	if err != nil {
		return Format{}, err
	}
	info, err := queryDeviceIn(path, "/sys", false)
	if err != nil {
		return Format{}, err
	}
	cam, err := webcam.Open(path)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
			return Format{}, fmt.Errorf("open %s: %w: %w", path, ErrNoDevice, err)
		}
		return Format{}, fmt.Errorf("open %s: %w", path, err)
	}
	fd, err := webcamFD(cam)
	if err != nil {
		cam.Close()
		return Format{}, err
	}
	format, pix, err := negotiate(cam, fd, s.cfg)
	if err != nil {
		cam.Close()
		return Format{}, fmt.Errorf("%s (%s): %w", path, info.Card, err)
	}
	if err := cam.SetBufferCount(uint32(s.cfg.Buffers)); err != nil {
		cam.Close()
		return Format{}, fmt.Errorf("%s: set buffer count: %w", path, err)
	}
	if err := cam.StartStreaming(); err != nil {
		cam.Close()
		if isDeviceGone(unwrapErrno(err)) {
			return Format{}, fmt.Errorf("%s: %w: %w", path, ErrDeviceLost, err)
		}
		return Format{}, fmt.Errorf("%s: start streaming: %w", path, err)
	}
	s.cam, s.fd, s.path, s.identity = cam, fd, path, info
	s.format, s.pix = format, pix
	s.first, s.seq = true, 0
	return format, nil
}

// webcamFD reads the descriptor the webcam library keeps private: it is
// needed for poll with a short timeout and for QUERYBUF/G_FMT, which the
// library does not expose. Reading an unexported field through reflect is
// permitted; the pinned library version is covered by the real-kernel tests.
func webcamFD(cam *webcam.Webcam) (uintptr, error) {
	v := reflect.ValueOf(cam).Elem().FieldByName("fd")
	if !v.IsValid() || v.Kind() != reflect.Uintptr {
		return 0, errors.New("v4l2: github.com/blackjack/webcam has no fd field: library layout changed")
	}
	return uintptr(v.Uint()), nil
}

// unwrapErrno recovers an errno from the webcam library's string-wrapped
// errors ("Failed to ...: no such device").
func unwrapErrno(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	msg := err.Error()
	for _, e := range []unix.Errno{unix.ENODEV, unix.ENXIO, unix.EIO, unix.ENOENT} {
		if strings.HasSuffix(msg, e.Error()) {
			return e
		}
	}
	return err
}

func negotiate(cam *webcam.Webcam, fd uintptr, cfg V4L2Config) (Format, v4l2PixFormat, error) {
	supported := cam.GetSupportedFormats()
	var chosen webcam.PixelFormat
	found := false
	for _, want := range cfg.Formats {
		alts := []PixelFormat{want}
		if want == FormatMJPEG {
			alts = append(alts, FormatJPEG)
		}
		for _, a := range alts {
			if _, ok := supported[webcam.PixelFormat(a)]; ok {
				chosen, found = webcam.PixelFormat(a), true
				break
			}
		}
		if found {
			break
		}
	}
	if !found {
		var offered []string
		for pf := range supported {
			offered = append(offered, PixelFormat(pf).String())
		}
		sort.Strings(offered)
		var wanted []string
		for _, w := range cfg.Formats {
			wanted = append(wanted, w.String())
		}
		return Format{}, v4l2PixFormat{}, fmt.Errorf("%w: wanted one of %s, device offers %s",
			ErrFormatUnsupported, strings.Join(wanted, ","), strings.Join(offered, ","))
	}
	w, h := nearestSize(cam.GetSupportedFrameSizes(chosen), cfg.Width, cfg.Height)
	got, _, _, err := cam.SetImageFormat(chosen, uint32(w), uint32(h))
	if err != nil {
		return Format{}, v4l2PixFormat{}, fmt.Errorf("set format %s %dx%d: %w", PixelFormat(chosen), w, h, err)
	}
	if got != chosen && !(PixelFormat(chosen) == FormatMJPEG && PixelFormat(got) == FormatJPEG) {
		return Format{}, v4l2PixFormat{}, fmt.Errorf("%w: asked for %s, driver chose %s", ErrFormatUnsupported, PixelFormat(chosen), PixelFormat(got))
	}
	pix, err := getPixFormat(fd)
	if err != nil {
		return Format{}, v4l2PixFormat{}, fmt.Errorf("VIDIOC_G_FMT: %w", err)
	}
	format := Format{PixelFormat: PixelFormat(pix.PixelFormat), Width: int(pix.Width), Height: int(pix.Height)}
	if format.PixelFormat == FormatJPEG {
		format.PixelFormat = FormatMJPEG
	}
	if cfg.FPS > 0 {
		fps := nearestRate(cam.GetSupportedFramerates(chosen, pix.Width, pix.Height), cfg.FPS)
		// Setting the rate explicitly: some drivers otherwise keep the
		// last user's rate, which would change the challenge timing.
		if err := cam.SetFramerate(float32(fps)); err != nil && !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EINVAL) {
			return Format{}, v4l2PixFormat{}, fmt.Errorf("set frame rate %.2f: %w", fps, err)
		}
	}
	if fps, err := cam.GetFramerate(); err == nil {
		format.FPS = math.Round(float64(fps)*100) / 100
	}
	return format, pix, nil
}

// nearestSize picks the offered size closest to the request (by the sum of
// width and height differences), respecting stepwise ranges.
func nearestSize(sizes []webcam.FrameSize, w, h int) (int, int) {
	if w <= 0 || h <= 0 {
		w, h = 640, 480
	}
	bestW, bestH, best := w, h, math.MaxInt
	for _, s := range sizes {
		if s.MaxWidth == 0 || s.MaxHeight == 0 {
			continue // continuous range: anything goes
		}
		cw := clampStep(w, int(s.MinWidth), int(s.MaxWidth), int(s.StepWidth))
		ch := clampStep(h, int(s.MinHeight), int(s.MaxHeight), int(s.StepHeight))
		d := abs(cw-w) + abs(ch-h)
		if d < best {
			bestW, bestH, best = cw, ch, d
		}
	}
	return bestW, bestH
}

func clampStep(v, lo, hi, step int) int {
	if v < lo {
		v = lo
	}
	if v > hi {
		v = hi
	}
	if step > 1 {
		v = lo + (v-lo+step/2)/step*step
		if v > hi {
			v -= step
		}
	}
	return v
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// nearestRate picks the offered frame rate closest to fps.
func nearestRate(rates []webcam.FrameRate, fps float64) float64 {
	best, bestD := fps, math.Inf(1)
	for _, r := range rates {
		for _, cand := range rateCandidates(r, fps) {
			if d := math.Abs(cand - fps); d < bestD {
				best, bestD = cand, d
			}
		}
	}
	return best
}

func rateCandidates(r webcam.FrameRate, fps float64) []float64 {
	// Intervals are numerator/denominator seconds; rate is the inverse.
	if r.MinNumerator == 0 || r.MaxNumerator == 0 {
		return nil
	}
	lo := float64(r.MaxDenominator) / float64(r.MaxNumerator)
	hi := float64(r.MinDenominator) / float64(r.MinNumerator)
	if r.StepNumerator == 0 && r.StepDenominator == 0 {
		return []float64{lo, hi}
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	return []float64{math.Max(lo, math.Min(hi, fps))}
}

// ReadFrame waits for the next buffer, copies it out of driver memory and
// re-queues it.
func (s *V4L2Source) ReadFrame(ctx context.Context) (*Frame, error) {
	deadline := time.Now().Add(s.cfg.FrameTimeout)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s.closing.Load() {
			return nil, ErrClosed
		}
		frame, again, err := s.readOnce()
		if err != nil || frame != nil {
			return frame, err
		}
		if again && time.Now().After(deadline) {
			return nil, fmt.Errorf("v4l2 %s: no frame for %s: %w", s.path, s.cfg.FrameTimeout, ErrTimeout)
		}
	}
}

// readOnce polls for one slice and, if a buffer is ready, copies it out.
// It returns again=true when nothing was ready or the buffer was skipped.
func (s *V4L2Source) readOnce() (*Frame, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cam == nil {
		return nil, false, ErrClosed
	}
	pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, int(pollSlice/time.Millisecond))
	if err != nil {
		if err == unix.EINTR {
			return nil, true, nil
		}
		return nil, false, s.fail("poll", err)
	}
	if n == 0 {
		return nil, true, nil
	}
	data, index, err := s.cam.GetFrame()
	if err != nil {
		if errors.Is(err, unix.EAGAIN) {
			if pfd[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
				// vb2 reports POLLERR while no buffer is queued; do not spin.
				time.Sleep(5 * time.Millisecond)
			}
			return nil, true, nil
		}
		return nil, false, s.fail("dequeue", err)
	}
	dequeued := monotonicNow()
	frame, skip, qerr := s.copyFrame(data, index, dequeued)
	if err := s.cam.ReleaseFrame(index); err != nil {
		return nil, false, s.fail("re-queue", err)
	}
	if qerr != nil {
		return nil, false, s.fail("query buffer", qerr)
	}
	if skip {
		return nil, true, nil
	}
	return frame, false, nil
}

// fail wraps an I/O error, classifying device loss.
func (s *V4L2Source) fail(op string, err error) error {
	if isDeviceGone(err) {
		return fmt.Errorf("v4l2 %s: %s: %w: %w", s.path, op, ErrDeviceLost, err)
	}
	return fmt.Errorf("v4l2 %s: %s: %w", s.path, op, err)
}

// copyFrame turns a dequeued buffer into an owned Frame. It must run before
// ReleaseFrame: after that the driver may overwrite the memory.
func (s *V4L2Source) copyFrame(data []byte, index uint32, dequeued time.Duration) (*Frame, bool, error) {
	first := s.first
	s.first = false
	qb, err := queryBuffer(s.fd, index)
	if err != nil && isDeviceGone(err) {
		return nil, false, err
	}
	haveQB := err == nil
	if !haveQB {
		s.stats.QueryBufErrors++
	}
	if haveQB && qb.Flags&bufFlagError != 0 {
		s.stats.Errored++
		return nil, true, nil
	}
	f := &Frame{Width: s.format.Width, Height: s.format.Height, Format: s.format.PixelFormat}
	switch s.format.PixelFormat {
	case FormatMJPEG:
		// The first buffer after setup can be stale: its bytesused spans the
		// whole buffer. A real JPEG never fills it exactly.
		if first && haveQB && qb.Length > 0 && uint32(len(data)) >= qb.Length {
			s.stats.Stale++
			return nil, true, nil
		}
		n, err := jpegLength(data)
		if err != nil {
			s.stats.Stale++
			return nil, true, nil
		}
		f.Data = append([]byte(nil), data[:n]...)
	case FormatYUYV:
		f.Data = copyPlane(data, f.Width*2, int(s.pix.BytesPerLine), f.Height)
	case FormatNV12:
		stride := int(s.pix.BytesPerLine)
		luma := copyPlane(data, f.Width, stride, f.Height)
		if luma != nil && stride >= f.Width && len(data) >= stride*f.Height+stride*f.Height/2 {
			chroma := copyPlane(data[stride*f.Height:], f.Width, stride, f.Height/2)
			f.Data = append(luma, chroma...)
		}
	default:
		f.Data = append([]byte(nil), data...)
	}
	if f.Data == nil {
		s.stats.Stale++
		return nil, true, nil
	}
	f.Seq = s.seq
	if haveQB {
		f.Seq = uint64(qb.Sequence)
	}
	s.seq++
	f.Timestamp, f.TimestampSource = dequeued, TimestampDequeue
	if haveQB {
		ts := time.Duration(qb.Timestamp.Sec)*time.Second + time.Duration(qb.Timestamp.Usec)*time.Microsecond
		s.stats.LastBufferFlags, s.stats.LastRawTimestamp = qb.Flags, ts
	}
	if haveQB && qb.Flags&bufFlagTimestampMask == bufFlagTimestampMono && (qb.Timestamp.Sec != 0 || qb.Timestamp.Usec != 0) {
		ts := time.Duration(qb.Timestamp.Sec)*time.Second + time.Duration(qb.Timestamp.Usec)*time.Microsecond
		// Trust the driver's clock only when it is plausible: not older than
		// a second, and not more than two frame periods after the dequeue
		// (drivers that stamp the nominal end of exposure, like vivid, can
		// run slightly ahead; a first buffer can carry a stale stamp).
		period := 100 * time.Millisecond
		if s.format.FPS > 0 {
			period = time.Duration(float64(time.Second) / s.format.FPS)
		}
		if ts-dequeued <= 2*period && dequeued-ts < time.Second {
			f.Timestamp, f.TimestampSource = ts, TimestampDriver
		}
	}
	if f.TimestampSource == TimestampDriver {
		s.stats.DriverTimestamps++
		lag := dequeued - f.Timestamp
		if s.stats.DriverTimestamps == 1 || lag < s.stats.DriverToDequeueMin {
			s.stats.DriverToDequeueMin = lag
		}
		if lag > s.stats.DriverToDequeueMax {
			s.stats.DriverToDequeueMax = lag
		}
		s.stats.DriverToDequeueSum += lag
	} else {
		s.stats.DequeueTimestamps++
	}
	return f, false, nil
}

// copyPlane copies rows of rowBytes from a buffer whose rows are stride
// apart, returning nil when the buffer is too short.
func copyPlane(data []byte, rowBytes, stride, rows int) []byte {
	if stride < rowBytes {
		stride = rowBytes
	}
	if len(data) < stride*(rows-1)+rowBytes {
		return nil
	}
	if stride == rowBytes {
		return append([]byte(nil), data[:rowBytes*rows]...)
	}
	out := make([]byte, rowBytes*rows)
	for y := 0; y < rows; y++ {
		copy(out[y*rowBytes:(y+1)*rowBytes], data[y*stride:y*stride+rowBytes])
	}
	return out
}

// Close stops streaming and closes the device; a ReadFrame in progress
// returns ErrClosed within one poll slice.
func (s *V4L2Source) Close() error {
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cam == nil {
		return nil
	}
	err := s.cam.Close()
	s.cam = nil
	if err != nil && !isDeviceGone(err) {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}
