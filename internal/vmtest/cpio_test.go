package vmtest

import (
	"bytes"
	"compress/gzip"
	"io"
	"strconv"
	"strings"
	"testing"
)

type cpioEntry struct {
	name         string
	mode         uint32
	data         string
	major, minor uint32
}

// readCPIO parses a gzip'd newc archive (what the kernel's unpacker reads).
func readCPIO(t *testing.T, gz []byte) []cpioEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	var out []cpioEntry
	for off := 0; ; {
		if len(raw)-off < 110 || string(raw[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d", off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(raw[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("header field %d at %d: %v", i, off, err)
			}
			return uint32(v)
		}
		mode, size, namesize := field(1), int(field(6)), int(field(11))
		name := string(raw[off+110 : off+110+namesize-1])
		dataOff := align(off + 110 + namesize)
		e := cpioEntry{name: name, mode: mode, data: string(raw[dataOff : dataOff+size]), major: field(9), minor: field(10)}
		off = align(dataOff + size)
		if name == "TRAILER!!!" {
			if strings.Trim(string(raw[off:]), "\x00") != "" {
				t.Fatalf("data after trailer")
			}
			return out
		}
		out = append(out, e)
	}
}

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	w.charDev("dev/console", 0o600, 5, 1)
	w.file("/a/b/c.txt", 0o644, []byte("hello"))
	w.symlink("bin/sh", "/bin/busybox")
	w.file("init", 0o755, []byte("#!/bin/sh\n"))
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	got := readCPIO(t, buf.Bytes())
	want := []cpioEntry{
		{name: "dev", mode: modeDir | 0o755},
		{name: "dev/console", mode: modeCharDev | 0o600, major: 5, minor: 1},
		{name: "a", mode: modeDir | 0o755},
		{name: "a/b", mode: modeDir | 0o755},
		{name: "a/b/c.txt", mode: modeFile | 0o644, data: "hello"},
		{name: "bin", mode: modeDir | 0o755},
		{name: "bin/sh", mode: modeSymlink | 0o777, data: "/bin/busybox"},
		{name: "init", mode: modeFile | 0o755, data: "#!/bin/sh\n"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestInitScript(t *testing.T) {
	s := initScript(Config{Args: []string{"-test.run=^TestVM", "it's"},
		Modules: []Module{{Name: "vivid", Params: []string{"n_devs=1", "node_types=0x1"}}, {Name: "v4l2-x"}}},
		[]string{"insmod /lib/modules/r/mc.ko", "insmod /lib/modules/r/vivid.ko n_devs=1"})
	for _, want := range []string{
		"mount -t devtmpfs devtmpfs /dev\n",
		"export GLINT_VMTEST_PARAMS_vivid='n_devs=1 node_types=0x1'\n",
		"export GLINT_VMTEST_PARAMS_v4l2_x=''\n",
		"insmod /lib/modules/r/mc.ko || setup_failed 'insmod /lib/modules/r/mc.ko'\n",
		"insmod /lib/modules/r/vivid.ko n_devs=1 || setup_failed",
		"/work/vm.test '-test.run=^TestVM' 'it'\\''s'\n",
		`echo "GLINT-VMTEST-EXIT=$rc"`,
		"poweroff -f\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("init script lacks %q:\n%s", want, s)
		}
	}
}
