package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadModelChecksum(t *testing.T) {
	dir := t.TempDir()
	data := []byte("onnx bytes")
	if err := os.WriteFile(filepath.Join(dir, "m.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Version: Version}
	m.Put(Model{Name: "m", Precision: FP32, File: "m.onnx", SHA256: SHA256(data), Bytes: int64(len(data))})
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content []byte
		wantErr error
	}{
		{"intact", data, nil},
		{"truncated", data[:5], ErrChecksum},
		{"tampered", []byte("onnx bytez"), ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "m.onnx"), tt.content, 0o644); err != nil {
				t.Fatal(err)
			}
			b, e, err := loaded.ReadModel(dir, "m", FP32)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "m.onnx") || !strings.Contains(err.Error(), "sha256") {
					t.Errorf("error %q does not name the file and the checksum", err)
				}
				return
			}
			if string(b) != string(data) || e.Name != "m" {
				t.Errorf("got %q, %+v", b, e)
			}
		})
	}
	if _, _, err := loaded.ReadModel(dir, "m", INT8); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("missing precision: err = %v", err)
	}
}

func TestPutRemove(t *testing.T) {
	m := &Manifest{Version: Version}
	m.Put(Model{Name: "a", Precision: FP32, File: "1"})
	m.Put(Model{Name: "a", Precision: INT8, File: "2"})
	m.Put(Model{Name: "a", Precision: FP32, File: "3"})
	if len(m.Models) != 2 {
		t.Fatalf("%d entries, want 2", len(m.Models))
	}
	if e, _ := m.Find("a", FP32); e.File != "3" {
		t.Errorf("Put did not replace: %+v", e)
	}
	if !m.Remove("a", INT8) || m.Remove("a", INT8) {
		t.Error("Remove reports wrong")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing manifest: err = %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(`{"version": 99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("wrong version: err = %v", err)
	}
}

func TestCatalog(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Catalog() {
		if seen[s.Name] || s.Size <= 0 || s.Scale == 0 || s.Normalization == "" {
			t.Errorf("bad catalog entry %+v", s)
		}
		seen[s.Name] = true
		if got, ok := Lookup(s.Name); !ok || got != s {
			t.Errorf("Lookup(%s) = %+v, %v", s.Name, got, ok)
		}
	}
	if _, ok := Lookup("nope"); ok {
		t.Error("Lookup found an unknown model")
	}
}
