package device

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/flashmark"
)

// Self-test check statuses.
const (
	CheckPass          = "pass"
	CheckFail          = "fail"
	CheckNotConfigured = "not configured"
)

// CheckResult is one self-test check.
type CheckResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	// Measurements are the figures the verdict was taken on.
	Measurements map[string]float64 `json:"measurements,omitempty"`
}

// SelfTestReport is the provisioning report: who the device is, what it
// registered as, and how each check went.
type SelfTestReport struct {
	V          int            `json:"v"`
	DeviceID   string         `json:"device_id"`
	SiteID     string         `json:"site_id"`
	KID        string         `json:"kid"`
	KeyAlg     Alg            `json:"key_alg"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt time.Time      `json:"finished_at"`
	Passed     bool           `json:"passed"`
	Checks     []CheckResult  `json:"checks"`
	Facts      *HardwareFacts `json:"facts,omitempty"`
	Guard      *ReportSummary `json:"guard,omitempty"`
}

// Summary renders the report for the technician.
func (r *SelfTestReport) Summary() string {
	var b strings.Builder
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "glint provisioning self-test: %s\n", verdict)
	fmt.Fprintf(&b, "device %s, site %s, key %s (%s)\n", r.DeviceID, r.SiteID, r.KID, r.KeyAlg)
	fmt.Fprintf(&b, "at %s (%s)\n\n", r.StartedAt.Format(time.RFC3339), r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond))
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "  %-16s %-15s %s\n", c.Name, strings.ToUpper(c.Status), c.Detail)
	}
	if r.Guard != nil {
		codes := "none"
		if len(r.Guard.Codes) > 0 {
			codes = strings.Join(r.Guard.Codes, ", ")
		}
		fmt.Fprintf(&b, "\ndevice guard: risk %s; signals: %s\n", r.Guard.Risk, codes)
	}
	return b.String()
}

// SelfTestConfig says what to test. A nil part is reported "not
// configured", which does not fail the test (a kiosk without a gate relay
// is normal); a configured part that does not work fails it.
type SelfTestConfig struct {
	// Camera is the capture source (closed; the test opens and closes it).
	Camera capture.Source
	// Display shows the flash colours (nil: no flash check).
	Display flashmark.Display
	// GPIO is the gate hardware. The test runs its Run loop while it
	// pulses the relay, so nothing else may be running it.
	GPIO *GPIO
	// Frames is how many frames the camera check reads (default 10) and
	// FlashFrames how many frames per colour the flash check averages
	// (default 6) once the colour is on screen.
	Frames, FlashFrames int
	// MinFlashResponse is the least change of the red and of the blue
	// chromaticity (share of R+G+B in the centre of the frame) between
	// the two flash colours that passes. Default 0.004: the simulator's
	// face at its default distance and ambient light measures about 0.009
	// (red) and 0.011 (blue), a camera that does not see the screen's
	// light measures below 0.0001.
	MinFlashResponse float64
	// Timeout bounds each check (default 60 s: a camera that delivers
	// nothing for a minute is broken; a slow one still passes).
	Timeout time.Duration
}

// The two flash colours: a red and a blue at full drive, each held for
// several frames. The sequence idle → red → blue → idle is at most one
// flash (WCAG 2.2 SC 2.3.1 allows three per second), and the red is not
// "saturated red" in WCAG's sense (R/(R+G+B) = 0.73 < 0.8).
var (
	flashA = flashmark.RGB{R: 255, G: 48, B: 48}
	flashB = flashmark.RGB{R: 48, G: 48, B: 255}
)

// RunSelfTest runs the camera, flash-reflection, relay and tamper checks.
// It never returns an error: a failing part is a failed check.
func RunSelfTest(ctx context.Context, cfg SelfTestConfig) []CheckResult {
	if cfg.Frames <= 0 {
		cfg.Frames = 10
	}
	if cfg.FlashFrames <= 0 {
		cfg.FlashFrames = 6
	}
	if cfg.MinFlashResponse <= 0 {
		cfg.MinFlashResponse = 0.004
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	var out []CheckResult
	camOK := false
	if cfg.Camera == nil {
		out = append(out, CheckResult{Name: "camera", Status: CheckNotConfigured, Detail: "no camera"})
	} else {
		cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		c := checkCamera(cctx, cfg.Camera, cfg.Frames)
		cancel()
		camOK = c.Status == CheckPass
		out = append(out, c)
	}
	switch {
	case cfg.Display == nil:
		out = append(out, CheckResult{Name: "flash", Status: CheckNotConfigured, Detail: "no display"})
	case !camOK:
		out = append(out, CheckResult{Name: "flash", Status: CheckFail, Detail: "needs a working camera"})
	default:
		cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		out = append(out, checkFlash(cctx, cfg.Camera, cfg.Display, cfg.FlashFrames, cfg.MinFlashResponse))
		cancel()
	}
	if cfg.Camera != nil {
		_ = cfg.Camera.Close()
	}
	out = append(out, checkRelay(ctx, cfg.GPIO, cfg.Timeout), checkTamper(cfg.GPIO))
	return out
}

// Passed reports whether no check failed.
func Passed(checks []CheckResult) bool {
	for _, c := range checks {
		if c.Status == CheckFail {
			return false
		}
	}
	return true
}

func checkCamera(ctx context.Context, src capture.Source, n int) CheckResult {
	r := CheckResult{Name: "camera", Status: CheckFail}
	f, err := src.Open(ctx)
	if err != nil {
		r.Detail = "open: " + err.Error()
		return r
	}
	var first, last *capture.Frame
	var level float64
	for i := range n {
		fr, err := src.ReadFrame(ctx)
		if err != nil {
			r.Detail = fmt.Sprintf("frame %d of %d: %v", i+1, n, err)
			return r
		}
		if first == nil {
			first = fr
		}
		if last != nil && fr.Seq <= last.Seq {
			r.Detail = fmt.Sprintf("frame sequence went from %d to %d", last.Seq, fr.Seq)
			return r
		}
		last = fr
		m, err := meanRGB(fr)
		if err != nil {
			r.Detail = fmt.Sprintf("frame %d: %v", i+1, err)
			return r
		}
		level = (m[0] + m[1] + m[2]) / 3
	}
	span := last.Timestamp - first.Timestamp
	fps := 0.0
	if span > 0 {
		fps = float64(n-1) / span.Seconds()
	}
	r.Measurements = map[string]float64{"frames": float64(n), "fps": fps, "mean_level": level, "width": float64(f.Width), "height": float64(f.Height)}
	if level < 1 {
		r.Detail = fmt.Sprintf("%d frames %dx%d but black (mean level %.2f): lens covered or sensor dead", n, f.Width, f.Height, level)
		return r
	}
	r.Status = CheckPass
	r.Detail = fmt.Sprintf("%d frames %dx%d %s at %.1f fps, mean level %.0f", n, f.Width, f.Height, f.PixelFormat, fps, level)
	return r
}

// checkFlash shows flashA, then flashB, and measures the chromaticity of
// the frames exposed after each colour was on screen: the scene in front
// of the kiosk (a face, or anything else within reach of the screen's
// light) must turn redder under A and bluer under B. Auto white balance
// and exposure are locked where the camera allows it, so the camera does
// not cancel the change itself.
func checkFlash(ctx context.Context, src capture.Source, disp flashmark.Display, n int, minResp float64) CheckResult {
	r := CheckResult{Name: "flash", Status: CheckFail}
	if ctl, ok := src.(capture.Controls); ok {
		_ = ctl.SetAutoWhiteBalance(false) // unsupported controls: measured anyway
		_ = ctl.SetAutoExposure(false)
		defer func() {
			_ = ctl.SetAutoExposure(true)
			_ = ctl.SetAutoWhiteBalance(true)
		}()
	}
	defer func() { _, _ = disp.Show(context.WithoutCancel(ctx), flashmark.IdleColor()) }()
	measure := func(c flashmark.RGB) ([3]float64, error) {
		p, err := disp.Show(ctx, c)
		if err != nil {
			return [3]float64{}, fmt.Errorf("show: %w", err)
		}
		var sum [3]float64
		got := 0
		for read := 0; got < n; read++ {
			if read > 10*n+30 {
				return sum, fmt.Errorf("no frame exposed after the colour was shown (%d read)", read)
			}
			f, err := src.ReadFrame(ctx)
			if err != nil {
				return sum, err
			}
			// Frames whose exposure may have begun before the colour was
			// on screen are skipped: the stamp is the end of exposure, so
			// wait one more frame period's worth of margin by taking
			// frames stamped a frame after the presentation.
			if f.Timestamp < p.Presented+50*time.Millisecond {
				continue
			}
			m, err := meanRGB(f)
			if err != nil {
				return sum, err
			}
			t := m[0] + m[1] + m[2]
			if t <= 0 {
				continue
			}
			for i := range 3 {
				sum[i] += m[i] / t
			}
			got++
		}
		for i := range 3 {
			sum[i] /= float64(n)
		}
		return sum, nil
	}
	a, err := measure(flashA)
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	b, err := measure(flashB)
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	red, blue := a[0]-b[0], b[2]-a[2]
	r.Measurements = map[string]float64{"red_response": red, "blue_response": blue, "min_response": minResp}
	if red < minResp || blue < minResp {
		r.Detail = fmt.Sprintf("no measurable reflection of the screen's light: red %+.4f, blue %+.4f (need ≥ %.3f): camera not facing the screen's side, or not seeing the scene", red, blue, minResp)
		return r
	}
	r.Status = CheckPass
	r.Detail = fmt.Sprintf("reflection of the screen measured: red %+.3f, blue %+.3f chromaticity", red, blue)
	return r
}

// meanRGB is the mean of the central half (each axis) of a frame,
// subsampled.
func meanRGB(f *capture.Frame) ([3]float64, error) {
	rgb, err := f.RGB(nil)
	if err != nil {
		return [3]float64{}, err
	}
	w, h := f.Width, f.Height
	if w <= 0 || h <= 0 || len(rgb) < w*h*3 {
		return [3]float64{}, errors.New("frame size does not match its pixels")
	}
	var s [3]float64
	n := 0
	for y := h / 4; y < 3*h/4; y += 2 {
		row := rgb[y*w*3:]
		for x := w / 4; x < 3*w/4; x += 2 {
			s[0] += float64(row[3*x])
			s[1] += float64(row[3*x+1])
			s[2] += float64(row[3*x+2])
			n++
		}
	}
	if n == 0 {
		return s, errors.New("empty frame")
	}
	for i := range 3 {
		s[i] /= float64(n)
	}
	return s, nil
}

func checkRelay(ctx context.Context, g *GPIO, timeout time.Duration) CheckResult {
	r := CheckResult{Name: "relay", Status: CheckFail}
	if g == nil || g.relay == nil {
		r.Status, r.Detail = CheckNotConfigured, "no relay pin"
		return r
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.Run(rctx) }()
	start := time.Now()
	if err := g.PulseRelay(); err != nil {
		r.Detail = err.Error()
		return r
	}
	deadline := time.After(g.cfg.RelayPulse + timeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var on, off time.Duration
	for off == 0 {
		select {
		case err := <-done:
			r.Detail = fmt.Sprintf("gpio stopped: %v", err)
			return r
		case <-deadline:
			r.Detail = "the relay pulse did not complete"
			return r
		case <-ctx.Done():
			r.Detail = ctx.Err().Error()
			return r
		case <-tick.C:
			active := g.relay.Read() == g.relayLevel(true)
			if active && on == 0 {
				on = time.Since(start)
			}
			if !active && on != 0 {
				off = time.Since(start)
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		r.Detail = err.Error()
		return r
	}
	if g.relay.Read() != g.relayLevel(false) {
		r.Detail = "the relay was not left inactive"
		return r
	}
	r.Status = CheckPass
	r.Measurements = map[string]float64{"pulse_ms": float64((off - on).Milliseconds()), "configured_ms": float64(g.cfg.RelayPulse.Milliseconds())}
	r.Detail = fmt.Sprintf("pin %s pulsed for about %d ms (configured %s) and left inactive", g.cfg.Relay, (off - on).Milliseconds(), g.cfg.RelayPulse)
	return r
}

func checkTamper(g *GPIO) CheckResult {
	r := CheckResult{Name: "tamper", Status: CheckFail}
	if g == nil || g.tamper == nil {
		r.Status, r.Detail = CheckNotConfigured, "no tamper pin"
		return r
	}
	open := g.isOpen(g.tamper.Read())
	latched, at := g.Tampered()
	switch {
	case open:
		r.Detail = fmt.Sprintf("pin %s reads the enclosure OPEN: close it", g.cfg.Tamper)
	case latched:
		r.Detail = fmt.Sprintf("pin %s reads closed, but an opening is latched since %s: clear it (glintd gpio) after checking the enclosure", g.cfg.Tamper, at.Format(time.RFC3339))
	default:
		r.Status = CheckPass
		r.Detail = fmt.Sprintf("pin %s reads the enclosure closed, nothing latched", g.cfg.Tamper)
	}
	return r
}
