package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/sync/fleetsim"
)

func runFleetSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("fleet-sim", stderr)
	broker := fs.String("broker", "", "MQTT broker URL, e.g. tcp://127.0.0.1:18830 (required)")
	devices := fs.Int("devices", 10, "simulated devices, each with its own key, outbox and MQTT link")
	rate := fs.Float64("rate", 100, "results per second across the whole fleet")
	duration := fs.Duration("duration", 10*time.Second, "how long results are produced")
	preload := fs.Int("preload", 0, "results queued in every outbox before connecting (offline backlog)")
	drain := fs.Duration("drain-timeout", 60*time.Second, "wait at most this long for every outbox to empty")
	prefix := fs.String("prefix", "glint/v1", "topic prefix")
	idPrefix := fs.String("id-prefix", "sim", "device IDs are <id-prefix>-<n>")
	dir := fs.String("dir", "", "keep keys and outboxes here (reused on the next run); default: a temporary directory, removed")
	hubAPI := fs.String("hub-api", "", "glint-hub API URL: registers the devices and fetches the hub key")
	apiKeyFile := fs.String("api-key-file", "", "file holding the hub API key (with --hub-api)")
	hubPub := fs.String("hub-pubkey", "", "hub public key (PEM) that receipts must verify with (instead of fetching it)")
	auth := fs.String("auth", "token", "broker authentication: token (glint-hub's embedded broker) or none")
	window := fs.Int("window", 0, "in-flight window per device (0: link default)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *broker == "" {
		return usageError{"fleet-sim: --broker is required"}
	}
	if *auth != "token" && *auth != "none" {
		return usageError{"fleet-sim: --auth must be token or none"}
	}
	cfg := fleetsim.Config{Broker: *broker, Prefix: *prefix, Devices: *devices, IDPrefix: *idPrefix, Rate: *rate, Duration: *duration,
		Preload: *preload, DrainTimeout: *drain, Auth: *auth, Window: *window,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if *hubAPI != "" {
		if *apiKeyFile == "" {
			return usageError{"fleet-sim: --hub-api needs --api-key-file"}
		}
		k, err := os.ReadFile(*apiKeyFile)
		if err != nil {
			return fmt.Errorf("fleet-sim: %w", err)
		}
		reg := &fleetsim.APIRegistrar{BaseURL: *hubAPI, APIKey: strings.TrimSpace(string(k))}
		cfg.Register = reg
		if *hubPub == "" {
			if cfg.HubPublic, err = reg.HubPublicKey(ctx); err != nil {
				return fmt.Errorf("fleet-sim: hub key: %w", err)
			}
		}
	}
	if *hubPub != "" {
		b, err := os.ReadFile(*hubPub)
		if err != nil {
			return fmt.Errorf("fleet-sim: %w", err)
		}
		pub, err := device.ParsePublicKeyPEM(b)
		if err != nil {
			return fmt.Errorf("fleet-sim: %s: %w", *hubPub, err)
		}
		cfg.HubPublic = pub
	}
	if cfg.HubPublic == nil {
		return usageError{"fleet-sim: the hub key is needed to verify receipts: give --hub-pubkey or --hub-api"}
	}
	cfg.Dir = *dir
	if cfg.Dir == "" {
		tmp, err := os.MkdirTemp("", "glint-fleet-sim-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		cfg.Dir = tmp
	}
	rep, err := fleetsim.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, "fleet-sim:", rep)
	}
	if rep.Pending > 0 {
		return errors.New("fleet-sim: results still pending after the drain timeout")
	}
	return nil
}
