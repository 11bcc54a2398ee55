package eval

import (
	"math"
	"sort"

	"github.com/glintdev/glint/sim"
)

// Report is report.json. Rates are fractions (0..1).
type Report struct {
	Seed              uint64                   `json:"seed"`
	Scorer            string                   `json:"scorer"`
	Threshold         float64                  `json:"threshold"`
	Faces             int                      `json:"faces"`
	AttacksPerSpecies int                      `json:"attacks_per_species"`
	Conditions        sim.Conditions           `json:"conditions"`
	BonaFide          BonaFideStats            `json:"bona_fide"`
	BPCER             float64                  `json:"bpcer"`
	Species           map[string]*SpeciesStats `json:"species"`
	APCERMax          float64                  `json:"apcer_max"`
	APCERMaxSpecies   string                   `json:"apcer_max_species"`
	// BPCER20 and BPCER100 are the BPCER at the threshold where the worst
	// species' APCER is at most 5% and 1% (ISO/IEC 30107-3).
	BPCER20   float64       `json:"bpcer20"`
	BPCER100  float64       `json:"bpcer100"`
	AttemptMs Percentiles   `json:"attempt_ms"`
	Attempts  []Attempt     `json:"attempts"`
	order     []sim.Species // species in run order
}

// BonaFideStats counts the bona fide presentations.
type BonaFideStats struct {
	Attempts int `json:"attempts"`
	Rejected int `json:"rejected"`
	// Reasons counts the reason codes of the rejected attempts.
	Reasons map[string]int `json:"reasons,omitempty"`
}

// SpeciesStats counts one attack species.
type SpeciesStats struct {
	Attempts int     `json:"attempts"`
	Accepted int     `json:"accepted"`
	APCER    float64 `json:"apcer"`
	// BPCER20/100 for this species alone.
	BPCER20  float64 `json:"bpcer20"`
	BPCER100 float64 `json:"bpcer100"`
	// Reasons counts the reason codes over all attempts of the species.
	Reasons map[string]int `json:"reasons,omitempty"`
}

// Percentiles of the time per attempt, milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

func newReport(cfg Config, res []Attempt) *Report {
	order := append([]sim.Species(nil), cfg.Species...)
	for _, v := range cfg.Variants {
		order = append(order, sim.Species(v.Name))
	}
	r := &Report{
		Seed: cfg.Seed, Scorer: cfg.Scorer.Name(), Threshold: cfg.Scorer.Threshold(),
		Faces: len(cfg.Faces), AttacksPerSpecies: cfg.AttacksPerSpecies, Conditions: cfg.Conditions,
		Species: map[string]*SpeciesStats{}, Attempts: res, order: order,
	}
	count := func(m *map[string]int, reasons []string) {
		for _, c := range reasons {
			if *m == nil {
				*m = map[string]int{}
			}
			(*m)[c]++
		}
	}
	var bona []float64
	attacks := map[sim.Species][]float64{}
	var ms []float64
	for _, a := range res {
		ms = append(ms, a.Millis)
		if a.Species == sim.BonaFide {
			r.BonaFide.Attempts++
			if !a.Accepted {
				r.BonaFide.Rejected++
				count(&r.BonaFide.Reasons, a.Reasons)
			}
			bona = append(bona, a.Score)
			continue
		}
		st := r.Species[string(a.Species)]
		if st == nil {
			st = &SpeciesStats{}
			r.Species[string(a.Species)] = st
		}
		st.Attempts++
		count(&st.Reasons, a.Reasons)
		if a.Accepted {
			st.Accepted++
		}
		attacks[a.Species] = append(attacks[a.Species], a.Score)
	}
	r.BPCER = rate(r.BonaFide.Rejected, r.BonaFide.Attempts)
	r.APCERMax = -1
	var all [][]float64
	for _, sp := range order {
		st := r.Species[string(sp)]
		if st == nil {
			continue
		}
		st.APCER = rate(st.Accepted, st.Attempts)
		if st.APCER > r.APCERMax {
			r.APCERMax, r.APCERMaxSpecies = st.APCER, string(sp)
		}
		st.BPCER20 = bpcerAt(bona, [][]float64{attacks[sp]}, 0.05)
		st.BPCER100 = bpcerAt(bona, [][]float64{attacks[sp]}, 0.01)
		all = append(all, attacks[sp])
	}
	r.APCERMax = max(r.APCERMax, 0)
	r.BPCER20 = bpcerAt(bona, all, 0.05)
	r.BPCER100 = bpcerAt(bona, all, 0.01)
	r.AttemptMs = percentiles(ms)
	return r
}

func rate(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// thresholdFor is the lowest threshold at which at most a fraction apcer of
// the attack scores is accepted (score ≥ threshold).
func thresholdFor(attack []float64, apcer float64) float64 {
	if len(attack) == 0 {
		return math.Inf(-1)
	}
	s := append([]float64(nil), attack...)
	sort.Sort(sort.Reverse(sort.Float64Slice(s)))
	k := int(math.Floor(apcer * float64(len(s)) * (1 + 1e-9)))
	if k >= len(s) {
		return math.Inf(-1)
	}
	return math.Nextafter(s[k], math.Inf(1))
}

// bpcerAt is the BPCER at the lowest threshold that holds every species'
// APCER at or below apcer.
func bpcerAt(bona []float64, species [][]float64, apcer float64) float64 {
	t := math.Inf(-1)
	for _, a := range species {
		t = math.Max(t, thresholdFor(a, apcer))
	}
	rej := 0
	for _, b := range bona {
		if b < t {
			rej++
		}
	}
	return rate(rej, len(bona))
}

func percentiles(v []float64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(len(s)-1, i))]
	}
	return Percentiles{P50: q(0.5), P95: q(0.95), P99: q(0.99)}
}

// detPoints is the DET curve of one species against the bona fide
// presentations: (APCER, BPCER) at every distinct threshold.
func detPoints(bona, attack []float64) (apcer, bpcer []float64) {
	ts := append(append([]float64(nil), bona...), attack...)
	sort.Float64s(ts)
	ts = append(ts, math.Inf(1))
	for i, t := range ts {
		if i > 0 && ts[i-1] == t {
			continue
		}
		var acc, rej int
		for _, a := range attack {
			if a >= t {
				acc++
			}
		}
		for _, b := range bona {
			if b < t {
				rej++
			}
		}
		apcer = append(apcer, rate(acc, len(attack)))
		bpcer = append(bpcer, rate(rej, len(bona)))
	}
	return apcer, bpcer
}
