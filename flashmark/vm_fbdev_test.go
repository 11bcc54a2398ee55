//go:build vmtest

// The framebuffer backend against a real kernel driver (vfb) inside the
// qemu VM of make test-v4l2; capture's TestVMFlashmark runs this binary.

package flashmark

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestVMFramebufferVFB(t *testing.T) {
	if os.Getenv("GLINT_VMTEST") != "1" {
		t.Skip("in-VM test: runs under make test-v4l2")
	}
	if out, err := exec.Command("/sbin/modprobe", "vfb", "vfb_enable=1", "videomemorysize=4194304", "mode_option=640x480-32@60").CombinedOutput(); err != nil {
		t.Fatalf("modprobe vfb: %v: %s", err, out)
	}
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err = os.Stat("/dev/fb0"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("/dev/fb0 did not appear: %v", err)
	}
	fb, err := OpenFramebuffer(FramebufferConfig{Path: "/dev/fb0"})
	if err != nil {
		t.Fatal(err)
	}
	g := fb.Geometry()
	t.Logf("vfb: %dx%d, %d bpp, stride %d, R%d/%d G%d/%d B%d/%d, %.1f Hz, vsync %v",
		g.Width, g.Height, g.BitsPerPixel, g.Stride, g.RedOffset, g.RedLength, g.GreenOffset, g.GreenLength, g.BlueOffset, g.BlueLength, g.RefreshHz, fb.VSync())
	if g.Width != 640 || g.Height != 480 || g.BitsPerPixel != 32 {
		t.Fatalf("geometry %+v, want 640x480x32 from the ioctls", g)
	}
	for _, c := range DefaultPalette() {
		p, err := fb.Show(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if p.Presented <= p.Requested {
			t.Fatalf("presentation %+v", p)
		}
		// Read the last visible pixel back through the device node.
		dev, err := os.Open("/dev/fb0")
		if err != nil {
			t.Fatal(err)
		}
		px := make([]byte, 4)
		off := int64((g.YOffset+g.Height-1)*g.Stride + (g.XOffset+g.Width-1)*4)
		_, err = dev.ReadAt(px, off)
		dev.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := g.pixel(c); string(px) != string(want) {
			t.Fatalf("colour %v: device holds % x, want % x", c, px, want)
		}
	}
	if err := fb.Close(); err != nil {
		t.Fatal(err)
	}
	// Nothing left open: the driver can go.
	if out, err := exec.Command("/sbin/rmmod", "vfb").CombinedOutput(); err != nil {
		t.Fatalf("rmmod vfb after Close: %v: %s", err, strings.TrimSpace(string(out)))
	}
}
