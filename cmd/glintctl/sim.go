package main

import (
	"context"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glintdev/glint/capture"
	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/sim"
)

const simUsage = `usage: glintctl sim render --faces DIR [--faces DIR ...] --out DIR [--face N] [--seed N]
  [--width W --height H] [--lux L] [--distance M] [--sheet FILE]

Renders, through the closed-loop simulator, the pictures of docs/sim.md: a bona
fide face under two screen colours and one frame of each attack species
(PNG files named after them).
`

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "render" {
		return usageError{"sim: missing or unknown subcommand (render)"}
	}
	fs := newFlagSet("sim render", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, simUsage); fs.PrintDefaults() }
	var faces multiFlag
	fs.Var(&faces, "faces", "folder of face photos (repeatable)")
	out := fs.String("out", "", "output folder for the PNG files")
	faceIdx := fs.Int("face", 0, "index of the face to use, in load order")
	seed := fs.Uint64("seed", 1, "random seed")
	width := fs.Int("width", 640, "frame width")
	height := fs.Int("height", 480, "frame height")
	lux := fs.Float64("lux", sim.DefaultParams().AmbientLux, "ambient illuminance, lux")
	distance := fs.Float64("distance", sim.DefaultParams().DistanceM, "face distance, metres")
	sheet := fs.String("sheet", "", "also write all frames as one 4-column PNG contact sheet")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if len(faces) == 0 || *out == "" {
		return usageError{"sim render: --faces and --out are required"}
	}
	fcs, err := sim.LoadFaces(faces)
	if err != nil {
		return err
	}
	if *faceIdx < 0 || *faceIdx >= len(fcs) {
		return usageError{fmt.Sprintf("sim render: --face %d out of range 0..%d", *faceIdx, len(fcs)-1)}
	}
	face := fcs[*faceIdx]
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	pal := flashmark.DefaultPalette()
	shots := []struct {
		name    string
		species sim.Species
		colour  flashmark.RGB
	}{
		{"bona_fide_red", sim.BonaFide, pal[0]},
		{"bona_fide_blue", sim.BonaFide, pal[4]},
	}
	for _, sp := range sim.AttackSpecies {
		shots = append(shots, struct {
			name    string
			species sim.Species
			colour  flashmark.RGB
		}{string(sp), sp, pal[2]})
	}
	var frames []*image.RGBA
	for _, s := range shots {
		p := sim.DefaultParams()
		p.Species, p.Width, p.Height = s.species, *width, *height
		p.AmbientLux, p.DistanceM = *lux, *distance
		p.BlinkPeriod = 0
		f, err := renderShot(ctx, face, p, s.colour, *seed)
		if err != nil {
			return fmt.Errorf("sim render %s: %w", s.name, err)
		}
		path := filepath.Join(*out, s.name+".png")
		img, err := frameImage(f)
		if err != nil {
			return err
		}
		if err := writePNG(path, img); err != nil {
			return err
		}
		frames = append(frames, img)
		fmt.Fprintf(stdout, "%s (%s, screen %s)\n", path, face.Name, s.colour)
	}
	if *sheet != "" {
		const cols = 4
		w, h := frames[0].Rect.Dx(), frames[0].Rect.Dy()
		rows := (len(frames) + cols - 1) / cols
		sh := image.NewRGBA(image.Rect(0, 0, cols*w+(cols-1)*4, rows*h+(rows-1)*4))
		for i := range sh.Pix {
			sh.Pix[i] = 255
		}
		for i, f := range frames {
			x, y := (i%cols)*(w+4), (i/cols)*(h+4)
			draw.Draw(sh, image.Rect(x, y, x+w, y+h), f, image.Point{}, draw.Src)
		}
		if err := writePNG(*sheet, sh); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s (contact sheet)\n", *sheet)
	}
	return nil
}

// renderShot shows colour on the simulated screen and returns the first
// frame read out entirely after it was presented.
func renderShot(ctx context.Context, face *sim.Face, p sim.Params, colour flashmark.RGB, seed uint64) (*capture.Frame, error) {
	clock := sim.NewVirtualClock(time.Second)
	a, err := sim.NewAttempt(face, p, clock, seed)
	if err != nil {
		return nil, err
	}
	if _, err := a.Camera.Open(ctx); err != nil {
		return nil, err
	}
	defer a.Camera.Close()
	pres, err := a.Display.Show(ctx, colour)
	if err != nil {
		return nil, err
	}
	for {
		f, err := a.Camera.ReadFrame(ctx)
		if err != nil {
			return nil, err
		}
		// The frame's first row must start exposing a refresh after the
		// presentation (the screen's scan-out takes one).
		if f.Timestamp-p.Exposure > pres.Presented+20*time.Millisecond {
			return f, nil
		}
	}
}

func frameImage(f *capture.Frame) (*image.RGBA, error) {
	rgb, err := f.RGB(nil)
	if err != nil {
		return nil, err
	}
	img := image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
	for i, j := 0, 0; i < len(rgb); i, j = i+3, j+4 {
		img.Pix[j], img.Pix[j+1], img.Pix[j+2], img.Pix[j+3] = rgb[i], rgb[i+1], rgb[i+2], 255
	}
	return img, nil
}

func writePNG(path string, img image.Image) error {
	w, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(w, img); err != nil {
		w.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return w.Close()
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	*m = append(*m, v)
	return nil
}
