package vmtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// requiredVMTests must each report "--- PASS" inside the VM: a run where one
// of them was skipped, filtered out or never compiled fails. Add the capture
// package's real in-VM tests here as they are written.
var requiredVMTests = []string{
	"TestVMVividEnumerate",
	"TestVMVividCapture",
	"TestVMVividMissingFormat",
	"TestVMVividControls",
	"TestVMVividUnplug",
	"TestVMLoopbackMJPEG",
	"TestVMDeviceGuard",
	"TestVMGuardVirtualCamera",
	"TestVMGuardPlatformCamera",
	"TestVMGuardVirtualMachine",
	"TestVMFlashmark",
	"TestVMFramebufferVFB",
	"TestVMSmokeModules",
}

// vmTestRun selects the capture package's tests that run inside the VM.
const vmTestRun = "^TestVM"

// v4l2Modules are loaded by /init before the tests run. vivid: one instance
// with only a video capture node; v4l2loopback: one device, /dev/video10.
var v4l2Modules = []Module{
	{Name: "vivid", Params: []string{"n_devs=1", "node_types=0x1"}},
	{Name: "v4l2loopback", Params: []string{"devices=1", "video_nr=10", "exclusive_caps=1", "card_label=glint-loopback"}},
}

// TestV4L2RealKernel builds the capture and device packages' vmtest-tagged tests, boots
// Debian's kernel under qemu (TCG) with vivid and v4l2loopback loaded, runs
// them there and fails on anything but a clean pass.
func TestV4L2RealKernel(t *testing.T) {
	root := moduleRoot(t)
	art, err := LoadArtefacts(filepath.Join(root, ".cache", "vm"))
	if err != nil {
		t.Fatalf("real-kernel V4L2 test cannot run: %v", err)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatalf("real-kernel V4L2 test cannot run: qemu-system-x86_64: %v (Debian package qemu-system-x86, make deps)", err)
	}
	t.Logf("kernel %s; packages:\n%s", art.KernelRelease, strings.TrimSpace(art.Versions))

	// The capture package's in-VM tests are the VM's test binary; the
	// device package's (guard signals) and flashmark's (framebuffer) ride
	// along and are run by capture's TestVMDeviceGuard and TestVMFlashmark.
	dir := t.TempDir()
	bin := filepath.Join(dir, "capture-vm.test")
	deviceBin := filepath.Join(dir, "device-vm.test")
	flashmarkBin := filepath.Join(dir, "flashmark-vm.test")
	start := time.Now()
	for pkg, out := range map[string]string{"./capture": bin, "./device": deviceBin, "./flashmark": flashmarkBin} {
		build := exec.Command("go", "test", "-c", "-tags", "vmtest", "-o", out, pkg)
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build the in-VM tests of %s: %v\n%s", pkg, err, msg)
		}
	}
	t.Logf("built the in-VM test binaries in %v", time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	boot := time.Now()
	out, err := Run(ctx, Config{
		Kernel:        art.Kernel,
		ModulesRoot:   art.ModulesRoot,
		KernelRelease: art.KernelRelease,
		TestBinary:    bin,
		Files:         map[string]string{"/work/device-vm.test": deviceBin, "/work/flashmark-vm.test": flashmarkBin},
		Modules:       v4l2Modules,
		Args:          []string{"-test.v", "-test.count=1", "-test.run=" + vmTestRun},
		Timeout:       2 * time.Minute,
		Log: func(line string) {
			t.Logf("vm %6.2fs| %s", time.Since(boot).Seconds(), line)
		},
	})
	t.Logf("VM ran %v (initramfs %d KiB), exit status %d", out.Duration.Round(time.Millisecond), out.Initramfs/1024, out.ExitCode)
	problems := checkSerial(out.Serial, requiredVMTests)
	if err != nil {
		problems = append([]string{err.Error()}, problems...)
	}
	if len(problems) > 0 {
		t.Fatalf("real-kernel V4L2 test failed:\n%s", strings.Join(problems, "\n"))
	}
}

// checkSerial returns what is wrong with an in-VM test run's console output:
// failures, panics, and required tests that did not pass.
func checkSerial(serial string, required []string) []string {
	var problems []string
	for _, line := range strings.Split(serial, "\n") {
		if strings.Contains(line, "--- FAIL") || strings.Contains(line, "panic:") {
			problems = append(problems, "console: "+line)
		}
	}
	for _, name := range required {
		re := regexp.MustCompile(`(?m)^\s*--- PASS: ` + regexp.QuoteMeta(name) + ` \(`)
		if !re.MatchString(serial) {
			problems = append(problems, fmt.Sprintf("required in-VM test %s did not pass (not run, skipped or failed)", name))
		}
	}
	return problems
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := string(bytes.TrimSpace(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod)
}

func TestCheckSerial(t *testing.T) {
	req := []string{"TestA", "TestB"}
	tests := []struct {
		name   string
		serial string
		want   int
	}{
		{"all pass", "=== RUN   TestA\n--- PASS: TestA (0.01s)\n--- PASS: TestB (1.00s)\nPASS\n", 0},
		{"one fails", "--- PASS: TestA (0.01s)\n--- FAIL: TestB (1.00s)\n", 2},
		{"one skipped", "--- PASS: TestA (0.01s)\n--- SKIP: TestB (0.00s)\n", 1},
		{"panic", "--- PASS: TestA (0.01s)\n--- PASS: TestB (1.00s)\npanic: boom\n", 1},
		{"subtest prefix", "--- PASS: TestAB (0.01s)\n--- PASS: TestB (1.00s)\n", 1},
		{"nested pass", "--- PASS: TestA (0.01s)\n    --- PASS: TestB (1.00s)\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkSerial(tt.serial, req); len(got) != tt.want {
				t.Errorf("checkSerial: %d problems %q, want %d", len(got), got, tt.want)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		serial string
		want   int
	}{
		{"boot\nGLINT-VMTEST-EXIT=0\n", 0},
		{"boot\nGLINT-VMTEST-EXIT=1\n[ 3.1] reboot: Power down\n", 1},
		{"boot\nsomething GLINT-VMTEST-EXIT=0\n", -1},
		{"boot\n", -1},
	}
	for _, tt := range tests {
		if got := exitCode(tt.serial); got != tt.want {
			t.Errorf("exitCode(%q) = %d, want %d", tt.serial, got, tt.want)
		}
	}
}
