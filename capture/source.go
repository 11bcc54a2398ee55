package capture

import (
	"context"
	"errors"
)

// Source produces frames from a camera, a file or a simulation.
//
// A Source is used by one goroutine at a time: Open, then ReadFrame in a loop,
// then Close. Close may be called from another goroutine to unblock a
// ReadFrame in progress.
type Source interface {
	// Open starts streaming and reports the negotiated format.
	Open(ctx context.Context) (Format, error)
	// ReadFrame blocks until the next frame is available, ctx is done, or the
	// source fails (ErrClosed once Close was called). The returned frame is owned by the caller.
	ReadFrame(ctx context.Context) (*Frame, error)
	// Close stops streaming and releases the device. It is safe to call more
	// than once, and a closed source may be opened again (the supervisor
	// reconnects that way).
	Close() error
}

// Sentinel errors callers branch on. Errors returned by sources wrap them.
var (
	// ErrDeviceLost: the device went away while open (unplug, driver unbind
	// or removal). The supervisor reconnects when the same device returns.
	ErrDeviceLost = errors.New("camera device lost")
	// ErrNoDevice: no device matched at open time.
	ErrNoDevice = errors.New("camera device not found")
	// ErrFormatUnsupported: the device offers none of the requested formats.
	ErrFormatUnsupported = errors.New("pixel format not supported by device")
	// ErrControlUnsupported: the device lacks the requested camera control.
	ErrControlUnsupported = errors.New("camera control not supported by device")
	// ErrTimeout: no frame arrived within the source's frame timeout.
	ErrTimeout = errors.New("timed out waiting for a frame")
	// ErrClosed: the source was closed.
	ErrClosed = errors.New("source closed")
	// ErrEndOfStream: a file source reached its end and does not loop.
	ErrEndOfStream = errors.New("end of stream")
)

// Controls is implemented by sources whose exposure and white balance can be
// switched between automatic and manual (the V4L2 source, the simulator).
// Liveness locks both during a challenge so that the camera does not undo the
// screen's colour flash.
type Controls interface {
	// SetAutoExposure switches auto exposure on or off.
	SetAutoExposure(on bool) error
	// SetExposure sets the manual exposure time in units of 100 µs (V4L2's
	// exposure_time_absolute).
	SetExposure(value int32) error
	// SetAutoWhiteBalance switches auto white balance on or off.
	SetAutoWhiteBalance(on bool) error
	// SetWhiteBalanceTemperature sets the manual white balance in kelvin.
	SetWhiteBalanceTemperature(kelvin int32) error
}
