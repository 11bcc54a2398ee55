package inference

import (
	"math"
	"sort"
)

// Pair is one comparison of an evaluation: two samples, whether they are
// the same identity, and their similarity score (0-100).
type Pair struct {
	A, B    string
	Genuine bool
	Cosine  float64
	Score   float64
}

// OperatingPoint is the error rates at one threshold.
type OperatingPoint struct {
	// TargetFMR is the false-match rate asked for.
	TargetFMR float64 `json:"target_fmr"`
	// Threshold is the lowest score threshold whose FMR (impostor scores ≥
	// threshold) is at most TargetFMR.
	Threshold float64 `json:"threshold"`
	FMR       float64 `json:"fmr"`
	// FNMR is the fraction of genuine scores below Threshold.
	FNMR float64 `json:"fnmr"`
	// Resolvable says whether the impostor count can resolve TargetFMR at
	// all (needs at least 1/TargetFMR impostor pairs); if not, the point is
	// the zero-false-match threshold and says less than asked.
	Resolvable bool `json:"resolvable"`
}

// Operating returns the operating point for targetFMR: the threshold is
// just above the impostor score that would exceed the allowed number of
// false matches.
func Operating(pairs []Pair, targetFMR float64) OperatingPoint {
	var gen, imp []float64
	for _, p := range pairs {
		if p.Genuine {
			gen = append(gen, p.Score)
		} else {
			imp = append(imp, p.Score)
		}
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(imp)))
	op := OperatingPoint{TargetFMR: targetFMR, Resolvable: float64(len(imp)) >= 1/targetFMR}
	allowed := int(math.Floor(targetFMR * float64(len(imp))))
	switch {
	case len(imp) == 0:
		op.Threshold = 0
	case allowed >= len(imp):
		op.Threshold = 0
	default:
		// Scores ≥ threshold match; the (allowed+1)-th highest impostor
		// must fall below it.
		op.Threshold = math.Nextafter(imp[allowed], math.Inf(1))
	}
	var fm, fnm int
	for _, s := range imp {
		if s >= op.Threshold {
			fm++
		}
	}
	for _, s := range gen {
		if s < op.Threshold {
			fnm++
		}
	}
	if len(imp) > 0 {
		op.FMR = float64(fm) / float64(len(imp))
	}
	if len(gen) > 0 {
		op.FNMR = float64(fnm) / float64(len(gen))
	}
	return op
}
