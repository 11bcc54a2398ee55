package session

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/glintdev/glint/capture"
)

// ErrCameraLost: the camera stopped delivering frames during a session.
// The session ends Not Finished (CAMERA_LOST); the daemon keeps running and
// the capture supervisor reopens the camera.
var ErrCameraLost = errors.New("camera lost")

// FrameStream is one session's view of the camera: frames in capture order
// from when it was opened.
type FrameStream interface {
	// Next blocks for the next frame; an error wrapping ErrCameraLost when
	// the camera failed, ctx's error when ctx ended.
	Next(ctx context.Context) (*capture.Frame, error)
	// Close ends the stream.
	Close() error
}

// Feed is the capture supervisor's FrameSink in glintd: it fans frames out
// to the sessions listening and drops them when nobody listens, so that the
// camera keeps streaming (and stays warm) between sessions at no cost.
// Every listener owns the frame it gets: the first gets the supervisor's
// frame, the others copies.
type Feed struct {
	// Buffer is each listener's queue length (frames); default 8. A
	// listener that falls behind loses its oldest frames.
	Buffer int

	mu   sync.Mutex
	subs map[*feedSub]struct{}
}

// NewFeed returns a feed with per-listener queues of buffer frames.
func NewFeed(buffer int) *Feed {
	if buffer < 1 {
		buffer = 8
	}
	return &Feed{Buffer: buffer, subs: map[*feedSub]struct{}{}}
}

type feedSub struct {
	feed *Feed
	ch   *capture.ChanSink
	lost chan struct{}
	once sync.Once
	why  error
}

// Open starts a stream of the frames offered from now on.
func (f *Feed) Open() FrameStream {
	s := &feedSub{feed: f, ch: capture.NewChanSink(f.Buffer), lost: make(chan struct{})}
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[*feedSub]struct{}{}
	}
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	return s
}

// Listening reports whether any stream is open.
func (f *Feed) Listening() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs) > 0
}

// Offer implements capture.FrameSink. It never blocks; it reports false
// when a listener had to drop a frame.
func (f *Feed) Offer(fr *capture.Frame) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	ok := true
	first := true
	for s := range f.subs {
		out := fr
		if !first {
			out = cloneFrame(fr)
		}
		first = false
		if !s.ch.Offer(out) {
			ok = false
		}
	}
	return ok
}

// CameraChanged is the supervisor's OnChange hook: when the camera leaves
// the streaming state, every open stream fails with ErrCameraLost.
func (f *Feed) CameraChanged(st capture.Status) {
	if st.State == capture.StateStreaming || st.State == capture.StateStarting {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		s.fail(fmt.Errorf("%w: %s", ErrCameraLost, st.Summary()))
	}
}

func (s *feedSub) fail(err error) {
	s.once.Do(func() {
		s.why = err
		close(s.lost)
	})
}

func (s *feedSub) Next(ctx context.Context) (*capture.Frame, error) {
	// Frames already queued before the loss are still delivered first.
	select {
	case fr := <-s.ch.Frames():
		return fr, nil
	default:
	}
	select {
	case fr := <-s.ch.Frames():
		return fr, nil
	case <-s.lost:
		return nil, s.why
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *feedSub) Close() error {
	s.feed.mu.Lock()
	delete(s.feed.subs, s)
	s.feed.mu.Unlock()
	s.fail(errors.New("stream closed"))
	return nil
}

// cloneFrame copies a frame and its pixels.
func cloneFrame(f *capture.Frame) *capture.Frame {
	c := *f
	c.Data = append([]byte(nil), f.Data...)
	return &c
}

// SourceFrames reads a capture.Source directly (already open): the
// simulator on its virtual clock in tests and benchmarks, where the session
// itself paces the camera. Any read error other than ctx's is a camera loss.
type SourceFrames struct {
	Source capture.Source
}

// Next reads the next frame.
func (s SourceFrames) Next(ctx context.Context) (*capture.Frame, error) {
	f, err := s.Source.ReadFrame(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", ErrCameraLost, err)
	}
	return f, nil
}

// Close does nothing: the source belongs to the caller.
func (SourceFrames) Close() error { return nil }
