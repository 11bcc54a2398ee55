package sim

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
)

// WriteSyntheticFace writes a stand-in portrait to path (PNG: a skin-toned
// oval on a grey background, 240x300) with its sidecar face box
// (path+".face.json"), so that tests and self-tests can run the simulator
// without the registry photos. It is not a face to a face detector: it
// only gives the simulated camera a lit, face-sized surface.
func WriteSyntheticFace(path string) error {
	img := image.NewRGBA(image.Rect(0, 0, 240, 300))
	for y := range 300 {
		for x := range 240 {
			dx, dy := float64(x-120)/70, float64(y-150)/95
			c := color.RGBA{110, 115, 120, 255}
			if dx*dx+dy*dy <= 1 {
				c = color.RGBA{205, 160, 135, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return fmt.Errorf("synthetic face: %w", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("synthetic face: %w", err)
	}
	if err := os.WriteFile(path+".face.json", []byte(`{"faces":[[50,55,140,190]]}`), 0o644); err != nil {
		return fmt.Errorf("synthetic face: %w", err)
	}
	return nil
}
