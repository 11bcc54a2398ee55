package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/blackjack/webcam"
	"golang.org/x/sys/unix"
)

// DeviceInfo describes one V4L2 device node, as `glintctl camera list` shows
// it and as the device guard later inspects it.
type DeviceInfo struct {
	Path    string `json:"path"`
	Driver  string `json:"driver"`
	Card    string `json:"card"`
	BusInfo string `json:"bus_info"`
	// DriverVersion is the driver's (usually the kernel's) version, x.y.z.
	DriverVersion string `json:"driver_version"`
	// Capabilities of the whole physical device; DeviceCaps of this node
	// (QUERYCAP device_caps, which is what decides what the node can do).
	Capabilities uint32 `json:"capabilities"`
	DeviceCaps   uint32 `json:"device_caps"`
	CanCapture   bool   `json:"can_capture"`
	CanStream    bool   `json:"can_stream"`
	IsOutput     bool   `json:"is_output"`
	// SysfsPath is the resolved /sys/devices/... path of the node; virtual
	// devices live under /sys/devices/virtual.
	SysfsPath string   `json:"sysfs_path,omitempty"`
	USB       *USBInfo `json:"usb,omitempty"`
	// Formats the node can capture, when it can.
	Formats []FormatInfo `json:"formats,omitempty"`
}

// USBInfo identifies a USB camera, from sysfs.
type USBInfo struct {
	VendorID     string `json:"vendor_id"`
	ProductID    string `json:"product_id"`
	Serial       string `json:"serial,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
}

// FormatInfo is one pixel format with its frame sizes.
type FormatInfo struct {
	PixelFormat PixelFormat `json:"-"`
	FourCC      string      `json:"fourcc"`
	Description string      `json:"description"`
	Sizes       []string    `json:"sizes,omitempty"`
}

// Serial returns the USB serial number, or "" for non-USB devices.
func (d DeviceInfo) Serial() string {
	if d.USB == nil {
		return ""
	}
	return d.USB.Serial
}

// ListDevices enumerates /dev/video* with QUERYCAP and sysfs facts, in
// numeric order. Nodes that cannot be opened are reported by error only if
// none can be listed.
func ListDevices() ([]DeviceInfo, error) {
	return listDevicesIn("/dev", "/sys")
}

func listDevicesIn(devDir, sysDir string) ([]DeviceInfo, error) {
	paths, err := filepath.Glob(filepath.Join(devDir, "video*"))
	if err != nil {
		return nil, err
	}
	sort.Slice(paths, func(i, j int) bool { return videoIndex(paths[i]) < videoIndex(paths[j]) })
	var out []DeviceInfo
	var firstErr error
	for _, p := range paths {
		info, err := queryDeviceIn(p, sysDir, true)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		out = append(out, info)
	}
	if len(out) == 0 && firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

func videoIndex(path string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(path), "video"))
	if err != nil {
		return 1 << 30
	}
	return n
}

// QueryDevice describes one device node.
func QueryDevice(path string) (DeviceInfo, error) {
	return queryDeviceIn(path, "/sys", true)
}

func queryDeviceIn(path, sysDir string, withFormats bool) (DeviceInfo, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if os.IsNotExist(err) {
			return DeviceInfo{}, fmt.Errorf("open %s: %w", path, ErrNoDevice)
		}
		return DeviceInfo{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	c, err := queryCap(uintptr(fd))
	if err != nil {
		return DeviceInfo{}, fmt.Errorf("%s: VIDIOC_QUERYCAP: %w", path, err)
	}
	caps := c.Capabilities
	if caps&capDeviceCaps != 0 {
		caps = c.DeviceCaps
	}
	info := DeviceInfo{
		Path:          path,
		Driver:        cString(c.Driver[:]),
		Card:          cString(c.Card[:]),
		BusInfo:       cString(c.BusInfo[:]),
		DriverVersion: fmt.Sprintf("%d.%d.%d", c.Version>>16, (c.Version>>8)&0xff, c.Version&0xff),
		Capabilities:  c.Capabilities,
		DeviceCaps:    c.DeviceCaps,
		CanCapture:    caps&(capVideoCapture|capVideoCaptureMPlan) != 0,
		CanStream:     caps&capStreaming != 0,
		IsOutput:      caps&capVideoOutput != 0,
	}
	info.SysfsPath, info.USB = sysfsFacts(sysDir, filepath.Base(path))
	if withFormats && info.CanCapture && info.CanStream {
		info.Formats = enumerateFormats(path)
	}
	return info, nil
}

// enumerateFormats lists formats and sizes through the webcam library.
func enumerateFormats(path string) []FormatInfo {
	cam, err := webcam.Open(path)
	if err != nil {
		return nil
	}
	defer cam.Close()
	var out []FormatInfo
	for pf, desc := range cam.GetSupportedFormats() {
		fi := FormatInfo{PixelFormat: PixelFormat(pf), FourCC: PixelFormat(pf).String(), Description: desc}
		for _, s := range cam.GetSupportedFrameSizes(pf) {
			fi.Sizes = append(fi.Sizes, formatFrameSize(s))
		}
		out = append(out, fi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FourCC < out[j].FourCC })
	return out
}

func formatFrameSize(s webcam.FrameSize) string {
	if s.StepWidth == 0 && s.StepHeight == 0 {
		return fmt.Sprintf("%dx%d", s.MaxWidth, s.MaxHeight)
	}
	return fmt.Sprintf("%dx%d-%dx%d step %d/%d", s.MinWidth, s.MinHeight, s.MaxWidth, s.MaxHeight, s.StepWidth, s.StepHeight)
}

// sysfsFacts resolves the node's sysfs path and, for USB cameras, the
// vendor, product and serial of the USB device above the interface.
func sysfsFacts(sysDir, node string) (string, *USBInfo) {
	classPath := filepath.Join(sysDir, "class", "video4linux", node)
	resolved, err := filepath.EvalSymlinks(classPath)
	if err != nil {
		return "", nil
	}
	dev, err := filepath.EvalSymlinks(filepath.Join(classPath, "device"))
	if err != nil {
		return resolved, nil
	}
	// The node's device is a USB interface (…/1-1:1.0); idVendor lives on
	// the USB device one or two levels up.
	for i := 0; i < 4 && dev != "/" && dev != "."; i++ {
		vendor := readSysfs(filepath.Join(dev, "idVendor"))
		if vendor != "" {
			return resolved, &USBInfo{
				VendorID:     vendor,
				ProductID:    readSysfs(filepath.Join(dev, "idProduct")),
				Serial:       readSysfs(filepath.Join(dev, "serial")),
				Manufacturer: readSysfs(filepath.Join(dev, "manufacturer")),
				Product:      readSysfs(filepath.Join(dev, "product")),
			}
		}
		dev = filepath.Dir(dev)
	}
	return resolved, nil
}

func readSysfs(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
