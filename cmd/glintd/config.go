package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/internal/config"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/session"
	"github.com/glintdev/glint/sync/agent"
)

// envPrefix prefixes environment overrides: GLINT_CAMERA_FPS=15.
const envPrefix = "GLINT"

// defaultConfigPath is where the packaged unit points --config.
const defaultConfigPath = "/etc/glint/glintd.yaml"

// Config is glintd's configuration file. Every field has a doc tag: it is
// the text of `glintd config defaults` and docs/config.md.
type Config struct {
	Log        LogConfig               `yaml:"log" doc:"Logging to stderr (the journal under systemd)."`
	API        APIConfig               `yaml:"api" doc:"The local kiosk API: sessions, events, enrolments, health and metrics (docs/kiosk-api.md)."`
	Camera     CameraConfig            `yaml:"camera" doc:"The camera glintd captures from."`
	Supervisor SupervisorConfig        `yaml:"supervisor" doc:"Camera supervision: reopening a missing or lost camera."`
	Service    ServiceConfig           `yaml:"service" doc:"Interaction with the service manager (systemd)."`
	Guard      GuardConfig             `yaml:"guard" doc:"Device guard: integrity signals about the camera, the platform and the running code (docs/device-guard.md)."`
	GPIO       GPIOConfig              `yaml:"gpio" doc:"Gate hardware on GPIO: relay, tamper switch, status LEDs (docs/gpio.md). Empty pin names: no such line."`
	Sync       agent.Config            `yaml:"sync" doc:"Signed results: the device key, the durable outbox and the MQTT link to glint-hub (docs/hub.md)."`
	Models     ModelsConfig            `yaml:"models" doc:"The face models (make deps: models/) and the ONNX Runtime that runs them. Without models.dir glintd runs no sessions (the session API answers 503)."`
	Session    SessionConfig           `yaml:"session" doc:"Verification sessions: time limits, tokens, the decision policy and the flash challenge (docs/session.md)."`
	Display    DisplayConfig           `yaml:"display" doc:"The screen that shows the flash challenge."`
	Enrolment  session.EnrolmentConfig `yaml:"enrolment" doc:"The encrypted enrolment store (templates the sessions compare against)."`
	StateDir   string                  `yaml:"state_dir" required:"true" doc:"Directory for persistent state (keys, outbox); systemd's StateDirectory."`
}

// ModelsConfig locates the face models.
type ModelsConfig struct {
	Dir       string `yaml:"dir" doc:"Directory of the ONNX models and manifest.json (make deps fills models/); empty: no models, no sessions."`
	Library   string `yaml:"library" doc:"ONNX Runtime shared library; empty: lib/<arch>/libonnxruntime.so.1 next to models.dir (where make deps puts it)."`
	Precision string `yaml:"precision" enum:"fp32|int8|auto" doc:"Model precision: auto takes INT8 where it measured faster (the embedding model), FP32 elsewhere (docs/models.md)."`
	Threads   int    `yaml:"threads" min:"1" max:"64" doc:"Intra-op threads per model."`
}

// libraryPath is the ONNX Runtime library to load.
func (c ModelsConfig) libraryPath() string {
	if c.Library != "" {
		return c.Library
	}
	return inference.DefaultLibraryPath(filepath.Join(c.Dir, ".."))
}

// SessionConfig configures verification sessions.
type SessionConfig struct {
	TokenTTL           time.Duration `yaml:"token_ttl" min:"1s" max:"24h" doc:"How long a session token can start its session; an unstarted session whose token expires ends Expired."`
	Timeout            time.Duration `yaml:"timeout" min:"5s" max:"10m" doc:"Time limit of a started session (Not Finished, SESSION_TIMEOUT)."`
	PositioningTimeout time.Duration `yaml:"positioning_timeout" min:"1s" max:"5m" doc:"How long positioning guidance may take before the session ends Not Finished (POSITIONING_TIMEOUT)."`
	Keep               time.Duration `yaml:"keep" min:"1m" max:"24h" doc:"How long a decided session stays readable on the API."`
	HoldFrames         int           `yaml:"hold_frames" min:"1" max:"30" doc:"Consecutive usable frames that end positioning."`
	Mode               string        `yaml:"mode" enum:"dynamic|express" doc:"Default mode: dynamic (flash challenge) or express (passive anti-spoof on one frame); a request may ask for the other."`
	LivenessLevel      string        `yaml:"liveness_level" enum:"LOOSE|STANDARD|STRICT|CLOSED" doc:"Default liveness level (threshold 35, 50, 70; CLOSED disables liveness, for tests only, and every record says so)."`
	FaceThreshold      float64       `yaml:"face_threshold" min:"0" max:"100" doc:"Minimum face-similarity score for Approved (50 = faceres cosine 0.55, docs/models.md)."`
	ReviewBand         float64       `yaml:"review_band" min:"0" max:"50" doc:"Score points below a threshold that give In Review instead of Declined; 0: no review."`
	RefuseRisk         string        `yaml:"refuse_risk" enum:"none|info|warn|critical" doc:"Device-guard risk at or above which sessions are refused (Not Finished, DEVICE_RISK); none: never."`
	PolicyID           string        `yaml:"policy_id" doc:"Policy name written into every record's policy snapshot."`
	Retention          bool          `yaml:"retention" doc:"Keep the evidence frame (a JPEG face crop) in the signed record; off: only its SHA-256."`
	LatencyMin         time.Duration `yaml:"latency_min" min:"-100ms" max:"400ms" doc:"Lower bound of this device's calibrated display-to-camera loop latency (a response earlier than this is rejected)."`
	LatencyMax         time.Duration `yaml:"latency_max" min:"-100ms" max:"400ms" doc:"Upper bound of the calibrated loop latency (a later response is rejected: relighting attacks answer late)."`
	ChallengeSteps     int           `yaml:"challenge_steps" min:"2" max:"64" doc:"Colour steps per flash challenge."`
	StepMin            time.Duration `yaml:"step_min" min:"20ms" max:"2s" doc:"Shortest colour step."`
	StepMax            time.Duration `yaml:"step_max" min:"20ms" max:"2s" doc:"Longest colour step."`
	MaxFlash           time.Duration `yaml:"max_flash" min:"100ms" max:"10s" doc:"Longest total flash time of a challenge."`
	Readout            time.Duration `yaml:"readout" min:"0s" max:"100ms" doc:"The camera's rolling-shutter readout time of a whole frame (0: global shutter or unknown); the simulated camera reports its own."`
}

// Validate orders the bounds.
func (c *SessionConfig) Validate() error {
	var errs []error
	if c.LatencyMax < c.LatencyMin {
		errs = append(errs, config.Invalid("latency_max", "%s is below session.latency_min (%s)", c.LatencyMax, c.LatencyMin))
	}
	if c.StepMax < c.StepMin {
		errs = append(errs, config.Invalid("step_max", "%s is below session.step_min (%s)", c.StepMax, c.StepMin))
	}
	if time.Duration(c.ChallengeSteps)*c.StepMin > c.MaxFlash {
		errs = append(errs, config.Invalid("max_flash", "%d steps of at least %s do not fit in %s", c.ChallengeSteps, c.StepMin, c.MaxFlash))
	}
	return errors.Join(errs...)
}

// policy converts the validated section.
func (c SessionConfig) policy() session.Policy {
	p := session.DefaultPolicy()
	p.ID = c.PolicyID
	p.Mode = result.Mode(c.Mode)
	p.Level = flashmark.Level(c.LivenessLevel)
	p.FaceThreshold = c.FaceThreshold
	p.ReviewBand = c.ReviewBand
	p.RefuseRisk, _ = device.ParseSeverity(c.RefuseRisk)
	return p
}

// challenge converts the validated section.
func (c SessionConfig) challenge() flashmark.ChallengeConfig {
	return flashmark.ChallengeConfig{Steps: c.ChallengeSteps, StepMin: c.StepMin, StepMax: c.StepMax, MaxTotal: c.MaxFlash}
}

// DisplayConfig selects the challenge screen.
type DisplayConfig struct {
	Backend     string `yaml:"backend" enum:"auto|fbdev|none" doc:"auto: the simulated screen with camera.source sim, none otherwise; fbdev: the Linux framebuffer; none: no screen (express mode only)."`
	Framebuffer string `yaml:"framebuffer" doc:"Framebuffer device for backend fbdev."`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level" enum:"debug|info|warn|error" doc:"Minimum level logged."`
	Format string `yaml:"format" enum:"auto|json|text" doc:"auto: JSON under systemd (JOURNAL_STREAM or INVOCATION_ID set), text otherwise."`
}

// APIConfig configures the local API.
type APIConfig struct {
	Socket    string `yaml:"socket" doc:"Unix socket of the local API (mode 0660); empty disables it."`
	TCP       string `yaml:"tcp" doc:"Optional loopback TCP address (e.g. 127.0.0.1:8787) requiring a bearer token; empty disables it."`
	TokenFile string `yaml:"token_file" doc:"File holding the TCP bearer token; a relative name is looked up in $CREDENTIALS_DIRECTORY (systemd LoadCredential=)."`
}

// Validate requires a listener and keeps TCP on loopback with a token.
func (c *APIConfig) Validate() error {
	var errs []error
	if c.Socket == "" && c.TCP == "" {
		errs = append(errs, config.Invalid("socket", "must be set when api.tcp is empty (the API needs a listener)"))
	}
	if c.TCP != "" {
		if err := session.CheckLoopback(c.TCP); err != nil {
			errs = append(errs, config.Invalid("tcp", "%v", err))
		}
		if c.TokenFile == "" {
			errs = append(errs, config.Invalid("token_file", "must be set when api.tcp is set"))
		}
	}
	return errors.Join(errs...)
}

// CameraConfig selects and configures the camera source.
type CameraConfig struct {
	Source       string           `yaml:"source" enum:"v4l2|file|sim" doc:"v4l2: a camera device; file: replay images (tests); sim: the closed-loop simulator's camera and screen looking at a face photo (demo, docs/sim.md)."`
	Device       string           `yaml:"device" doc:"V4L2 device node; may be empty when bus_info or serial identify the camera."`
	BusInfo      string           `yaml:"bus_info" doc:"V4L2 bus_info (e.g. usb-0000:00:14.0-1) that identifies the camera across replugs."`
	Serial       string           `yaml:"serial" doc:"USB serial number that identifies the camera across replugs."`
	Width        int              `yaml:"width" min:"16" max:"8192" doc:"Requested frame width; the nearest the camera offers is used."`
	Height       int              `yaml:"height" min:"16" max:"8192" doc:"Requested frame height; the nearest the camera offers is used."`
	FPS          float64          `yaml:"fps" min:"1" max:"240" doc:"Requested frame rate."`
	Formats      []string         `yaml:"formats" required:"true" enum:"MJPG|JPEG|YUYV|NV12|RGB3|GREY" doc:"Pixel formats in order of preference (V4L2 fourcc codes)."`
	Buffers      int              `yaml:"buffers" min:"2" max:"32" doc:"Driver buffers; more absorb scheduling hiccups at the cost of latency."`
	FrameTimeout time.Duration    `yaml:"frame_timeout" min:"100ms" max:"1m" doc:"A camera silent this long is treated as failed and reopened."`
	File         FileSourceConfig `yaml:"file" doc:"The file source (camera.source: file)."`
	Sim          SimSourceConfig  `yaml:"sim" doc:"The simulated camera and screen (camera.source: sim), at camera.width x camera.height and camera.fps, on the real clock."`
}

// SimSourceConfig configures the simulated camera and screen.
type SimSourceConfig struct {
	Face      string `yaml:"face" doc:"Face photo (JPEG or PNG) in front of the simulated camera, e.g. .cache/faces/skimage/astronaut.png."`
	FaceIndex int    `yaml:"face_index" min:"0" max:"64" doc:"Which face of a group photo."`
	Species   string `yaml:"species" enum:"bona_fide|print|screen|replay|injection|relight|mask" doc:"Initial presentation: the live face or an attack species; the local API can switch it (POST /v1/sim/presentation)."`
	Seed      int    `yaml:"seed" min:"0" doc:"Seed of the simulator's noise and attack details."`
}

// FileSourceConfig configures the file source.
type FileSourceConfig struct {
	Path string  `yaml:"path" doc:"Directory of JPEG/PNG images (played in name order) or an .mjpeg file."`
	FPS  float64 `yaml:"fps" min:"0" max:"240" doc:"Replay rate; 0 replays as fast as frames are read."`
	Loop bool    `yaml:"loop" doc:"Restart at the first image after the last."`
}

// Validate requires what the chosen source needs.
func (c *CameraConfig) Validate() error {
	switch c.Source {
	case "v4l2":
		if c.Device == "" && c.BusInfo == "" && c.Serial == "" {
			return config.Invalid("device", "one of camera.device, camera.bus_info or camera.serial must be set for the v4l2 source")
		}
	case "file":
		if c.File.Path == "" {
			return config.Invalid("file.path", "must be set for the file source")
		}
	case "sim":
		if c.Sim.Face == "" {
			return config.Invalid("sim.face", "must be set for the sim source")
		}
	}
	return nil
}

// PixelFormats converts Formats to fourccs (already validated).
func (c *CameraConfig) PixelFormats() []capture.PixelFormat {
	out := make([]capture.PixelFormat, len(c.Formats))
	for i, f := range c.Formats {
		out[i] = capture.Fourcc(f)
	}
	return out
}

// SupervisorConfig configures reconnection.
type SupervisorConfig struct {
	ReconnectMin time.Duration `yaml:"reconnect_min" min:"10ms" max:"1m" doc:"First wait before reopening a failed camera; doubles on each further failure."`
	ReconnectMax time.Duration `yaml:"reconnect_max" min:"100ms" max:"1h" doc:"Longest wait between attempts to reopen the camera."`
}

// Validate orders the backoff bounds.
func (c *SupervisorConfig) Validate() error {
	if c.ReconnectMax < c.ReconnectMin {
		return config.Invalid("reconnect_max", "%s is below supervisor.reconnect_min (%s)", c.ReconnectMax, c.ReconnectMin)
	}
	return nil
}

// ServiceConfig configures shutdown and the systemd watchdog.
type ServiceConfig struct {
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" min:"1s" max:"5m" doc:"Hard deadline for a clean stop after SIGTERM; past it glintd exits non-zero."`
	Watchdog        bool          `yaml:"watchdog" doc:"Ping systemd's watchdog at half of WatchdogSec (no effect when the unit sets none)."`
}

// GuardConfig configures the device guard.
type GuardConfig struct {
	Interval     time.Duration     `yaml:"interval" min:"1s" max:"24h" doc:"Time between guard checks (one also runs at start)."`
	MaxClockSkew time.Duration     `yaml:"max_clock_skew" min:"1s" max:"24h" doc:"Clock difference to the hub beyond which CLOCK_SKEW is raised."`
	Severity     map[string]string `yaml:"severity" doc:"Severity override per signal code (none, info, warn, critical); none disables the signal. Example: {VIRTUAL_MACHINE: none}."`
	Manifest     string            `yaml:"manifest" doc:"Release manifest (JSON: executable and model SHA-256) to check the running code against; empty: not checked."`
	PinnedCamera PinnedCamera      `yaml:"pinned_camera" doc:"Camera identity recorded at provisioning; a different camera raises CAMERA_CHANGED. Empty: not checked."`
}

// PinnedCamera is the provisioned camera's USB identity.
type PinnedCamera struct {
	VendorID  string `yaml:"vendor_id" doc:"USB vendor ID, 4 hex digits (e.g. 046d)."`
	ProductID string `yaml:"product_id" doc:"USB product ID, 4 hex digits."`
	Serial    string `yaml:"serial" doc:"USB serial number."`
}

// Validate checks the severity policy's codes and names.
func (c *GuardConfig) Validate() error {
	var errs []error
	for code, sev := range c.Severity {
		if _, ok := device.DefaultSeverity(code); !ok {
			errs = append(errs, config.Invalid("severity", "unknown signal code %q", code))
		}
		if _, err := device.ParseSeverity(sev); err != nil {
			errs = append(errs, config.Invalid("severity", "%s: %v", code, err))
		}
	}
	return errors.Join(errs...)
}

// severityPolicy converts the validated policy.
func (c *GuardConfig) severityPolicy() map[string]device.Severity {
	out := map[string]device.Severity{}
	for code, name := range c.Severity {
		s, _ := device.ParseSeverity(name)
		out[code] = s
	}
	return out
}

// GPIOConfig names the gate's pins.
type GPIOConfig struct {
	Relay          string        `yaml:"relay" doc:"Relay output pin (periph name, e.g. GPIO17), pulsed on Approved."`
	RelayActiveLow bool          `yaml:"relay_active_low" doc:"The relay board switches on a low level."`
	RelayPulse     time.Duration `yaml:"relay_pulse" min:"10ms" max:"1m" doc:"How long the relay is held on per Approved verdict."`
	Tamper         string        `yaml:"tamper" doc:"Enclosure tamper switch input pin; an opening is latched until cleared."`
	TamperOpenLow  bool          `yaml:"tamper_open_low" doc:"The tamper input reads low when open (default: high when open, with pull-up)."`
	Debounce       time.Duration `yaml:"debounce" min:"1ms" max:"10s" doc:"How long the tamper input must hold the open level."`
	LEDReady       string        `yaml:"led_ready" doc:"Ready LED pin (green)."`
	LEDBusy        string        `yaml:"led_busy" doc:"Busy LED pin (amber)."`
	LEDFault       string        `yaml:"led_fault" doc:"Fault LED pin (red)."`
}

// enabled reports whether any pin is configured.
func (c GPIOConfig) enabled() bool {
	return c.Relay != "" || c.Tamper != "" || c.LEDReady != "" || c.LEDBusy != "" || c.LEDFault != ""
}

func (c GPIOConfig) device() device.GPIOConfig {
	return device.GPIOConfig{
		Relay: c.Relay, RelayActiveLow: c.RelayActiveLow, RelayPulse: c.RelayPulse,
		Tamper: c.Tamper, TamperOpenLow: c.TamperOpenLow, Debounce: c.Debounce,
		LEDReady: c.LEDReady, LEDBusy: c.LEDBusy, LEDFault: c.LEDFault,
	}
}

// defaultConfig is the configuration of a packaged kiosk: a USB camera at
// /dev/video0, the API on /run/glint/glintd.sock.
func defaultConfig() Config {
	return Config{
		Log: LogConfig{Level: "info", Format: "auto"},
		API: APIConfig{Socket: "/run/glint/glintd.sock"},
		Camera: CameraConfig{
			Source:       "v4l2",
			Device:       "/dev/video0",
			Width:        640,
			Height:       480,
			FPS:          25,
			Formats:      []string{"MJPG", "YUYV", "NV12"},
			Buffers:      4,
			FrameTimeout: 2 * time.Second,
			File:         FileSourceConfig{FPS: 25, Loop: true},
			Sim:          SimSourceConfig{Species: "bona_fide", Seed: 1},
		},
		Supervisor: SupervisorConfig{ReconnectMin: 500 * time.Millisecond, ReconnectMax: 30 * time.Second},
		Service:    ServiceConfig{ShutdownTimeout: 5 * time.Second, Watchdog: true},
		Guard:      GuardConfig{Interval: time.Minute, MaxClockSkew: 30 * time.Second, Severity: map[string]string{}},
		GPIO:       GPIOConfig{RelayPulse: time.Second, Debounce: 50 * time.Millisecond},
		Sync:       agent.Defaults(),
		Models:     ModelsConfig{Precision: "auto", Threads: 1},
		Session: SessionConfig{
			TokenTTL: 2 * time.Minute, Timeout: time.Minute, PositioningTimeout: 20 * time.Second, Keep: 10 * time.Minute,
			HoldFrames: 3, Mode: string(result.ModeDynamic), LivenessLevel: string(flashmark.LevelStandard),
			FaceThreshold: inference.DefaultMatchThreshold, RefuseRisk: "critical", PolicyID: "default",
			LatencyMin: flashmark.DefaultLatencyMin, LatencyMax: flashmark.DefaultLatencyMax,
			ChallengeSteps: 12, StepMin: 100 * time.Millisecond, StepMax: 120 * time.Millisecond, MaxFlash: 1500 * time.Millisecond,
		},
		Display:  DisplayConfig{Backend: "auto", Framebuffer: "/dev/fb0"},
		StateDir: "/var/lib/glint",
	}
}

// loadConfig reads path with environment overrides from the process.
func loadConfig(path string) (Config, error) {
	return config.Load(path, defaultConfig(), config.Options{EnvPrefix: envPrefix})
}

// readToken reads the API token file. Secrets come from files (or systemd
// credentials), never from flags or the config file itself.
func readToken(path string) (string, error) {
	if !filepath.IsAbs(path) {
		dir := os.Getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return "", fmt.Errorf("api.token_file %q is relative and $CREDENTIALS_DIRECTORY is not set", path)
		}
		path = filepath.Join(dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("api.token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("api.token_file %s is empty", path)
	}
	if len(tok) < 16 {
		return "", fmt.Errorf("api.token_file %s: token shorter than 16 characters", path)
	}
	return tok, nil
}
