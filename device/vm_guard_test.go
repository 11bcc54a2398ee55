//go:build vmtest

// Device-guard tests inside the real-kernel VM (make test-v4l2): the
// capture package's in-VM test TestVMDeviceGuard runs this binary there,
// with vivid and v4l2loopback loaded by /init.

package device

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glintdev/glint/capture"
)

func vmOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("GLINT_VMTEST") != "1" {
		t.Skip("in-VM test: runs under make test-v4l2")
	}
}

func vmCamera(t *testing.T, driver string) capture.DeviceInfo {
	t.Helper()
	paths, _ := filepath.Glob("/dev/video*")
	for _, p := range paths {
		if d, err := capture.QueryDevice(p); err == nil && d.Driver == driver {
			return d
		}
	}
	t.Fatalf("no %s device among %v", driver, paths)
	return capture.DeviceInfo{}
}

func vmGuardFor(t *testing.T, cam capture.DeviceInfo) Report {
	t.Helper()
	g, err := NewGuard(GuardConfig{Camera: func() (capture.DeviceInfo, error) { return cam, nil }})
	if err != nil {
		t.Fatal(err)
	}
	rep := g.Check()
	for _, s := range rep.Signals {
		t.Logf("guard: %s %s: %s %v", s.Severity, s.Code, s.Message, s.Evidence)
	}
	return rep
}

func TestVMGuardVirtualCamera(t *testing.T) {
	vmOnly(t)
	rep := vmGuardFor(t, vmCamera(t, "v4l2 loopback"))
	if !rep.Has(SignalCameraVirtual) || !rep.Has(SignalLoopbackModule) || rep.Has(SignalCameraNotUSB) {
		t.Fatalf("v4l2loopback camera: signals %v, want CAMERA_VIRTUAL and LOOPBACK_MODULE_LOADED", rep.Summary().Codes)
	}
	if rep.Risk != SeverityCritical {
		t.Fatalf("risk %v, want critical", rep.Risk)
	}
}

func TestVMGuardPlatformCamera(t *testing.T) {
	vmOnly(t)
	rep := vmGuardFor(t, vmCamera(t, "vivid"))
	if !rep.Has(SignalCameraNotUSB) || rep.Has(SignalCameraVirtual) {
		t.Fatalf("vivid camera: signals %v, want CAMERA_NOT_USB and not CAMERA_VIRTUAL", rep.Summary().Codes)
	}
}

func TestVMGuardVirtualMachine(t *testing.T) {
	vmOnly(t)
	g, err := NewGuard(GuardConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rep := g.Check()
	var vm *Signal
	for i := range rep.Signals {
		if rep.Signals[i].Code == SignalVirtualMachine {
			vm = &rep.Signals[i]
		}
	}
	if vm == nil {
		t.Fatalf("qemu not detected: signals %v", rep.Summary().Codes)
	}
	qemu := false
	for _, v := range vm.Evidence {
		if strings.Contains(strings.ToLower(v), "qemu") {
			qemu = true
		}
	}
	if !qemu {
		t.Fatalf("VIRTUAL_MACHINE evidence %v does not name QEMU", vm.Evidence)
	}
	t.Logf("inside the VM: %v, evidence %v", rep.Summary().Codes, vm.Evidence)
}
