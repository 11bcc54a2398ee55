package linuxsys

import (
	"errors"
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestMonotonicAdvances(t *testing.T) {
	a := Monotonic()
	time.Sleep(2 * time.Millisecond)
	b := Monotonic()
	if a <= 0 || b <= a {
		t.Fatalf("monotonic %v then %v", a, b)
	}
}

func TestIoctlReturnsErrno(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var v uint32
	// VIDIOC_QUERYCAP on a regular file: the kernel answers ENOTTY.
	err = Ioctl(f.Fd(), 0x80685600, unsafe.Pointer(&v))
	if !errors.Is(err, unix.ENOTTY) {
		t.Fatalf("err = %v, want ENOTTY", err)
	}
}
