package capture

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/png" // PNG frames in a directory source
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// FileSourceConfig configures a FileSource.
type FileSourceConfig struct {
	// Path is a directory of JPEG/PNG images (played in name order) or an
	// MJPEG file (concatenated JPEG images, as written by `glintctl camera
	// grab --mjpeg` or ffmpeg's -f mjpeg).
	Path string
	// FPS paces the replay; 0 means as fast as the consumer reads.
	FPS float64
	// Loop restarts from the first frame at the end instead of returning
	// ErrEndOfStream.
	Loop bool
}

// maxFileFrameBytes bounds one image read from disk, so a wrong path (a huge
// file, a device) is an error rather than an allocation of its size.
const maxFileFrameBytes = 32 << 20

// FileSource replays still images or an MJPEG file as a camera. JPEG frames
// are passed through as MJPEG; PNG frames are decoded to RGB24.
type FileSource struct {
	cfg FileSourceConfig

	mu      sync.Mutex
	frames  []fileFrame
	next    int
	seq     uint64
	start   time.Duration
	format  Format
	opened  bool
	closed  bool
	closeCh chan struct{}
}

type fileFrame struct {
	name   string
	format PixelFormat
	width  int
	height int
	data   []byte
}

// NewFileSource checks the path and loads the frames it will replay.
func NewFileSource(cfg FileSourceConfig) (*FileSource, error) {
	if cfg.FPS < 0 {
		return nil, fmt.Errorf("file source: fps %.2f must not be negative", cfg.FPS)
	}
	frames, err := loadFileFrames(cfg.Path)
	if err != nil {
		return nil, err
	}
	return &FileSource{cfg: cfg, frames: frames}, nil
}

func loadFileFrames(path string) ([]fileFrame, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("file source: %w: %w", ErrNoDevice, err)
	}
	var frames []fileFrame
	if st.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("file source: read %s: %w", path, err)
		}
		var names []string
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".jpg", ".jpeg", ".png":
				if e.Type().IsRegular() {
					names = append(names, e.Name())
				}
			}
		}
		sort.Strings(names)
		for _, n := range names {
			f, err := loadImageFile(filepath.Join(path, n))
			if err != nil {
				return nil, err
			}
			frames = append(frames, f)
		}
	} else {
		frames, err = loadMJPEGFile(path)
		if err != nil {
			return nil, err
		}
	}
	if len(frames) == 0 {
		return nil, fmt.Errorf("file source: %s holds no JPEG or PNG frames: %w", path, ErrNoDevice)
	}
	return frames, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileFrameBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileFrameBytes {
		return nil, fmt.Errorf("larger than %d MiB", maxFileFrameBytes>>20)
	}
	return b, nil
}

func loadImageFile(path string) (fileFrame, error) {
	b, err := readBounded(path)
	if err != nil {
		return fileFrame{}, fmt.Errorf("file source: read %s: %w", path, err)
	}
	if len(b) > 2 && b[0] == 0xFF && b[1] == 0xD8 {
		n, err := jpegLength(b)
		if err != nil {
			return fileFrame{}, fmt.Errorf("file source: %s: %w", path, err)
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(withHuffmanTables(b[:n])))
		if err != nil {
			return fileFrame{}, fmt.Errorf("file source: %s: %w", path, err)
		}
		return fileFrame{name: path, format: FormatMJPEG, width: cfg.Width, height: cfg.Height, data: b[:n]}, nil
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return fileFrame{}, fmt.Errorf("file source: decode %s: %w", path, err)
	}
	rgb, w, h := imageToRGB(nil, img)
	return fileFrame{name: path, format: FormatRGB24, width: w, height: h, data: rgb}, nil
}

// maxMJPEGFileBytes bounds a whole MJPEG file held in memory for replay.
const maxMJPEGFileBytes = 1 << 30

func loadMJPEGFile(path string) ([]fileFrame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("file source: %w: %w", ErrNoDevice, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(bufio.NewReader(f), maxMJPEGFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("file source: read %s: %w", path, err)
	}
	if len(b) > maxMJPEGFileBytes {
		return nil, fmt.Errorf("file source: %s is larger than %d MiB", path, maxMJPEGFileBytes>>20)
	}
	var frames []fileFrame
	for off := 0; off < len(b); {
		// Tolerate padding between images.
		j := bytes.Index(b[off:], []byte{0xFF, 0xD8})
		if j < 0 {
			break
		}
		off += j
		n, err := jpegLength(b[off:])
		if err != nil {
			return nil, fmt.Errorf("file source: %s: frame %d at offset %d: %w", path, len(frames), off, err)
		}
		data := b[off : off+n : off+n]
		cfg, _, err := image.DecodeConfig(bytes.NewReader(withHuffmanTables(data)))
		if err != nil {
			return nil, fmt.Errorf("file source: %s: frame %d: %w", path, len(frames), err)
		}
		frames = append(frames, fileFrame{name: fmt.Sprintf("%s#%d", path, len(frames)), format: FormatMJPEG, width: cfg.Width, height: cfg.Height, data: data})
		off += n
	}
	return frames, nil
}

// Open starts the replay. The format is that of the first frame.
func (s *FileSource) Open(ctx context.Context) (Format, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened {
		return Format{}, fmt.Errorf("file source: already open")
	}
	s.closed = false
	s.closeCh = make(chan struct{})
	first := s.frames[0]
	s.format = Format{PixelFormat: first.format, Width: first.width, Height: first.height, FPS: s.cfg.FPS}
	s.next, s.seq = 0, 0
	s.start = monotonicNow()
	s.opened = true
	return s.format, nil
}

// ReadFrame returns the next frame, paced at the configured rate.
func (s *FileSource) ReadFrame(ctx context.Context) (*Frame, error) {
	s.mu.Lock()
	if s.closed || !s.opened {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.next >= len(s.frames) {
		if !s.cfg.Loop {
			s.mu.Unlock()
			return nil, ErrEndOfStream
		}
		s.next = 0
	}
	ff := s.frames[s.next]
	seq := s.seq
	closeCh := s.closeCh
	s.next++
	s.seq++
	due := s.start
	if s.cfg.FPS > 0 {
		due += time.Duration(float64(seq) * float64(time.Second) / s.cfg.FPS)
	}
	s.mu.Unlock()

	if wait := due - monotonicNow(); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-closeCh:
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
		}
	}
	ts := due
	if s.cfg.FPS == 0 {
		ts = monotonicNow()
	}
	return &Frame{
		Seq:             seq,
		Timestamp:       ts,
		TimestampSource: TimestampSynthetic,
		Width:           ff.width,
		Height:          ff.height,
		Format:          ff.format,
		Data:            append([]byte(nil), ff.data...),
	}, nil
}

// Close stops the replay and unblocks a waiting ReadFrame.
func (s *FileSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeCh != nil && !s.closed {
		close(s.closeCh)
	}
	s.closed = true
	s.opened = false
	return nil
}
