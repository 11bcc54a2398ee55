package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/glintdev/glint/internal/config"
)

func noEnv(string) (string, bool) { return "", false }

func TestDefaultConfigIsValid(t *testing.T) {
	def := defaultConfig()
	got, err := config.Parse("empty.yaml", nil, def, config.Options{EnvPrefix: envPrefix, LookupEnv: noEnv})
	if err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if !reflect.DeepEqual(got, def) {
		t.Errorf("empty file changed the defaults")
	}
}

func TestEveryKeyDocumented(t *testing.T) {
	for _, f := range config.Describe(defaultConfig(), envPrefix) {
		if strings.TrimSpace(f.Doc) == "" {
			t.Errorf("%s has no doc tag", f.Key)
		}
		if strings.ContainsAny(f.Doc, "\n|") {
			t.Errorf("%s: doc must be one line without '|'", f.Key)
		}
	}
}

func TestPrintedDefaultsRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := config.WriteYAML(&b, defaultConfig(), envPrefix); err != nil {
		t.Fatal(err)
	}
	// Parsed over a zero Config, the printed defaults rebuild defaultConfig:
	// the printer covers every field with its true default.
	got, err := config.Parse("defaults.yaml", b.Bytes(), Config{}, config.Options{})
	if err != nil {
		t.Fatalf("printed defaults do not parse: %v\n%s", err, b.String())
	}
	if want := defaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestEnvOverride(t *testing.T) {
	env := map[string]string{
		"GLINT_CAMERA_SOURCE":            "file",
		"GLINT_CAMERA_FILE_PATH":         "/srv/frames",
		"GLINT_CAMERA_FORMATS":           "YUYV,NV12",
		"GLINT_SUPERVISOR_RECONNECT_MAX": "1m",
		"GLINT_LOG_FORMAT":               "json",
	}
	got, err := config.Parse("x.yaml", []byte("camera:\n  source: v4l2\n"), defaultConfig(), config.Options{
		EnvPrefix: envPrefix,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Camera.Source != "file" || got.Camera.File.Path != "/srv/frames" || got.Log.Format != "json" ||
		strings.Join(got.Camera.Formats, ",") != "YUYV,NV12" || got.Supervisor.ReconnectMax.String() != "1m0s" {
		t.Errorf("overrides not applied: %+v", got)
	}
}

// TestShippedConfigsValid checks the files under configs/.
func TestShippedConfigsValid(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("configs: %v %v", files, err)
	}
	for _, f := range files {
		if _, err := config.Load(f, defaultConfig(), config.Options{}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// Generated files: docs/config.md and configs/glintd.example.yaml. Run with
// UPDATE_GENERATED=1 to rewrite them after changing Config.
func TestGeneratedFilesUpToDate(t *testing.T) {
	var doc, example bytes.Buffer
	if err := writeConfigDoc(&doc); err != nil {
		t.Fatal(err)
	}
	if err := writeExampleConfig(&example); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][]byte{
		"../../docs/config.md":              doc.Bytes(),
		"../../configs/glintd.example.yaml": example.Bytes(),
	} {
		if os.Getenv("UPDATE_GENERATED") == "1" {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is out of date (%v); regenerate with: UPDATE_GENERATED=1 go test ./cmd/glintd -run TestGeneratedFilesUpToDate", path, err)
		}
	}
}
