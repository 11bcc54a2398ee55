package flashmark

import (
	"context"
	"time"
)

// Display is a screen that can flood the kiosk with one colour: the
// framebuffer, the kiosk page, or the simulator's screen. The analysis needs
// when a colour really reached the panel, not when it was asked for, because
// compositors and panels add one to three frames of latency.
type Display interface {
	// Show asks for c to fill the screen from the next possible refresh and
	// reports when it was (or, on a simulated display, will be) presented.
	// A backend that learns the presentation time only after the flip blocks
	// until then.
	Show(ctx context.Context, c RGB) (Presentation, error)
}

// Presentation says when a colour reached the screen, on the
// CLOCK_MONOTONIC timeline that capture.Frame timestamps use.
type Presentation struct {
	// Color is the colour shown.
	Color RGB
	// Requested is when Show was called.
	Requested time.Duration
	// Presented is the start of the first refresh (vsync) that scans the
	// colour out.
	Presented time.Duration
}

// Latency is the delay between asking for the colour and its presentation.
func (p Presentation) Latency() time.Duration { return p.Presented - p.Requested }
