package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/internal/buildinfo"
)

func versionString() string { return "glintctl " + buildinfo.Version }

func runCamera(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"camera: missing subcommand (list, grab, testpattern)"}
	}
	switch args[0] {
	case "list":
		return cameraList(args[1:], stdout, stderr)
	case "grab":
		return cameraGrab(ctx, args[1:], stdout, stderr)
	case "testpattern":
		return cameraTestPattern(args[1:], stdout, stderr)
	}
	return usageError{fmt.Sprintf("camera: unknown subcommand %q", args[0])}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

func cameraList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("camera list", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	devs, err := capture.ListDevices()
	if err != nil {
		return fmt.Errorf("list cameras: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if devs == nil {
			devs = []capture.DeviceInfo{}
		}
		return enc.Encode(devs)
	}
	if len(devs) == 0 {
		fmt.Fprintln(stdout, "no V4L2 devices (/dev/video*)")
		return nil
	}
	for _, d := range devs {
		role := "other"
		switch {
		case d.CanCapture && d.CanStream:
			role = "capture"
		case d.CanCapture:
			role = "capture (no streaming)"
		case d.IsOutput:
			role = "output"
		}
		fmt.Fprintf(stdout, "%s\t%s\n", d.Path, d.Card)
		fmt.Fprintf(stdout, "  driver:   %s %s\n", d.Driver, d.DriverVersion)
		fmt.Fprintf(stdout, "  bus_info: %s\n", d.BusInfo)
		fmt.Fprintf(stdout, "  role:     %s (device_caps 0x%08x)\n", role, d.DeviceCaps)
		if d.SysfsPath != "" {
			fmt.Fprintf(stdout, "  sysfs:    %s\n", d.SysfsPath)
		}
		if d.USB != nil {
			fmt.Fprintf(stdout, "  usb:      %s:%s serial %q %s %s\n", d.USB.VendorID, d.USB.ProductID, d.USB.Serial, d.USB.Manufacturer, d.USB.Product)
		}
		for _, f := range d.Formats {
			fmt.Fprintf(stdout, "  format:   %s (%s) %s\n", f.FourCC, f.Description, strings.Join(f.Sizes, " "))
		}
	}
	return nil
}

func cameraGrab(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("camera grab", stderr)
	device := fs.String("device", "/dev/video0", "V4L2 device node, or a directory of images / an MJPEG file to replay")
	frames := fs.Int("frames", 10, "number of frames to capture")
	out := fs.String("out", "", "directory to write the frames to (created if missing)")
	width := fs.Int("width", 640, "requested width")
	height := fs.Int("height", 480, "requested height")
	fps := fs.Float64("fps", 25, "requested frame rate")
	formats := fs.String("formats", "MJPG,YUYV,NV12", "pixel formats in order of preference")
	timeout := fs.Duration("timeout", 5*time.Second, "give up when no frame arrives for this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"camera grab: --out is required"}
	}
	if *frames <= 0 {
		return usageError{fmt.Sprintf("camera grab: --frames %d must be positive", *frames)}
	}
	var prefs []capture.PixelFormat
	for _, f := range strings.Split(*formats, ",") {
		f = strings.TrimSpace(f)
		if len(f) != 4 {
			return usageError{fmt.Sprintf("camera grab: --formats: %q is not a four-character code", f)}
		}
		prefs = append(prefs, capture.Fourcc(f))
	}
	src, err := openGrabSource(*device, capture.V4L2Config{
		Device: *device, Width: *width, Height: *height, FPS: *fps, Formats: prefs, Buffers: 4, FrameTimeout: *timeout,
	}, *fps)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", *out, err)
	}
	format, err := src.Open(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "device %s: negotiated %s\n", *device, format)
	var first, last time.Duration
	var drops uint64
	var prevSeq uint64
	var tsSource capture.TimestampSource
	for i := 0; i < *frames; i++ {
		f, err := src.ReadFrame(ctx)
		if err != nil {
			return fmt.Errorf("frame %d of %d: %w", i+1, *frames, err)
		}
		if i == 0 {
			first = f.Timestamp
		} else if f.Seq > prevSeq+1 {
			drops += f.Seq - prevSeq - 1
		}
		prevSeq, last, tsSource = f.Seq, f.Timestamp, f.TimestampSource
		if err := writeFrame(*out, i, f); err != nil {
			return err
		}
	}
	achieved := 0.0
	if *frames > 1 && last > first {
		achieved = float64(*frames-1) / (last - first).Seconds()
	}
	fmt.Fprintf(stdout, "captured %d frames to %s: %.2f fps achieved (%s timestamps), %d dropped\n",
		*frames, *out, achieved, tsSource, drops)
	return nil
}

// openGrabSource picks the V4L2 source for device nodes and the file source
// for image directories and MJPEG files.
func openGrabSource(device string, cfg capture.V4L2Config, fps float64) (capture.Source, error) {
	st, err := os.Stat(device)
	if err == nil && (st.IsDir() || st.Mode().IsRegular()) {
		return capture.NewFileSource(capture.FileSourceConfig{Path: device, FPS: fps})
	}
	return capture.NewV4L2Source(cfg), nil
}

func writeFrame(dir string, i int, f *capture.Frame) error {
	if f.Format == capture.FormatMJPEG || f.Format == capture.FormatJPEG {
		name := filepath.Join(dir, fmt.Sprintf("frame-%05d.jpg", i))
		if err := os.WriteFile(name, f.Data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		return nil
	}
	img, err := f.Image()
	if err != nil {
		return fmt.Errorf("frame %d: %w", i, err)
	}
	name := filepath.Join(dir, fmt.Sprintf("frame-%05d.png", i))
	file, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if err := png.Encode(file, img); err != nil {
		file.Close()
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return file.Close()
}
