package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/sim"
	"github.com/glintdev/glint/sim/eval"
)

const evalUsage = `usage: glintctl eval --faces DIR [--faces DIR ...] --seed N --bona-fide N \
  --attacks-per-species N --species print,screen,replay,injection,relight,mask \
  [--variants relight-33ms] [--conditions FILE.yaml] [--scorer flashmark|baseline] \
  [--level LOOSE|STANDARD|STRICT] [--locator detector|groundtruth] --out DIR

Runs bona fide and attack attempts through the closed-loop simulator and
writes an ISO/IEC 30107-3 report (report.json, report.md, det.png) to DIR.
The flashmark scorer is the liveness pipeline end to end: the face detector
(models/, make deps) finds the face in every frame, the passive anti-spoof
model scores the idle frame, flashmark.Analyze decides (docs/liveness.md).
Conditions keys: docs/eval-conditions.md.
`

// evalVariants are the named condition variants --variants accepts: an
// attack species under conditions that differ from the run's.
var evalVariants = map[string]struct {
	species sim.Species
	mutate  func(*sim.Conditions)
}{
	// A relighting deepfake one camera frame (33 ms) late.
	"relight-33ms": {sim.Relight, func(c *sim.Conditions) { c.RelightLatencyMs = sim.Range{33, 33} }},
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, evalUsage); fs.PrintDefaults() }
	var faces multiFlag
	fs.Var(&faces, "faces", "folder of face photos, any layout (repeatable)")
	seed := fs.Uint64("seed", 1, "random seed: the run is a function of it")
	bona := fs.Int("bona-fide", 100, "number of bona fide attempts")
	perSpecies := fs.Int("attacks-per-species", 100, "number of attempts per attack species")
	speciesList := fs.String("species", "print,screen,replay,injection,relight,mask", "attack species, comma-separated")
	condPath := fs.String("conditions", "", "YAML file overriding the randomisation ranges")
	out := fs.String("out", "", "output folder")
	workers := fs.Int("workers", 0, "parallel attempts (default: all cores)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	scorerName := fs.String("scorer", "flashmark", "liveness scorer: flashmark (the pipeline) or baseline (the trivial one)")
	levelName := fs.String("level", "STANDARD", "flashmark liveness level: LOOSE, STANDARD or STRICT")
	locatorName := fs.String("locator", "detector", "flashmark face boxes: detector (the face model, with the passive anti-spoof model) or groundtruth (the simulator's box, no passive model; fast)")
	variantList := fs.String("variants", "", "extra attack variants, comma-separated: relight-33ms")
	var eng engineFlags
	eng.register(fs)
	detector := fs.String("detector", "short", "face detector for --locator detector: short or full (docs/models.md)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(faces) == 0 || *out == "" {
		return usageError{"eval: --faces and --out are required"}
	}
	if *bona < 1 || *perSpecies < 0 {
		return usageError{"eval: --bona-fide must be ≥ 1 and --attacks-per-species ≥ 0"}
	}
	var species []sim.Species
	seen := map[sim.Species]bool{}
	for _, s := range strings.Split(*speciesList, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		sp, err := sim.ParseSpecies(s)
		if err != nil || sp == sim.BonaFide {
			return usageError{fmt.Sprintf("eval: --species: unknown species %q (known: print, screen, replay, injection, relight, mask)", s)}
		}
		if !seen[sp] {
			species = append(species, sp)
			seen[sp] = true
		}
	}
	cond := sim.DefaultConditions()
	if *condPath != "" {
		var err error
		if cond, err = sim.LoadConditions(*condPath); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
	}
	var variants []eval.Variant
	for _, v := range strings.Split(*variantList, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		def, ok := evalVariants[v]
		if !ok {
			return usageError{fmt.Sprintf("eval: --variants: unknown variant %q (known: relight-33ms)", v)}
		}
		c := cond
		def.mutate(&c)
		variants = append(variants, eval.Variant{Name: v, Species: def.species, Conditions: c})
	}
	loaded, err := sim.LoadFaces(faces)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	var scorer eval.Scorer
	switch *scorerName {
	case "baseline":
		scorer = eval.Baseline{}
	case "flashmark":
		level, err := flashmark.ParseLevel(*levelName)
		if err != nil || level == flashmark.LevelClosed {
			return usageError{fmt.Sprintf("eval: --level: %q is not LOOSE, STANDARD or STRICT", *levelName)}
		}
		fm := eval.Flashmark{Analysis: flashmark.AnalysisConfig{Level: level}}
		switch *locatorName {
		case "groundtruth":
			fm.Label = "flashmark-groundtruth"
		case "detector":
			lib := eng.lib
			if lib == "" {
				lib = inference.DefaultLibraryPath(eng.models + "/..")
			}
			rt, err := inference.NewRuntime(inference.RuntimeConfig{LibraryPath: lib})
			if err != nil {
				return fmt.Errorf("eval: face models: %w", err)
			}
			defer rt.Close()
			e, err := inference.New(rt, inference.Config{
				ModelsDir: eng.models, Precision: eng.precision, Embedding: eng.embedding,
				IntraOpThreads: eng.threads, Detector: *detector,
			})
			if err != nil {
				return fmt.Errorf("eval: face models: %w", err)
			}
			defer e.Close()
			fm.NewLocator = func(*sim.Attempt) eval.FaceLocator { return inference.NewLocator(e) }
		default:
			return usageError{fmt.Sprintf("eval: --locator: unknown locator %q (want detector or groundtruth)", *locatorName)}
		}
		scorer = fm
	default:
		return usageError{fmt.Sprintf("eval: --scorer: unknown scorer %q (want flashmark or baseline)", *scorerName)}
	}
	fmt.Fprintf(stderr, "eval: %d faces, %d bona fide + %d×%d attack attempts, seed %d\n", len(loaded), *bona, len(species), *perSpecies, *seed)
	cfg := eval.Config{
		Faces: loaded, Seed: *seed, BonaFide: *bona, AttacksPerSpecies: *perSpecies,
		Species: species, Variants: variants, Conditions: cond, Scorer: scorer, Workers: *workers,
	}
	var bar *progressBar
	if !*quiet {
		bar = &progressBar{w: stderr, start: time.Now(), tty: isTerminal(stderr)}
		cfg.Progress = bar.update
	}
	rep, err := eval.Run(ctx, cfg)
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return err
	}
	if err := rep.WriteFiles(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "BPCER %.1f%%  APCER_max %.1f%% (%s)  BPCER20 %.1f%%  BPCER100 %.1f%%  attempt p50 %.0f ms\n",
		100*rep.BPCER, 100*rep.APCERMax, rep.APCERMaxSpecies, 100*rep.BPCER20, 100*rep.BPCER100, rep.AttemptMs.P50)
	fmt.Fprintf(stdout, "report: %s/report.json, report.md, det.png\n", *out)
	return nil
}

// progressBar draws "[=====     ] done/total rate ETA" on one line of a
// terminal, or a line per 10% into a log.
type progressBar struct {
	w     io.Writer
	start time.Time
	tty   bool
	mu    sync.Mutex
	last  time.Time
	tenth int
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (b *progressBar) update(done, total int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.tty {
		if done < total && now.Sub(b.last) < 200*time.Millisecond {
			return
		}
	} else {
		t := 10 * done / max(total, 1)
		if t == b.tenth {
			return
		}
		b.tenth = t
	}
	b.last = now
	const width = 30
	fill := width * done / max(total, 1)
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	el := now.Sub(b.start).Seconds()
	rate := float64(done) / max(el, 1e-9)
	eta := time.Duration(float64(total-done)/max(rate, 1e-9)) * time.Second
	line := fmt.Sprintf("[%s] %d/%d attempts  %.1f/s  ETA %v", bar, done, total, rate, eta.Round(time.Second))
	if b.tty {
		fmt.Fprintf(b.w, "\r%s   ", line)
	} else {
		fmt.Fprintln(b.w, line)
	}
}

func (b *progressBar) finish() {
	if b.tty {
		fmt.Fprintln(b.w)
	}
}
