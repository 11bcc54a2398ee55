package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// tool finds a systemd tool, failing (not skipping) when it is missing:
// these checks are the point of `make test-systemd`, and `make deps`
// installs the systemd package.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (install Debian's systemd package, e.g. via make deps): %v", name, err)
	}
	return p
}

// stubCopy writes a copy of unit into a temporary directory with its
// ExecStart binary replaced by a stub script: systemd-analyze insists that
// the binary exists and is executable, and the real one is not installed
// here. It returns the copy's path.
func stubCopy(t *testing.T, name string, content []byte) string {
	t.Helper()
	dir := t.TempDir()
	var out bytes.Buffer
	replaced := 0
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "ExecStart=/usr/bin/"); ok {
			bin, args, _ := strings.Cut(rest, " ")
			stub := filepath.Join(dir, bin)
			if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			line = "ExecStart=" + stub + " " + args
			replaced++
		}
		// ExecStopPost runs the same binary; "-" ignores its failure.
		if rest, ok := strings.CutPrefix(line, "ExecStopPost=-/usr/bin/"); ok {
			bin, args, _ := strings.Cut(rest, " ")
			line = "ExecStopPost=-" + filepath.Join(dir, bin) + " " + args
		}
		out.WriteString(line + "\n")
	}
	if replaced != 1 {
		t.Fatalf("%s: want exactly one ExecStart=/usr/bin/…, found %d", name, replaced)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// verifyUnit runs systemd-analyze verify on a stub copy of unit and returns
// the lines of output about the unit, and an error when the tool failed.
func verifyUnit(t *testing.T, name string, content []byte) ([]string, error) {
	t.Helper()
	path := stubCopy(t, name, content)
	cmd := exec.Command(tool(t, "systemd-analyze"), "verify", "--man=no", path)
	combined, err := cmd.CombinedOutput()
	// Warnings about the host's own units are not ours to fix; any line
	// naming our unit is.
	var ours []string
	for _, l := range strings.Split(string(combined), "\n") {
		if strings.Contains(l, name) {
			ours = append(ours, l)
		}
	}
	return ours, err
}

var units = []string{"glintd.service", "glint-hub.service"}

func TestUnitsVerify(t *testing.T) {
	for _, name := range units {
		t.Run(name, func(t *testing.T) {
			content, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			warnings, err := verifyUnit(t, name, content)
			if err != nil || len(warnings) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, strings.Join(warnings, "\n"))
			}
		})
	}
}

// maxExposure is the highest `systemd-analyze security` exposure accepted,
// in tenths (25 = 2.5 on its 0–10 scale, "OK"); both units score below 2.
const maxExposure = 25

func TestUnitsSecurityExposure(t *testing.T) {
	for _, name := range units {
		content, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(tool(t, "systemd-analyze"), "security", "--offline=yes", "--no-pager",
			"--threshold="+strconv.Itoa(maxExposure), stubCopy(t, name, content))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: exposure above %d.%d or analysis failed: %v\n%s", name, maxExposure/10, maxExposure%10, err, out)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Logf("%s: %s", name, lines[len(lines)-1])
	}
}

// TestVerifyCatchesMistakes makes sure the check above can fail: a typo in
// a directive and a bad value must both be reported.
func TestVerifyCatchesMistakes(t *testing.T) {
	content, err := os.ReadFile("glintd.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ from, to string }{
		{"ProtectSystem=strict", "ProtectSystm=strict"},
		{"WatchdogSec=30s", "WatchdogSec=thirty"},
		{"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "RestrictAddressFamilies=AF_BOGUS"},
	} {
		bad := bytes.Replace(content, []byte(tt.from), []byte(tt.to), 1)
		if bytes.Equal(bad, content) {
			t.Fatalf("%q not in glintd.service", tt.from)
		}
		warnings, err := verifyUnit(t, "glintd.service", bad)
		if err == nil && len(warnings) == 0 {
			t.Errorf("%s: not reported", tt.to)
		}
	}
}

// directives parses a unit's Key=Value lines (repeated keys kept in order).
func directives(t *testing.T, name string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "[") {
			continue
		}
		k, v, _ := strings.Cut(l, "=")
		m[k] = append(m[k], v)
	}
	return m
}

// TestUnitPolicy pins the settings the daemons rely on and the hardening,
// so that an edit cannot drop them silently.
func TestUnitPolicy(t *testing.T) {
	common := map[string]string{
		"Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30s", "Restart": "on-failure",
		"RestartPreventExitStatus": "2", "DevicePolicy": "closed", "CapabilityBoundingSet": "",
		"AmbientCapabilities": "", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"ProtectHome": "yes", "PrivateTmp": "yes", "ProtectKernelTunables": "yes",
		"ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "RestrictNamespaces": "yes",
		"LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
		"SystemCallFilter": "@system-service|~@privileged @resources", "SystemCallArchitectures": "native",
	}
	specific := map[string]map[string]string{
		"glintd.service": {
			"User": "glint", "Group": "glint", "SupplementaryGroups": "video",
			"StateDirectory": "glint", "RuntimeDirectory": "glint",
			"ExecStart":       "/usr/bin/glintd --config /etc/glint/glintd.yaml",
			"DeviceAllow":     "char-video4linux rw|char-fb rw|char-gpiochip rw|/dev/tpmrm0 rw",
			"ExecStopPost":    "-/usr/bin/glintd gpio safe --config /etc/glint/glintd.yaml",
			"EnvironmentFile": "-/var/lib/glint/sync.env",
		},
		"glint-hub.service": {
			"User": "glint-hub", "Group": "glint-hub", "StateDirectory": "glint-hub",
			"RuntimeDirectory": "glint-hub", "PrivateDevices": "yes",
			"ExecStart": "/usr/bin/glint-hub --config /etc/glint-hub/glint-hub.yaml",
		},
	}
	for _, name := range units {
		d := directives(t, name)
		want := map[string]string{}
		for k, v := range common {
			want[k] = v
		}
		for k, v := range specific[name] {
			want[k] = v
		}
		for k, v := range want {
			if got := strings.Join(d[k], "|"); got != v {
				t.Errorf("%s: %s=%q, want %q", name, k, got, v)
			}
		}
	}
	if _, ok := directives(t, "glint-hub.service")["DeviceAllow"]; ok {
		t.Error("glint-hub.service must not allow devices")
	}
}

// readIDs parses an /etc/passwd or /etc/group file: name → fields.
func readIDs(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(l, ":")
		m[f[0]] = f
	}
	return m
}

// TestSysusersAndTmpfiles applies both files to an empty root directory
// with the real tools and checks the result.
func TestSysusersAndTmpfiles(t *testing.T) {
	sysusers, tmpfiles := tool(t, "systemd-sysusers"), tool(t, "systemd-tmpfiles")
	if os.Geteuid() != 0 {
		t.Skip("needs root: systemd-tmpfiles chowns in the test root")
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	abs := func(f string) string {
		p, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Both tools report progress on stderr; problems are "file:line: …".
	run := func(bin, conf string, args ...string) {
		t.Helper()
		var stderr bytes.Buffer
		cmd := exec.Command(bin, append(args, conf)...)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || strings.Contains(stderr.String(), conf) {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), conf, err, stderr.String())
		}
	}
	run(sysusers, abs("glint.sysusers.conf"), "--root="+root)
	passwd := readIDs(t, filepath.Join(root, "etc/passwd"))
	group := readIDs(t, filepath.Join(root, "etc/group"))
	for _, u := range []string{"glint", "glint-hub"} {
		f, ok := passwd[u]
		if !ok || len(f) < 7 || f[5] != "/var/lib/"+u || !strings.HasSuffix(f[6], "nologin") {
			t.Errorf("user %s: %q", u, f)
		}
		if _, ok := group[u]; !ok {
			t.Errorf("group %s missing", u)
		}
	}
	if v := group["video"]; len(v) < 4 || v[3] != "glint" {
		t.Errorf("video group members %q, want glint", v)
	}

	run(tmpfiles, abs("glint.tmpfiles.conf"), "--root="+root, "--create")
	for dir, grp := range map[string]string{"etc/glint": "glint", "etc/glint-hub": "glint-hub"} {
		fi, err := os.Stat(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		gid, _ := strconv.Atoi(group[grp][2])
		if fi.Mode().Perm() != 0o750 || st.Uid != 0 || int(st.Gid) != gid {
			t.Errorf("/%s: mode %v uid %d gid %d, want 0750 root %s (%d)", dir, fi.Mode().Perm(), st.Uid, st.Gid, grp, gid)
		}
	}
}

// TestToolsRejectGarbage makes sure the tools report malformed entries,
// i.e. that the test above would catch them.
func TestToolsRejectGarbage(t *testing.T) {
	sysusers := tool(t, "systemd-sysusers")
	bad := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(bad, []byte("u glint notanid\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(sysusers, "--dry-run", "--root="+t.TempDir(), bad)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil && stderr.Len() == 0 {
		t.Error("systemd-sysusers accepted a malformed entry silently")
	}
	badT := filepath.Join(t.TempDir(), "bad-tmpfiles.conf")
	if err := os.WriteFile(badT, []byte("d /etc/glint 07z0 root root -\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(tool(t, "systemd-tmpfiles"), "--root="+t.TempDir(), "--create", badT)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Invalid mode") {
		t.Errorf("systemd-tmpfiles accepted a bad mode: %v %s", err, out)
	}
}
