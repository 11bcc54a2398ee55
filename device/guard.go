package device

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/glintdev/glint/capture"
)

// Severity grades a guard signal.
type Severity int

// Severities, in increasing order of risk.
const (
	SeverityNone Severity = iota
	SeverityInfo
	SeverityWarn
	SeverityCritical
)

func (s Severity) String() string {
	switch s {
	case SeverityNone:
		return "none"
	case SeverityInfo:
		return "info"
	case SeverityWarn:
		return "warn"
	case SeverityCritical:
		return "critical"
	}
	return "unknown"
}

// MarshalText makes severities read as words in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity word.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity reads a severity name (for policy overrides in config).
func ParseSeverity(name string) (Severity, error) {
	for s := SeverityNone; s <= SeverityCritical; s++ {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (none, info, warn, critical)", name)
}

// Signal codes: stable, machine-readable, documented in docs/device-guard.md.
const (
	SignalCameraVirtual        = "CAMERA_VIRTUAL"
	SignalCameraNotUSB         = "CAMERA_NOT_USB"
	SignalCameraChanged        = "CAMERA_CHANGED"
	SignalLoopbackModule       = "LOOPBACK_MODULE_LOADED"
	SignalVirtualMachine       = "VIRTUAL_MACHINE"
	SignalTraced               = "PROCESS_TRACED"
	SignalPreload              = "LD_PRELOAD_SET"
	SignalExecutableModified   = "EXECUTABLE_MODIFIED"
	SignalModelModified        = "MODEL_MODIFIED"
	SignalSecureBootOff        = "SECURE_BOOT_OFF"
	SignalLockdownOff          = "KERNEL_LOCKDOWN_OFF"
	SignalModuleSigNotEnforced = "MODULE_SIG_NOT_ENFORCED"
	SignalClockSkew            = "CLOCK_SKEW"
	SignalTamper               = "ENCLOSURE_TAMPER"
	SignalCheckFailed          = "GUARD_CHECK_FAILED"
)

// defaultSeverity is the policy unless the configuration overrides it.
var defaultSeverity = map[string]Severity{
	SignalCameraVirtual:        SeverityCritical,
	SignalCameraNotUSB:         SeverityInfo, // CSI sensors on ARM kiosks are platform devices
	SignalCameraChanged:        SeverityCritical,
	SignalLoopbackModule:       SeverityWarn,
	SignalVirtualMachine:       SeverityCritical,
	SignalTraced:               SeverityCritical,
	SignalPreload:              SeverityCritical,
	SignalExecutableModified:   SeverityCritical,
	SignalModelModified:        SeverityCritical,
	SignalSecureBootOff:        SeverityWarn,
	SignalLockdownOff:          SeverityInfo,
	SignalModuleSigNotEnforced: SeverityWarn,
	SignalClockSkew:            SeverityWarn,
	SignalTamper:               SeverityCritical,
	SignalCheckFailed:          SeverityWarn,
}

// DefaultSeverity returns the built-in severity of a signal code.
func DefaultSeverity(code string) (Severity, bool) {
	s, ok := defaultSeverity[code]
	return s, ok
}

// Signal is one observation about the device's integrity.
type Signal struct {
	Code     string            `json:"code"`
	Severity Severity          `json:"severity"`
	Message  string            `json:"message"`
	Evidence map[string]string `json:"evidence,omitempty"`
}

// Report is one guard check: every signal raised and the overall risk.
type Report struct {
	CheckedAt time.Time `json:"checked_at"`
	Signals   []Signal  `json:"signals"`
	// Risk is the highest severity among the signals (none when clean).
	Risk Severity `json:"risk"`
}

// Has reports whether the report carries the signal code.
func (r Report) Has(code string) bool {
	for _, s := range r.Signals {
		if s.Code == code {
			return true
		}
	}
	return false
}

// Summary is the compact form a result record carries: risk and codes.
func (r Report) Summary() ReportSummary {
	codes := make([]string, 0, len(r.Signals))
	for _, s := range r.Signals {
		codes = append(codes, s.Code)
	}
	sort.Strings(codes)
	return ReportSummary{Risk: r.Risk, Codes: codes, CheckedAt: r.CheckedAt}
}

// ReportSummary is what every result record carries of the guard.
type ReportSummary struct {
	Risk      Severity  `json:"risk"`
	Codes     []string  `json:"codes"`
	CheckedAt time.Time `json:"checked_at"`
}

// CameraIdentity pins the camera a device was provisioned with.
type CameraIdentity struct {
	VendorID  string `json:"vendor_id" yaml:"vendor_id"`
	ProductID string `json:"product_id" yaml:"product_id"`
	Serial    string `json:"serial" yaml:"serial"`
}

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Root is the filesystem root under which /proc and /sys are read;
	// "/" by default (tests point it at a fake tree).
	Root string
	// PID whose /proc status is inspected for a tracer; 0 means self.
	PID int
	// Camera returns the facts of the camera in use (nil: no camera check).
	Camera func() (capture.DeviceInfo, error)
	// PinnedCamera, when set, is the identity recorded at provisioning.
	PinnedCamera *CameraIdentity
	// Executable is the binary to hash (default /proc/self/exe) and
	// ExecutableSHA256 its expected digest from the release manifest
	// (empty: not checked).
	Executable       string
	ExecutableSHA256 string
	// Models maps model file paths to their expected SHA-256.
	Models map[string]string
	// Environ is the environment to inspect (default os.Environ()).
	Environ []string
	// ClockSkew returns the device clock minus the hub's (nil: unknown),
	// and MaxClockSkew bounds it (default 30 s).
	ClockSkew    func() (time.Duration, bool)
	MaxClockSkew time.Duration
	// Tamper reports the latched enclosure switch (nil: no switch).
	Tamper func() bool
	// Severity overrides the built-in severity per signal code;
	// SeverityNone disables a signal.
	Severity map[string]Severity
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Manifest is the release manifest the code-modification check compares
// against: SHA-256 (hex) of the executable and of each model file.
type Manifest struct {
	ExecutableSHA256 string            `json:"executable_sha256"`
	Models           map[string]string `json:"models"`
}

// LoadManifest reads a release manifest (JSON, unknown fields rejected).
func LoadManifest(path string) (Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Manifest{}, fmt.Errorf("guard manifest: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, 1<<20))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("guard manifest %s: %w", path, err)
	}
	for p, sum := range m.Models {
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			return Manifest{}, fmt.Errorf("guard manifest %s: model %s: %q is not a SHA-256", path, p, sum)
		}
	}
	if m.ExecutableSHA256 != "" {
		if b, err := hex.DecodeString(m.ExecutableSHA256); err != nil || len(b) != sha256.Size {
			return Manifest{}, fmt.Errorf("guard manifest %s: executable_sha256 %q is not a SHA-256", path, m.ExecutableSHA256)
		}
	}
	return m, nil
}

// Guard evaluates device-integrity signals. It is stateless between checks
// (hashes are recomputed each time, so a replaced file is caught), safe for
// concurrent use, and never fails as a whole: a check that cannot read its
// source raises GUARD_CHECK_FAILED with the reason.
type Guard struct {
	cfg GuardConfig
}

// NewGuard validates the policy and returns a guard.
func NewGuard(cfg GuardConfig) (*Guard, error) {
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if cfg.MaxClockSkew == 0 {
		cfg.MaxClockSkew = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for code := range cfg.Severity {
		if _, ok := defaultSeverity[code]; !ok {
			return nil, fmt.Errorf("guard: unknown signal %q in severity policy", code)
		}
	}
	return &Guard{cfg: cfg}, nil
}

// Check runs every check and returns the report.
func (g *Guard) Check() Report {
	var sigs []Signal
	raise := func(code, msg string, evidence map[string]string) {
		sev := defaultSeverity[code]
		if s, ok := g.cfg.Severity[code]; ok {
			sev = s
		}
		if sev == SeverityNone {
			return
		}
		sigs = append(sigs, Signal{Code: code, Severity: sev, Message: msg, Evidence: evidence})
	}
	g.checkCamera(raise)
	g.checkModules(raise)
	g.checkVirtualMachine(raise)
	g.checkInstrumentation(raise)
	g.checkCode(raise)
	g.checkPlatform(raise)
	if g.cfg.ClockSkew != nil {
		if skew, ok := g.cfg.ClockSkew(); ok && (skew > g.cfg.MaxClockSkew || -skew > g.cfg.MaxClockSkew) {
			raise(SignalClockSkew, fmt.Sprintf("device clock differs from the hub's by %v (limit %v)", skew, g.cfg.MaxClockSkew),
				map[string]string{"skew": skew.String()})
		}
	}
	if g.cfg.Tamper != nil && g.cfg.Tamper() {
		raise(SignalTamper, "enclosure switch opened (latched until a technician clears it)", nil)
	}
	rep := Report{CheckedAt: g.cfg.Now().UTC(), Signals: sigs}
	for _, s := range sigs {
		if s.Severity > rep.Risk {
			rep.Risk = s.Severity
		}
	}
	return rep
}

type raiseFunc func(code, msg string, evidence map[string]string)

func (g *Guard) path(p string) string { return filepath.Join(g.cfg.Root, p) }

// virtualCameraDrivers are QUERYCAP driver names of virtual cameras.
var virtualCameraDrivers = []string{"v4l2 loopback", "v4l2loopback", "akvcam", "obs-virtualcam", "droidcam", "vcam"}

func (g *Guard) checkCamera(raise raiseFunc) {
	if g.cfg.Camera == nil {
		return
	}
	cam, err := g.cfg.Camera()
	if err != nil {
		raise(SignalCheckFailed, "camera facts unavailable: "+err.Error(), map[string]string{"check": "camera"})
		return
	}
	if cam.Path == "" {
		return // no camera opened yet: nothing to judge
	}
	ev := map[string]string{"path": cam.Path, "driver": cam.Driver, "card": cam.Card, "bus_info": cam.BusInfo, "sysfs": cam.SysfsPath}
	virtual := false
	for _, d := range virtualCameraDrivers {
		if strings.EqualFold(cam.Driver, d) {
			virtual = true
		}
	}
	if strings.HasPrefix(cam.SysfsPath, "/sys/devices/virtual/") {
		virtual = true
	}
	if virtual {
		raise(SignalCameraVirtual, fmt.Sprintf("camera %s is a virtual device (driver %q)", cam.Path, cam.Driver), ev)
	} else if !strings.HasPrefix(cam.BusInfo, "usb-") {
		raise(SignalCameraNotUSB, fmt.Sprintf("camera %s is not on USB (bus %q)", cam.Path, cam.BusInfo), ev)
	}
	if p := g.cfg.PinnedCamera; p != nil {
		got := CameraIdentity{}
		if cam.USB != nil {
			got = CameraIdentity{VendorID: cam.USB.VendorID, ProductID: cam.USB.ProductID, Serial: cam.USB.Serial}
		}
		if got != *p {
			ev := map[string]string{
				"pinned": p.VendorID + ":" + p.ProductID + ":" + p.Serial,
				"found":  got.VendorID + ":" + got.ProductID + ":" + got.Serial,
			}
			raise(SignalCameraChanged, "camera differs from the one pinned at provisioning", ev)
		}
	}
}

// loopbackModules are kernel modules that create virtual cameras.
var loopbackModules = []string{"v4l2loopback", "akvcam"}

func (g *Guard) checkModules(raise raiseFunc) {
	b, err := os.ReadFile(g.path("proc/modules"))
	if err != nil {
		// Kernels without module support have no /proc/modules: nothing to
		// load a loopback from.
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, _, _ := strings.Cut(line, " ")
		for _, m := range loopbackModules {
			if name == m {
				raise(SignalLoopbackModule, fmt.Sprintf("virtual-camera module %s is loaded", m), map[string]string{"module": m})
			}
		}
	}
}

// vmVendors are DMI strings of hypervisors and emulators.
var vmVendors = []string{"qemu", "kvm", "vmware", "virtualbox", "innotek", "xen", "microsoft corporation", "bochs", "parallels", "amazon ec2", "google compute engine", "openstack"}

func (g *Guard) checkVirtualMachine(raise raiseFunc) {
	ev := map[string]string{}
	for _, f := range []string{"sys_vendor", "product_name", "bios_vendor", "board_vendor"} {
		v := strings.TrimSpace(readString(g.path("sys/class/dmi/id/" + f)))
		if v == "" {
			continue
		}
		lv := strings.ToLower(v)
		for _, vm := range vmVendors {
			if strings.Contains(lv, vm) {
				ev["dmi_"+f] = v
			}
		}
	}
	if hasCPUFlag(g.path("proc/cpuinfo"), "hypervisor") {
		ev["cpuinfo"] = "hypervisor flag"
	}
	if t := strings.TrimSpace(readString(g.path("sys/hypervisor/type"))); t != "" {
		ev["sys_hypervisor"] = t
	}
	if len(ev) > 0 {
		raise(SignalVirtualMachine, "running in a virtual machine or emulator", ev)
	}
}

func hasCPUFlag(path, flag string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "flags") && !strings.HasPrefix(line, "Features") {
			continue
		}
		_, list, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(list) {
			if f == flag {
				return true
			}
		}
	}
	return false
}

func (g *Guard) checkInstrumentation(raise raiseFunc) {
	pid := "self"
	if g.cfg.PID > 0 {
		pid = strconv.Itoa(g.cfg.PID)
	}
	status, err := os.ReadFile(g.path("proc/" + pid + "/status"))
	if err != nil {
		raise(SignalCheckFailed, "process status unreadable: "+err.Error(), map[string]string{"check": "tracer"})
	} else {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
				v = strings.TrimSpace(v)
				if v != "0" && v != "" {
					// TracerPid is the tracing thread; its Tgid is the process.
					ev := map[string]string{"tracer_tid": v}
					if comm := strings.TrimSpace(readString(g.path("proc/" + v + "/comm"))); comm != "" {
						ev["tracer"] = comm
					}
					for _, l := range strings.Split(readString(g.path("proc/"+v+"/status")), "\n") {
						if tgid, ok := strings.CutPrefix(l, "Tgid:"); ok {
							ev["tracer_pid"] = strings.TrimSpace(tgid)
						}
					}
					raise(SignalTraced, "process is being traced (debugger or ptrace)", ev)
				}
			}
		}
	}
	env := g.cfg.Environ
	if env == nil {
		env = os.Environ()
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "LD_PRELOAD="); ok && v != "" {
			raise(SignalPreload, "LD_PRELOAD injects libraries into the process", map[string]string{"ld_preload": v})
		}
	}
	if b := strings.TrimSpace(readString(g.path("etc/ld.so.preload"))); b != "" {
		raise(SignalPreload, "/etc/ld.so.preload lists libraries loaded into every process", map[string]string{"ld_so_preload": b})
	}
}

func (g *Guard) checkCode(raise raiseFunc) {
	if g.cfg.ExecutableSHA256 != "" {
		exe := g.cfg.Executable
		if exe == "" {
			exe = "/proc/self/exe"
		}
		sum, err := fileSHA256(exe)
		switch {
		case err != nil:
			raise(SignalCheckFailed, "executable unreadable: "+err.Error(), map[string]string{"check": "executable"})
		case !strings.EqualFold(sum, g.cfg.ExecutableSHA256):
			raise(SignalExecutableModified, "running executable differs from the release manifest",
				map[string]string{"path": exe, "sha256": sum, "expected": g.cfg.ExecutableSHA256})
		}
	}
	paths := make([]string, 0, len(g.cfg.Models))
	for p := range g.cfg.Models {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		want := g.cfg.Models[p]
		sum, err := fileSHA256(p)
		if err != nil || !strings.EqualFold(sum, want) {
			ev := map[string]string{"path": p, "expected": want, "sha256": sum}
			if err != nil {
				ev["error"] = err.Error()
			}
			raise(SignalModelModified, "model file differs from the release manifest", ev)
		}
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// secureBootVar is the EFI global variable holding the Secure Boot state.
const secureBootVar = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

func (g *Guard) checkPlatform(raise raiseFunc) {
	if _, err := os.Stat(g.path("sys/firmware/efi")); err != nil {
		raise(SignalSecureBootOff, "booted without UEFI: no Secure Boot", map[string]string{"firmware": "legacy BIOS or none"})
	} else {
		b, err := os.ReadFile(g.path(secureBootVar))
		// efivarfs: 4 bytes of attributes, then the value byte.
		if err != nil || len(b) < 5 || b[4] != 1 {
			ev := map[string]string{"efivar": "SecureBoot"}
			if err != nil {
				ev["error"] = err.Error()
			}
			raise(SignalSecureBootOff, "UEFI Secure Boot is disabled", ev)
		}
	}
	lock := readString(g.path("sys/kernel/security/lockdown"))
	if mode := selectedMode(lock); mode == "" || mode == "none" {
		ev := map[string]string{"lockdown": strings.TrimSpace(lock)}
		if lock == "" {
			ev["lockdown"] = "unavailable"
		}
		raise(SignalLockdownOff, "kernel lockdown is off", ev)
	}
	if v := strings.TrimSpace(readString(g.path("sys/module/module/parameters/sig_enforce"))); v != "Y" {
		if v == "" {
			v = "unavailable"
		}
		raise(SignalModuleSigNotEnforced, "the kernel loads unsigned modules", map[string]string{"sig_enforce": v})
	}
}

// selectedMode extracts the bracketed entry of a sysfs choice list such as
// "none [integrity] confidentiality".
func selectedMode(s string) string {
	i := strings.IndexByte(s, '[')
	j := strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return ""
	}
	return s[i+1 : j]
}

func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}
