// Command glint-hub is the central hub: it receives every signed result
// over MQTT (embedded broker by default, or Mosquitto/EMQX), verifies it
// against the device registry, stores it in SQLite or PostgreSQL, sends the
// signed receipt and serves a minimal HTTP API.
//
// Usage:
//
//	glint-hub [--config FILE]        run the hub (default /etc/glint-hub/glint-hub.yaml)
//	glint-hub key [--config FILE]    print the hub's receipt-signing public key (PEM), creating it if needed
//	glint-hub mosquitto-config [--config FILE] --out DIR [options]
//	                                 write a Mosquitto ACL, password file and glint.conf for the registered devices
//	glint-hub token create --site S [--ttl 15m] [--qr F.png] [--config FILE]
//	                                 issue a one-time claim token for provisioning a device
//	glint-hub token list [--site S]  list claim tokens and who used them
//	glint-hub config check [FILE]    validate a configuration; exit 0 if valid, 2 if not
//	glint-hub config defaults [--markdown] print every key with its default and description
//	glint-hub version                print the version
//
// Exit status: 0 success, 1 runtime failure, 2 invalid configuration or usage.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub"
	"github.com/glintdev/glint/internal/buildinfo"
	"github.com/glintdev/glint/internal/config"
	"github.com/glintdev/glint/internal/service"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitConfig  = 2
)

const usage = `usage:
  glint-hub [--config FILE]        run the hub (default %s)
  glint-hub key [--config FILE]    print the hub's receipt-signing public key (PEM)
  glint-hub mosquitto-config [--config FILE] --out DIR [--port N] [--bind ADDR]
      [--cafile F --certfile F --keyfile F] [--broker-dir DIR] [--rotate DEVICE]...
                                   write Mosquitto's ACL, password file and glint.conf
                                   for the registered devices, and new device secrets
  glint-hub token create --site S [--ttl 15m] [--note TEXT] [--qr FILE.png] [--hub URL]
                                   issue a one-time claim token (printed, and as a QR code)
  glint-hub token list [--site S]  list claim tokens and which device used each
  glint-hub config check [FILE]    validate a configuration (exit 0 valid, 2 invalid)
  glint-hub config defaults [--markdown]
                                   print every key with its default and description
  glint-hub version                print the version
`

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

func realMain(args []string, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "glint-hub", buildinfo.String())
			return exitOK
		case "help", "-h", "--help":
			fmt.Fprintf(stdout, usage, defaultConfigPath)
			return exitOK
		case "config":
			return configCommand(args[1:], stdout, stderr)
		case "mosquitto-config":
			return mosquittoCommand(args[1:], stdout, stderr)
		case "token":
			return tokenCommand(args[1:], stdout, stderr)
		case "key":
			cmd, args = "key", args[1:]
		}
	}
	path, code, done := config.ParseConfigPath("glint-hub", args, defaultConfigPath,
		func() { fmt.Fprintf(stderr, usage, defaultConfigPath) }, stderr)
	if done {
		return code
	}
	cfg, err := loadConfig(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	if cmd == "key" {
		k, err := device.LoadOrCreateKey(filepath.Join(cfg.StateDir, hub.KeyFile))
		if err != nil {
			fmt.Fprintln(stderr, "glint-hub:", err)
			return exitFailure
		}
		p, _ := device.PublicKeyPEM(k.Public())
		fmt.Fprintf(stdout, "# kid %s\n%s", k.ID, p)
		return exitOK
	}
	hc, err := hubConfig(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "glint-hub:", err)
		return exitConfig
	}
	log := newLogger(cfg.Log, stderr)
	hc.Logger = log
	ctx, stop := service.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, hc, cfg.Service.Watchdog, log); err != nil {
		log.Error("glint-hub failed", "err", err)
		return exitFailure
	}
	return exitOK
}

func run(ctx context.Context, hc hub.Config, watchdog bool, log *slog.Logger) error {
	n := service.NewNotifier(log)
	h, err := hub.New(ctx, hc)
	if err != nil {
		return err
	}
	defer h.Close()
	if watchdog {
		go n.RunWatchdog(ctx)
	}
	n.Ready("hub running, broker " + h.BrokerURL())
	err = h.Run(ctx)
	n.Stopping()
	return err
}

func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" || cfg.Format == "auto" && service.UnderSystemd() {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func configCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, defaultConfigPath)
		return exitConfig
	}
	switch args[0] {
	case "check":
		p := defaultConfigPath
		if len(args) > 1 {
			p = args[1]
		}
		cfg, err := loadConfig(p)
		if err == nil {
			_, err = hubConfig(cfg)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitConfig
		}
		fmt.Fprintf(stdout, "%s: OK\n", p)
		return exitOK
	case "defaults":
		write := config.WriteYAML
		if len(args) > 1 && args[1] == "--markdown" {
			write = config.WriteMarkdown
		}
		if err := write(stdout, defaultConfig(), envPrefix); err != nil {
			fmt.Fprintln(stderr, err)
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprintf(stderr, "glint-hub config: unknown command %q\n", args[0])
	return exitConfig
}
