package device

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
)

// PinLookup finds a GPIO pin by the name the configuration uses ("GPIO17",
// "P1_11", a gpiochip line name). HostPins is the real one; tests pass
// periph's gpiotest pins through the same signature.
type PinLookup func(name string) gpio.PinIO

// HostPins initialises periph's host drivers and returns gpioreg.ByName.
func HostPins() (PinLookup, error) {
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("gpio: periph host init: %w", err)
	}
	return gpioreg.ByName, nil
}

// GPIOConfig names the pins of a gate or kiosk. An empty name means the
// device has no such line.
type GPIOConfig struct {
	// Relay drives the gate: pulsed on Approved, inactive otherwise.
	Relay          string
	RelayActiveLow bool
	// RelayPulse is how long the relay is held active; default 1 s.
	RelayPulse time.Duration
	// Tamper is the enclosure switch input. TamperOpenLow says the switch
	// reads low when the enclosure is open (default: high when open, with
	// the internal pull-up, i.e. a switch that shorts to ground while
	// closed, so a cut wire also reads open).
	Tamper        string
	TamperOpenLow bool
	// Debounce is how long the tamper input must hold a level; default
	// 50 ms.
	Debounce time.Duration
	// LEDs: ready (green), busy (amber), fault (red).
	LEDReady, LEDBusy, LEDFault string
}

// Status is what the status LEDs show.
type Status int

// Statuses, one LED each.
const (
	StatusOff Status = iota
	StatusReady
	StatusBusy
	StatusFault
)

// ErrTamperStillOpen: the tamper latch cannot be cleared while the
// enclosure is still open.
var ErrTamperStillOpen = errors.New("enclosure still open")

// GPIO drives the relay, watches the tamper switch and sets the LEDs. Run
// owns the relay's timing; the tamper latch and LEDs are guarded by mu.
type GPIO struct {
	cfg    GPIOConfig
	relay  gpio.PinIO
	tamper gpio.PinIO
	leds   map[Status]gpio.PinIO
	pulses chan struct{}

	mu         sync.Mutex
	tampered   bool
	tamperedAt time.Time
	pulsing    bool
}

// NewGPIO resolves the pins and puts every output in its safe state: the
// relay inactive, the LEDs off. A configured pin that does not exist is an
// error naming it.
func NewGPIO(cfg GPIOConfig, lookup PinLookup) (*GPIO, error) {
	if cfg.RelayPulse <= 0 {
		cfg.RelayPulse = time.Second
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 50 * time.Millisecond
	}
	g := &GPIO{cfg: cfg, leds: map[Status]gpio.PinIO{}, pulses: make(chan struct{}, 1)}
	pin := func(role, name string) (gpio.PinIO, error) {
		if name == "" {
			return nil, nil
		}
		p := lookup(name)
		if p == nil || p == gpio.INVALID {
			return nil, fmt.Errorf("gpio: %s pin %q not found", role, name)
		}
		return p, nil
	}
	var err error
	if g.relay, err = pin("relay", cfg.Relay); err != nil {
		return nil, err
	}
	if g.tamper, err = pin("tamper", cfg.Tamper); err != nil {
		return nil, err
	}
	for st, name := range map[Status]string{StatusReady: cfg.LEDReady, StatusBusy: cfg.LEDBusy, StatusFault: cfg.LEDFault} {
		p, err := pin("LED", name)
		if err != nil {
			return nil, err
		}
		if p != nil {
			g.leds[st] = p
		}
	}
	if err := g.relaySafe(); err != nil {
		return nil, err
	}
	if err := g.SetStatus(StatusOff); err != nil {
		return nil, err
	}
	if g.tamper != nil {
		pull := gpio.PullUp
		if cfg.TamperOpenLow {
			pull = gpio.PullDown
		}
		if err := g.tamper.In(pull, gpio.BothEdges); err != nil {
			return nil, fmt.Errorf("gpio: tamper pin %s as input: %w", cfg.Tamper, err)
		}
		if g.isOpen(g.tamper.Read()) {
			g.latch()
		}
	}
	return g, nil
}

func (g *GPIO) relayLevel(active bool) gpio.Level {
	return gpio.Level(active != g.cfg.RelayActiveLow)
}

func (g *GPIO) relaySafe() error {
	if g.relay == nil {
		return nil
	}
	if err := g.relay.Out(g.relayLevel(false)); err != nil {
		return fmt.Errorf("gpio: relay %s to inactive: %w", g.cfg.Relay, err)
	}
	return nil
}

func (g *GPIO) isOpen(l gpio.Level) bool { return l == gpio.Level(!g.cfg.TamperOpenLow) }

func (g *GPIO) latch() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.tampered {
		g.tampered, g.tamperedAt = true, time.Now()
	}
}

// PulseRelay asks Run to pulse the relay. It never blocks: a pulse already
// pending or in progress absorbs the request.
func (g *GPIO) PulseRelay() error {
	if g.relay == nil {
		return errors.New("gpio: no relay configured")
	}
	select {
	case g.pulses <- struct{}{}:
	default:
	}
	return nil
}

// RelayActive reports whether a pulse is in progress.
func (g *GPIO) RelayActive() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pulsing
}

// Run drives relay pulses and watches the tamper input until ctx ends; it
// leaves the relay inactive whatever happens.
func (g *GPIO) Run(ctx context.Context) error {
	defer g.relaySafe()
	var wg sync.WaitGroup
	if g.tamper != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.watchTamper(ctx)
		}()
	}
	defer wg.Wait()
	var off <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-g.pulses:
			if err := g.relay.Out(g.relayLevel(true)); err != nil {
				return fmt.Errorf("gpio: relay %s on: %w", g.cfg.Relay, err)
			}
			g.setPulsing(true)
			off = time.After(g.cfg.RelayPulse)
		case <-off:
			off = nil
			if err := g.relaySafe(); err != nil {
				return err
			}
			g.setPulsing(false)
		}
	}
}

func (g *GPIO) setPulsing(on bool) {
	g.mu.Lock()
	g.pulsing = on
	g.mu.Unlock()
}

// watchTamper latches an opening that holds for the debounce time.
func (g *GPIO) watchTamper(ctx context.Context) {
	for ctx.Err() == nil {
		if !g.tamper.WaitForEdge(200 * time.Millisecond) {
			continue
		}
		if !g.isOpen(g.tamper.Read()) {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(g.cfg.Debounce):
		}
		if g.isOpen(g.tamper.Read()) {
			g.latch()
		}
	}
}

// Tampered reports the latched tamper state and when it was latched.
func (g *GPIO) Tampered() (bool, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tampered, g.tamperedAt
}

// ClearTamper resets the latch once the enclosure is closed again (a
// technician's action).
func (g *GPIO) ClearTamper() error {
	if g.tamper != nil && g.isOpen(g.tamper.Read()) {
		return ErrTamperStillOpen
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tampered, g.tamperedAt = false, time.Time{}
	return nil
}

// SetStatus lights the LED of the status and turns the others off.
func (g *GPIO) SetStatus(s Status) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for st, p := range g.leds {
		if err := p.Out(gpio.Level(st == s)); err != nil {
			return fmt.Errorf("gpio: LED %s: %w", p.Name(), err)
		}
	}
	return nil
}

// Close puts the outputs in their safe state. For a crash, the service's
// ExecStopPost runs SafeRelay in a fresh process.
func (g *GPIO) Close() error {
	err := g.relaySafe()
	if lerr := g.SetStatus(StatusOff); err == nil {
		err = lerr
	}
	return err
}

// SafeRelay sets the relay inactive without keeping the pins: what
// `glintd gpio safe` runs from the unit's ExecStopPost after any exit,
// crashes included.
func SafeRelay(cfg GPIOConfig, lookup PinLookup) error {
	if cfg.Relay == "" {
		return nil
	}
	p := lookup(cfg.Relay)
	if p == nil || p == gpio.INVALID {
		return fmt.Errorf("gpio: relay pin %q not found", cfg.Relay)
	}
	return p.Out(gpio.Level(cfg.RelayActiveLow))
}
