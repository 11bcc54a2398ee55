package device_test

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/sim"
)

// testFace writes a synthetic portrait (a skin-toned oval on a grey
// background, with a sidecar face box) and loads it as a simulator face.
func testFace(t *testing.T) *sim.Face {
	t.Helper()
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 240, 300))
	for y := range 300 {
		for x := range 240 {
			dx, dy := float64(x-120)/70, float64(y-150)/95
			c := color.RGBA{110, 115, 120, 255}
			if dx*dx+dy*dy <= 1 {
				c = color.RGBA{205, 160, 135, 255}
			}
			img.Set(x, y, c)
		}
	}
	p := filepath.Join(dir, "face.png")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(p+".face.json", []byte(`{"faces":[[50,55,140,190]]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	faces, err := sim.LoadFace(p)
	if err != nil {
		t.Fatal(err)
	}
	return faces[0]
}

func attempt(t *testing.T) *sim.Attempt {
	t.Helper()
	a, err := sim.NewAttempt(testFace(t), sim.DefaultParams(), sim.NewVirtualClock(0), 7)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func gpioBoard(t *testing.T, tamperOpen bool) (*device.GPIO, *gpiotest.Pin, *gpiotest.Pin) {
	t.Helper()
	relay := &gpiotest.Pin{N: "RELAY", Num: 1}
	tamper := &gpiotest.Pin{N: "TAMPER", Num: 2, EdgesChan: make(chan gpio.Level, 4)}
	pins := map[string]gpio.PinIO{"RELAY": relay, "TAMPER": tamper}
	g, err := device.NewGPIO(device.GPIOConfig{Relay: "RELAY", Tamper: "TAMPER", RelayPulse: 30e6}, func(n string) gpio.PinIO { return pins[n] })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	// NewGPIO's pull-up reads high (open) and latches; a closed switch
	// pulls the input low and the technician clears the latch.
	if !tamperOpen {
		tamper.Out(gpio.Low)
		if err := g.ClearTamper(); err != nil {
			t.Fatal(err)
		}
	}
	return g, relay, tamper
}

func byName(checks []device.CheckResult) map[string]device.CheckResult {
	m := map[string]device.CheckResult{}
	for _, c := range checks {
		m[c.Name] = c
	}
	return m
}

// TestSelfTestSimulator: the simulator's camera looking at a face lit by
// the simulator's kiosk screen passes the camera and flash checks; the
// relay (periph gpiotest) pulses and is left inactive; a closed tamper
// switch passes.
func TestSelfTestSimulator(t *testing.T) {
	a := attempt(t)
	g, relay, _ := gpioBoard(t, false)
	checks := device.RunSelfTest(context.Background(), device.SelfTestConfig{Camera: a.Camera, Display: a.Display, GPIO: g})
	m := byName(checks)
	for _, name := range []string{"camera", "flash", "relay", "tamper"} {
		c := m[name]
		t.Logf("%-7s %-5s %s %v", name, c.Status, c.Detail, c.Measurements)
		if c.Status != device.CheckPass {
			t.Errorf("%s: %s (%s)", name, c.Status, c.Detail)
		}
	}
	if !device.Passed(checks) {
		t.Fatal("not passed")
	}
	if m["flash"].Measurements["red_response"] < 0.004 || m["flash"].Measurements["blue_response"] < 0.004 {
		t.Fatalf("flash response %v", m["flash"].Measurements)
	}
	if relay.Read() != gpio.Low {
		t.Fatal("relay left active")
	}
	if a.Display.ColorAt(a.Clock.Now()+timeVSyncs) != flashmark.IdleColor() {
		t.Fatal("display not back to the idle colour")
	}
	rep := device.SelfTestReport{DeviceID: "d", Passed: true, Checks: checks}
	if s := rep.Summary(); !strings.Contains(s, "PASSED") || !strings.Contains(s, "flash") {
		t.Fatalf("summary:\n%s", s)
	}
}

// timeVSyncs is later than the last Show reaches the simulated screen.
const timeVSyncs = 200 * time.Millisecond

// TestSelfTestFailures: a display the camera cannot see (another screen)
// gives no reflection; an open enclosure fails the tamper check; nothing
// configured is "not configured", which does not fail.
func TestSelfTestFailures(t *testing.T) {
	a := attempt(t)
	other, err := sim.NewDisplay(sim.DisplayConfig{LatencyFrames: 1}, a.Clock, flashmark.IdleColor())
	if err != nil {
		t.Fatal(err)
	}
	g, _, _ := gpioBoard(t, true)
	checks := device.RunSelfTest(context.Background(), device.SelfTestConfig{Camera: a.Camera, Display: other, GPIO: g})
	m := byName(checks)
	if m["camera"].Status != device.CheckPass || m["flash"].Status != device.CheckFail || m["tamper"].Status != device.CheckFail || m["relay"].Status != device.CheckPass {
		t.Fatalf("%+v", checks)
	}
	t.Logf("flash: %s", m["flash"].Detail)
	t.Logf("tamper: %s", m["tamper"].Detail)
	if device.Passed(checks) {
		t.Fatal("passed with failures")
	}
	none := device.RunSelfTest(context.Background(), device.SelfTestConfig{})
	for _, c := range none {
		if c.Status != device.CheckNotConfigured {
			t.Fatalf("%+v", c)
		}
	}
	if !device.Passed(none) {
		t.Fatal("not configured failed")
	}
}
