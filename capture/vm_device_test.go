//go:build vmtest

package capture

import (
	"os"
	"os/exec"
	"testing"
)

// deviceVMTest is where internal/vmtest puts the device package's in-VM
// test binary (device cannot be tested from here: it imports capture).
const deviceVMTest = "/work/device-vm.test"

// TestVMDeviceGuard runs the device-guard tests in this VM, with the
// drivers this package's tests use, streaming their output to the console
// (the host requires their PASS lines too).
func TestVMDeviceGuard(t *testing.T) {
	vmRequire(t)
	if _, err := os.Stat(deviceVMTest); err != nil {
		t.Fatalf("device test binary missing in the VM: %v", err)
	}
	cmd := exec.Command(deviceVMTest, "-test.v", "-test.count=1", "-test.run=^TestVM")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("device-guard tests in the VM: %v", err)
	}
}
