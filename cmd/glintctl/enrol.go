package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/session"
)

const enrolUsage = `usage:
  glintctl enrol --subject S [--crop X,Y,SIDE [--size N]] [--socket PATH | --url URL --token-file F] [--json] PORTRAIT
                      enrol a PNG/JPEG portrait: exit 0 enrolled (prints the reference_id),
                      1 portrait refused (prints the code), 2 error
  glintctl enrol get ID [--socket …]     an enrolment's metadata
  glintctl enrol delete ID [--socket …]  delete an enrolment (data-subject request)
`

// runEnrolMain runs glintctl enrol and returns the exit status.
func runEnrolMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	code, err := runEnrol(ctx, args, stdout, stderr)
	return exitStatus(code, err, code, enrolUsage, stderr)
}

func runEnrol(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) > 0 && (args[0] == "get" || args[0] == "delete") {
		return getOrDelete(ctx, "enrol", args, "reference ID", "/v1/enrollments/", "delete", "enrolment %s deleted", &session.Enrolment{}, stdout, stderr)
	}

	fs := newFlagSet("enrol", stderr)
	var af apiFlags
	af.register(fs)
	subject := fs.String("subject", "", "the caller's reference for the person (required)")
	crop := fs.String("crop", "", "X,Y,SIDE: upload only this square of the image, scaled to --size (to make a portrait of a face in a larger photo)")
	size := fs.Int("size", 480, "side in pixels of the --crop result")
	asJSON := fs.Bool("json", false, "print the enrolment as JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(pos) != 1 {
		return exitUsage, usageError{"enrol: want one PORTRAIT file"}
	}
	if *subject == "" {
		return exitUsage, usageError{"enrol: --subject is required"}
	}
	c, err := af.client()
	if err != nil {
		return exitUsage, err
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return exitUsage, err
	}
	if *crop != "" {
		if data, err = cropPortrait(data, *crop, *size); err != nil {
			return exitUsage, err
		}
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if err := mw.WriteField("subject", *subject); err != nil {
		return exitUsage, err
	}
	fw, err := mw.CreateFormFile("portrait", filepath.Base(pos[0]))
	if err != nil {
		return exitUsage, err
	}
	fw.Write(data)
	if err := mw.Close(); err != nil {
		return exitUsage, err
	}
	var e session.Enrolment
	err = c.do(ctx, "POST", "/v1/enrollments", mw.FormDataContentType(), &body, &e)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusUnprocessableEntity {
		fmt.Fprintf(stdout, "portrait refused: %s\n", ae.body.Error)
		return exitRefused, nil
	}
	if err != nil {
		return exitUsage, err
	}
	if *asJSON {
		return 0, printJSON(stdout, e)
	}
	fmt.Fprintf(stdout, "enrolled %s: reference_id %s (model %s, %d dims, eyes %.0f px apart, portrait %s)\n",
		e.Subject, e.ReferenceID, e.Model, e.TemplateDims, e.Face.InterocularPx, map[bool]string{true: "retained (encrypted)", false: "discarded"}[e.PortraitRetained])
	return 0, nil
}

// cropPortrait cuts the square "X,Y,SIDE" out of a PNG/JPEG and scales it
// bilinearly to size x size, as PNG.
func cropPortrait(data []byte, spec string, size int) ([]byte, error) {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		return nil, usageError{fmt.Sprintf("--crop %q: want X,Y,SIDE", spec)}
	}
	var v [3]float64
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 {
			return nil, usageError{fmt.Sprintf("--crop %q: want non-negative numbers X,Y,SIDE", spec)}
		}
		v[i] = f
	}
	if v[2] < 1 || size < 16 || size > 4096 {
		return nil, usageError{"--crop SIDE must be at least 1 and --size within 16..4096"}
	}
	im, _, err := inference.DecodeImage(data)
	if err != nil {
		return nil, err
	}
	if v[0]+v[2] > float64(im.Width) || v[1]+v[2] > float64(im.Height) {
		return nil, usageError{fmt.Sprintf("--crop %s goes outside the %dx%d image", spec, im.Width, im.Height)}
	}
	at := func(x, y, c int) float64 {
		x = min(max(x, 0), im.Width-1)
		y = min(max(y, 0), im.Height-1)
		return float64(im.Pix[(y*im.Width+x)*3+c])
	}
	out := image.NewRGBA(image.Rect(0, 0, size, size))
	s := v[2] / float64(size)
	for py := range size {
		for px := range size {
			sx, sy := v[0]+(float64(px)+0.5)*s-0.5, v[1]+(float64(py)+0.5)*s-0.5
			x0, y0 := int(sx), int(sy)
			fx, fy := sx-float64(x0), sy-float64(y0)
			var rgb [3]uint8
			for k := range 3 {
				val := (1-fx)*(1-fy)*at(x0, y0, k) + fx*(1-fy)*at(x0+1, y0, k) + (1-fx)*fy*at(x0, y0+1, k) + fx*fy*at(x0+1, y0+1, k)
				rgb[k] = uint8(min(max(val+0.5, 0), 255))
			}
			out.SetRGBA(px, py, color.RGBA{rgb[0], rgb[1], rgb[2], 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, out); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
