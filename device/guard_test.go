package device

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glintdev/glint/capture"
	"golang.org/x/sys/unix"
)

// fakeRoot builds a /proc and /sys tree; files maps paths to contents.
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// cleanPlatform is a kiosk with Secure Boot on, lockdown and module
// signatures enforced, on bare metal, untraced.
func cleanPlatform() map[string]string {
	return map[string]string{
		"proc/modules":                  "uvcvideo 139264 0 - Live 0x0\nvideodev 290816 1 uvcvideo, Live 0x0\n",
		"proc/cpuinfo":                  "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr\n",
		"proc/self/status":              "Name:\tglintd\nTracerPid:\t0\n",
		"sys/class/dmi/id/sys_vendor":   "Dell Inc.\n",
		"sys/class/dmi/id/product_name": "OptiPlex 3000\n",
		"sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c": "\x06\x00\x00\x00\x01",
		"sys/kernel/security/lockdown":                                             "none [integrity] confidentiality\n",
		"sys/module/module/parameters/sig_enforce":                                 "Y\n",
	}
}

func codes(r Report) []string { return r.Summary().Codes }

func TestGuardCleanPlatformRaisesNothing(t *testing.T) {
	g, err := NewGuard(GuardConfig{Root: fakeRoot(t, cleanPlatform()), Environ: []string{"PATH=/usr/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	rep := g.Check()
	if len(rep.Signals) != 0 || rep.Risk != SeverityNone {
		t.Fatalf("clean platform raised %+v", rep.Signals)
	}
}

func TestGuardPlatformSignals(t *testing.T) {
	cases := []struct {
		name   string
		edit   map[string]string
		drop   []string
		env    []string
		want   string
		risk   Severity
		detail string
	}{
		{name: "loopback module", edit: map[string]string{"proc/modules": "v4l2loopback 49152 0 - Live 0x0\n"}, want: SignalLoopbackModule, risk: SeverityWarn},
		{name: "qemu dmi", edit: map[string]string{"sys/class/dmi/id/sys_vendor": "QEMU\n"}, want: SignalVirtualMachine, risk: SeverityCritical, detail: "QEMU"},
		{name: "hypervisor flag", edit: map[string]string{"proc/cpuinfo": "flags\t\t: fpu hypervisor sse\n"}, want: SignalVirtualMachine, risk: SeverityCritical, detail: "hypervisor flag"},
		{name: "xen", edit: map[string]string{"sys/hypervisor/type": "xen\n"}, want: SignalVirtualMachine, risk: SeverityCritical},
		{name: "traced", edit: map[string]string{"proc/self/status": "TracerPid:\t4242\n", "proc/4242/comm": "gdb\n"}, want: SignalTraced, risk: SeverityCritical, detail: "gdb"},
		{name: "preload env", env: []string{"LD_PRELOAD=/tmp/hook.so"}, want: SignalPreload, risk: SeverityCritical, detail: "/tmp/hook.so"},
		{name: "ld.so.preload", edit: map[string]string{"etc/ld.so.preload": "/usr/lib/evil.so\n"}, want: SignalPreload, risk: SeverityCritical},
		{name: "secure boot off", edit: map[string]string{"sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c": "\x06\x00\x00\x00\x00"}, want: SignalSecureBootOff, risk: SeverityWarn},
		{name: "legacy bios", drop: []string{"sys/firmware/efi"}, want: SignalSecureBootOff, risk: SeverityWarn},
		{name: "lockdown none", edit: map[string]string{"sys/kernel/security/lockdown": "[none] integrity confidentiality\n"}, want: SignalLockdownOff, risk: SeverityInfo},
		{name: "unsigned modules", edit: map[string]string{"sys/module/module/parameters/sig_enforce": "N\n"}, want: SignalModuleSigNotEnforced, risk: SeverityWarn},
		{name: "status unreadable", drop: []string{"proc/self/status"}, want: SignalCheckFailed, risk: SeverityWarn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := cleanPlatform()
			for k, v := range c.edit {
				files[k] = v
			}
			root := fakeRoot(t, files)
			for _, d := range c.drop {
				if err := os.RemoveAll(filepath.Join(root, d)); err != nil {
					t.Fatal(err)
				}
			}
			env := c.env
			if env == nil {
				env = []string{}
			}
			g, err := NewGuard(GuardConfig{Root: root, Environ: env})
			if err != nil {
				t.Fatal(err)
			}
			rep := g.Check()
			if !rep.Has(c.want) || len(rep.Signals) != 1 {
				t.Fatalf("signals %v, want exactly %s", codes(rep), c.want)
			}
			if rep.Risk != c.risk {
				t.Fatalf("risk %v, want %v", rep.Risk, c.risk)
			}
			if c.detail != "" {
				found := false
				for _, v := range rep.Signals[0].Evidence {
					if strings.Contains(v, c.detail) {
						found = true
					}
				}
				if !found {
					t.Fatalf("evidence %v lacks %q", rep.Signals[0].Evidence, c.detail)
				}
			}
		})
	}
}

func TestGuardCameraSignals(t *testing.T) {
	loopback := capture.DeviceInfo{Path: "/dev/video10", Driver: "v4l2 loopback", Card: "glint-loopback", BusInfo: "platform:v4l2loopback-000", SysfsPath: "/sys/devices/virtual/video4linux/video10"}
	vivid := capture.DeviceInfo{Path: "/dev/video0", Driver: "vivid", BusInfo: "platform:vivid-000", SysfsPath: "/sys/devices/platform/vivid.0/video4linux/video0"}
	uvc := capture.DeviceInfo{Path: "/dev/video0", Driver: "uvcvideo", BusInfo: "usb-0000:00:14.0-1", SysfsPath: "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/video4linux/video0",
		USB: &capture.USBInfo{VendorID: "046d", ProductID: "0825", Serial: "ABC123"}}
	pinned := &CameraIdentity{VendorID: "046d", ProductID: "0825", Serial: "ABC123"}
	cases := []struct {
		name   string
		cam    capture.DeviceInfo
		pinned *CameraIdentity
		want   []string
	}{
		{"v4l2loopback is virtual", loopback, nil, []string{SignalCameraVirtual}},
		{"vivid is a platform device", vivid, nil, []string{SignalCameraNotUSB}},
		{"pinned uvc camera", uvc, pinned, nil},
		{"another uvc camera", capture.DeviceInfo{Path: uvc.Path, Driver: "uvcvideo", BusInfo: uvc.BusInfo, USB: &capture.USBInfo{VendorID: "046d", ProductID: "0825", Serial: "XYZ"}}, pinned, []string{SignalCameraChanged}},
		{"virtual replaces pinned", loopback, pinned, []string{SignalCameraChanged, SignalCameraVirtual}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := NewGuard(GuardConfig{Root: fakeRoot(t, cleanPlatform()), Environ: []string{},
				Camera: func() (capture.DeviceInfo, error) { return c.cam, nil }, PinnedCamera: c.pinned})
			if err != nil {
				t.Fatal(err)
			}
			got := codes(g.Check())
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("signals %v, want %v", got, c.want)
			}
		})
	}
}

func TestGuardPolicyOverrides(t *testing.T) {
	files := cleanPlatform()
	files["sys/class/dmi/id/sys_vendor"] = "QEMU\n"
	files["sys/module/module/parameters/sig_enforce"] = "N\n"
	g, err := NewGuard(GuardConfig{Root: fakeRoot(t, files), Environ: []string{},
		Severity: map[string]Severity{SignalVirtualMachine: SeverityNone, SignalModuleSigNotEnforced: SeverityCritical}})
	if err != nil {
		t.Fatal(err)
	}
	rep := g.Check()
	if rep.Has(SignalVirtualMachine) || !rep.Has(SignalModuleSigNotEnforced) || rep.Risk != SeverityCritical {
		t.Fatalf("policy not applied: %+v", rep)
	}
	if _, err := NewGuard(GuardConfig{Severity: map[string]Severity{"NO_SUCH_SIGNAL": SeverityInfo}}); err == nil {
		t.Fatal("unknown signal in policy accepted")
	}
	if _, err := ParseSeverity("severe"); err == nil {
		t.Fatal("unknown severity parsed")
	}
}

func TestGuardClockSkewAndTamper(t *testing.T) {
	skew := 2 * time.Minute
	tampered := true
	g, _ := NewGuard(GuardConfig{Root: fakeRoot(t, cleanPlatform()), Environ: []string{},
		ClockSkew: func() (time.Duration, bool) { return -skew, true },
		Tamper:    func() bool { return tampered }})
	rep := g.Check()
	if !rep.Has(SignalClockSkew) || !rep.Has(SignalTamper) {
		t.Fatalf("signals %v", codes(rep))
	}
	skew, tampered = time.Second, false
	if rep := g.Check(); len(rep.Signals) != 0 {
		t.Fatalf("within bounds: %v", codes(rep))
	}
}

// TestGuardDetectsRealPtrace attaches to a real child process with ptrace
// and checks that the guard, reading the real /proc, reports the tracer.
func TestGuardDetectsRealPtrace(t *testing.T) {
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		child.Process.Kill()
		child.Wait()
	}()
	g, err := NewGuard(GuardConfig{PID: child.Process.Pid, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if g.Check().Has(SignalTraced) {
		t.Fatal("untraced child reported as traced")
	}

	// ptrace binds the tracee to the attaching thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid := child.Process.Pid
	if err := unix.PtraceAttach(pid); err != nil {
		t.Fatalf("ptrace attach %d: %v (the test needs CAP_SYS_PTRACE or a permissive ptrace_scope)", pid, err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	rep := g.Check()
	if !rep.Has(SignalTraced) {
		t.Fatalf("ptrace-attached child not reported: %v", codes(rep))
	}
	for _, s := range rep.Signals {
		if s.Code == SignalTraced && s.Evidence["tracer_pid"] != strconv.Itoa(os.Getpid()) {
			t.Fatalf("tracer pid %q, want ours %d", s.Evidence["tracer_pid"], os.Getpid())
		}
	}
	if err := unix.PtraceDetach(pid); err != nil {
		t.Fatal(err)
	}
}

// TestGuardDetectsTamperedExecutable hashes a copy of a real executable,
// then flips one byte of the copy.
func TestGuardDetectsTamperedExecutable(t *testing.T) {
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "glintd")
	if err := os.WriteFile(exe, self, 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := fileSHA256(exe)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(t.TempDir(), "detector.onnx")
	os.WriteFile(model, []byte("model bytes"), 0o644)
	modelSum, _ := fileSHA256(model)
	cfg := GuardConfig{Root: fakeRoot(t, cleanPlatform()), Environ: []string{}, Executable: exe, ExecutableSHA256: sum,
		Models: map[string]string{model: modelSum}}
	g, _ := NewGuard(cfg)
	if rep := g.Check(); len(rep.Signals) != 0 {
		t.Fatalf("pristine files raised %v", codes(rep))
	}
	self[len(self)/2] ^= 0xff
	if err := os.WriteFile(exe, self, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(model, []byte("model bytez"), 0o644)
	rep := g.Check()
	if !rep.Has(SignalExecutableModified) || !rep.Has(SignalModelModified) || rep.Risk != SeverityCritical {
		t.Fatalf("tampered files: %v", codes(rep))
	}
	os.Remove(model)
	if rep := g.Check(); !rep.Has(SignalModelModified) {
		t.Fatal("a missing model file is not reported")
	}
}

// TestGuardOnThisMachine runs every check against the real /proc and /sys:
// whatever it finds, it must read them without failing a check.
func TestGuardOnThisMachine(t *testing.T) {
	g, err := NewGuard(GuardConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rep := g.Check()
	if rep.Has(SignalCheckFailed) {
		t.Fatalf("a check failed on this machine: %+v", rep.Signals)
	}
	t.Logf("this machine: risk %v, signals %v", rep.Risk, codes(rep))
}

func TestLoadManifest(t *testing.T) {
	dir := t.TempDir()
	good := `{"executable_sha256":"` + strings.Repeat("ab", 32) + `","models":{"/m/a.onnx":"` + strings.Repeat("01", 32) + `"}}`
	cases := map[string]struct {
		body string
		ok   bool
	}{
		"good":          {good, true},
		"unknown field": {`{"executable":"x"}`, false},
		"bad model sum": {`{"models":{"/m/a.onnx":"xyz"}}`, false},
		"short exe sum": {`{"executable_sha256":"abcd"}`, false},
		"not json":      {`models: []`, false},
	}
	for name, c := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		os.WriteFile(p, []byte(c.body), 0o644)
		m, err := LoadManifest(p)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v", name, err)
		}
		if c.ok && (len(m.Models) != 1 || m.ExecutableSHA256 == "") {
			t.Errorf("%s: parsed %+v", name, m)
		}
	}
	if _, err := LoadManifest(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing manifest accepted")
	}
}
