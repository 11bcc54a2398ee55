package inference

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ErrRuntimeExists is returned by NewRuntime when the process already has an
// ONNX Runtime environment: ORT allows one per process.
var ErrRuntimeExists = errors.New("onnx runtime environment already exists in this process")

// LibraryName is the ONNX Runtime shared library's file name.
const LibraryName = "libonnxruntime.so.1"

// DefaultLibraryPath returns where make deps puts the ONNX Runtime library
// for this architecture, relative to root (the repository or install
// prefix): ROOT/models/lib/GOARCH/libonnxruntime.so.1.
func DefaultLibraryPath(root string) string {
	return filepath.Join(root, "models", "lib", runtime.GOARCH, LibraryName)
}

// RuntimeConfig configures the ONNX Runtime environment.
type RuntimeConfig struct {
	// LibraryPath is the ONNX Runtime shared library. Required.
	LibraryPath string
}

// Runtime is the process's ONNX Runtime environment: create one with
// NewRuntime at start-up, share it, and Close it after every Session.
type Runtime struct {
	mu     sync.Mutex
	closed bool
}

// NewRuntime loads the ONNX Runtime library and creates the environment.
func NewRuntime(cfg RuntimeConfig) (*Runtime, error) {
	if cfg.LibraryPath == "" {
		return nil, errors.New("onnx runtime: no library path")
	}
	if _, err := os.Stat(cfg.LibraryPath); err != nil {
		return nil, fmt.Errorf("onnx runtime library: %w (run make deps)", err)
	}
	if ort.IsInitialized() {
		return nil, ErrRuntimeExists
	}
	ort.SetSharedLibraryPath(cfg.LibraryPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("onnx runtime: initialise with %s: %w", cfg.LibraryPath, err)
	}
	return &Runtime{}, nil
}

// Version is the loaded ONNX Runtime's version.
func (r *Runtime) Version() string { return ort.GetVersion() }

// Close destroys the environment. Sessions must be closed first.
func (r *Runtime) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if err := ort.DestroyEnvironment(); err != nil {
		return fmt.Errorf("onnx runtime: destroy environment: %w", err)
	}
	return nil
}

// TensorSpec names a float32 model input or output and its fixed shape.
type TensorSpec struct {
	Name  string
	Shape []int64
}

// SessionConfig tunes one Session.
type SessionConfig struct {
	// IntraOpThreads is ORT's intra-op thread count; 0 means 1 (the kiosk
	// runs several models and the camera on few cores).
	IntraOpThreads int
}

// Session runs one model with preallocated float32 tensors: fill Input(i),
// call Run, read Output(i). A Session is not safe for concurrent use.
type Session struct {
	name string
	s    *ort.AdvancedSession
	in   []*ort.Tensor[float32]
	out  []*ort.Tensor[float32]
}

// NewSession creates a session for the ONNX model bytes; name is used in
// errors.
func (r *Runtime) NewSession(name string, model []byte, inputs, outputs []TensorSpec, cfg SessionConfig) (*Session, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("session %s: runtime closed", name)
	}
	threads := cfg.IntraOpThreads
	if threads <= 0 {
		threads = 1
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session %s: options: %w", name, err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		return nil, fmt.Errorf("session %s: intra-op threads: %w", name, err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("session %s: inter-op threads: %w", name, err)
	}
	s := &Session{name: name}
	var inNames, outNames []string
	var inVals, outVals []ort.Value
	for _, spec := range inputs {
		t, err := ort.NewEmptyTensor[float32](ort.NewShape(spec.Shape...))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("session %s: input %s %v: %w", name, spec.Name, spec.Shape, err)
		}
		s.in = append(s.in, t)
		inNames, inVals = append(inNames, spec.Name), append(inVals, t)
	}
	for _, spec := range outputs {
		t, err := ort.NewEmptyTensor[float32](ort.NewShape(spec.Shape...))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("session %s: output %s %v: %w", name, spec.Name, spec.Shape, err)
		}
		s.out = append(s.out, t)
		outNames, outVals = append(outNames, spec.Name), append(outVals, t)
	}
	s.s, err = ort.NewAdvancedSessionWithONNXData(model, inNames, outNames, inVals, outVals, opts)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("session %s: %w", name, err)
	}
	return s, nil
}

// Input returns input i's preallocated data, to be filled before Run.
func (s *Session) Input(i int) []float32 { return s.in[i].GetData() }

// Output returns output i's data as of the last Run.
func (s *Session) Output(i int) []float32 { return s.out[i].GetData() }

// Run runs the model on the current inputs.
func (s *Session) Run() error {
	if err := s.s.Run(); err != nil {
		return fmt.Errorf("run %s: %w", s.name, err)
	}
	return nil
}

// Close releases the session and its tensors.
func (s *Session) Close() error {
	var errs []error
	if s.s != nil {
		errs = append(errs, s.s.Destroy())
		s.s = nil
	}
	for _, t := range append(s.in, s.out...) {
		errs = append(errs, t.Destroy())
	}
	s.in, s.out = nil, nil
	return errors.Join(errs...)
}

// DynamicSession runs a model with outputs ONNX Runtime allocates, for
// build-time tools (calibration, accuracy checks) where output shapes vary;
// the device's hot path uses Session.
type DynamicSession struct {
	name string
	s    *ort.DynamicAdvancedSession
	nOut int
}

// NewDynamicSession creates a session with one float32 input and the named
// float32 outputs (any tensors of the graph that are graph outputs).
func (r *Runtime) NewDynamicSession(name string, model []byte, input string, outputs []string, cfg SessionConfig) (*DynamicSession, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session %s: options: %w", name, err)
	}
	defer opts.Destroy()
	threads := max(cfg.IntraOpThreads, 1)
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		return nil, fmt.Errorf("session %s: intra-op threads: %w", name, err)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{input}, outputs, opts)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", name, err)
	}
	return &DynamicSession{name: name, s: s, nOut: len(outputs)}, nil
}

// Run runs the model on one input and returns copies of the outputs.
func (d *DynamicSession) Run(shape []int64, data []float32) ([][]float32, error) {
	in, err := ort.NewTensor(ort.NewShape(shape...), data)
	if err != nil {
		return nil, fmt.Errorf("run %s: input: %w", d.name, err)
	}
	defer in.Destroy()
	outs := make([]ort.Value, d.nOut)
	if err := d.s.Run([]ort.Value{in}, outs); err != nil {
		return nil, fmt.Errorf("run %s: %w", d.name, err)
	}
	res := make([][]float32, d.nOut)
	for i, v := range outs {
		t, ok := v.(*ort.Tensor[float32])
		if ok {
			res[i] = append([]float32(nil), t.GetData()...)
		}
		v.Destroy()
		if !ok {
			return nil, fmt.Errorf("run %s: output %d is not a float32 tensor", d.name, i)
		}
	}
	return res, nil
}

// Close releases the session.
func (d *DynamicSession) Close() error { return d.s.Destroy() }
