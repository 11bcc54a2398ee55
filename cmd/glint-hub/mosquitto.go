package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/glintdev/glint/hub/mosquittoconf"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/internal/service"
)

const mosquittoUsage = `usage: glint-hub mosquitto-config [--config FILE] --out DIR [options]

Writes, from the device registry in the hub's store, a Mosquitto ACL
(glint.acl), password file (glint.passwd) and glint.conf snippet into DIR,
and the secret of every device that gets one for the first time (or is
rotated) into DIR/credentials/<device>.secret. Re-running changes nothing
for devices that already have a secret.

`

// mosquittoCommand implements glint-hub mosquitto-config.
func mosquittoCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("glint-hub mosquitto-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, mosquittoUsage); fs.PrintDefaults() }
	path := fs.String("config", defaultConfigPath, "hub configuration file (store, mqtt.prefix, mqtt.username, mqtt.password_file)")
	out := fs.String("out", "", "output directory (created 0750; credentials/ inside 0700)")
	port := fs.Int("port", 0, "listener port in glint.conf (default 8883 with --certfile, 1883 without)")
	bind := fs.String("bind", "", "listener bind address in glint.conf (default: all)")
	caFile := fs.String("cafile", "", "CA file, as a path on the broker host, for glint.conf")
	certFile := fs.String("certfile", "", "broker certificate (path on the broker host); makes the listener TLS")
	keyFile := fs.String("keyfile", "", "broker key (path on the broker host)")
	brokerDir := fs.String("broker-dir", "", "where glint.acl and glint.passwd will live on the broker host (default: --out)")
	var rotate []string
	fs.Func("rotate", "issue a new secret to this device (repeatable; the hub's username rotates a generated hub secret)", func(s string) error {
		rotate = append(rotate, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 || *out == "" {
		if *out == "" {
			fmt.Fprintln(stderr, "glint-hub mosquitto-config: --out DIR is required")
		} else {
			fmt.Fprintf(stderr, "glint-hub mosquitto-config: unexpected argument %q\n", fs.Arg(0))
		}
		fs.Usage()
		return exitConfig
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	dialect, dsn, err := storeSource(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "glint-hub mosquitto-config:", err)
		return exitConfig
	}
	o := mosquittoconf.Options{Dir: *out, Prefix: cfg.MQTT.Prefix, HubUser: cfg.MQTT.Username, Rotate: rotate,
		Port: *port, Bind: *bind, CAFile: *caFile, CertFile: *certFile, KeyFile: *keyFile, BrokerDir: *brokerDir}
	if cfg.MQTT.PasswordFile != "" {
		if o.HubPassword, err = readSecret("mqtt.password_file", cfg.MQTT.PasswordFile); err != nil {
			fmt.Fprintln(stderr, "glint-hub mosquitto-config:", err)
			return exitConfig
		}
	}
	if dialect == store.SQLite {
		// Opening a missing SQLite file would create an empty registry and
		// an ACL for no device: a wrong path must be an error.
		if _, err := os.Stat(dsn); err != nil {
			fmt.Fprintf(stderr, "glint-hub mosquitto-config: store %s: %v (has the hub run with this configuration? check store.path and state_dir)\n", dsn, err)
			return exitFailure
		}
	}
	ctx, stop := service.SignalContext(context.Background())
	defer stop()
	st, err := store.Open(ctx, dialect, dsn)
	if err != nil {
		fmt.Fprintln(stderr, "glint-hub mosquitto-config:", err)
		return exitFailure
	}
	defer st.Close()
	sum, err := mosquittoconf.Generate(ctx, st, o)
	if err != nil {
		fmt.Fprintln(stderr, "glint-hub mosquitto-config:", err)
		if errors.Is(err, mosquittoconf.ErrInvalid) {
			return exitConfig
		}
		return exitFailure
	}
	hubUser := o.HubUser
	if hubUser == "" {
		hubUser = mosquittoconf.DefaultHubUser
	}
	fmt.Fprintf(stdout, "wrote ACL for %d devices to %s\n", sum.Devices, sum.ACLFile)
	fmt.Fprintf(stdout, "wrote password file for %d devices and the hub user %s to %s\n", sum.Devices, hubUser, sum.PasswordFile)
	fmt.Fprintf(stdout, "wrote %s (include it from mosquitto.conf, then reload mosquitto)\n", sum.ConfFile)
	if sum.Revoked > 0 {
		fmt.Fprintf(stdout, "left out %d revoked devices\n", sum.Revoked)
	}
	if len(sum.Invalid) > 0 {
		fmt.Fprintf(stderr, "glint-hub mosquitto-config: warning: left out %d devices whose IDs cannot be MQTT usernames: %s\n", len(sum.Invalid), strings.Join(sum.Invalid, ", "))
	}
	if len(sum.NewSecrets) > 0 {
		fmt.Fprintf(stdout, "wrote %d new secrets to %s (%s): hand them over, then delete them; they are not stored anywhere else\n",
			len(sum.NewSecrets), sum.CredentialsDir, strings.Join(sum.NewSecrets, ", "))
	} else {
		fmt.Fprintln(stdout, "no new secrets")
	}
	return exitOK
}
