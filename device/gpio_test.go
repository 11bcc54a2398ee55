package device

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/host/v3"
)

type fakeBoard struct {
	pins map[string]*gpiotest.Pin
}

func newFakeBoard(names ...string) *fakeBoard {
	b := &fakeBoard{pins: map[string]*gpiotest.Pin{}}
	for i, n := range names {
		b.pins[n] = &gpiotest.Pin{N: n, Num: i, EdgesChan: make(chan gpio.Level, 4)}
	}
	return b
}

func (b *fakeBoard) lookup(name string) gpio.PinIO {
	if p, ok := b.pins[name]; ok {
		return p
	}
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRelayPulseAndSafeOnStop(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		name := "active-high"
		if activeLow {
			name = "active-low"
		}
		t.Run(name, func(t *testing.T) {
			b := newFakeBoard("GPIO17")
			relay := b.pins["GPIO17"]
			inactive, active := gpio.Level(activeLow), gpio.Level(!activeLow)
			relay.Out(active) // whatever a previous run left
			g, err := NewGPIO(GPIOConfig{Relay: "GPIO17", RelayActiveLow: activeLow, RelayPulse: 30 * time.Millisecond}, b.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if relay.Read() != inactive {
				t.Fatal("relay not made safe at start")
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- g.Run(ctx) }()
			g.PulseRelay()
			waitFor(t, "relay on", func() bool { return relay.Read() == active })
			waitFor(t, "relay off after the pulse", func() bool { return relay.Read() == inactive && !g.RelayActive() })

			// Stopping in the middle of a pulse leaves it inactive.
			g.cfg.RelayPulse = time.Hour
			g.PulseRelay()
			waitFor(t, "relay on again", func() bool { return relay.Read() == active })
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if relay.Read() != inactive {
				t.Fatal("relay left active after Run stopped")
			}
			// The ExecStopPost path, in a "fresh process".
			relay.Out(active)
			if err := SafeRelay(GPIOConfig{Relay: "GPIO17", RelayActiveLow: activeLow}, b.lookup); err != nil || relay.Read() != inactive {
				t.Fatalf("SafeRelay: %v, level %v", err, relay.Read())
			}
		})
	}
}

func TestPulseRequestsNeverBlock(t *testing.T) {
	b := newFakeBoard("R")
	g, err := NewGPIO(GPIOConfig{Relay: "R"}, b.lookup)
	if err != nil {
		t.Fatal(err)
	}
	// No Run loop: requests must still return at once.
	for i := 0; i < 100; i++ {
		if err := g.PulseRelay(); err != nil {
			t.Fatal(err)
		}
	}
	none, _ := NewGPIO(GPIOConfig{}, b.lookup)
	if err := none.PulseRelay(); err == nil {
		t.Fatal("pulse without a relay accepted")
	}
}

func TestTamperLatchesUntilCleared(t *testing.T) {
	b := newFakeBoard("TAMPER")
	sw := b.pins["TAMPER"]
	// A long debounce, so that the bounce below is over well within it
	// even on a loaded machine.
	const debounce = 500 * time.Millisecond
	g, err := NewGPIO(GPIOConfig{Tamper: "TAMPER", Debounce: debounce}, b.lookup)
	if err != nil {
		t.Fatal(err)
	}
	// Pull-up and a closed switch: low. NewGPIO configured the pull-up,
	// which reads high (open) until the "switch" pulls it low.
	if tampered, _ := g.Tampered(); !tampered {
		t.Fatal("an input reading open at start must latch")
	}
	sw.Out(gpio.Low)
	if err := g.ClearTamper(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.Run(ctx)
	}()
	// A bounce shorter than the debounce is ignored.
	sw.EdgesChan <- gpio.High
	waitFor(t, "edge consumed", func() bool { return len(sw.EdgesChan) == 0 })
	sw.Out(gpio.Low)
	time.Sleep(debounce + 100*time.Millisecond)
	if tampered, _ := g.Tampered(); tampered {
		t.Fatal("a bounce latched the tamper")
	}
	// The enclosure opens and stays open.
	sw.EdgesChan <- gpio.High
	waitFor(t, "tamper latched", func() bool { tampered, _ := g.Tampered(); return tampered })
	// Closing again does not clear the latch by itself.
	sw.EdgesChan <- gpio.Low
	time.Sleep(20 * time.Millisecond)
	if tampered, at := g.Tampered(); !tampered || at.IsZero() {
		t.Fatal("latch cleared without a technician")
	}
	cancel()
	wg.Wait()
	sw.Out(gpio.High)
	if err := g.ClearTamper(); !errors.Is(err, ErrTamperStillOpen) {
		t.Fatalf("clearing while open: %v", err)
	}
	sw.Out(gpio.Low)
	if err := g.ClearTamper(); err != nil {
		t.Fatal(err)
	}
	if tampered, _ := g.Tampered(); tampered {
		t.Fatal("latch not cleared")
	}
}

func TestStatusLEDs(t *testing.T) {
	b := newFakeBoard("G", "A", "R")
	g, err := NewGPIO(GPIOConfig{LEDReady: "G", LEDBusy: "A", LEDFault: "R"}, b.lookup)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		s       Status
		g, a, r gpio.Level
	}{
		{StatusReady, gpio.High, gpio.Low, gpio.Low},
		{StatusBusy, gpio.Low, gpio.High, gpio.Low},
		{StatusFault, gpio.Low, gpio.Low, gpio.High},
		{StatusOff, gpio.Low, gpio.Low, gpio.Low},
	}
	for _, c := range cases {
		if err := g.SetStatus(c.s); err != nil {
			t.Fatal(err)
		}
		if b.pins["G"].Read() != c.g || b.pins["A"].Read() != c.a || b.pins["R"].Read() != c.r {
			t.Fatalf("status %d: G=%v A=%v R=%v", c.s, b.pins["G"].Read(), b.pins["A"].Read(), b.pins["R"].Read())
		}
	}
	g.SetStatus(StatusReady)
	if err := g.Close(); err != nil || b.pins["G"].Read() != gpio.Low {
		t.Fatalf("Close left an LED on: %v", err)
	}
}

func TestMissingPinIsNamed(t *testing.T) {
	b := newFakeBoard("GPIO17")
	_, err := NewGPIO(GPIOConfig{Relay: "GPIO17", LEDFault: "GPIO99"}, b.lookup)
	if err == nil || !strings.Contains(err.Error(), "GPIO99") {
		t.Fatalf("err = %v, want the missing pin named", err)
	}
	if err := SafeRelay(GPIOConfig{Relay: "GPIO5"}, b.lookup); err == nil {
		t.Fatal("SafeRelay on a missing pin succeeded")
	}
}

// TestHostInitOnThisMachine runs periph's real host initialisation here: a
// machine without GPIO must load what it can and report, not fail or panic.
func TestHostInitOnThisMachine(t *testing.T) {
	state, err := host.Init()
	if err != nil {
		t.Fatalf("host.Init: %v", err)
	}
	t.Logf("periph: %d drivers loaded, %d skipped, %d failed", len(state.Loaded), len(state.Skipped), len(state.Failed))
	lookup, err := HostPins()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewGPIO(GPIOConfig{Relay: "GLINT_NO_SUCH_PIN"}, lookup); err == nil {
		t.Fatal("a pin this machine lacks was found")
	}
}
