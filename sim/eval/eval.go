// Package eval is glint's presentation-attack-detection evaluation harness,
// after ISO/IEC 30107-3: it runs bona fide and attack attempts through the
// closed-loop simulator (package sim), scores each with a liveness Scorer,
// and reports APCER per attack species, APCER_max, BPCER, BPCER20 and
// BPCER100, time per attempt, and a DET curve. A run is a pure function of
// its seed: attempts are drawn from the seed and scored on virtual clocks,
// whatever the number of workers.
package eval

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/glintdev/glint/sim"
)

// Scorer decides liveness for one attempt: it drives the attempt's display
// and camera (a sim.Attempt opened on a virtual clock) and returns a score,
// higher meaning more likely bona fide.
type Scorer interface {
	// Name identifies the scorer in reports.
	Name() string
	// Threshold is the operating point: scores ≥ Threshold are accepted.
	Threshold() float64
	// Score runs the attempt. rng is the attempt's own random stream (for
	// the challenge).
	Score(ctx context.Context, a *sim.Attempt, rng *rand.Rand) (float64, error)
}

// Config is one evaluation.
type Config struct {
	Faces             []*sim.Face
	Seed              uint64
	BonaFide          int
	AttacksPerSpecies int
	Species           []sim.Species
	Conditions        sim.Conditions
	Scorer            Scorer
	// Workers score attempts in parallel; default GOMAXPROCS.
	Workers int
	// Variants are extra attack presentations under modified conditions
	// (e.g. a relighting deepfake one frame late), reported as their own
	// species.
	Variants []Variant
	// Progress, if set, is called after each attempt (from any worker).
	Progress func(done, total int)
}

// Variant is an attack species under conditions that differ from the
// run's: it is reported under Name, with AttacksPerSpecies attempts.
type Variant struct {
	Name    string
	Species sim.Species
	// Conditions replace the run's conditions for this variant.
	Conditions sim.Conditions
}

// Attempt is the outcome of one attempt.
type Attempt struct {
	Index    int         `json:"index"`
	Species  sim.Species `json:"species"`
	Face     string      `json:"face"`
	Score    float64     `json:"score"`
	Accepted bool        `json:"accepted"`
	// Millis is the wall time the attempt took (scene build, rendering,
	// scoring); the only non-deterministic field.
	Millis float64 `json:"ms"`
	// Reasons and Evidence come from a DetailScorer.
	Reasons  []string           `json:"reasons,omitempty"`
	Evidence map[string]float64 `json:"evidence,omitempty"`
}

type job struct {
	index   int
	species sim.Species // what is rendered
	label   sim.Species // what it is reported as (a variant's name)
	seed    uint64
	cond    *sim.Conditions
}

// attemptSeed derives an attempt's seed from the run seed, its species and
// its number, so that adding species or attempts does not change others.
func attemptSeed(seed uint64, sp sim.Species, i int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d", seed, sp, i)
	return h.Sum64()
}

// Run performs the evaluation.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Faces) == 0 {
		return nil, fmt.Errorf("eval: no faces")
	}
	if cfg.Scorer == nil {
		return nil, fmt.Errorf("eval: no scorer")
	}
	if cfg.BonaFide < 1 || cfg.AttacksPerSpecies < 0 {
		return nil, fmt.Errorf("eval: need at least 1 bona fide attempt (got %d) and ≥ 0 attacks per species (got %d)", cfg.BonaFide, cfg.AttacksPerSpecies)
	}
	if err := cfg.Conditions.Validate(); err != nil {
		return nil, fmt.Errorf("eval: conditions: %w", err)
	}
	var jobs []job
	for i := 0; i < cfg.BonaFide; i++ {
		jobs = append(jobs, job{index: len(jobs), species: sim.BonaFide, label: sim.BonaFide, seed: attemptSeed(cfg.Seed, sim.BonaFide, i)})
	}
	for _, sp := range cfg.Species {
		for i := 0; i < cfg.AttacksPerSpecies; i++ {
			jobs = append(jobs, job{index: len(jobs), species: sp, label: sp, seed: attemptSeed(cfg.Seed, sp, i)})
		}
	}
	for v := range cfg.Variants {
		vr := &cfg.Variants[v]
		if vr.Species == sim.BonaFide || vr.Name == "" || vr.Name == string(vr.Species) {
			return nil, fmt.Errorf("eval: variant %q of %q needs an attack species and its own name", vr.Name, vr.Species)
		}
		if err := vr.Conditions.Validate(); err != nil {
			return nil, fmt.Errorf("eval: variant %s: conditions: %w", vr.Name, err)
		}
		for i := 0; i < cfg.AttacksPerSpecies; i++ {
			jobs = append(jobs, job{index: len(jobs), species: vr.Species, label: sim.Species(vr.Name), seed: attemptSeed(cfg.Seed, sim.Species(vr.Name), i), cond: &vr.Conditions})
		}
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	results := make([]Attempt, len(jobs))
	ch := make(chan job)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     int
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				r, err := runAttempt(ctx, cfg, j)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				results[j.index] = r
				done++
				d := done
				mu.Unlock()
				if cfg.Progress != nil {
					cfg.Progress(d, len(jobs))
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return newReport(cfg, results), nil
}

func runAttempt(ctx context.Context, cfg Config, j job) (Attempt, error) {
	start := time.Now()
	rng := rand.New(rand.NewPCG(j.seed, 0xe7a1))
	face := cfg.Faces[rng.IntN(len(cfg.Faces))]
	cond := cfg.Conditions
	if j.cond != nil {
		cond = *j.cond
	}
	if j.label == "" {
		j.label = j.species
	}
	p := cond.Draw(rng, j.species)
	a, err := sim.NewAttempt(face, p, sim.NewVirtualClock(time.Second), rng.Uint64())
	if err != nil {
		return Attempt{}, fmt.Errorf("eval: attempt %d (%s, %s): %w", j.index, j.label, face.Name, err)
	}
	var d Detail
	if ds, ok := cfg.Scorer.(DetailScorer); ok {
		d, err = ds.ScoreDetail(ctx, a, rng)
	} else {
		d.Score, err = cfg.Scorer.Score(ctx, a, rng)
	}
	if err != nil {
		return Attempt{}, fmt.Errorf("eval: attempt %d (%s, %s): %w", j.index, j.label, face.Name, err)
	}
	return Attempt{
		Index: j.index, Species: j.label, Face: face.Name, Score: d.Score,
		Accepted: d.Score >= cfg.Scorer.Threshold(),
		Millis:   float64(time.Since(start).Microseconds()) / 1000,
		Reasons:  d.Reasons, Evidence: d.Evidence,
	}, nil
}
