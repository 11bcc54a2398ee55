// Package linuxsys holds the two raw Linux interfaces glint's device code
// shares: ioctl with EINTR retry, and CLOCK_MONOTONIC, the timeline that
// V4L2 buffer timestamps, display presentation times and every other
// capture-side timestamp use.
package linuxsys

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ioctl issues an ioctl, retrying when a signal interrupts it. The error is
// the unix.Errno the kernel returned.
func Ioctl(fd uintptr, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// Monotonic reads CLOCK_MONOTONIC through the system call (the kernel's own
// clock, the one drivers stamp buffers with).
func Monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
