package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type testLog struct {
	Level  string `yaml:"level" enum:"debug|info|warn|error" doc:"Minimum level logged."`
	Format string `yaml:"format" enum:"auto|json|text" doc:"Output format."`
}

type testCamera struct {
	Source  string        `yaml:"source" enum:"v4l2|file" doc:"Where frames come from."`
	Device  string        `yaml:"device" doc:"V4L2 device node."`
	Width   int           `yaml:"width" min:"16" max:"8192" doc:"Frame width."`
	FPS     float64       `yaml:"fps" min:"1" max:"240" doc:"Frame rate."`
	Formats []string      `yaml:"formats" enum:"MJPG|YUYV|NV12" required:"true" doc:"Pixel formats in order of preference."`
	Timeout time.Duration `yaml:"timeout" min:"10ms" max:"1m" doc:"Frame timeout."`
	Loop    bool          `yaml:"loop" doc:"Loop the file."`
	Buffers uint          `yaml:"buffers" max:"32" doc:"Driver buffers."`
}

func (c *testCamera) Validate() error {
	if c.Source == "v4l2" && c.Device == "" {
		return Invalid("device", "required when camera.source is v4l2")
	}
	return nil
}

type testConfig struct {
	Log      testLog    `yaml:"log" doc:"Logging."`
	Camera   testCamera `yaml:"camera" doc:"The camera."`
	StateDir string     `yaml:"state_dir" required:"true" doc:"Where state lives."`
}

func testDefaults() testConfig {
	return testConfig{
		Log:      testLog{Level: "info", Format: "auto"},
		Camera:   testCamera{Source: "file", Width: 640, FPS: 25, Formats: []string{"MJPG", "YUYV"}, Timeout: 2 * time.Second, Buffers: 4},
		StateDir: "/var/lib/test",
	}
}

func envMap(m map[string]string) Options {
	return Options{EnvPrefix: "GLINT", LookupEnv: func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		env  map[string]string
		want func(*testConfig)
	}{
		{"empty", "", nil, func(*testConfig) {}},
		{"comments only", "# nothing\n", nil, func(*testConfig) {}},
		{"empty section keeps defaults", "camera:\n", nil, func(*testConfig) {}},
		{"values", "log:\n  level: debug\ncamera:\n  source: v4l2\n  device: /dev/video0\n  fps: 30\n  timeout: 500ms\n  formats: [NV12]\n",
			nil, func(c *testConfig) {
				c.Log.Level = "debug"
				c.Camera.Source, c.Camera.Device, c.Camera.FPS = "v4l2", "/dev/video0", 30
				c.Camera.Timeout = 500 * time.Millisecond
				c.Camera.Formats = []string{"NV12"}
			}},
		{"anchors and merge", "base: &b\n  width: 320\n", nil, nil}, // unknown key "base": see errors test
		{"env overrides file", "camera:\n  fps: 30\n", map[string]string{
			"GLINT_CAMERA_FPS": "15", "GLINT_CAMERA_FORMATS": "YUYV, NV12", "GLINT_STATE_DIR": "/tmp/x",
			"GLINT_CAMERA_TIMEOUT": "1s", "GLINT_CAMERA_LOOP": "true", "GLINT_LOG_LEVEL": "warn",
			"GLINT_CAMERA_WIDTH": "0x100", "GLINT_CAMERA_BUFFERS": "8"},
			func(c *testConfig) {
				c.Camera.FPS = 15
				c.Camera.Formats = []string{"YUYV", "NV12"}
				c.StateDir = "/tmp/x"
				c.Camera.Timeout = time.Second
				c.Camera.Loop = true
				c.Log.Level = "warn"
				c.Camera.Width = 256
				c.Camera.Buffers = 8
			}},
	}
	for _, tt := range tests {
		if tt.want == nil {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("test.yaml", []byte(tt.doc), testDefaults(), envMap(tt.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := testDefaults()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		env      map[string]string
		wantKey  string
		wantLine int
		wantEnv  string
		wantMsg  string // substring of the full error text
	}{
		{"unknown nested key", "log:\n  level: info\n\ncamera:\n  source: file\n  width: 640\n  devce: /dev/video0\n",
			nil, "camera.devce", 7, "", `test.yaml:7: unknown key "camera.devce"`},
		{"unknown top-level key", "stat_dir: /x\n", nil, "stat_dir", 1, "", `test.yaml:1: unknown key "stat_dir"`},
		{"unknown key in flow mapping", "camera: {fps: 10, color: red}\n", nil, "camera.color", 1, "", `unknown key "camera.color"`},
		{"unknown key via merge", "camera:\n  <<: {bogus: 1}\n", nil, "camera.bogus", 2, "", `unknown key "camera.bogus"`},
		{"out of range int", "camera:\n  width: 100000\n", nil, "camera.width", 2, "", "test.yaml:2: camera.width: 100000 is above the maximum 8192"},
		{"below min float", "camera:\n  source: file\n  fps: 0.5\n", nil, "camera.fps", 3, "", "test.yaml:3: camera.fps: 0.5 is below the minimum 1"},
		{"duration range", "camera:\n  timeout: 5m\n", nil, "camera.timeout", 2, "", "camera.timeout: 5m0s is above the maximum 1m0s"},
		{"enum", "log:\n  format: xml\n", nil, "log.format", 2, "", `test.yaml:2: log.format: "xml" is not one of auto, json, text`},
		{"enum list item", "camera:\n  formats:\n    - MJPG\n    - H264\n", nil, "camera.formats[1]", 4, "", `test.yaml:4: camera.formats[1]: "H264" is not one of`},
		{"required list", "camera:\n  formats: []\n", nil, "camera.formats", 2, "", "camera.formats: must be set"},
		{"validator", "camera:\n  source: v4l2\n", nil, "camera.device", 1, "", "test.yaml:1: camera.device: required when camera.source is v4l2"},
		{"type error", "camera:\n  width: wide\n", nil, "camera.width", 2, "", "test.yaml:2: camera.width: cannot unmarshal"},
		{"int for duration", "camera:\n  timeout: 5\n", nil, "camera.timeout", 2, "", "test.yaml:2: camera.timeout:"},
		{"scalar for section", "camera: 3\n", nil, "camera", 1, "", "camera: must be a mapping"},
		{"not a mapping", "- a\n- b\n", nil, "", 1, "", "document must be a mapping"},
		{"syntax", "camera:\n  width: 1\n   fps: 2\n", nil, "", 3, "", "test.yaml:3:"},
		{"duplicate key", "camera:\n  fps: 1\n  fps: 2\n", nil, "camera.fps", 3, "", "already defined"},
		{"two documents", "camera: {}\n---\nlog: {}\n", nil, "", 2, "", "more than one YAML document"},
		{"env bad int", "", map[string]string{"GLINT_CAMERA_WIDTH": "wide"}, "camera.width", 0, "GLINT_CAMERA_WIDTH", `environment GLINT_CAMERA_WIDTH: camera.width: invalid integer "wide"`},
		{"env bad duration", "", map[string]string{"GLINT_CAMERA_TIMEOUT": "5"}, "camera.timeout", 0, "GLINT_CAMERA_TIMEOUT", `invalid duration "5"`},
		{"env bad bool", "", map[string]string{"GLINT_CAMERA_LOOP": "yes please"}, "camera.loop", 0, "GLINT_CAMERA_LOOP", "invalid boolean"},
		{"env out of range", "camera:\n  fps: 10\n", map[string]string{"GLINT_CAMERA_FPS": "1000"}, "camera.fps", 0, "GLINT_CAMERA_FPS", "environment GLINT_CAMERA_FPS: camera.fps: 1000 is above the maximum 240"},
		{"env negative uint", "", map[string]string{"GLINT_CAMERA_BUFFERS": "-1"}, "camera.buffers", 0, "GLINT_CAMERA_BUFFERS", "invalid unsigned integer"},
		{"env required empty", "", map[string]string{"GLINT_STATE_DIR": ""}, "state_dir", 0, "GLINT_STATE_DIR", "state_dir: must be set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tt.doc), testDefaults(), envMap(tt.env))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *config.Error", err)
			}
			if ce.Key != tt.wantKey || ce.Line != tt.wantLine || ce.Env != tt.wantEnv {
				t.Errorf("first error key=%q line=%d env=%q, want key=%q line=%d env=%q (%v)",
					ce.Key, ce.Line, ce.Env, tt.wantKey, tt.wantLine, tt.wantEnv, err)
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	doc := "log:\n  format: xml\ncamera:\n  width: 1\n  fps: 1000\n"
	_, err := Parse("t.yaml", []byte(doc), testDefaults(), Options{})
	var es Errors
	if !errors.As(err, &es) || len(es) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for i, line := range []int{2, 4, 5} {
		if es[i].Line != line {
			t.Errorf("error %d on line %d, want %d: %v", i, es[i].Line, line, es[i])
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("camera:\n  fps: 12\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path, testDefaults(), Options{})
	if err != nil || got.Camera.FPS != 12 {
		t.Fatalf("Load = %v, %v", got.Camera.FPS, err)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"), testDefaults(), Options{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "missing.yaml: read: no such file") {
		t.Errorf("missing file: %v", err)
	}
	_, err = Load(dir, testDefaults(), Options{})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("directory: %v", err)
	}
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"camera.fps":          "GLINT_CAMERA_FPS",
		"state_dir":           "GLINT_STATE_DIR",
		"supervisor.min-wait": "GLINT_SUPERVISOR_MIN_WAIT",
	} {
		if got := EnvName("GLINT", key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

// leafKeys lists every leaf key of a struct type by reflection, independently
// of Describe, so the printer tests catch a field it skips.
func leafKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if prefix != "" {
			name = prefix + "." + name
		}
		if f.Type.Kind() == reflect.Struct {
			out = append(out, leafKeys(f.Type, name)...)
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestWriteYAMLCoversEveryFieldAndRoundTrips(t *testing.T) {
	var b strings.Builder
	def := testDefaults()
	if err := WriteYAML(&b, def, "GLINT"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, k := range leafKeys(reflect.TypeOf(def), "") {
		if !strings.Contains(out, EnvName("GLINT", k)) {
			t.Errorf("key %s (env %s) missing from the defaults:\n%s", k, EnvName("GLINT", k), out)
		}
	}
	for _, want := range []string{"# Frame rate. [1 … 240] (env GLINT_CAMERA_FPS)\n  fps: 25\n", "timeout: 2s", "formats: [MJPG, YUYV]", "level: info"} {
		if !strings.Contains(out, want) {
			t.Errorf("defaults lack %q:\n%s", want, out)
		}
	}
	// The printed defaults are a valid configuration equal to the defaults,
	// even when parsed over a zero value.
	var zero testConfig
	got, err := Parse("defaults.yaml", []byte(out), zero, Options{})
	if err != nil {
		t.Fatalf("printed defaults do not parse: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, def) {
		t.Errorf("round trip:\ngot  %+v\nwant %+v", got, def)
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b strings.Builder
	if err := WriteMarkdown(&b, testDefaults(), "GLINT"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, k := range leafKeys(reflect.TypeOf(testConfig{}), "") {
		if !strings.Contains(out, "| `"+k+"` |") {
			t.Errorf("key %s missing:\n%s", k, out)
		}
	}
	if !strings.Contains(out, "| `log.format` | `auto` | auto \\| json \\| text | `GLINT_LOG_FORMAT` | Output format. |") {
		t.Errorf("log.format row wrong:\n%s", out)
	}
	if strings.Index(out, "Top-level keys") > strings.Index(out, "## `log`") {
		t.Errorf("top-level keys should come first:\n%s", out)
	}
}

func FuzzLoad(f *testing.F) {
	seeds := []string{
		"",
		"camera:\n  fps: 30\n  formats: [MJPG]\n",
		"log: {level: debug, format: json}\n",
		"a: &x [*x]\n",
		"camera: &c {fps: 3}\nlog: *c\n",
		"camera:\n  <<: [{fps: 2}, {width: 100}]\n",
		"camera:\n  timeout: 1e9999\n",
		"camera:\n  fps: .nan\n",
		"camera:\n  buffers: -3\n",
		"? [a]\n: b\n",
		"camera: !!binary aGVsbG8=\n",
		"x: &a\n  - *a\n",
		"---\n...\n---\n",
		"\t\x00",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data, testDefaults(), Options{})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		// Whatever was accepted must satisfy the validation rules.
		if cfg.Camera.FPS < 1 || cfg.Camera.FPS > 240 || cfg.Camera.Width < 16 || cfg.Camera.Width > 8192 {
			t.Fatalf("accepted out-of-range config %+v from %q", cfg.Camera, data)
		}
	})
}

func TestParseConfigPath(t *testing.T) {
	var stderr strings.Builder
	usage := func() { stderr.WriteString("USAGE") }
	cases := []struct {
		args []string
		path string
		code int
		done bool
	}{
		{nil, "/etc/x.yaml", 0, false},
		{[]string{"--config", "/tmp/c.yaml"}, "/tmp/c.yaml", 0, false},
		{[]string{"-h"}, "", 0, true},
		{[]string{"--nope"}, "", 2, true},
		{[]string{"extra"}, "", 2, true},
	}
	for _, c := range cases {
		stderr.Reset()
		path, code, done := ParseConfigPath("glintd", c.args, "/etc/x.yaml", usage, &stderr)
		if path != c.path || code != c.code || done != c.done {
			t.Errorf("%v: got %q %d %v", c.args, path, code, done)
		}
		if c.done && c.code == 2 && !strings.Contains(stderr.String(), "USAGE") && !strings.Contains(stderr.String(), "flag provided but not defined") {
			t.Errorf("%v: usage error not reported: %q", c.args, stderr.String())
		}
	}
}
