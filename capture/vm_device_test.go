//go:build vmtest

package capture

import (
	"os"
	"os/exec"
	"testing"
)

// Packages that import capture cannot have their in-VM tests here;
// internal/vmtest puts their test binaries into the VM at these paths and
// these tests run them, streaming their output to the console (the host
// requires their PASS lines too).
const (
	deviceVMTest    = "/work/device-vm.test"
	flashmarkVMTest = "/work/flashmark-vm.test"
)

func vmRunTestBinary(t *testing.T, path string) {
	t.Helper()
	vmRequire(t)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("test binary missing in the VM: %v", err)
	}
	cmd := exec.Command(path, "-test.v", "-test.count=1", "-test.run=^TestVM")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestVMDeviceGuard runs the device-guard tests with this VM's drivers.
func TestVMDeviceGuard(t *testing.T) { vmRunTestBinary(t, deviceVMTest) }

// TestVMFlashmark runs the framebuffer display tests against vfb.
func TestVMFlashmark(t *testing.T) { vmRunTestBinary(t, flashmarkVMTest) }
