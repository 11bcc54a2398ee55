package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/inference"
)

// writeKey writes a random 32-byte key (raw, or hex when hexKey) with mode.
func writeKey(t *testing.T, dir string, mode os.FileMode, hexKey bool) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	b := k
	if hexKey {
		b = []byte(hex.EncodeToString(k) + "\n")
	}
	p := filepath.Join(dir, "enrolment-"+rand.Text()[:8]+".key")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestStore(t *testing.T, cfg EnrolmentConfig) *Enrolments {
	t.Helper()
	eng := testModels(t)
	if cfg.KeyFile == "" {
		cfg.KeyFile = writeKey(t, t.TempDir(), 0o600, false)
	}
	s, err := NewEnrolments(cfg, t.TempDir(), eng, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

func TestEnrolRoundTrip(t *testing.T) {
	for _, retain := range []bool{false, true} {
		t.Run(map[bool]string{false: "discard", true: "retain"}[retain], func(t *testing.T) {
			s := newTestStore(t, EnrolmentConfig{RetainPortraits: retain})
			portrait := validPortrait(t)
			e, err := s.Enrol(context.Background(), "customer-42", portrait)
			if err != nil {
				t.Fatal(err)
			}
			if !validID(e.ReferenceID) || e.Subject != "customer-42" || e.Model != "faceres" || e.TemplateDims != 1024 || e.PortraitRetained != retain {
				t.Fatalf("metadata %+v", e)
			}
			if e.Face.InterocularPx < 85 {
				t.Errorf("face %+v", e.Face)
			}
			ref, err := s.Reference(e.ReferenceID)
			if err != nil {
				t.Fatal(err)
			}
			if ref.ID != e.ReferenceID || ref.Subject != "customer-42" || ref.Model != "faceres" || !ref.CreatedAt.Equal(e.CreatedAt) {
				t.Errorf("reference %+v", ref)
			}
			// The stored template is the portrait's descriptor.
			eng := testModels(t)
			p, err := eng.ValidatePortrait(portrait, inference.DefaultQualityLimits())
			if err != nil {
				t.Fatal(err)
			}
			want, err := eng.Embed(p.Image, p.Face)
			if err != nil {
				t.Fatal(err)
			}
			if c := cosine(ref.Template, want); len(ref.Template) != len(want) || c < 0.9999 {
				t.Errorf("template: %d dims, cosine %.6f with the portrait's", len(ref.Template), c)
			}
			got, err := s.Enrolment(e.ReferenceID)
			if err != nil || got != e {
				t.Errorf("Enrolment = %+v, %v; want %+v", got, err, e)
			}
			img, format, err := s.Portrait(e.ReferenceID)
			if err != nil {
				t.Fatal(err)
			}
			if retain && (format != "png" || string(img) != string(portrait)) {
				t.Errorf("retained portrait: format %q, %d bytes", format, len(img))
			}
			if !retain && img != nil {
				t.Errorf("portrait kept with retention off: %d bytes", len(img))
			}

			// At rest: one file, 0600, in a 0700 directory, with neither
			// the subject nor the portrait nor the template in the clear.
			raw, err := os.ReadFile(s.path(e.ReferenceID))
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Stat(s.path(e.ReferenceID))
			di, _ := os.Stat(s.Dir())
			if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
				t.Errorf("file mode %v, directory %v", fi.Mode().Perm(), di.Mode().Perm())
			}
			if strings.Contains(string(raw), "customer-42") || strings.Contains(string(raw), "faceres") {
				t.Error("subject or model in the clear")
			}
			var rec enrolmentFile
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(rec.Ciphertext), "customer-42") || strings.Contains(string(rec.Ciphertext), "IHDR") {
				t.Error("ciphertext holds plaintext")
			}
			if n, err := s.Count(); err != nil || n != 1 {
				t.Errorf("Count = %d, %v", n, err)
			}
		})
	}
}

func TestEnrolNonceUnique(t *testing.T) {
	s := newTestStore(t, EnrolmentConfig{})
	portrait := validPortrait(t)
	nonces := map[string]bool{}
	for range 3 {
		e, err := s.Enrol(context.Background(), "same", portrait)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(s.path(e.ReferenceID))
		var rec enrolmentFile
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		if nonces[string(rec.Nonce)] {
			t.Fatal("nonce reused")
		}
		nonces[string(rec.Nonce)] = true
	}
}

func TestEnrolRejectsPortraits(t *testing.T) {
	s := newTestStore(t, EnrolmentConfig{})
	astro := registryPhoto(t, "skimage/astronaut.png")
	for _, tt := range []struct {
		name string
		data []byte
		want inference.Code
	}{
		{"not an image", []byte("hello"), inference.CodeFormat},
		{"small face", astro, inference.CodeEyesTooClose},
		{"no face", cropPNG(t, astro, 380, 380, 120, 400), inference.CodeNoFace},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Enrol(context.Background(), "x", tt.data)
			var pe *inference.PortraitError
			if !errors.As(err, &pe) || pe.Code != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
		})
	}
	for _, subject := range []string{"", strings.Repeat("a", MaxSubjectLen+1), "bad\nsubject", "\xff"} {
		if _, err := s.Enrol(context.Background(), subject, validPortrait(t)); !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("subject %q: %v", subject, err)
		}
	}
	if n, _ := s.Count(); n != 0 {
		t.Errorf("%d enrolments stored from rejected portraits", n)
	}
}

func TestEnrolWrongKey(t *testing.T) {
	dir := t.TempDir()
	eng := testModels(t)
	a, err := NewEnrolments(EnrolmentConfig{Dir: dir, KeyFile: writeKey(t, t.TempDir(), 0o600, false)}, "", eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := a.Enrol(context.Background(), "s", validPortrait(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewEnrolments(EnrolmentConfig{Dir: dir, KeyFile: writeKey(t, t.TempDir(), 0o400, true)}, "", eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Reference(e.ReferenceID)
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("wrong key: %v", err)
	}
	// A forged key ID does not help: the record still fails authentication.
	raw, _ := os.ReadFile(b.path(e.ReferenceID))
	var rec enrolmentFile
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	rec.KeyID = b.keyID
	forged, _ := json.Marshal(rec)
	if err := os.WriteFile(b.path(e.ReferenceID), forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reference(e.ReferenceID); !errors.Is(err, ErrTampered) {
		t.Fatalf("forged key id: %v", err)
	}
}

func TestEnrolTamperedAndSwapped(t *testing.T) {
	s := newTestStore(t, EnrolmentConfig{})
	ctx := context.Background()
	a, err := s.Enrol(ctx, "alice", validPortrait(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Enrol(ctx, "bob", validPortrait(t))
	if err != nil {
		t.Fatal(err)
	}
	rawA, _ := os.ReadFile(s.path(a.ReferenceID))
	rawB, _ := os.ReadFile(s.path(b.ReferenceID))
	restore := func() {
		t.Helper()
		if err := os.WriteFile(s.path(a.ReferenceID), rawA, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var recB enrolmentFile
	if err := json.Unmarshal(rawB, &recB); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		data func() []byte
	}{
		{"bit flipped in the ciphertext", func() []byte {
			var rec enrolmentFile
			json.Unmarshal(rawA, &rec)
			rec.Ciphertext[len(rec.Ciphertext)/2] ^= 1
			out, _ := json.Marshal(rec)
			return out
		}},
		{"truncated", func() []byte { return rawA[:len(rawA)/2] }},
		{"empty", func() []byte { return nil }},
		// B's file copied over A's: the ID inside names B.
		{"swapped file", func() []byte { return rawB }},
		// B's ciphertext relabelled as A: the additional data (the ID)
		// no longer matches.
		{"swapped and relabelled", func() []byte {
			rec := recB
			rec.ReferenceID = a.ReferenceID
			out, _ := json.Marshal(rec)
			return out
		}},
		{"nonce changed", func() []byte {
			var rec enrolmentFile
			json.Unmarshal(rawA, &rec)
			rec.Nonce[0] ^= 0x80
			out, _ := json.Marshal(rec)
			return out
		}},
		{"unknown version", func() []byte { return []byte(strings.Replace(string(rawA), `"v":1`, `"v":2`, 1)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(s.path(a.ReferenceID), tt.data(), 0o600); err != nil {
				t.Fatal(err)
			}
			defer restore()
			_, err := s.Reference(a.ReferenceID)
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Reference = %v, want ErrTampered", err)
			}
			if _, err := s.Enrolment(a.ReferenceID); !errors.Is(err, ErrTampered) {
				t.Errorf("Enrolment = %v", err)
			}
		})
	}
	if ref, err := s.Reference(a.ReferenceID); err != nil || ref.Subject != "alice" {
		t.Errorf("restored: %+v, %v", ref.Subject, err)
	}
}

func TestEnrolDelete(t *testing.T) {
	s := newTestStore(t, EnrolmentConfig{RetainPortraits: true})
	ctx := context.Background()
	e, err := s.Enrol(ctx, "leaving", validPortrait(t))
	if err != nil {
		t.Fatal(err)
	}
	keep, err := s.Enrol(ctx, "staying", validPortrait(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(e.ReferenceID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.path(e.ReferenceID)); !os.IsNotExist(err) {
		t.Errorf("record file still there: %v", err)
	}
	for name, err := range map[string]error{
		"Reference": func() error { _, err := s.Reference(e.ReferenceID); return err }(),
		"Enrolment": func() error { _, err := s.Enrolment(e.ReferenceID); return err }(),
		"Delete":    s.Delete(e.ReferenceID),
	} {
		if !errors.Is(err, ErrUnknownReference) {
			t.Errorf("%s after delete: %v", name, err)
		}
	}
	if _, err := s.Reference(keep.ReferenceID); err != nil {
		t.Errorf("the other enrolment: %v", err)
	}
	// Nothing but the other record is left in the directory (no temporary
	// files, no portrait beside it).
	ents, _ := os.ReadDir(s.Dir())
	if len(ents) != 1 || ents[0].Name() != keep.ReferenceID+enrolmentExt {
		t.Errorf("directory holds %v", ents)
	}
}

func TestEnrolUnknownIDs(t *testing.T) {
	s := newTestStore(t, EnrolmentConfig{})
	for _, id := range []string{"", "nope", "../../etc/passwd", "0193a5b0-7e1f-7c3a-9b2d-000000000000", "0193A5B0-7E1F-7C3A-9B2D-000000000000"} {
		if _, err := s.Reference(id); !errors.Is(err, ErrUnknownReference) {
			t.Errorf("Reference(%q) = %v", id, err)
		}
		if err := s.Delete(id); !errors.Is(err, ErrUnknownReference) {
			t.Errorf("Delete(%q) = %v", id, err)
		}
	}
}

func TestEnrolmentKey(t *testing.T) {
	dir := t.TempDir()
	raw := writeKey(t, dir, 0o600, false)
	hexKey := writeKey(t, dir, 0o400, true)
	for _, p := range []string{raw, hexKey} {
		if k, err := LoadEnrolmentKey(p); err != nil || len(k) != 32 {
			t.Errorf("%s: %d bytes, %v", p, len(k), err)
		}
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		p := writeKey(t, dir, mode, false)
		if _, err := LoadEnrolmentKey(p); !errors.Is(err, device.ErrKeyPermissions) {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("0123456789abcdef"), 0o600)
	notHex := filepath.Join(dir, "nothex")
	os.WriteFile(notHex, []byte(strings.Repeat("zz", 32)), 0o600)
	for _, p := range []string{short, notHex} {
		if _, err := LoadEnrolmentKey(p); !errors.Is(err, ErrEnrolmentKey) {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := LoadEnrolmentKey(filepath.Join(dir, "missing")); !os.IsNotExist(errors.Unwrap(err)) && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	// A systemd credential: a relative name under $CREDENTIALS_DIRECTORY.
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	if k, err := LoadEnrolmentKey(filepath.Base(hexKey)); err != nil || len(k) != 32 {
		t.Errorf("credential: %v", err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	if _, err := LoadEnrolmentKey("enrolment.key"); err == nil || !strings.Contains(err.Error(), "CREDENTIALS_DIRECTORY") {
		t.Errorf("relative without credentials: %v", err)
	}
}

func TestNewEnrolmentsRefusesShortDetector(t *testing.T) {
	key := writeKey(t, t.TempDir(), 0o600, false)
	_, err := NewEnrolments(EnrolmentConfig{KeyFile: key}, t.TempDir(), fakePortraitModels{detector: inference.DetectorShort}, nil)
	if err == nil || !strings.Contains(err.Error(), "detector") {
		t.Errorf("short-range detector accepted: %v", err)
	}
	if _, err := NewEnrolments(EnrolmentConfig{KeyFile: key}, t.TempDir(), nil, nil); err == nil {
		t.Error("no models accepted")
	}
	badKey := writeKey(t, t.TempDir(), 0o644, false)
	if _, err := NewEnrolments(EnrolmentConfig{KeyFile: badKey}, t.TempDir(), fakePortraitModels{}, nil); !errors.Is(err, device.ErrKeyPermissions) {
		t.Errorf("world-readable key: %v", err)
	}
}

// fakePortraitModels only reports a configuration: for constructor checks
// that never reach the models.
type fakePortraitModels struct{ detector string }

func (f fakePortraitModels) ValidatePortrait([]byte, inference.QualityLimits) (*inference.Portrait, error) {
	return nil, errors.New("fake")
}
func (f fakePortraitModels) Embed(*inference.Image, inference.Face) ([]float32, error) {
	return nil, errors.New("fake")
}
func (f fakePortraitModels) Config() inference.Config {
	return inference.Config{Detector: f.detector, Embedding: "faceres"}
}

func FuzzEnrolmentRecord(f *testing.F) {
	key := make([]byte, 32)
	s := &Enrolments{dir: f.TempDir(), log: slog.New(slog.DiscardHandler)}
	if err := s.initCipher(key); err != nil {
		f.Fatal(err)
	}
	id := "0193a5b0-7e1f-7c3a-9b2d-5e6f70818293"
	if err := s.write(id, enrolmentSecret{Subject: "s", Model: "faceres", Template: encodeTemplate([]float32{1, 2})}); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(s.path(id))
	f.Add(good)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sec, err := s.open(id, b)
		if err == nil && string(b) != string(good) && sec.Subject != "s" {
			t.Fatalf("forged record accepted: %+v", sec)
		}
	})
}
