package store

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/sync/ingest"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Dialect is the database engine.
type Dialect string

// Dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Store is the hub database. Safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect Dialect
}

// Open connects and migrates. For SQLite, dsn is a file path; WAL,
// synchronous=FULL, a busy timeout and foreign keys are set here. For
// PostgreSQL, dsn is a pgx connection string or URL.
func Open(ctx context.Context, dialect Dialect, dsn string) (*Store, error) {
	var db *sql.DB
	var err error
	switch dialect {
	case SQLite:
		q := "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate"
		if strings.Contains(dsn, "?") {
			q = "&" + q[1:]
		}
		db, err = sql.Open("sqlite", "file:"+dsn+q)
		if err == nil {
			// One writer at a time is SQLite's model; a small pool lets
			// API reads run beside the ingest's writes under WAL.
			db.SetMaxOpenConns(4)
		}
	case Postgres:
		db, err = sql.Open("pgx", dsn)
		if err == nil {
			db.SetMaxOpenConns(16)
		}
	default:
		return nil, fmt.Errorf("store: unknown dialect %q (sqlite or postgres)", dialect)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dialect, err)
	}
	s := &Store{db: db, dialect: dialect}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect %s: %w", dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Dialect returns the engine.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close closes the connection pool.
func (s *Store) Close() error { return s.db.Close() }

// q rewrites ? placeholders to $n for PostgreSQL.
func (s *Store) q(query string) string {
	if s.dialect != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *Store) ddl(stmt string) string {
	blob, serial := "BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT"
	if s.dialect == Postgres {
		blob, serial = "BYTEA", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
	}
	return strings.NewReplacer("{{BLOB}}", blob, "{{SERIAL}}", serial).Replace(stmt)
}

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return int(v.Int64), nil
}

// migrate applies missing migrations in one transaction. On PostgreSQL a
// transaction-scoped advisory lock serialises N hub replicas starting
// together (DDL is transactional there); on SQLite the immediate
// transaction does the same.
func (s *Store) migrate(ctx context.Context) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if s.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7305420611)`); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ns BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("migrations table: %w", err)
		}
		for _, m := range migrations {
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				continue
			}
			for _, stmt := range m.sql {
				if _, err := tx.ExecContext(ctx, s.ddl(stmt)); err != nil {
					return fmt.Errorf("migration %d (%s): %s: %w", m.version, m.name, firstLine(stmt), err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_ns) VALUES (?, ?, ?)`), m.version, m.name, time.Now().UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Device is a registered device.
type Device struct {
	DeviceID string `json:"device_id"`
	KID      string `json:"kid"`
	// KeyAlg is the key's algorithm: EdDSA (key file) or ES256 (TPM).
	KeyAlg device.Alg `json:"key_alg"`
	// Key is the registered public key with its algorithm.
	Key device.PublicKey `json:"-"`
	// PublicKey is Key.Raw: the 32-byte Ed25519 key, or the 65-byte
	// uncompressed point of a P-256 key (kept for callers that predate
	// ES256 devices; use Key).
	PublicKey  ed25519.PublicKey `json:"-"`
	SiteID     string            `json:"site_id"`
	Revoked    bool              `json:"revoked"`
	CreatedAt  time.Time         `json:"created_at"`
	LastSeen   time.Time         `json:"last_seen,omitzero"`
	LastSeq    uint64            `json:"last_seq"`
	Online     bool              `json:"online"`
	QueueDepth int64             `json:"queue_depth"`
	// Status is the device's last status message (JSON), if any.
	Status json.RawMessage `json:"status,omitempty"`
	// GuardRisk and GuardCheckedAt summarise the device's latest signed
	// guard report (Devices fills them; "" when none arrived yet).
	GuardRisk      string    `json:"guard_risk,omitempty"`
	GuardCheckedAt time.Time `json:"guard_checked_at,omitzero"`
}

// RegisterDevice adds a device with its public key. Registering the same
// device with the same key again is a no-op; with another key, or a key
// already used by another device, it fails with ErrConflict.
func (s *Store) RegisterDevice(ctx context.Context, deviceID, siteID string, pub ed25519.PublicKey) (*Device, error) {
	if deviceID == "" || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("register device: need a device ID and an Ed25519 key")
	}
	return s.RegisterDeviceKey(ctx, deviceID, siteID, device.Ed25519Public(pub))
}

// RegisterDeviceKey is RegisterDevice with a key of either algorithm.
func (s *Store) RegisterDeviceKey(ctx context.Context, deviceID, siteID string, pub device.PublicKey) (*Device, error) {
	if deviceID == "" {
		return nil, fmt.Errorf("register device: need a device ID")
	}
	if err := pub.Check(); err != nil {
		return nil, fmt.Errorf("register device %s: %w", deviceID, err)
	}
	kid := pub.KeyID()
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO devices (device_id, kid, public_key, site_id, created_ns, key_alg) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		deviceID, kid, pub.Raw, siteID, time.Now().UnixNano(), string(pub.Alg))
	if err != nil {
		return nil, fmt.Errorf("register device %s: %w", deviceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		d, err := s.DeviceByKID(ctx, kid)
		if err == nil && d.DeviceID == deviceID {
			return d, nil
		}
		return nil, fmt.Errorf("register device %s: %w: device ID or key already registered", deviceID, ErrConflict)
	}
	return s.DeviceByKID(ctx, kid)
}

// RevokeDevice marks a device revoked: its envelopes are quarantined from
// then on.
func (s *Store) RevokeDevice(ctx context.Context, deviceID string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE devices SET revoked = 1 WHERE device_id = ?`), deviceID)
	if err != nil {
		return fmt.Errorf("revoke %s: %w", deviceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoke %s: %w", deviceID, ErrNotFound)
	}
	return nil
}

const deviceCols = `device_id, kid, public_key, site_id, revoked, created_ns, last_seen_ns, last_seq, online, queue_depth, status_json, key_alg`

func scanDevice(sc interface{ Scan(...any) error }) (*Device, error) {
	var d Device
	var pub []byte
	var revoked, online, created, seen, seq int64
	var status, alg string
	if err := sc.Scan(&d.DeviceID, &d.KID, &pub, &d.SiteID, &revoked, &created, &seen, &seq, &online, &d.QueueDepth, &status, &alg); err != nil {
		return nil, err
	}
	d.PublicKey = ed25519.PublicKey(pub)
	d.KeyAlg = device.Alg(alg)
	d.Key = device.PublicKey{Alg: d.KeyAlg, Raw: pub}
	d.Revoked, d.Online = revoked != 0, online != 0
	d.CreatedAt = time.Unix(0, created).UTC()
	if seen != 0 {
		d.LastSeen = time.Unix(0, seen).UTC()
	}
	d.LastSeq = uint64(seq)
	if status != "" {
		d.Status = json.RawMessage(status)
	}
	return &d, nil
}

// DeviceByKID looks a device up by key ID.
func (s *Store) DeviceByKID(ctx context.Context, kid string) (*Device, error) {
	d, err := scanDevice(s.db.QueryRowContext(ctx, s.q(`SELECT `+deviceCols+` FROM devices WHERE kid = ?`), kid))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("device kid %s: %w", kid, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("device kid %s: %w", kid, err)
	}
	return d, nil
}

// Devices lists every device by ID.
func (s *Store) Devices(ctx context.Context) ([]Device, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices ORDER BY device_id`)
	if err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("devices: %w", err)
		}
		out = append(out, *d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	rows.Close()
	// The guard summary, so an operator sees each device's risk in the list.
	grows, err := s.db.QueryContext(ctx, `SELECT device_id, risk, checked_ns FROM device_guard`)
	if err != nil {
		return nil, fmt.Errorf("devices: guard reports: %w", err)
	}
	defer grows.Close()
	type guard struct {
		risk    string
		checked int64
	}
	guards := map[string]guard{}
	for grows.Next() {
		var id string
		var g guard
		if err := grows.Scan(&id, &g.risk, &g.checked); err != nil {
			return nil, fmt.Errorf("devices: guard reports: %w", err)
		}
		guards[id] = g
	}
	if err := grows.Err(); err != nil {
		return nil, fmt.Errorf("devices: guard reports: %w", err)
	}
	for i := range out {
		if g, ok := guards[out[i].DeviceID]; ok {
			out[i].GuardRisk, out[i].GuardCheckedAt = g.risk, time.Unix(0, g.checked).UTC()
		}
	}
	return out, nil
}

// SetDeviceStatus records a device's status message (online flag, queue
// depth, the raw JSON) and when it was seen.
func (s *Store) SetDeviceStatus(ctx context.Context, deviceID string, online bool, queueDepth int64, raw []byte, at time.Time) error {
	on := 0
	if online {
		on = 1
	}
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE devices SET online = ?, queue_depth = ?, status_json = ?, last_seen_ns = CASE WHEN last_seen_ns > ? THEN last_seen_ns ELSE ? END WHERE device_id = ?`),
		on, queueDepth, string(raw), at.UnixNano(), at.UnixNano(), deviceID)
	if err != nil {
		return fmt.Errorf("device status %s: %w", deviceID, err)
	}
	return nil
}

// The batch types are ingest's: the store implements ingest.Store.
type (
	Item        = ingest.Item
	Outcome     = ingest.Outcome
	Quarantined = ingest.Quarantined
)

// Outcomes, re-exported for readability at call sites.
const (
	Stored    = ingest.Stored
	Duplicate = ingest.Duplicate
	SeqReused = ingest.SeqReused
	SeqTooOld = ingest.SeqTooOld
)

// LookupDevice implements ingest.Store.
func (s *Store) LookupDevice(ctx context.Context, kid string) (*ingest.Device, error) {
	d, err := s.DeviceByKID(ctx, kid)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %v", ingest.ErrUnknownDevice, err)
	}
	if err != nil {
		return nil, err
	}
	return &ingest.Device{DeviceID: d.DeviceID, PublicKey: d.PublicKey, Key: d.Key, Revoked: d.Revoked}, nil
}

var _ ingest.Store = (*Store)(nil)

// Commit stores items and quarantine rows in one transaction and returns an
// outcome per item. reorderWindow is how far below a device's newest stored
// seq a new record may be (results from N hub replicas, and redeliveries,
// arrive out of order; a record far older than the window and never stored
// is a replay).
//
// Rows go in as multi-row INSERT … ON CONFLICT DO NOTHING RETURNING id
// statements (insertChunk rows each): one round trip per chunk instead of
// per row, which is what makes PostgreSQL over a network keep up. Rows the
// database skipped are classified afterwards: same ID stored → Duplicate,
// otherwise the (device, seq) key was taken → SeqReused.
func (s *Store) Commit(ctx context.Context, items []Item, quarantine []Quarantined, reorderWindow uint64) ([]Outcome, error) {
	out := make([]Outcome, len(items))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// The newest stored seq of every device in the batch.
		lastSeq := map[string]uint64{}
		for _, it := range items {
			dev := it.Record.DeviceID
			if _, ok := lastSeq[dev]; ok {
				continue
			}
			var v int64
			err := tx.QueryRowContext(ctx, s.q(`SELECT last_seq FROM devices WHERE device_id = ?`), dev).Scan(&v)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			lastSeq[dev] = uint64(v)
		}
		var candidates []int // indexes of items to insert
		var tooOld []int
		for i, it := range items {
			last := lastSeq[it.Record.DeviceID]
			if last > reorderWindow && it.Record.Seq < last-reorderWindow {
				tooOld = append(tooOld, i)
				continue
			}
			candidates = append(candidates, i)
		}
		inserted := map[string]bool{}
		for start := 0; start < len(candidates); start += insertChunk {
			chunk := candidates[start:min(start+insertChunk, len(candidates))]
			ids, err := s.insertResults(ctx, tx, items, chunk)
			if err != nil {
				return err
			}
			for _, id := range ids {
				inserted[id] = true
			}
		}
		// Classify: the first occurrence of an inserted ID is Stored; later
		// ones (the same record twice in a batch) and skipped rows need a
		// look at what is stored.
		maxSeq := map[string]uint64{}
		var skipped []int
		for _, i := range candidates {
			r := items[i].Record
			if inserted[r.ID] {
				out[i] = Stored
				delete(inserted, r.ID)
				if r.Seq > maxSeq[r.DeviceID] {
					maxSeq[r.DeviceID] = r.Seq
				}
				continue
			}
			skipped = append(skipped, i)
		}
		skipped = append(skipped, tooOld...)
		stored, err := s.existingIDs(ctx, tx, items, skipped)
		if err != nil {
			return err
		}
		for _, i := range skipped {
			it := items[i]
			r := it.Record
			switch {
			case stored[r.ID]:
				out[i] = Duplicate
			case slices.Contains(tooOld, i):
				out[i] = SeqTooOld
				quarantine = append(quarantine, Quarantined{ReceivedAt: it.ReceivedAt, Topic: it.Topic, DeviceID: r.DeviceID, KID: it.KID, RecordID: r.ID,
					Reason: "seq_too_old", Detail: fmt.Sprintf("seq %d, newest stored %d, window %d", r.Seq, lastSeq[r.DeviceID], reorderWindow), Envelope: it.Envelope})
			default:
				out[i] = SeqReused
				quarantine = append(quarantine, Quarantined{ReceivedAt: it.ReceivedAt, Topic: it.Topic, DeviceID: r.DeviceID, KID: it.KID, RecordID: r.ID,
					Reason: "seq_reused", Detail: fmt.Sprintf("seq %d already holds another record", r.Seq), Envelope: it.Envelope})
			}
		}
		// Devices in a fixed order: replicas updating overlapping devices
		// lock them in the same order (no deadlock; PostgreSQL would
		// detect one and the batch would be retried, but slower).
		now := time.Now().UnixNano()
		for _, dev := range slices.Sorted(maps.Keys(maxSeq)) {
			seq := maxSeq[dev]
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE devices SET last_seq = CASE WHEN last_seq > ? THEN last_seq ELSE ? END, last_seen_ns = ? WHERE device_id = ?`),
				int64(seq), int64(seq), now, dev); err != nil {
				return err
			}
		}
		return s.insertQuarantine(ctx, tx, quarantine)
	})
	if err != nil {
		return nil, fmt.Errorf("commit batch of %d: %w", len(items), err)
	}
	return out, nil
}

// insertChunk is the most rows per INSERT: 12 parameters each stays far
// below both engines' parameter limits.
const insertChunk = 128

// insertResults inserts items[idx...] in one statement and returns the IDs
// actually inserted.
func (s *Store) insertResults(ctx context.Context, tx *sql.Tx, items []Item, idx []int) ([]string, error) {
	var b strings.Builder
	b.WriteString(`INSERT INTO results (id, device_id, seq, site_id, kid, status, subject, created_ns, received_ns, canonical, record_json, envelope) VALUES `)
	args := make([]any, 0, 12*len(idx))
	for n, i := range idx {
		if n > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		it := items[i]
		r := it.Record
		js, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		canon := 0
		if it.Canonical {
			canon = 1
		}
		args = append(args, r.ID, r.DeviceID, int64(r.Seq), r.SiteID, it.KID, string(r.Status), r.Subject,
			r.CreatedAt.UnixNano(), it.ReceivedAt.UnixNano(), canon, string(js), it.Envelope)
	}
	b.WriteString(" ON CONFLICT DO NOTHING RETURNING id")
	rows, err := tx.QueryContext(ctx, s.q(b.String()), args...)
	if err != nil {
		return nil, fmt.Errorf("insert results: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// existingIDs reports which of items[idx...] have their ID stored.
func (s *Store) existingIDs(ctx context.Context, tx *sql.Tx, items []Item, idx []int) (map[string]bool, error) {
	found := map[string]bool{}
	for start := 0; start < len(idx); start += insertChunk {
		chunk := idx[start:min(start+insertChunk, len(idx))]
		args := make([]any, len(chunk))
		for n, i := range chunk {
			args[n] = items[i].Record.ID
		}
		q := `SELECT id FROM results WHERE id IN (?` + strings.Repeat(", ?", len(chunk)-1) + `)`
		rows, err := tx.QueryContext(ctx, s.q(q), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			found[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return found, nil
}

func (s *Store) insertQuarantine(ctx context.Context, tx *sql.Tx, qs []Quarantined) error {
	if len(qs) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, s.q(`INSERT INTO quarantine (received_ns, topic, device_id, kid, record_id, reason, detail, envelope) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`))
	if err != nil {
		return err
	}
	defer st.Close()
	for _, q := range qs {
		env := q.Envelope
		if env == nil {
			env = []byte{}
		}
		if _, err := st.ExecContext(ctx, q.ReceivedAt.UnixNano(), q.Topic, validUTF8(q.DeviceID), validUTF8(q.KID), validUTF8(q.RecordID), q.Reason, validUTF8(q.Detail), env); err != nil {
			return fmt.Errorf("insert quarantine: %w", err)
		}
	}
	return nil
}

// validUTF8 keeps attacker-chosen strings storable (PostgreSQL rejects
// invalid UTF-8 and NUL in TEXT).
func validUTF8(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// Quarantine stores rejected input outside a result batch.
func (s *Store) Quarantine(ctx context.Context, qs []Quarantined) error {
	if err := s.tx(ctx, func(tx *sql.Tx) error { return s.insertQuarantine(ctx, tx, qs) }); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	return nil
}

// QuarantineList returns the newest quarantine rows, optionally of one
// reason.
func (s *Store) QuarantineList(ctx context.Context, reason string, limit int) ([]Quarantined, error) {
	if limit <= 0 {
		limit = 100
	}
	query := `SELECT qid, received_ns, topic, device_id, kid, record_id, reason, detail, envelope FROM quarantine`
	args := []any{}
	if reason != "" {
		query += ` WHERE reason = ?`
		args = append(args, reason)
	}
	query += ` ORDER BY qid DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("quarantine list: %w", err)
	}
	defer rows.Close()
	var out []Quarantined
	for rows.Next() {
		var q Quarantined
		var ns int64
		if err := rows.Scan(&q.ID, &ns, &q.Topic, &q.DeviceID, &q.KID, &q.RecordID, &q.Reason, &q.Detail, &q.Envelope); err != nil {
			return nil, fmt.Errorf("quarantine list: %w", err)
		}
		q.ReceivedAt = time.Unix(0, ns).UTC()
		out = append(out, q)
	}
	return out, rows.Err()
}

// Row is a stored result.
type Row struct {
	ID         string          `json:"id"`
	DeviceID   string          `json:"device_id"`
	Seq        uint64          `json:"seq"`
	SiteID     string          `json:"site_id"`
	KID        string          `json:"kid"`
	Status     string          `json:"status"`
	CreatedAt  time.Time       `json:"created_at"`
	ReceivedAt time.Time       `json:"received_at"`
	Canonical  bool            `json:"canonical"`
	Record     json.RawMessage `json:"record"`
	Envelope   []byte          `json:"envelope,omitempty"`
}

// Filter selects results; zero fields do not filter.
type Filter struct {
	DeviceID string
	Status   string
	Since    time.Time
	// Limit defaults to 100 and is capped at 1000.
	Limit int
}

// Results lists results newest first.
func (s *Store) Results(ctx context.Context, f Filter) ([]Row, error) {
	var where []string
	var args []any
	if f.DeviceID != "" {
		where = append(where, "device_id = ?")
		args = append(args, f.DeviceID)
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, f.Status)
	}
	if !f.Since.IsZero() {
		where = append(where, "created_ns >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	query := `SELECT id, device_id, seq, site_id, kid, status, created_ns, received_ns, canonical, record_json FROM results`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY created_ns DESC, id DESC LIMIT ?"
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	defer rows.Close()
	out := []Row{}
	for rows.Next() {
		r, err := scanRow(rows, false)
		if err != nil {
			return nil, fmt.Errorf("results: %w", err)
		}
		out = append(out, *r)
	}
	return out, rows.Err()
}

func scanRow(sc interface{ Scan(...any) error }, withEnv bool) (*Row, error) {
	var r Row
	var seq, created, received, canon int64
	var js string
	dest := []any{&r.ID, &r.DeviceID, &seq, &r.SiteID, &r.KID, &r.Status, &created, &received, &canon, &js}
	if withEnv {
		dest = append(dest, &r.Envelope)
	}
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	r.Seq = uint64(seq)
	r.CreatedAt = time.Unix(0, created).UTC()
	r.ReceivedAt = time.Unix(0, received).UTC()
	r.Canonical = canon != 0
	r.Record = json.RawMessage(js)
	return &r, nil
}

// Result returns one result with its raw envelope.
func (s *Store) Result(ctx context.Context, id string) (*Row, error) {
	r, err := scanRow(s.db.QueryRowContext(ctx, s.q(`SELECT id, device_id, seq, site_id, kid, status, created_ns, received_ns, canonical, record_json, envelope FROM results WHERE id = ?`), id), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("result %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("result %s: %w", id, err)
	}
	return r, nil
}

// Counts returns the number of stored results and quarantine rows.
func (s *Store) Counts(ctx context.Context) (results, quarantined int64, err error) {
	if err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM results`).Scan(&results); err != nil {
		return 0, 0, fmt.Errorf("count results: %w", err)
	}
	if err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM quarantine`).Scan(&quarantined); err != nil {
		return 0, 0, fmt.Errorf("count quarantine: %w", err)
	}
	return results, quarantined, nil
}

// Envelopes streams every stored (id, envelope) pair to f, for audits (the
// fault suite re-verifies every signature).
func (s *Store) Envelopes(ctx context.Context, f func(id, deviceID string, seq uint64, env []byte) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT id, device_id, seq, envelope FROM results ORDER BY device_id, seq`)
	if err != nil {
		return fmt.Errorf("envelopes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, dev string
		var seq int64
		var env []byte
		if err := rows.Scan(&id, &dev, &seq, &env); err != nil {
			return fmt.Errorf("envelopes: %w", err)
		}
		if err := f(id, dev, uint64(seq), env); err != nil {
			return err
		}
	}
	return rows.Err()
}

// DeviceByID looks a device up by ID.
func (s *Store) DeviceByID(ctx context.Context, deviceID string) (*Device, error) {
	d, err := scanDevice(s.db.QueryRowContext(ctx, s.q(`SELECT `+deviceCols+` FROM devices WHERE device_id = ?`), deviceID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("device %s: %w", deviceID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", deviceID, err)
	}
	return d, nil
}

// DevicePublicKey implements hub/broker.Devices: the registered key with
// its algorithm, so that the broker checks an auth token only with the
// algorithm the device registered.
func (s *Store) DevicePublicKey(ctx context.Context, deviceID string) (device.PublicKey, bool, error) {
	d, err := s.DeviceByID(ctx, deviceID)
	if err != nil {
		return device.PublicKey{}, false, err
	}
	return d.Key, d.Revoked, nil
}
