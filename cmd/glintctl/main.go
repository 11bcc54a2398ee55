// Command glintctl is the technician's and operator's tool: camera
// inspection now; provisioning, enrolment, inspection of signed results,
// simulation, evaluation and benchmarks as those parts land.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exitUsage is the exit status for bad invocations and bad input.
const exitUsage = 2

// usageError marks errors caused by how the command was invoked.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const topUsage = `usage: glintctl <command> [arguments]

commands:
  camera list [--json]                      list V4L2 devices with driver, bus and formats
  camera grab --device D --frames N --out DIR
                                            capture N frames and write them as images
  camera testpattern --out DIR [--frames N] write moving colour-bar frames for the file source
  faces detect IMAGE [--out annotated.png] [--json]
                                            faces: boxes, landmarks, pose, scores, quality verdict
  faces compare A B [--json]                similarity 0-100; exit 0 match, 1 no match, 2 error
  faces validate PORTRAIT [--json]          enrolment portrait checks; exit 0 valid, 1 invalid (code), 2 error
  faces eval DIR [--embedding M]            genuine/impostor scores, FNMR at FMR, over DIR/<person>/*
  models convert --in model.json --out m.onnx
                                            convert a TFJS graph model to ONNX
  models build [--src DIR] [--out models]   convert the model catalog into models/ with a manifest
  models quantize [--dir models]            INT8 (QDQ) models calibrated on registry photos
  models verify [--dir models]              check the model files against the manifest
  inspect [--pubkey FILE] FILE|-            decode a signed result or receipt, print JSON, verify it
  fleet-sim --broker URL --devices N --rate R --duration D
                                            simulate N devices publishing signed results
  sim render --faces DIR --out DIR          render simulator frames (bona fide, each attack species)
  eval --faces DIR --seed N --bona-fide N --attacks-per-species N --species LIST --out DIR
                                            ISO/IEC 30107-3 liveness evaluation on the simulator
  session start --subject S --reference R [--socket PATH | --url URL --token-file F] [--json]
                                            run a verification on glintd; exit 0 Approved, 1 other verdict, 2 error
  session get|cancel ID                     a session's state; cancel it
  session present SPECIES                   simulated camera: bona_fide or an attack in front of it
  enrol --subject S [--crop X,Y,SIDE] PORTRAIT
                                            enrol a portrait on glintd (prints the reference_id)
  enrol get|delete ID                       an enrolment's metadata; delete it (data-subject request)
  provision --link L | --hub URL --token T [--state-dir D] [--site S] [--tpm DEV]
                                            register this device with a claim token, then self-test
  version                                   print the version

Run 'glintctl <command> -h' for a command's flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "camera":
		err = runCamera(ctx, args[1:], stdout, stderr)
	case "faces":
		return runFacesMain(args[1:], stdout, stderr)
	case "models":
		err = runModels(args[1:], stdout, stderr)
	case "inspect":
		err = runInspect(args[1:], os.Stdin, stdout, stderr)
	case "fleet-sim":
		err = runFleetSim(ctx, args[1:], stdout, stderr)
	case "sim":
		err = runSim(ctx, args[1:], stdout, stderr)
	case "eval":
		err = runEval(ctx, args[1:], stdout, stderr)
	case "provision":
		err = runProvision(ctx, args[1:], stdout, stderr)
	case "session":
		return runSessionMain(ctx, args[1:], stdout, stderr)
	case "enrol", "enroll":
		return runEnrolMain(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
	case "-h", "--help", "help":
		fmt.Fprint(stdout, topUsage)
	default:
		err = usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "glintctl: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	return 1
}

// exitStatus turns a subcommand's outcome into its exit status: code when
// it succeeded or only printed help; otherwise the error (and, for a usage
// error, usage) goes to stderr and the status is failCode.
func exitStatus(code int, err error, failCode int, usage string, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return code
	}
	fmt.Fprintf(stderr, "glintctl: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprint(stderr, usage)
	}
	return failCode
}
