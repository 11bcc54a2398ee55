package capture

import (
	"time"

	"github.com/glintdev/glint/internal/linuxsys"
)

// monotonicNow reads CLOCK_MONOTONIC, the clock V4L2 stamps buffers with, so
// that driver and glint timestamps share one timeline.
func monotonicNow() time.Duration { return linuxsys.Monotonic() }
