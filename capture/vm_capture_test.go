//go:build vmtest

// In-VM tests of the capture package against real kernel drivers (vivid and
// v4l2loopback in Debian's kernel under qemu). They run under
// make test-v4l2; internal/vmtest requires each of them to report PASS.

package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const vividBusInfo = "platform:vivid-000"

func openFDCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestVMVividEnumerate(t *testing.T) {
	vmRequire(t)
	devs, err := ListDevices()
	if err != nil {
		t.Fatal(err)
	}
	var vivid *DeviceInfo
	for i := range devs {
		t.Logf("device %s driver=%q card=%q bus=%q caps=%#x sysfs=%s", devs[i].Path, devs[i].Driver, devs[i].Card, devs[i].BusInfo, devs[i].DeviceCaps, devs[i].SysfsPath)
		if devs[i].Driver == "vivid" && devs[i].CanCapture {
			vivid = &devs[i]
		}
	}
	if vivid == nil {
		t.Fatal("vivid capture node not enumerated")
	}
	if vivid.BusInfo != vividBusInfo || !vivid.CanStream || vivid.USB != nil {
		t.Fatalf("vivid facts: %+v", *vivid)
	}
	if !strings.HasPrefix(vivid.SysfsPath, "/sys/devices/platform/vivid") {
		t.Fatalf("vivid sysfs path %q, want under /sys/devices/platform", vivid.SysfsPath)
	}
	hasYUYV := false
	for _, f := range vivid.Formats {
		if f.PixelFormat == FormatYUYV {
			hasYUYV = true
		}
	}
	if !hasYUYV {
		t.Fatalf("vivid formats %+v lack YUYV", vivid.Formats)
	}
}

func TestVMVividCapture(t *testing.T) {
	vmRequire(t)
	dev := vmFindDevice(t, "vivid", 5*time.Second)
	src := NewV4L2Source(V4L2Config{Device: dev.Path, Width: 640, Height: 480, FPS: 25, Formats: []PixelFormat{FormatYUYV}})
	ctx := context.Background()
	format, err := src.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if format.PixelFormat != FormatYUYV || format.Width != 640 || format.Height != 480 || format.FPS != 25 {
		t.Fatalf("negotiated %v, want YUYV 640x480 @ 25 fps", format)
	}
	const n = 40
	var frames []*Frame
	start := time.Now()
	for len(frames) < n {
		f, err := src.ReadFrame(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", len(frames), err)
		}
		frames = append(frames, f)
	}
	elapsed := time.Since(start)
	drops, driverStamped := 0, 0
	for i, f := range frames {
		if f.Width != 640 || f.Height != 480 || len(f.Data) != 640*480*2 || f.Format != FormatYUYV {
			t.Fatalf("frame %d: %dx%d %s %d bytes", i, f.Width, f.Height, f.Format, len(f.Data))
		}
		if f.TimestampSource == TimestampDriver {
			driverStamped++
		}
		if i > 0 {
			prev := frames[i-1]
			if f.Seq <= prev.Seq {
				t.Fatalf("frame %d: sequence %d after %d", i, f.Seq, prev.Seq)
			}
			drops += int(f.Seq - prev.Seq - 1)
			if f.Timestamp <= prev.Timestamp {
				t.Fatalf("frame %d: timestamp %v after %v", i, f.Timestamp, prev.Timestamp)
			}
		}
	}
	// The driver's clock is used for every plausible buffer; vivid's first
	// buffer may carry a stale stamp, so allow a couple of fallbacks.
	if driverStamped < n-2 {
		st := src.Stats()
		t.Fatalf("only %d of %d frames carry the driver timestamp (last flags %#x raw %v)", driverStamped, n, st.LastBufferFlags, st.LastRawTimestamp)
	}
	span := frames[n-1].Timestamp - frames[0].Timestamp
	seqSpan := frames[n-1].Seq - frames[0].Seq
	interval := span / time.Duration(seqSpan)
	// vivid paces its frames by the kernel clock at the set rate: the
	// driver timestamps must say 40 ms per sequence step, whatever the
	// emulation speed did to our reads.
	if interval < 38*time.Millisecond || interval > 42*time.Millisecond {
		t.Fatalf("mean driver interval %v per sequence step, want 40ms (25 fps)", interval)
	}
	// Frames are owned copies: they differ from each other (vivid moves
	// its pattern) and stay intact after more captures.
	rgb, err := frames[0].RGB(nil)
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[[3]byte]bool{}
	for p := 0; p < len(rgb); p += 3 * 97 {
		distinct[[3]byte{rgb[p], rgb[p+1], rgb[p+2]}] = true
	}
	if len(distinct) < 4 {
		t.Fatalf("vivid frame converts to %d distinct colours, want a test pattern", len(distinct))
	}
	st := src.Stats()
	t.Logf("vivid: captured %d frames YUYV 640x480 in %v (%.1f fps read), driver interval %v, %d dropped, %d driver-stamped; driver→dequeue min %v max %v mean %v",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), interval, drops, driverStamped,
		st.DriverToDequeueMin, st.DriverToDequeueMax, st.DriverToDequeueSum/time.Duration(max(1, st.DriverTimestamps)))
}

func TestVMVividMissingFormat(t *testing.T) {
	vmRequire(t)
	dev := vmFindDevice(t, "vivid", 5*time.Second)
	src := NewV4L2Source(V4L2Config{Device: dev.Path, Width: 640, Height: 480, FPS: 25, Formats: []PixelFormat{FormatMJPEG}})
	_, err := src.Open(context.Background())
	if !errors.Is(err, ErrFormatUnsupported) {
		t.Fatalf("MJPEG from vivid: err = %v, want ErrFormatUnsupported", err)
	}
	if !strings.Contains(err.Error(), "MJPG") || !strings.Contains(err.Error(), "YUYV") {
		t.Fatalf("error should name what was wanted and what is offered: %v", err)
	}
	t.Logf("vivid without MJPEG: %v", err)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestVMVividControls(t *testing.T) {
	vmRequire(t)
	dev := vmFindDevice(t, "vivid", 5*time.Second)
	src := NewV4L2Source(V4L2Config{Device: dev.Path, Formats: []PixelFormat{FormatYUYV}})
	if _, err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctrls, err := src.ListControls()
	if err != nil {
		t.Fatal(err)
	}
	// vivid has no exposure or white-balance controls: a clear
	// "unsupported", not a silent success.
	if err := src.SetAutoExposure(false); !errors.Is(err, ErrControlUnsupported) {
		t.Fatalf("SetAutoExposure on vivid: %v, want ErrControlUnsupported", err)
	}
	if err := src.SetAutoWhiteBalance(false); !errors.Is(err, ErrControlUnsupported) {
		t.Fatalf("SetAutoWhiteBalance on vivid: %v, want ErrControlUnsupported", err)
	}
	// Brightness exists: set, read back, and reject a value out of range.
	if err := src.SetControl(CIDBrightness, 100); err != nil {
		t.Fatal(err)
	}
	if v, err := src.GetControl(CIDBrightness); err != nil || v != 100 {
		t.Fatalf("brightness read back %d, %v", v, err)
	}
	if err := src.SetControl(CIDBrightness, 100000); err == nil {
		t.Fatal("out-of-range brightness accepted")
	}
	t.Logf("vivid: %d controls; exposure/white balance correctly reported unsupported", len(ctrls))
}

// TestVMVividUnplug pulls the device away while it streams and checks the
// typed error, the release of every descriptor and the reconnection by
// bus_info when the same device returns.
func TestVMVividUnplug(t *testing.T) {
	vmRequire(t)
	vmFindDevice(t, "vivid", 5*time.Second)
	runtime.GC()
	fdsBefore := openFDCount(t)
	goroutinesBefore := runtime.NumGoroutine()

	src := NewV4L2Source(V4L2Config{BusInfo: vividBusInfo, Width: 640, Height: 480, FPS: 25, Formats: []PixelFormat{FormatYUYV}})
	ctx := context.Background()
	if _, err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := src.ReadFrame(ctx); err != nil {
		t.Fatal(err)
	}

	// rmmod while the device is open: the kernel holds a module reference
	// for every open node, so removal is refused and streaming goes on.
	out, err := runQuiet("/sbin/rmmod", "vivid")
	if err == nil {
		// A kernel that lets it go must surface the loss as a typed error.
		_, rerr := readUntilError(ctx, src, 3*time.Second)
		if !errors.Is(rerr, ErrDeviceLost) {
			t.Fatalf("after rmmod while streaming: %v, want ErrDeviceLost", rerr)
		}
		t.Logf("rmmod vivid while streaming succeeded; ReadFrame: %v", rerr)
		src.Close()
		vmModprobe(t, "vivid", vmModuleParams(t, "vivid")...)
	} else {
		t.Logf("rmmod vivid while streaming refused as expected: %s", strings.TrimSpace(out))
		if _, err := src.ReadFrame(ctx); err != nil {
			t.Fatalf("stream broken by a refused rmmod: %v", err)
		}
		// Unbind the platform device: what an unplug does to a USB camera.
		if err := os.WriteFile("/sys/bus/platform/drivers/vivid/unbind", []byte("vivid.0"), 0); err != nil {
			t.Fatalf("unbind vivid.0: %v", err)
		}
		_, rerr := readUntilError(ctx, src, 3*time.Second)
		if !errors.Is(rerr, ErrDeviceLost) {
			t.Fatalf("after unbind: %v, want ErrDeviceLost", rerr)
		}
		t.Logf("unbind while streaming: ReadFrame returned %v", rerr)
		if err := src.Close(); err != nil {
			t.Fatalf("Close after loss: %v", err)
		}
		// While the device is away, Open reports it missing.
		if _, err := src.Open(ctx); !errors.Is(err, ErrNoDevice) {
			t.Fatalf("Open while unplugged: %v, want ErrNoDevice", err)
		}
		if err := os.WriteFile("/sys/bus/platform/drivers/vivid/bind", []byte("vivid.0"), 0); err != nil {
			t.Fatalf("bind vivid.0: %v", err)
		}
	}

	// Reconnect with backoff, finding the device again by bus_info.
	var reopenErr error
	backoff := 50 * time.Millisecond
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, reopenErr = src.Open(ctx)
		if reopenErr == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(backoff)
		backoff *= 2
	}
	if reopenErr != nil {
		t.Fatalf("device did not come back: %v", reopenErr)
	}
	if _, err := src.ReadFrame(ctx); err != nil {
		t.Fatalf("read after reconnect: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("reconnected to %s (%s) after the device returned", src.Device().Path, src.Device().BusInfo)

	// No leak: descriptors back to the baseline, goroutines too, and the
	// module can now be removed (an fd left open would pin it).
	if n := openFDCount(t); n > fdsBefore {
		t.Fatalf("%d descriptors open after Close, %d before", n, fdsBefore)
	}
	if n := runtime.NumGoroutine(); n > goroutinesBefore {
		t.Fatalf("%d goroutines after Close, %d before", n, goroutinesBefore)
	}
	if out, err := runQuiet("/sbin/rmmod", "vivid"); err != nil {
		t.Fatalf("rmmod vivid after Close: %v: %s (a descriptor still pins it)", err, out)
	}
	vmModprobe(t, "vivid", vmModuleParams(t, "vivid")...)
	vmFindDevice(t, "vivid", 5*time.Second)
}

func readUntilError(ctx context.Context, src Source, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	n := 0
	for time.Now().Before(deadline) {
		if _, err := src.ReadFrame(ctx); err != nil {
			return n, err
		}
		n++
	}
	return n, fmt.Errorf("still streaming after %v", limit)
}

func runQuiet(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// loopbackProducer writes JPEG frames into a v4l2loopback node at about
// 25 fps, with the Huffman tables stripped as UVC cameras send them.
type loopbackProducer struct {
	fd      int
	frames  [][]byte
	colours []color.RGBA
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	written int
	err     error
}

func startLoopbackProducer(t *testing.T, path string) *loopbackProducer {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s for output: %v", path, err)
	}
	if _, err := vmSetOutputFormat(fd, 640, 480, vmFourcc("MJPG"), 0); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	p := &loopbackProducer{fd: fd, colours: []color.RGBA{{220, 40, 40, 255}, {40, 220, 40, 255}, {40, 40, 220, 255}}}
	for _, c := range p.colours {
		img := image.NewRGBA(image.Rect(0, 0, 640, 480))
		for i := 0; i < len(img.Pix); i += 4 {
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, 255
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
			t.Fatal(err)
		}
		p.frames = append(p.frames, stripDHT(t, buf.Bytes()))
	}
	if _, err := unix.Write(fd, p.frames[0]); err != nil {
		unix.Close(fd)
		t.Fatalf("first write: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			_, err := unix.Write(fd, p.frames[i%len(p.frames)])
			p.mu.Lock()
			if err != nil {
				p.err = err
				p.mu.Unlock()
				return
			}
			p.written++
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *loopbackProducer) stop() (int, error) {
	p.cancel()
	p.wg.Wait()
	unix.Close(p.fd)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.written + 1, p.err
}

func TestVMLoopbackMJPEG(t *testing.T) {
	vmRequire(t)
	// v4l2loopback 0.12.7 refuses a new output format after an earlier
	// write(2) producer closed, until the module is reloaded.
	vmReload(t, "v4l2loopback")
	dev := vmFindDevice(t, "v4l2 loopback", 5*time.Second)
	prod := startLoopbackProducer(t, dev.Path)
	defer prod.stop()

	info, err := QueryDevice(dev.Path)
	if err != nil {
		t.Fatal(err)
	}
	// The device guard flags exactly these facts as a virtual camera.
	if !strings.HasPrefix(info.SysfsPath, "/sys/devices/virtual/") || info.USB != nil {
		t.Fatalf("v4l2loopback facts: sysfs %q usb %v", info.SysfsPath, info.USB)
	}
	t.Logf("v4l2loopback: driver %q card %q bus %q sysfs %s", info.Driver, info.Card, info.BusInfo, info.SysfsPath)

	src := NewV4L2Source(V4L2Config{Device: dev.Path, Width: 640, Height: 480, FPS: 25})
	ctx := context.Background()
	format, err := src.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if format.PixelFormat != FormatMJPEG || format.Width != 640 || format.Height != 480 {
		t.Fatalf("negotiated %v, want MJPG 640x480", format)
	}
	const n = 15
	seen := map[color.RGBA]int{}
	var prevSeq uint64
	for i := 0; i < n; i++ {
		f, err := src.ReadFrame(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if i > 0 && f.Seq <= prevSeq {
			t.Fatalf("frame %d: sequence %d after %d", i, f.Seq, prevSeq)
		}
		prevSeq = f.Seq
		if hasHuffmanTables(f.Data) {
			t.Fatalf("frame %d carries a DHT; the producer strips them", i)
		}
		rgb, err := f.RGB(nil)
		if err != nil {
			t.Fatalf("frame %d (%d bytes): %v", i, len(f.Data), err)
		}
		centre := rgb[3*(240*640+320):]
		matched := false
		for _, c := range prod.colours {
			if near(centre[0], c.R) && near(centre[1], c.G) && near(centre[2], c.B) {
				seen[c]++
				matched = true
			}
		}
		if !matched {
			t.Fatalf("frame %d: centre %v is none of the written colours", i, centre[:3])
		}
	}
	written, perr := prod.stop()
	if perr != nil {
		t.Fatalf("producer: %v", perr)
	}
	st := src.Stats()
	t.Logf("v4l2loopback: wrote %d MJPEG frames (no DHT), captured and decoded %d; stale skipped %d; timestamps driver %d dequeue %d; colours %v",
		written, n, st.Stale, st.DriverTimestamps, st.DequeueTimestamps, seen)
}

func near(a, b uint8) bool {
	d := int(a) - int(b)
	return d >= -10 && d <= 10
}
