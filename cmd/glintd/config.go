package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/internal/config"
	"github.com/glintdev/glint/session"
)

// envPrefix prefixes environment overrides: GLINT_CAMERA_FPS=15.
const envPrefix = "GLINT"

// defaultConfigPath is where the packaged unit points --config.
const defaultConfigPath = "/etc/glint/glintd.yaml"

// Config is glintd's configuration file. Every field has a doc tag: it is
// the text of `glintd config defaults` and docs/config.md.
type Config struct {
	Log        LogConfig        `yaml:"log" doc:"Logging to stderr (the journal under systemd)."`
	API        APIConfig        `yaml:"api" doc:"The local API: health, metrics and (later) kiosk sessions."`
	Camera     CameraConfig     `yaml:"camera" doc:"The camera glintd captures from."`
	Supervisor SupervisorConfig `yaml:"supervisor" doc:"Camera supervision: reopening a missing or lost camera."`
	Service    ServiceConfig    `yaml:"service" doc:"Interaction with the service manager (systemd)."`
	StateDir   string           `yaml:"state_dir" required:"true" doc:"Directory for persistent state (keys, outbox); systemd's StateDirectory."`
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
	Source       string           `yaml:"source" enum:"v4l2|file" doc:"v4l2: a camera device; file: replay images (demo, tests)."`
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
		},
		Supervisor: SupervisorConfig{ReconnectMin: 500 * time.Millisecond, ReconnectMax: 30 * time.Second},
		Service:    ServiceConfig{ShutdownTimeout: 5 * time.Second, Watchdog: true},
		StateDir:   "/var/lib/glint",
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
