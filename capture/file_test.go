package capture

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFileSourceDirectory(t *testing.T) {
	dir := t.TempDir()
	for i, name := range []string{"b.jpg", "a.jpg", "c.jpeg"} {
		img, _ := testJPEG(t, 32+i*0, 24)
		writeFile(t, filepath.Join(dir, name), img)
	}
	writeFile(t, filepath.Join(dir, "notes.txt"), []byte("ignored"))
	src, err := NewFileSource(FileSourceConfig{Path: dir, FPS: 200})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	format, err := src.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if format.PixelFormat != FormatMJPEG || format.Width != 32 || format.Height != 24 {
		t.Fatalf("format %v", format)
	}
	var last time.Duration
	for i := 0; i < 3; i++ {
		f, err := src.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq != uint64(i) || f.Timestamp <= last || f.TimestampSource != TimestampSynthetic {
			t.Fatalf("frame %d: seq %d ts %v (last %v) source %v", i, f.Seq, f.Timestamp, last, f.TimestampSource)
		}
		last = f.Timestamp
		if _, err := f.RGB(nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.ReadFrame(ctx); !errors.Is(err, ErrEndOfStream) {
		t.Fatalf("after the last frame: %v, want ErrEndOfStream", err)
	}
	// Close and reopen: the supervisor reconnects this way.
	src.Close()
	if _, err := src.ReadFrame(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if f, err := src.ReadFrame(ctx); err != nil || f.Seq != 0 {
		t.Fatalf("after reopen: %v", err)
	}
}

func TestFileSourceMJPEGLoopAndPNG(t *testing.T) {
	dir := t.TempDir()
	var stream bytes.Buffer
	for i := 0; i < 4; i++ {
		img, _ := testJPEG(t, 16, 16)
		stream.Write(img)
	}
	mj := filepath.Join(dir, "clip.mjpeg")
	writeFile(t, mj, stream.Bytes())
	src, err := NewFileSource(FileSourceConfig{Path: mj, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		f, err := src.ReadFrame(context.Background())
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Seq != uint64(i) {
			t.Fatalf("seq %d want %d", f.Seq, i)
		}
	}

	pngDir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 4, 2))
	img.Set(1, 0, color.RGBA{200, 10, 20, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(pngDir, "x.png"), buf.Bytes())
	ps, err := NewFileSource(FileSourceConfig{Path: pngDir})
	if err != nil {
		t.Fatal(err)
	}
	ps.Open(context.Background())
	f, err := ps.ReadFrame(context.Background())
	if err != nil || f.Format != FormatRGB24 {
		t.Fatalf("png frame: %v %v", err, f)
	}
	if !bytes.Equal(f.Data[3:6], []byte{200, 10, 20}) {
		t.Fatalf("pixel = %v", f.Data[3:6])
	}
}

func TestFileSourceErrors(t *testing.T) {
	empty := t.TempDir()
	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "broken.jpg"), []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00})
	cases := []struct {
		name string
		cfg  FileSourceConfig
		want error
	}{
		{"missing path", FileSourceConfig{Path: filepath.Join(empty, "nope")}, ErrNoDevice},
		{"no images", FileSourceConfig{Path: empty}, ErrNoDevice},
		{"negative fps", FileSourceConfig{Path: empty, FPS: -1}, nil},
		{"broken jpeg", FileSourceConfig{Path: bad}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewFileSource(c.cfg)
			if err == nil {
				t.Fatal("no error")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestFileSourceCloseUnblocksRead(t *testing.T) {
	dir := t.TempDir()
	img, _ := testJPEG(t, 8, 8)
	writeFile(t, filepath.Join(dir, "a.jpg"), img)
	src, err := NewFileSource(FileSourceConfig{Path: dir, FPS: 0.01, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	src.Open(context.Background())
	if _, err := src.ReadFrame(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := src.ReadFrame(context.Background())
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	src.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFrame still blocked after Close")
	}
}
