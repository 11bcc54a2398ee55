//go:build vmtest

// Helpers for the capture tests that run inside the real-kernel VM
// (internal/vmtest, make test-v4l2). They build only with -tags vmtest.
//
// Inside the VM, /init has loaded vivid (n_devs=1 node_types=0x1: one video
// capture node) and v4l2loopback (devices=1 video_nr=10 exclusive_caps=1
// card_label=glint-loopback: /dev/video10) and set GLINT_VMTEST=1. The module
// tree with modules.dep is at /lib/modules/$(uname -r), so tests can
// vmModprobe/vmRmmod/vmInsmod (busybox) to reload drivers with other
// parameters or to pull a device away while it streams.

package capture

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/glintdev/glint/internal/linuxsys"
)

// vmRequire skips the test unless it runs inside the VM, where /init sets
// GLINT_VMTEST=1. (The host side requires every in-VM test it expects to
// report PASS, so a skip inside the VM still fails make test-v4l2.)
func vmRequire(t testing.TB) {
	t.Helper()
	if os.Getenv("GLINT_VMTEST") != "1" {
		t.Skip("in-VM test: runs under make test-v4l2 (internal/vmtest), not on the host")
	}
}

// vmFourcc builds a V4L2 fourcc code, e.g. vmFourcc("MJPG").
func vmFourcc(code string) uint32 { return uint32(Fourcc(code)) }

// The few V4L2 ABI pieces only the tests need; the structs and QUERYCAP /
// G_FMT come from the package itself (v4l2_ioctl.go).
const (
	vmBufTypeVideoOutput = 2
	vmFieldNone          = 1
	vmVidiocSFmt         = 0xC0D05605 // _IOWR('V', 5, struct v4l2_format)
)

// vmDeviceInfo is what VIDIOC_QUERYCAP reports for a device node.
type vmDeviceInfo struct {
	Path, Driver, Card, BusInfo string
	// DeviceCaps are the node's capabilities (V4L2_CAP_*).
	DeviceCaps uint32
}

// vmQueryCap opens path and returns its VIDIOC_QUERYCAP answer.
func vmQueryCap(path string) (vmDeviceInfo, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return vmDeviceInfo{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	c, err := queryCap(uintptr(fd))
	if err != nil {
		return vmDeviceInfo{}, fmt.Errorf("VIDIOC_QUERYCAP %s: %w", path, err)
	}
	caps := c.Capabilities
	if caps&capDeviceCaps != 0 {
		caps = c.DeviceCaps
	}
	return vmDeviceInfo{Path: path, Driver: cString(c.Driver[:]), Card: cString(c.Card[:]),
		BusInfo: cString(c.BusInfo[:]), DeviceCaps: caps}, nil
}

// vmDevices lists every /dev/video* node with its QUERYCAP answer, sorted by
// path. Nodes that fail QUERYCAP are left out.
func vmDevices() []vmDeviceInfo {
	paths, _ := filepath.Glob("/dev/video*")
	sort.Strings(paths)
	var out []vmDeviceInfo
	for _, p := range paths {
		if info, err := vmQueryCap(p); err == nil {
			out = append(out, info)
		}
	}
	return out
}

// vmFindDevice returns the first /dev/video* node whose QUERYCAP driver is
// driver ("vivid", "v4l2 loopback"), waiting up to timeout for it to
// appear (after a vmModprobe); the test fails if none does.
func vmFindDevice(t testing.TB, driver string, timeout time.Duration) vmDeviceInfo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		devs := vmDevices()
		for _, d := range devs {
			if d.Driver == driver {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /dev/video* with driver %q after %v; devices: %+v", driver, timeout, devs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func vmRun(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// vmModprobe loads module (with its dependencies) with the given parameters,
// e.g. vmModprobe(t, "vivid", "n_devs=2").
func vmModprobe(t testing.TB, module string, params ...string) {
	t.Helper()
	vmRun(t, "/sbin/modprobe", append([]string{module}, params...)...)
}

// vmModprobeRemove unloads module and the dependencies no longer used.
// busybox modprobe -r exits non-zero when a dependency is still in use
// (videodev by the other driver), so success means: module is gone.
func vmModprobeRemove(t testing.TB, module string) {
	t.Helper()
	out, err := exec.Command("/sbin/modprobe", "-r", module).CombinedOutput()
	if vmModuleLoaded(module) {
		t.Fatalf("modprobe -r %s: still loaded (%v): %s", module, err, bytes.TrimSpace(out))
	}
}

// vmRmmod unloads module only; it fails while a device of it is open.
func vmRmmod(t testing.TB, module string) {
	t.Helper()
	vmRun(t, "/sbin/rmmod", module)
}

// vmInsmod loads the module file path (no dependency resolution).
func vmInsmod(t testing.TB, path string, params ...string) {
	t.Helper()
	vmRun(t, "/sbin/insmod", append([]string{path}, params...)...)
}

// vmModuleParams returns the parameters /init loaded module with (from
// GLINT_VMTEST_PARAMS_<module>, set by internal/vmtest), e.g. for
// v4l2loopback: devices=1 video_nr=10 exclusive_caps=1 card_label=glint-loopback.
func vmModuleParams(t testing.TB, module string) []string {
	t.Helper()
	name := "GLINT_VMTEST_PARAMS_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, module)
	v, ok := os.LookupEnv(name)
	if !ok {
		t.Fatalf("%s not set: %s was not loaded by /init", name, module)
	}
	return strings.Fields(v)
}

// vmReload unloads module (if loaded) and loads it again with /init's
// parameters, so the test starts from a freshly loaded driver.
//
// v4l2loopback 0.12.7 needs this before every test that writes to it: a
// producer using write(2) clears the device's "ready for output" flag and
// closing it never sets it back, so after one write-based producer the
// device announces neither capture nor output and VIDIOC_S_FMT on the output
// type fails with EINVAL until the module is reloaded.
func vmReload(t testing.TB, module string) {
	t.Helper()
	params := vmModuleParams(t, module)
	if vmModuleLoaded(module) {
		vmRmmod(t, module)
	}
	vmModprobe(t, module, params...)
}

// vmModuleLoaded reports whether module is in /proc/modules.
func vmModuleLoaded(module string) bool {
	raw, err := os.ReadFile("/proc/modules")
	if err != nil {
		return false
	}
	name := strings.ReplaceAll(module, "-", "_")
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

// vmSetOutputFormat sets the V4L2_BUF_TYPE_VIDEO_OUTPUT format of fd (a
// v4l2loopback device opened by the producer) with VIDIOC_S_FMT (for
// output, which blackjack/webcam does not do) and returns what the driver
// chose. sizeImage 0 lets the driver pick (v4l2loopback: width*height*4
// for compressed formats). Frames are then written with write(2), one
// frame per call.
func vmSetOutputFormat(fd int, width, height, fourcc, sizeImage uint32) (v4l2PixFormat, error) {
	f := v4l2Format{Type: vmBufTypeVideoOutput}
	f.Pix = v4l2PixFormat{Width: width, Height: height, PixelFormat: fourcc,
		Field: vmFieldNone, SizeImage: sizeImage}
	if err := linuxsys.Ioctl(uintptr(fd), vmVidiocSFmt, unsafe.Pointer(&f)); err != nil {
		return v4l2PixFormat{}, fmt.Errorf("VIDIOC_S_FMT output %dx%d: %w", width, height, err)
	}
	return f.Pix, nil
}
