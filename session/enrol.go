package session

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/internal/fsutil"
	"github.com/google/uuid"
)

// The enrolment store keeps one file per enrolment in its directory, each
// written atomically (temporary file, fsync, rename, fsync of the
// directory). Files rather than SQLite because a kiosk holds a handful to a
// few thousand enrolments, looked up one at a time by ID, and because a
// data-subject deletion must really remove the data: unlink removes the
// whole record, template and retained portrait at once, where a database
// would keep freed pages holding the old ciphertext until they are reused.
// glintd also needs no SQL engine for it.
//
// A record file is JSON:
//
//	{"v":1,"reference_id":ID,"key_id":KID,"nonce":B64,"ciphertext":B64}
//
// ciphertext is AES-256-GCM over the JSON of enrolmentSecret (subject,
// model, template and, with retention on, the portrait), with a random
// 96-bit nonce per write and the additional data
// "glint-enrolment/v1\x00<reference_id>": a record copied or renamed under
// another enrolment's name does not decrypt. KID (a hash of the key) tells a
// wrong key apart from a damaged file.

// EnrolmentConfig configures the enrolment store (glintd's enrolment:
// section).
type EnrolmentConfig struct {
	Dir             string `yaml:"dir" doc:"Directory of the encrypted enrolment records (one file each, mode 0600); empty: enrolments/ in state_dir."`
	KeyFile         string `yaml:"key_file" doc:"AES-256 key encrypting the templates at rest: a file of 32 raw bytes or 64 hex digits, mode 0600 or stricter (e.g. head -c 32 /dev/urandom > key); a relative name is looked up in $CREDENTIALS_DIRECTORY (systemd LoadCredential= or LoadCredentialEncrypted=). Empty: enrolment is disabled (the API answers 503)."`
	RetainPortraits bool   `yaml:"retain_portraits" doc:"Keep the uploaded portrait, encrypted with the template; off (default): only the template is stored and the portrait is discarded once embedded."`
}

// Enabled reports whether enrolment is configured.
func (c EnrolmentConfig) Enabled() bool { return c.KeyFile != "" }

// Errors of the enrolment store.
var (
	// ErrEnrolmentKey: the key file is missing, malformed or not 32 bytes.
	ErrEnrolmentKey = errors.New("bad enrolment key")
	// ErrWrongKey: a record was encrypted with another key.
	ErrWrongKey = errors.New("enrolment record encrypted with another key")
	// ErrTampered: a record does not decrypt or does not belong under its
	// name (damaged, edited or swapped with another record).
	ErrTampered = errors.New("enrolment record damaged or tampered with")
	// ErrInvalidSubject: the subject is empty, too long or not printable.
	ErrInvalidSubject = errors.New("invalid subject")
)

// MaxSubjectLen bounds an enrolment's or a session's subject, in bytes.
const MaxSubjectLen = 256

// PortraitModels is what enrolment needs from the face models
// (*inference.Engine). The engine must use the full-range detector: the
// portrait rules of docs/models.md were set with it, and the short-range one
// is unreliable on small faces.
type PortraitModels interface {
	ValidatePortrait(data []byte, lim inference.QualityLimits) (*inference.Portrait, error)
	Embed(im *inference.Image, f inference.Face) ([]float32, error)
	Config() inference.Config
}

// Enrolment is an enrolment's metadata, as the API reports it: never the
// template or the portrait.
type Enrolment struct {
	ReferenceID string    `json:"reference_id"`
	Subject     string    `json:"subject"`
	Model       string    `json:"model"`
	CreatedAt   time.Time `json:"created_at"`
	// TemplateDims is the length of the stored face descriptor.
	TemplateDims int `json:"template_dims"`
	// PortraitRetained: the portrait is stored (encrypted) with the template.
	PortraitRetained bool `json:"portrait_retained"`
	// Face is the validated portrait's face geometry.
	Face EnrolmentFace `json:"face"`
}

// EnrolmentFace is the enrolment portrait's face as validated.
type EnrolmentFace struct {
	InterocularPx float64 `json:"interocular_px"`
	YawDeg        float64 `json:"yaw_deg"`
	PitchDeg      float64 `json:"pitch_deg"`
}

// Enrolments is the encrypted enrolment store. It implements References.
// Its methods are safe for concurrent use.
type Enrolments struct {
	dir    string
	retain bool
	models PortraitModels
	limits inference.QualityLimits
	log    *slog.Logger
	aead   cipher.AEAD
	keyID  string

	mu sync.Mutex // serialises writes and deletions
}

// enrolmentFile is the on-disk record.
type enrolmentFile struct {
	V           int    `json:"v"`
	ReferenceID string `json:"reference_id"`
	KeyID       string `json:"key_id"`
	Nonce       []byte `json:"nonce"`
	Ciphertext  []byte `json:"ciphertext"`
}

// enrolmentSecret is the encrypted part of a record.
type enrolmentSecret struct {
	Subject   string        `json:"subject"`
	Model     string        `json:"model"`
	CreatedAt time.Time     `json:"created_at"`
	Face      EnrolmentFace `json:"face"`
	// Template is the descriptor as little-endian float32.
	Template       []byte `json:"template"`
	Portrait       []byte `json:"portrait,omitempty"`
	PortraitFormat string `json:"portrait_format,omitempty"`
}

const (
	enrolmentVersion = 1
	enrolmentExt     = ".enr"
	enrolmentAD      = "glint-enrolment/v1\x00"
	// maxRecordBytes bounds a record file read back: a retained 2 MB
	// portrait, base64'd twice (inner JSON, outer JSON), plus the rest.
	maxRecordBytes = 4*inference.MaxPortraitBytes + 1<<20
)

// NewEnrolments opens the store configured by cfg: it loads the key
// (refusing a file group or others can access, as device keys are refused)
// and creates the directory (0700). stateDir is glintd's state_dir, the
// default parent of the directory. log may be nil.
func NewEnrolments(cfg EnrolmentConfig, stateDir string, models PortraitModels, log *slog.Logger) (*Enrolments, error) {
	if models == nil {
		return nil, errors.New("enrolment: no face models")
	}
	if d := models.Config().Detector; d != "" && d != inference.DetectorFull {
		return nil, fmt.Errorf("enrolment: the face models use the %q detector; portrait validation needs %q", d, inference.DetectorFull)
	}
	if log == nil {
		log = slog.Default()
	}
	key, err := LoadEnrolmentKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		if stateDir == "" {
			return nil, errors.New("enrolment: neither a directory nor a state directory")
		}
		dir = filepath.Join(stateDir, "enrolments")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("enrolment: directory: %w", err)
	}
	s := &Enrolments{dir: dir, retain: cfg.RetainPortraits, models: models, limits: inference.DefaultQualityLimits(), log: log}
	if err := s.initCipher(key); err != nil {
		return nil, err
	}
	return s, nil
}

// initCipher sets the AES-256-GCM cipher and the key ID from key.
func (s *Enrolments) initCipher(key []byte) error {
	if len(key) != 32 {
		return fmt.Errorf("enrolment: %w: %d bytes, want 32", ErrEnrolmentKey, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("enrolment: %w", err)
	}
	if s.aead, err = cipher.NewGCM(block); err != nil {
		return fmt.Errorf("enrolment: %w", err)
	}
	s.keyID = enrolmentKeyID(key)
	return nil
}

// Dir is the store's directory.
func (s *Enrolments) Dir() string { return s.dir }

// LoadEnrolmentKey reads a 32-byte AES key from path: 32 raw bytes or 64
// hex digits (surrounding whitespace ignored). A relative path is looked up
// in $CREDENTIALS_DIRECTORY. A file that group or others may access is
// refused with an error wrapping device.ErrKeyPermissions.
func LoadEnrolmentKey(path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("enrolment: %w: no key_file", ErrEnrolmentKey)
	}
	if !filepath.IsAbs(path) {
		dir := os.Getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return nil, fmt.Errorf("enrolment: key_file %q is relative and $CREDENTIALS_DIRECTORY is not set", path)
		}
		path = filepath.Join(dir, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("enrolment: key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("enrolment: key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("enrolment: %s mode %04o: %w (want 0600 or 0400)", path, st.Mode().Perm(), device.ErrKeyPermissions)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("enrolment: read key %s: %w", path, err)
	}
	if len(b) == 32 {
		return b, nil
	}
	if t := strings.TrimSpace(string(b)); len(t) == 64 {
		if k, err := hex.DecodeString(t); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("enrolment: %s: %w: want 32 raw bytes or 64 hex digits, got %d bytes", path, ErrEnrolmentKey, len(b))
}

// enrolmentKeyID names a key without revealing it.
func enrolmentKeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("glint-enrolment-key-id/v1\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// CheckSubject validates a subject: 1..MaxSubjectLen bytes of printable
// UTF-8.
func CheckSubject(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidSubject)
	}
	if len(s) > MaxSubjectLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidSubject, len(s), MaxSubjectLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidSubject)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: contains the non-printable %U", ErrInvalidSubject, r)
		}
	}
	return nil
}

// validID reports whether id is a reference ID this store could have made
// (a canonical UUID), which also keeps it a safe file name.
func validID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

func (s *Enrolments) path(id string) string { return filepath.Join(s.dir, id+enrolmentExt) }

// Enrol validates the portrait (PNG or JPEG, at most 2 MB, one frontal,
// sharp, well-exposed face: a *inference.PortraitError otherwise), embeds
// it and stores the template encrypted. The portrait is kept, encrypted,
// only when retention is on.
func (s *Enrolments) Enrol(ctx context.Context, subject string, portrait []byte) (Enrolment, error) {
	if err := CheckSubject(subject); err != nil {
		return Enrolment{}, err
	}
	p, err := s.models.ValidatePortrait(portrait, s.limits)
	if err != nil {
		return Enrolment{}, err
	}
	if err := ctx.Err(); err != nil {
		return Enrolment{}, err
	}
	tmpl, err := s.models.Embed(p.Image, p.Face)
	if err != nil {
		return Enrolment{}, fmt.Errorf("enrolment: embed: %w", err)
	}
	sec := enrolmentSecret{
		Subject:   subject,
		Model:     s.models.Config().Embedding,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
		Face: EnrolmentFace{
			InterocularPx: round1(p.Face.Landmarks.Interocular),
			YawDeg:        round1(p.Face.Landmarks.Pose.Yaw),
			PitchDeg:      round1(p.Face.Landmarks.Pose.Pitch),
		},
		Template: encodeTemplate(tmpl),
	}
	if s.retain {
		sec.Portrait, sec.PortraitFormat = portrait, p.Format
	}
	id := uuid.NewString()
	if err := s.write(id, sec); err != nil {
		return Enrolment{}, err
	}
	s.log.Info("enrolled", "reference_id", id, "model", sec.Model, "portrait_retained", s.retain)
	return metadata(id, sec), nil
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

func metadata(id string, sec enrolmentSecret) Enrolment {
	return Enrolment{
		ReferenceID: id, Subject: sec.Subject, Model: sec.Model, CreatedAt: sec.CreatedAt,
		TemplateDims: len(sec.Template) / 4, PortraitRetained: len(sec.Portrait) > 0, Face: sec.Face,
	}
}

func encodeTemplate(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func decodeTemplate(b []byte) ([]float32, error) {
	if len(b)%4 != 0 || len(b) == 0 {
		return nil, fmt.Errorf("template of %d bytes", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// write encrypts sec and stores it atomically under id.
func (s *Enrolments) write(id string, sec enrolmentSecret) error {
	plain, err := json.Marshal(sec)
	if err != nil {
		return fmt.Errorf("enrolment: %w", err)
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("enrolment: nonce: %w", err)
	}
	rec := enrolmentFile{
		V: enrolmentVersion, ReferenceID: id, KeyID: s.keyID, Nonce: nonce,
		Ciphertext: s.aead.Seal(nil, nonce, plain, []byte(enrolmentAD+id)),
	}
	clear(plain)
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("enrolment: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return fsutil.WriteFileAtomic(s.path(id), b, 0o600)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("enrolment: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("enrolment: fsync %s: %w", dir, err)
	}
	return nil
}

// read loads and decrypts the record of id.
func (s *Enrolments) read(id string) (enrolmentSecret, error) {
	if !validID(id) {
		return enrolmentSecret{}, fmt.Errorf("%w: %q", ErrUnknownReference, id)
	}
	f, err := os.Open(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return enrolmentSecret{}, fmt.Errorf("%w: %s", ErrUnknownReference, id)
	}
	if err != nil {
		return enrolmentSecret{}, fmt.Errorf("enrolment %s: %w", id, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordBytes+1))
	if err != nil {
		return enrolmentSecret{}, fmt.Errorf("enrolment %s: %w", id, err)
	}
	return s.open(id, b)
}

// open decrypts a record file's bytes that should be enrolment id.
func (s *Enrolments) open(id string, b []byte) (enrolmentSecret, error) {
	if len(b) > maxRecordBytes {
		return enrolmentSecret{}, fmt.Errorf("enrolment %s: %w: record over %d bytes", id, ErrTampered, maxRecordBytes)
	}
	var rec enrolmentFile
	if err := json.Unmarshal(b, &rec); err != nil {
		return enrolmentSecret{}, fmt.Errorf("enrolment %s: %w: %v", id, ErrTampered, err)
	}
	if rec.V != enrolmentVersion {
		return enrolmentSecret{}, fmt.Errorf("enrolment %s: %w: record version %d", id, ErrTampered, rec.V)
	}
	if rec.ReferenceID != id {
		return enrolmentSecret{}, fmt.Errorf("enrolment %s: %w: the file holds enrolment %q", id, ErrTampered, rec.ReferenceID)
	}
	if rec.KeyID != s.keyID {
		return enrolmentSecret{}, fmt.Errorf("enrolment %s: %w (key id %s, this store's key is %s)", id, ErrWrongKey, rec.KeyID, s.keyID)
	}
	if len(rec.Nonce) != s.aead.NonceSize() {
		return enrolmentSecret{}, fmt.Errorf("enrolment %s: %w: nonce of %d bytes", id, ErrTampered, len(rec.Nonce))
	}
	plain, err := s.aead.Open(nil, rec.Nonce, rec.Ciphertext, []byte(enrolmentAD+id))
	if err != nil {
		return enrolmentSecret{}, fmt.Errorf("enrolment %s: %w: authentication failed", id, ErrTampered)
	}
	defer clear(plain)
	var sec enrolmentSecret
	if err := json.Unmarshal(plain, &sec); err != nil {
		return enrolmentSecret{}, fmt.Errorf("enrolment %s: %w: %v", id, ErrTampered, err)
	}
	return sec, nil
}

// Enrolment returns an enrolment's metadata; an error wrapping
// ErrUnknownReference when there is none.
func (s *Enrolments) Enrolment(id string) (Enrolment, error) {
	sec, err := s.read(id)
	if err != nil {
		return Enrolment{}, err
	}
	return metadata(id, sec), nil
}

// Reference returns the enrolment's template (References).
func (s *Enrolments) Reference(id string) (Reference, error) {
	sec, err := s.read(id)
	if err != nil {
		return Reference{}, err
	}
	tmpl, err := decodeTemplate(sec.Template)
	if err != nil {
		return Reference{}, fmt.Errorf("enrolment %s: %w: %v", id, ErrTampered, err)
	}
	return Reference{ID: id, Subject: sec.Subject, Model: sec.Model, CreatedAt: sec.CreatedAt, Template: tmpl}, nil
}

// Portrait returns the retained portrait and its format ("png", "jpeg");
// nil when retention was off when it was enrolled.
func (s *Enrolments) Portrait(id string) ([]byte, string, error) {
	sec, err := s.read(id)
	if err != nil {
		return nil, "", err
	}
	return sec.Portrait, sec.PortraitFormat, nil
}

// Delete removes an enrolment (a data-subject request): its record file,
// which holds the template and any retained portrait, is unlinked and the
// directory synced. An error wrapping ErrUnknownReference when there is
// none.
func (s *Enrolments) Delete(id string) error {
	if !validID(id) {
		return fmt.Errorf("%w: %q", ErrUnknownReference, id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.path(id)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrUnknownReference, id)
		}
		return fmt.Errorf("enrolment %s: delete: %w", id, err)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	s.log.Info("enrolment deleted", "reference_id", id)
	return nil
}

// Count is the number of stored enrolments.
func (s *Enrolments) Count() (int, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("enrolment: %w", err)
	}
	n := 0
	for _, e := range ents {
		if name := e.Name(); strings.HasSuffix(name, enrolmentExt) && validID(strings.TrimSuffix(name, enrolmentExt)) {
			n++
		}
	}
	return n, nil
}
