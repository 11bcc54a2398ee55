//go:build vmtest

// Infrastructure smoke test for the real-kernel VM (make test-v4l2): the
// module tools the capture tests rely on work inside the VM.

package capture

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestVMSmokeModules proves that the in-VM module tools work: v4l2loopback
// is removed and re-inserted from its file, vivid removed and modprobe'd
// again, both with /init's parameters so later tests see the same devices.
func TestVMSmokeModules(t *testing.T) {
	vmRequire(t)
	vmRmmod(t, "v4l2loopback")
	if vmModuleLoaded("v4l2loopback") {
		t.Fatal("v4l2loopback still loaded after rmmod")
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatalf("uname: %v", err)
	}
	release := string(bytes.TrimRight(uts.Release[:], "\x00"))
	vmInsmod(t, "/lib/modules/"+release+"/updates/v4l2loopback.ko", vmModuleParams(t, "v4l2loopback")...)
	if d := vmFindDevice(t, "v4l2 loopback", 5*time.Second); d.Path != "/dev/video10" {
		t.Fatalf("v4l2loopback came back as %s, want /dev/video10", d.Path)
	}

	vmModprobeRemove(t, "vivid")
	vmModprobe(t, "vivid", vmModuleParams(t, "vivid")...)
	d := vmFindDevice(t, "vivid", 5*time.Second)
	t.Logf("modules reloaded: vivid %s, v4l2loopback /dev/video10; devices %+v", d.Path, vmDevices())
}
