package device_test

import (
	"context"
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

// testFace loads the simulator's synthetic portrait as a face.
func testFace(t *testing.T) *sim.Face {
	t.Helper()
	p := filepath.Join(t.TempDir(), "face.png")
	if err := sim.WriteSyntheticFace(p); err != nil {
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
