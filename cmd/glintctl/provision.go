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
	"github.com/glintdev/glint/sim"
)

const provisionUsage = `usage: glintctl provision (--link glint://provision?... | --hub URL --token T) [flags]

Provisions this device with a one-time claim token (glint-hub token create):
loads or creates the device key in --state-dir (or uses the TPM with --tpm),
registers it with the hub by a registration signed with that key, writes the
hub's settings into the state directory (sync.env: glintd's GLINT_SYNC_…
overrides; hub.pub; broker.secret and broker-ca.pem when issued; all 0600),
runs the self-test (camera, flash reflection, relay pulse, tamper switch),
writes selftest.json and selftest.txt, and sends the signed report to the
hub. Exit status: 0 provisioned and self-test passed, 1 refused or failed,
2 usage. See docs/provisioning.md.

`

// provisionFlags are glintctl provision's flags.
type provisionFlags struct {
	link, hub, token, caFP        string
	stateDir, site, deviceID, tpm string
	camera, display, simFaces     string
	relay, tamper                 string
	relayActiveLow, tamperOpenLow bool
	noSelfTest                    bool
}

func (p *provisionFlags) register(fs *flag.FlagSet, defaultStateDir string) {
	fs.StringVar(&p.link, "link", "", "provisioning link glint://provision?hub=…&token=… (the QR code's text)")
	fs.StringVar(&p.hub, "hub", "", "hub API URL (instead of --link)")
	fs.StringVar(&p.token, "token", "", "claim token (instead of --link)")
	fs.StringVar(&p.caFP, "ca-fingerprint", "", "SHA-256 (hex) of the hub's HTTPS CA certificate to pin (instead of the link's ca=)")
	fs.StringVar(&p.stateDir, "state-dir", defaultStateDir, "glintd's state directory: device key, settings, self-test report")
	fs.StringVar(&p.site, "site", "", "site this device must join (the token's site is checked against it)")
	fs.StringVar(&p.deviceID, "device-id", "", "device ID (default glint-<first 12 hex digits of the key ID>)")
	fs.StringVar(&p.tpm, "tpm", "", "TPM 2.0 device holding the device key, e.g. "+device.DefaultTPMPath+" (default: the Ed25519 key file)")
	fs.StringVar(&p.camera, "camera", "", "V4L2 camera to test and pin, e.g. /dev/video0")
	fs.StringVar(&p.display, "display", "", "framebuffer for the flash check, e.g. /dev/fb0")
	fs.StringVar(&p.simFaces, "sim-faces", "", "use the simulator's camera and screen (face photos from this folder) instead of --camera/--display: demos and tests")
	fs.StringVar(&p.relay, "relay", "", "GPIO pin of the gate relay to pulse (periph name, e.g. GPIO17)")
	fs.StringVar(&p.tamper, "tamper", "", "GPIO pin of the enclosure switch to read")
	fs.BoolVar(&p.relayActiveLow, "relay-active-low", false, "the relay is driven by a low level")
	fs.BoolVar(&p.tamperOpenLow, "tamper-open-low", false, "the tamper input reads low when the enclosure is open")
	fs.BoolVar(&p.noSelfTest, "no-self-test", false, "register only")
}

// run parses the flags' link, builds the self-test parts, and
// provisions. It returns the process exit status.
func (p *provisionFlags) run(ctx context.Context, stdout, stderr io.Writer) int {
	var l device.ProvisionLink
	switch {
	case p.link != "" && (p.hub != "" || p.token != ""):
		fmt.Fprintln(stderr, "provision: give --link or --hub and --token, not both")
		return exitUsage
	case p.link != "":
		var err error
		if l, err = device.ParseProvisionLink(p.link); err != nil {
			fmt.Fprintln(stderr, "provision:", err)
			return exitUsage
		}
	case p.hub != "" && p.token != "":
		l = device.ProvisionLink{Hub: p.hub, Token: p.token}
	default:
		fmt.Fprintln(stderr, "provision: --link, or --hub and --token, are required")
		return exitUsage
	}
	if p.caFP != "" {
		l.CAFingerprint = p.caFP
	}
	if err := l.Check(); err != nil {
		fmt.Fprintln(stderr, "provision:", err)
		return exitUsage
	}
	prov := device.Provisioning{Link: l, StateDir: p.stateDir, TPMPath: p.tpm, DeviceID: p.deviceID, SiteID: p.site, Progress: stdout}
	// The guard's view of this machine (and of the camera, when named)
	// goes to the hub with the registration and the report.
	gc := device.GuardConfig{}
	if p.camera != "" {
		cam := p.camera
		gc.Camera = func() (capture.DeviceInfo, error) { return capture.QueryDevice(cam) }
	}
	if g, err := device.NewGuard(gc); err == nil {
		sum := g.Check().Summary()
		prov.Guard = &sum
	}
	if !p.noSelfTest {
		closeAll, err := p.selfTestParts(&prov)
		defer closeAll()
		if err != nil {
			fmt.Fprintln(stderr, "provision:", err)
			return 1
		}
	}
	out, err := prov.Run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "provision:", err)
		return 1
	}
	if out.Report != nil {
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, out.Report.Summary())
		fmt.Fprintf(stdout, "\nreport: %s\n", filepath.Join(p.stateDir, device.SelfTestFile))
	}
	fmt.Fprintf(stdout, "glintd settings: %s (systemd: EnvironmentFile=-%s)\n",
		filepath.Join(p.stateDir, device.ProvisionEnvFile), filepath.Join(p.stateDir, device.ProvisionEnvFile))
	if out.ReportErr != nil || (out.Report != nil && !out.Report.Passed) {
		return 1
	}
	return 0
}

// selfTestParts opens the camera, display and GPIO the flags name and
// records the camera's identity for pinning.
func (p *provisionFlags) selfTestParts(prov *device.Provisioning) (func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	switch {
	case p.simFaces != "":
		faces, err := sim.LoadFaces([]string{p.simFaces})
		if err != nil {
			return closeAll, err
		}
		a, err := sim.NewAttempt(faces[0], sim.DefaultParams(), sim.NewVirtualClock(0), 1)
		if err != nil {
			return closeAll, err
		}
		prov.SelfTest.Camera, prov.SelfTest.Display = a.Camera, a.Display
	default:
		if p.camera != "" {
			info, err := capture.QueryDevice(p.camera)
			if err != nil {
				return closeAll, fmt.Errorf("camera: %w", err)
			}
			if info.USB != nil {
				prov.Camera = &device.CameraIdentity{VendorID: info.USB.VendorID, ProductID: info.USB.ProductID, Serial: info.USB.Serial}
			}
			prov.SelfTest.Camera = capture.NewV4L2Source(capture.V4L2Config{Device: p.camera, Width: 640, Height: 480, FPS: 30})
		}
		if p.display != "" {
			fb, err := flashmark.OpenFramebuffer(flashmark.FramebufferConfig{Path: p.display})
			if err != nil {
				return closeAll, fmt.Errorf("display: %w", err)
			}
			closers = append(closers, func() { fb.Close() })
			prov.SelfTest.Display = fb
		}
	}
	if p.relay != "" || p.tamper != "" {
		lookup, err := device.HostPins()
		if err != nil {
			return closeAll, err
		}
		g, err := device.NewGPIO(device.GPIOConfig{Relay: p.relay, RelayActiveLow: p.relayActiveLow, Tamper: p.tamper, TamperOpenLow: p.tamperOpenLow}, lookup)
		if err != nil {
			return closeAll, err
		}
		closers = append(closers, func() { g.Close() })
		prov.SelfTest.GPIO = g
	}
	return closeAll, nil
}

func runProvision(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("glintctl provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, provisionUsage); fs.PrintDefaults() }
	var p provisionFlags
	p.register(fs, "/var/lib/glint")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("provision: unexpected argument %q", fs.Arg(0))}
	}
	switch code := p.run(ctx, stdout, stderr); code {
	case 0:
		return nil
	case exitUsage:
		return usageError{"provision: see glintctl provision -h"}
	default:
		return errProvisionFailed
	}
}

// errProvisionFailed: the details were printed already.
var errProvisionFailed = errors.New("provisioning failed (see above)")
