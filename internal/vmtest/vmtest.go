// Package vmtest owns booting Debian's kernel under qemu-system with a busybox
// initramfs that runs a Go test binary, for tests that need a real kernel's
// drivers.
//
// The kernel and its modules come from Debian's packages, unpacked (never
// installed) into .cache/vm by scripts/vm-kernel.sh; see docs/v4l2-vm.md.
// Run builds an initramfs (gzip'd cpio newc, written here without external
// tools) holding busybox-static with its applet links, the module tree with
// modules.dep at /lib/modules/<release>, the test binary and an /init script
// that mounts devtmpfs, proc, sysfs and a tmpfs, loads the requested modules
// in dependency order (computed on the host with modprobe --show-depends),
// runs the test binary, prints the marker line "GLINT-VMTEST-EXIT=<status>"
// and powers off. qemu always runs with TCG (never KVM) under a timeout.
package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Marker is the prefix of the line /init prints with the test binary's exit
// status, e.g. "GLINT-VMTEST-EXIT=0".
const Marker = "GLINT-VMTEST-EXIT="

// Where things live inside the VM.
const (
	guestWorkDir = "/work"
	guestBinary  = "/work/vm.test"
)

// exitSetupFailed is the status /init reports when it could not prepare the
// VM (a module failed to load) and so never ran the test binary.
const exitSetupFailed = 125

// Sentinel errors callers branch on; Run's errors wrap them.
var (
	// ErrArtefacts: the kernel, the module tree, busybox or qemu is missing.
	ErrArtefacts = errors.New("vm artefacts missing")
	// ErrTimeout: the VM did not power off within Config.Timeout.
	ErrTimeout = errors.New("vm timed out")
	// ErrNoMarker: the VM stopped without printing the exit marker (kernel
	// panic, /init died, qemu failed).
	ErrNoMarker = errors.New("vm exit marker absent")
	// ErrTestFailed: the test binary (or /init's setup) exited non-zero.
	ErrTestFailed = errors.New("test binary failed in vm")
)

// Module is a kernel module /init loads before running the test binary.
type Module struct {
	// Name as modprobe knows it, e.g. "vivid".
	Name string
	// Params are the module parameters, e.g. "n_devs=1".
	Params []string
}

// Config describes one VM run.
type Config struct {
	// Kernel is the bzImage to boot (.cache/vm/vmlinuz).
	Kernel string
	// ModulesRoot is the directory holding lib/modules/<release> with
	// modules.dep (.cache/vm/modules). It is copied whole into the
	// initramfs so that modprobe, rmmod and insmod work inside the VM.
	ModulesRoot string
	// KernelRelease, e.g. "6.1.0-56-amd64". Default: the only directory in
	// ModulesRoot/lib/modules.
	KernelRelease string
	// TestBinary is a statically linked test binary (CGO_ENABLED=0 go test -c).
	TestBinary string
	// Modules are loaded in order, each after its dependencies.
	Modules []Module
	// Args are passed to the test binary, e.g. "-test.v", "-test.run=^TestVM".
	// Unless Args has a -test.timeout, one shorter than Timeout is added so
	// that a hung test prints its goroutines before qemu is killed.
	Args []string
	// Files are extra files to put into the VM: guest path -> host path.
	Files map[string]string
	// Timeout bounds the whole VM run. Default 2 minutes.
	Timeout time.Duration
	// Memory for the VM, qemu -m syntax. Default "1G".
	Memory string
	// CPUs for the VM. Default 2.
	CPUs int
	// Busybox is the static busybox binary. Default /bin/busybox
	// (Debian's busybox-static).
	Busybox string
	// QEMU is the qemu-system-x86_64 binary. Default from $PATH.
	QEMU string
	// Log, when set, receives every serial console line as it arrives.
	Log func(line string)
}

// Output is what a VM run printed and how it ended.
type Output struct {
	// Serial is the whole serial console output (kernel and test binary).
	Serial string
	// ExitCode is the test binary's exit status from the marker line, or
	// -1 when the marker is absent.
	ExitCode int
	// Duration is the wall time from starting qemu until it exited.
	Duration time.Duration
	// Initramfs is the size of the compressed initramfs in bytes.
	Initramfs int
}

// ParamsEnv is the environment variable in which /init passes a module's
// parameters (space-separated) to the test binary, e.g.
// GLINT_VMTEST_PARAMS_v4l2loopback for "v4l2loopback".
func ParamsEnv(module string) string {
	return "GLINT_VMTEST_PARAMS_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, module)
}

// Artefacts are the prepared kernel files under .cache/vm.
type Artefacts struct {
	Kernel        string
	ModulesRoot   string
	KernelRelease string
	// Versions is the content of versions.txt (package=version lines).
	Versions string
}

// LoadArtefacts finds what scripts/vm-kernel.sh prepared in dir
// (<module root>/.cache/vm) and checks that it is complete.
func LoadArtefacts(dir string) (Artefacts, error) {
	hint := "run scripts/vm-kernel.sh (part of make deps)"
	raw, err := os.ReadFile(filepath.Join(dir, "versions.txt"))
	if err != nil {
		return Artefacts{}, fmt.Errorf("%w: %v: %s", ErrArtefacts, err, hint)
	}
	a := Artefacts{
		Kernel:      filepath.Join(dir, "vmlinuz"),
		ModulesRoot: filepath.Join(dir, "modules"),
		Versions:    string(raw),
	}
	for _, line := range strings.Split(a.Versions, "\n") {
		if v, ok := strings.CutPrefix(line, "kernel_release="); ok {
			a.KernelRelease = strings.TrimSpace(v)
		}
	}
	if a.KernelRelease == "" {
		return Artefacts{}, fmt.Errorf("%w: no kernel_release in %s: %s", ErrArtefacts, filepath.Join(dir, "versions.txt"), hint)
	}
	for _, p := range []string{
		a.Kernel,
		filepath.Join(a.ModulesRoot, "lib", "modules", a.KernelRelease, "modules.dep"),
	} {
		if _, err := os.Stat(p); err != nil {
			return Artefacts{}, fmt.Errorf("%w: %v: %s", ErrArtefacts, err, hint)
		}
	}
	return a, nil
}

// Run boots the VM described by cfg, streams its serial console to cfg.Log
// and returns what it printed. The error is nil only when the marker line
// reports exit status 0.
func Run(ctx context.Context, cfg Config) (Output, error) {
	out := Output{ExitCode: -1}
	if err := cfg.defaults(); err != nil {
		return out, err
	}
	tmp, err := os.MkdirTemp("", "glint-vmtest-")
	if err != nil {
		return out, fmt.Errorf("vmtest: temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	initrd := filepath.Join(tmp, "initramfs.cpio.gz")
	size, err := buildInitramfs(ctx, cfg, initrd)
	if err != nil {
		return out, err
	}
	out.Initramfs = size

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cfg.QEMU,
		"-accel", "tcg", // always TCG: same behaviour on every machine, KVM or not
		"-m", cfg.Memory,
		"-smp", strconv.Itoa(cfg.CPUs),
		"-nographic", "-nodefaults", "-no-reboot",
		"-serial", "stdio", "-monitor", "none",
		"-nic", "none",
		"-kernel", cfg.Kernel,
		"-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet loglevel=4",
	)
	cmd.Stdin = nil
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return out, fmt.Errorf("vmtest: qemu stdout: %w", err)
	}
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return out, fmt.Errorf("vmtest: start %s: %w", cfg.QEMU, err)
	}
	// Read the console until qemu exits (or is killed at the deadline),
	// then Wait: StdoutPipe's reader must be drained before Wait.
	var serial strings.Builder
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := cleanLine(sc.Text())
		serial.WriteString(line)
		serial.WriteByte('\n')
		if cfg.Log != nil {
			cfg.Log(line)
		}
	}
	// An over-long line stops the scanner: drain the rest so qemu never
	// blocks on a full pipe.
	_, _ = io.Copy(io.Discard, stdout)
	waitErr := cmd.Wait()
	out.Duration = time.Since(start)
	out.Serial = serial.String()
	out.ExitCode = exitCode(out.Serial)

	switch {
	case ctx.Err() != nil && out.ExitCode < 0:
		return out, fmt.Errorf("%w after %v (%v): last output:\n%s", ErrTimeout, cfg.Timeout, ctx.Err(), tail(out.Serial, 20))
	case waitErr != nil && out.ExitCode < 0:
		return out, fmt.Errorf("vmtest: qemu: %w: %s: last output:\n%s", waitErr, strings.TrimSpace(stderr.String()), tail(out.Serial, 20))
	case out.ExitCode < 0:
		return out, fmt.Errorf("%w: the VM stopped without %q: last output:\n%s", ErrNoMarker, Marker, tail(out.Serial, 20))
	case out.ExitCode == exitSetupFailed:
		return out, fmt.Errorf("%w: /init setup failed (status %d): last output:\n%s", ErrTestFailed, out.ExitCode, tail(out.Serial, 20))
	case out.ExitCode != 0:
		return out, fmt.Errorf("%w: exit status %d", ErrTestFailed, out.ExitCode)
	}
	return out, nil
}

func (cfg *Config) defaults() error {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Memory == "" {
		cfg.Memory = "1G"
	}
	if cfg.CPUs <= 0 {
		cfg.CPUs = 2
	}
	if cfg.Busybox == "" {
		cfg.Busybox = "/bin/busybox"
	}
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
	}
	q, err := exec.LookPath(cfg.QEMU)
	if err != nil {
		return fmt.Errorf("%w: %s: %v (Debian package qemu-system-x86)", ErrArtefacts, cfg.QEMU, err)
	}
	cfg.QEMU = q
	if cfg.KernelRelease == "" {
		ents, err := os.ReadDir(filepath.Join(cfg.ModulesRoot, "lib", "modules"))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrArtefacts, err)
		}
		if len(ents) != 1 {
			return fmt.Errorf("%w: want exactly one kernel release in %s, found %d", ErrArtefacts, cfg.ModulesRoot, len(ents))
		}
		cfg.KernelRelease = ents[0].Name()
	}
	for what, p := range map[string]string{
		"kernel":                   cfg.Kernel,
		"busybox (busybox-static)": cfg.Busybox,
		"test binary":              cfg.TestBinary,
		"modules.dep":              filepath.Join(cfg.ModulesRoot, "lib", "modules", cfg.KernelRelease, "modules.dep"),
	} {
		if p == "" {
			return fmt.Errorf("%w: no %s configured", ErrArtefacts, what)
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrArtefacts, what, err)
		}
	}
	hasTimeout := false
	for _, a := range cfg.Args {
		if strings.HasPrefix(strings.TrimLeft(a, "-"), "test.timeout") {
			hasTimeout = true
		}
	}
	if !hasTimeout && cfg.Timeout > 40*time.Second {
		cfg.Args = append(cfg.Args, "-test.timeout="+(cfg.Timeout-20*time.Second).String())
	}
	return nil
}

var escapeRE = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])`)

// cleanLine drops the terminal escapes (SeaBIOS clears the screen) and other
// control characters from a console line.
func cleanLine(s string) string {
	s = escapeRE.ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

var markerRE = regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(Marker) + `(\d+)$`)

// exitCode returns the status on the last marker line of serial, or -1.
func exitCode(serial string) int {
	m := markerRE.FindAllStringSubmatch(serial, -1)
	if len(m) == 0 {
		return -1
	}
	n, err := strconv.Atoi(m[len(m)-1][1])
	if err != nil {
		return -1
	}
	return n
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// loadOrder resolves cfg.Modules to insmod command lines (guest paths, each
// module once, dependencies first) with the host's modprobe --show-depends
// against cfg.ModulesRoot. -C /dev/null keeps the host's modprobe.d out.
func loadOrder(ctx context.Context, cfg Config) ([]string, error) {
	modDir := filepath.Join(cfg.ModulesRoot, "lib", "modules", cfg.KernelRelease) + "/"
	seen := map[string]bool{}
	var cmds []string
	for _, m := range cfg.Modules {
		c := exec.CommandContext(ctx, "modprobe", "-C", "/dev/null", "-d", cfg.ModulesRoot,
			"-S", cfg.KernelRelease, "--show-depends", m.Name)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		raw, err := c.Output()
		if err != nil {
			return nil, fmt.Errorf("vmtest: modprobe --show-depends %s in %s: %w: %s", m.Name, cfg.ModulesRoot, err, strings.TrimSpace(stderr.String()))
		}
		var paths []string
		for _, line := range strings.Split(string(raw), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "insmod" {
				continue // "builtin x" lines: nothing to load
			}
			rel, ok := strings.CutPrefix(f[1], modDir)
			if !ok {
				return nil, fmt.Errorf("vmtest: modprobe --show-depends %s: module %s outside %s", m.Name, f[1], modDir)
			}
			paths = append(paths, path.Join("/lib/modules", cfg.KernelRelease, rel))
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("vmtest: module %s: nothing to load (built in?)", m.Name)
		}
		for i, p := range paths {
			if seen[p] {
				continue
			}
			seen[p] = true
			words := []string{"insmod", p}
			if i == len(paths)-1 {
				words = append(words, m.Params...)
			}
			cmds = append(cmds, shellJoin(words))
		}
	}
	return cmds, nil
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./,:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	return strings.Join(q, " ")
}

// initScript is /init: the VM's whole userspace.
func initScript(cfg Config, insmods []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `#!/bin/sh
# /init generated by internal/vmtest.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/tmp TMPDIR=/tmp GLINT_VMTEST=1
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
setup_failed() {
	echo "GLINT-VMTEST: setup failed: $*"
	echo "%s%d"
	poweroff -f
}
echo "GLINT-VMTEST: kernel $(uname -r), $(nproc) cpus"
`, Marker, exitSetupFailed)
	// Tests reload modules with the same parameters (see
	// capture/vm_helpers_test.go vmReload): GLINT_VMTEST_PARAMS_<module>.
	for _, m := range cfg.Modules {
		fmt.Fprintf(&b, "export %s=%s\n", ParamsEnv(m.Name), shellQuote(strings.Join(m.Params, " ")))
	}
	for _, c := range insmods {
		fmt.Fprintf(&b, "%s || setup_failed %s\n", c, shellQuote(c))
	}
	fmt.Fprintf(&b, `echo "GLINT-VMTEST: modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
echo "GLINT-VMTEST: video devices: $(ls /dev/video* 2>/dev/null | tr '\n' ' ')"
cd %s
%s
rc=$?
echo
echo "%s$rc"
sync
poweroff -f
`, guestWorkDir, shellJoin(append([]string{guestBinary}, cfg.Args...)), Marker)
	return b.String()
}

// buildInitramfs writes the gzip'd cpio to dst and returns its size.
func buildInitramfs(ctx context.Context, cfg Config, dst string) (int, error) {
	insmods, err := loadOrder(ctx, cfg)
	if err != nil {
		return 0, err
	}
	applets, err := exec.CommandContext(ctx, cfg.Busybox, "--list-full").Output()
	if err != nil {
		return 0, fmt.Errorf("vmtest: %s --list-full: %w", cfg.Busybox, err)
	}

	f, err := os.Create(dst)
	if err != nil {
		return 0, fmt.Errorf("vmtest: create initramfs: %w", err)
	}
	defer f.Close()
	w := newCPIOWriter(f)
	for _, d := range []string{"dev", "proc", "sys", "tmp", "bin", "sbin", "usr/bin", "usr/sbin", guestWorkDir} {
		w.mkdirAll(d)
	}
	w.charDev("dev/console", 0o600, 5, 1)
	if err := w.copyFile("bin/busybox", cfg.Busybox); err != nil {
		return 0, err
	}
	for _, a := range strings.Fields(string(applets)) {
		a = strings.Trim(path.Clean(a), "/")
		if a == "bin/busybox" || a == "init" || strings.Contains(a, "..") {
			continue
		}
		w.symlink(a, "/bin/busybox")
	}
	// The module tree, for /init's insmod and the tests' modprobe/rmmod.
	err = filepath.WalkDir(cfg.ModulesRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(cfg.ModulesRoot, p)
		if err != nil {
			return err
		}
		switch {
		case rel == ".":
			return nil
		case d.IsDir():
			w.mkdirAll(filepath.ToSlash(rel))
			return nil
		case d.Type().IsRegular():
			return w.copyFile(filepath.ToSlash(rel), p)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("vmtest: add modules from %s: %w", cfg.ModulesRoot, err)
	}
	for guest, host := range cfg.Files {
		if err := w.copyFile(guest, host); err != nil {
			return 0, err
		}
	}
	if err := w.copyFile(guestBinary, cfg.TestBinary); err != nil {
		return 0, err
	}
	w.file("init", 0o755, []byte(initScript(cfg, insmods)))
	if err := w.close(); err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("vmtest: close initramfs: %w", err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return 0, fmt.Errorf("vmtest: stat initramfs: %w", err)
	}
	return int(fi.Size()), nil
}
