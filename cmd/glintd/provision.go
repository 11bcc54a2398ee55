package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/internal/service"
	"github.com/glintdev/glint/sim"
)

const provisionUsage = `usage: glintd provision [--config FILE] (--link glint://provision?... | --hub URL --token T)
                        [--site S] [--device-id ID] [--ca-fingerprint SHA256] [--no-self-test]

glintd's first-boot mode: provisions this device with a one-time claim token
(glint-hub token create) using glintd's own configuration: the state
directory and sync.tpm_device for the identity, camera.* for the camera to
test and pin, display.* for the flash check, gpio.* for the relay and the
tamper switch. It writes sync.env (glintd's GLINT_SYNC_… settings) and the
self-test report into state_dir, and exits: 0 provisioned and passed, 1
refused or failed, 2 usage. docs/provisioning.md.

`

// provisionCommand implements glintd provision.
func provisionCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("glintd provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, provisionUsage); fs.PrintDefaults() }
	path := fs.String("config", defaultConfigPath, "glintd configuration file")
	linkS := fs.String("link", "", "provisioning link glint://provision?hub=…&token=… (the QR code's text)")
	hubURL := fs.String("hub", "", "hub API URL (instead of --link)")
	token := fs.String("token", "", "claim token (instead of --link)")
	caFP := fs.String("ca-fingerprint", "", "SHA-256 (hex) of the hub's HTTPS CA certificate to pin")
	site := fs.String("site", "", "site this device must join (checked against the token's)")
	deviceID := fs.String("device-id", "", "device ID (default glint-<first 12 hex digits of the key ID>)")
	noSelfTest := fs.Bool("no-self-test", false, "register only")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	var l device.ProvisionLink
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "glintd provision: unexpected argument %q\n", fs.Arg(0))
		return exitConfig
	case *linkS != "" && (*hubURL != "" || *token != ""):
		fmt.Fprintln(stderr, "glintd provision: give --link or --hub and --token, not both")
		return exitConfig
	case *linkS != "":
		var err error
		if l, err = device.ParseProvisionLink(*linkS); err != nil {
			fmt.Fprintln(stderr, "glintd provision:", err)
			return exitConfig
		}
	case *hubURL != "" && *token != "":
		l = device.ProvisionLink{Hub: *hubURL, Token: *token}
	default:
		fmt.Fprint(stderr, provisionUsage)
		return exitConfig
	}
	if *caFP != "" {
		l.CAFingerprint = *caFP
	}
	if err := l.Check(); err != nil {
		fmt.Fprintln(stderr, "glintd provision:", err)
		return exitConfig
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	ctx, stop := service.SignalContext(context.Background())
	defer stop()
	prov := device.Provisioning{Link: l, StateDir: cfg.StateDir, TPMPath: cfg.Sync.TPMDevice, DeviceID: *deviceID, SiteID: *site, Progress: stdout}
	closeParts, err := provisionParts(cfg, &prov, !*noSelfTest)
	defer closeParts()
	if err != nil {
		fmt.Fprintln(stderr, "glintd provision:", err)
		return exitFailure
	}
	out, err := prov.Run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "glintd provision:", err)
		return exitFailure
	}
	if out.Report != nil {
		fmt.Fprintf(stdout, "\n%s\nreport: %s\n", out.Report.Summary(), filepath.Join(cfg.StateDir, device.SelfTestFile))
	}
	fmt.Fprintf(stdout, "glintd settings: %s (the unit reads it with EnvironmentFile=)\n", filepath.Join(cfg.StateDir, device.ProvisionEnvFile))
	if out.ReportErr != nil || (out.Report != nil && !out.Report.Passed) {
		return exitFailure
	}
	return exitOK
}

// provisionParts opens what glintd's configuration names for the
// self-test, pins the camera's USB identity and takes the guard's
// summary. The returned function releases what was opened.
func provisionParts(cfg Config, prov *device.Provisioning, selfTest bool) (func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	src, err := newSource(cfg.Camera)
	if err != nil {
		return closeAll, err
	}
	if cfg.Camera.Source == "v4l2" && cfg.Camera.Device != "" {
		if info, err := capture.QueryDevice(cfg.Camera.Device); err == nil && info.USB != nil {
			prov.Camera = &device.CameraIdentity{VendorID: info.USB.VendorID, ProductID: info.USB.ProductID, Serial: info.USB.Serial}
		}
	}
	var gate *device.GPIO
	if cfg.GPIO.enabled() {
		lookup, err := device.HostPins()
		if err != nil {
			return closeAll, err
		}
		if gate, err = device.NewGPIO(cfg.GPIO.device(), lookup); err != nil {
			return closeAll, err
		}
		closers = append(closers, func() { gate.Close() })
	}
	if guard, err := newGuard(cfg, src, gate); err == nil {
		sum := guard.Check().Summary()
		prov.Guard = &sum
	}
	if !selfTest {
		return closeAll, nil
	}
	prov.SelfTest.Camera, prov.SelfTest.GPIO = src, gate
	if rig, ok := src.(*sim.Rig); ok && cfg.Display.Backend == "auto" {
		prov.SelfTest.Display = rig
	}
	if cfg.Display.Backend == "fbdev" {
		fb, err := flashmark.OpenFramebuffer(flashmark.FramebufferConfig{Path: cfg.Display.Framebuffer})
		if err != nil {
			return closeAll, fmt.Errorf("display.framebuffer: %w", err)
		}
		closers = append(closers, func() { fb.Close() })
		prov.SelfTest.Display = fb
	}
	return closeAll, nil
}
