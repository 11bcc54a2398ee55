package vmtest

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// cpio mode bits (see cpio(5), "new ASCII" format).
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// cpioWriter writes a gzip-compressed cpio archive in the newc format the
// kernel's initramfs unpacker reads. Parent directories are added on demand
// so that every entry's directory precedes it.
type cpioWriter struct {
	gz   *gzip.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{gz: gzip.NewWriter(w), ino: 1, dirs: map[string]bool{"": true, ".": true}}
}

// header writes one entry header and its name. name is relative ("bin/sh").
func (c *cpioWriter) header(name string, mode uint32, size int, rdevMajor, rdevMinor uint32) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr + name + "\x00"))
	c.pad(len(hdr) + len(name) + 1)
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	_, c.err = c.gz.Write(b)
}

// pad writes the zero bytes that align n written bytes to 4.
func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// mkdirAll adds dir and its missing parents.
func (c *cpioWriter) mkdirAll(dir string) {
	dir = strings.Trim(path.Clean(dir), "/")
	if c.dirs[dir] {
		return
	}
	c.mkdirAll(path.Dir(dir))
	c.header(dir, modeDir|0o755, 0, 0, 0)
	c.dirs[dir] = true
}

// file adds a regular file with the given contents.
func (c *cpioWriter) file(name string, perm uint32, data []byte) {
	name = strings.Trim(path.Clean(name), "/")
	c.mkdirAll(path.Dir(name))
	c.header(name, modeFile|perm, len(data), 0, 0)
	c.write(data)
	c.pad(len(data))
}

// copyFile adds the host file src as name, keeping its permission bits.
func (c *cpioWriter) copyFile(name, src string) error {
	if c.err != nil {
		return c.err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("initramfs: read %s: %w", src, err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("initramfs: stat %s: %w", src, err)
	}
	c.file(name, uint32(fi.Mode().Perm()), data)
	return c.err
}

// symlink adds name pointing at target.
func (c *cpioWriter) symlink(name, target string) {
	name = strings.Trim(path.Clean(name), "/")
	c.mkdirAll(path.Dir(name))
	c.header(name, modeSymlink|0o777, len(target), 0, 0)
	c.write([]byte(target))
	c.pad(len(target))
}

// charDev adds a character device node.
func (c *cpioWriter) charDev(name string, perm, major, minor uint32) {
	name = strings.Trim(path.Clean(name), "/")
	c.mkdirAll(path.Dir(name))
	c.header(name, modeCharDev|perm, 0, major, minor)
}

// close writes the trailer and flushes the gzip stream.
func (c *cpioWriter) close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	if c.err != nil {
		return fmt.Errorf("initramfs: write: %w", c.err)
	}
	if err := c.gz.Close(); err != nil {
		return fmt.Errorf("initramfs: gzip: %w", err)
	}
	return nil
}
