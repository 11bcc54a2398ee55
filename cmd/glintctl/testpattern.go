package main

import (
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
)

// cameraTestPattern writes frames of a moving colour-bar pattern, for the
// file source to replay when no camera (and no photo) is at hand.
func cameraTestPattern(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("camera testpattern", stderr)
	frames := fs.Int("frames", 50, "number of frames to write")
	out := fs.String("out", "", "directory to write frame-NNNNN.jpg into (created if missing)")
	width := fs.Int("width", 640, "frame width")
	height := fs.Int("height", 480, "frame height")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"camera testpattern: --out is required"}
	}
	if *frames <= 0 || *width < 16 || *height < 16 || *width > 7680 || *height > 4320 {
		return usageError{fmt.Sprintf("camera testpattern: need frames > 0 and a size from 16x16 to 7680x4320, got %d frames of %dx%d", *frames, *width, *height)}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", *out, err)
	}
	bars := []color.RGBA{
		{191, 191, 191, 255}, {191, 191, 0, 255}, {0, 191, 191, 255}, {0, 191, 0, 255},
		{191, 0, 191, 255}, {191, 0, 0, 255}, {0, 0, 191, 255}, {0, 0, 0, 255},
	}
	barWidth := *width / len(bars)
	for i := 0; i < *frames; i++ {
		img := image.NewRGBA(image.Rect(0, 0, *width, *height))
		shift := i * *width / (*frames * 2)
		for y := 0; y < *height; y++ {
			for x := 0; x < *width; x++ {
				c := bars[((x+shift)/barWidth)%len(bars)]
				if y > *height*3/4 {
					// A moving box on the bottom strip makes motion visible.
					if x >= shift*2%*width && x < shift*2%*width+*width/10 {
						c = color.RGBA{255, 255, 255, 255}
					} else {
						c = color.RGBA{16, 16, 16, 255}
					}
				}
				img.SetRGBA(x, y, c)
			}
		}
		name := filepath.Join(*out, fmt.Sprintf("frame-%05d.jpg", i))
		f, err := os.Create(name)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 85}); err != nil {
			f.Close()
			return fmt.Errorf("encode %s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	fmt.Fprintf(stdout, "wrote %d test-pattern frames %dx%d to %s\n", *frames, *width, *height, *out)
	return nil
}
