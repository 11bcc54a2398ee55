// Package config loads glint's YAML configuration files strictly.
//
// A configuration is a Go struct whose fields carry yaml tags. Parse starts
// from a copy of a defaults value, overlays the YAML document, then the
// environment (GLINT_<SECTION>_<KEY>, derived from the yaml tags), then
// validates:
//
//   - unknown keys are rejected, naming the dotted key and its line
//     (`glintd.yaml:7: unknown key "camera.devce"`);
//   - struct tags `min:"…"`, `max:"…"`, `enum:"a|b"` and `required:"true"`
//     are checked, and a struct's Validate method (see Validator) adds
//     cross-field rules; every error names the key and where its value came
//     from (file and line, or environment variable);
//   - a `doc:"…"` tag on every field gives the one-line description that
//     Describe, WriteYAML and WriteMarkdown print next to the default.
//
// All configuration errors wrap ErrInvalid so that commands can exit with a
// distinct status (2) for them.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
)

// ErrInvalid is wrapped by every error that is the configuration's fault
// (unreadable file, syntax, unknown key, bad value).
var ErrInvalid = errors.New("invalid configuration")

// Error is one configuration problem, located as precisely as known.
type Error struct {
	// File is the configuration file's name as given to Load or Parse.
	File string
	// Line is the 1-based line of the offending key, 0 when unknown (the
	// value is a default, or came from the environment).
	Line int
	// Key is the dotted key path, e.g. "camera.fps"; "" when the problem is
	// not about one key (e.g. a syntax error).
	Key string
	// Env is the environment variable the value came from, if it did.
	Env string
	// Msg describes the problem, naming the key when there is one.
	Msg string
}

func (e *Error) Error() string {
	switch {
	case e.Env != "":
		return "environment " + e.Env + ": " + e.Msg
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return e.File + ": " + e.Msg
	}
	return e.Msg
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *Error) Unwrap() error { return ErrInvalid }

// Errors is every problem found in one configuration, in document order
// (unknown keys and type errors first, then validation).
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap returns the individual errors, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Validator is implemented by configuration structs (at any level) with
// rules the struct tags cannot express. Errors made with Invalid name a key
// relative to the struct and are located like tag errors; errors.Join may
// combine several.
type Validator interface {
	Validate() error
}

// KeyError is returned (via Invalid) by Validate methods.
type KeyError struct {
	// Key relative to the validated struct, e.g. "device" or "formats[1]".
	Key string
	Msg string
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Msg }

// Invalid reports that the value at key, relative to the struct whose
// Validate method returns it, is wrong.
func Invalid(key, format string, args ...any) error {
	return &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Options tune Load and Parse.
type Options struct {
	// EnvPrefix is the prefix of environment overrides, e.g. "GLINT" for
	// GLINT_CAMERA_FPS. Empty disables environment overrides.
	EnvPrefix string
	// LookupEnv reads the environment; nil means os.LookupEnv. Tests pass
	// their own so they do not touch the process environment.
	LookupEnv func(key string) (string, bool)
}

// maxFileSize bounds what Load reads: a configuration is a few kilobytes,
// and the limit keeps a wrong path (a device, a log) from eating memory.
const maxFileSize = 1 << 20

// Load reads the YAML file at path and returns defaults overlaid with it
// and with the environment, validated. See Parse.
func Load[T any](path string, defaults T, opts Options) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		return defaults, Errors{{File: path, Msg: fmt.Sprintf("read: %v", unwrapPathError(err))}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return defaults, Errors{{File: path, Msg: fmt.Sprintf("read: %v", unwrapPathError(err))}}
	}
	if len(data) > maxFileSize {
		return defaults, Errors{{File: path, Msg: fmt.Sprintf("file larger than %d bytes", maxFileSize)}}
	}
	return Parse(path, data, defaults, opts)
}

// Parse decodes data (named name in errors) over a copy of defaults, which
// must be a struct, applies environment overrides and validates the result.
// On error it returns the partially built value and an Errors wrapping
// ErrInvalid. It never panics on any input.
func Parse[T any](name string, data []byte, defaults T, opts Options) (T, error) {
	cfg := defaults
	rv := reflect.ValueOf(&cfg).Elem()
	if rv.Kind() != reflect.Struct {
		return cfg, fmt.Errorf("config: %T is not a struct", cfg)
	}
	p := newParser(name)
	if !p.decode(data, &cfg, rv.Type()) {
		return cfg, p.errs
	}
	if opts.EnvPrefix != "" {
		lookup := opts.LookupEnv
		if lookup == nil {
			lookup = os.LookupEnv
		}
		p.applyEnv(rv, "", opts.EnvPrefix, lookup)
	}
	if len(p.errs) == 0 {
		p.validate(rv, "")
	}
	if len(p.errs) > 0 {
		return cfg, p.errs
	}
	return cfg, nil
}

// EnvName returns the environment variable that overrides key.
func EnvName(prefix, key string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return prefix + "_" + strings.ToUpper(r.Replace(key))
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
