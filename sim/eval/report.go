package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/glintdev/glint/sim"
)

// WriteFiles writes report.json, report.md and det.png into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("eval report: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("eval report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("eval report: %w", err)
	}
	var md strings.Builder
	r.WriteMarkdown(&md)
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(md.String()), 0o644); err != nil {
		return fmt.Errorf("eval report: %w", err)
	}
	return r.WriteDET(filepath.Join(dir, "det.png"))
}

func pct(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }

// WriteMarkdown writes the summary table.
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "# Liveness evaluation (ISO/IEC 30107-3)\n\n")
	fmt.Fprintf(w, "Scorer `%s` at threshold %g; seed %d; %d face(s); %d bona fide attempts, %d attacks per species.\n\n",
		r.Scorer, r.Threshold, r.Seed, r.Faces, r.BonaFide.Attempts, r.AttacksPerSpecies)
	fmt.Fprintf(w, "| presentation | attempts | accepted | rejected | APCER | BPCER | BPCER20 | BPCER100 |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(w, "| bona fide | %d | %d | %d | | %s | | |\n", r.BonaFide.Attempts, r.BonaFide.Attempts-r.BonaFide.Rejected, r.BonaFide.Rejected, pct(r.BPCER))
	for _, sp := range r.order {
		st := r.Species[string(sp)]
		if st == nil {
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s | | %s | %s |\n", sp, st.Attempts, st.Accepted, st.Attempts-st.Accepted, pct(st.APCER), pct(st.BPCER20), pct(st.BPCER100))
	}
	fmt.Fprintf(w, "| **all species** | | | | **APCER_max %s** (%s) | **%s** | **%s** | **%s** |\n\n", pct(r.APCERMax), r.APCERMaxSpecies, pct(r.BPCER), pct(r.BPCER20), pct(r.BPCER100))
	fmt.Fprintf(w, "Time per attempt (scene, rendering, scoring): p50 %.0f ms, p95 %.0f ms, p99 %.0f ms.\n\n", r.AttemptMs.P50, r.AttemptMs.P95, r.AttemptMs.P99)
	if r.APCERMax > 0.05 {
		fmt.Fprintf(w, "**FAIL**: APCER_max %s > 5%%: species %s is accepted too often.\n\n", pct(r.APCERMax), r.APCERMaxSpecies)
	}
	fmt.Fprintf(w, "![DET curve](det.png)\n")
}

// probit is the DET axis: the normal deviate of an error rate, so that
// normally distributed scores give straight lines.
type probit struct{}

const detFloor = 1e-3 // rates of 0 are drawn at 0.1%

func deviate(p float64) float64 {
	p = math.Max(detFloor, math.Min(1-detFloor, p))
	return math.Sqrt2 * math.Erfinv(2*p-1)
}

func (probit) Normalize(min, max, x float64) float64 {
	a, b := deviate(min), deviate(max)
	return (deviate(x) - a) / (b - a)
}

type probitTicks struct{}

func (probitTicks) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	for _, v := range []float64{0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99} {
		if v >= min && v <= max {
			out = append(out, plot.Tick{Value: v, Label: strings.TrimSuffix(fmt.Sprintf("%.1f", 100*v), ".0") + "%"})
		}
	}
	return out
}

// WriteDET draws the DET curve of every species against the bona fide
// presentations (APCER vs BPCER on normal-deviate axes).
func (r *Report) WriteDET(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("DET — %s, seed %d", r.Scorer, r.Seed)
	p.X.Label.Text = "APCER"
	p.Y.Label.Text = "BPCER"
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		ax.Min, ax.Max = detFloor, 0.99
		ax.Scale = probit{}
		ax.Tick.Marker = probitTicks{}
	}
	p.Add(plotter.NewGrid())
	var bona []float64
	attacks := map[sim.Species][]float64{}
	for _, a := range r.Attempts {
		if a.Species == sim.BonaFide {
			bona = append(bona, a.Score)
		} else {
			attacks[a.Species] = append(attacks[a.Species], a.Score)
		}
	}
	var lines []any
	for _, sp := range r.order {
		if len(attacks[sp]) == 0 {
			continue
		}
		ap, bp := detPoints(bona, attacks[sp])
		pts := make(plotter.XYs, len(ap))
		for i := range ap {
			pts[i].X = math.Max(detFloor, math.Min(0.99, ap[i]))
			pts[i].Y = math.Max(detFloor, math.Min(0.99, bp[i]))
		}
		lines = append(lines, string(sp), pts)
	}
	if len(lines) > 0 {
		if err := plotutil.AddLines(p, lines...); err != nil {
			return fmt.Errorf("eval DET: %w", err)
		}
	}
	p.Legend.Top = true
	if err := p.Save(6*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("eval DET %s: %w", path, err)
	}
	return nil
}
