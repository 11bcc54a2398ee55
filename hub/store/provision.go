package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/glintdev/glint/device"
)

// Claim tokens (migration 3) authorise one device to join one site, once,
// before they expire. The store keeps only SHA-256(token): a database dump
// lets nobody provision a device.

// Errors of Provision, one per refusal; nothing is changed when one is
// returned.
var (
	ErrTokenUnknown = errors.New("claim token unknown")
	ErrTokenUsed    = errors.New("claim token already used")
	ErrTokenExpired = errors.New("claim token expired")
	ErrTokenSite    = errors.New("claim token is for another site")
)

// TokenBytes is the entropy of a claim token: 192 bits, printed as 32
// base64url characters (URL- and QR-safe).
const TokenBytes = 24

// HashToken returns the stored form of a claim token (hex SHA-256).
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenID names a token by a prefix of its hash (12 hex digits).
func tokenID(hash string) string { return hash[:12] }

// ClaimToken describes a stored token (never the token itself).
type ClaimToken struct {
	ID        string    `json:"token_id"`
	SiteID    string    `json:"site_id"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	UsedAt    time.Time `json:"used_at,omitzero"`
	DeviceID  string    `json:"device_id,omitempty"`
}

// CreateClaimToken issues a token for siteID valid for ttl from now and
// returns it: the only time the token exists in clear. The site is created
// (with an empty policy) when it does not exist.
func (s *Store) CreateClaimToken(ctx context.Context, siteID string, ttl time.Duration, note string, now time.Time) (string, *ClaimToken, error) {
	if siteID == "" || len(siteID) > 128 {
		return "", nil, errors.New("claim token: site ID must be 1–128 characters")
	}
	if ttl <= 0 || ttl > 7*24*time.Hour {
		return "", nil, errors.New("claim token: ttl must be within (0, 7 days]")
	}
	var raw [TokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, fmt.Errorf("claim token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	h := HashToken(token)
	ct := &ClaimToken{ID: tokenID(h), SiteID: siteID, Note: note, CreatedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC()}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO sites (site_id, policy_json, created_ns) VALUES (?, '{}', ?) ON CONFLICT DO NOTHING`), siteID, now.UnixNano()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO claim_tokens (token_hash, token_id, site_id, note, created_ns, expires_ns) VALUES (?, ?, ?, ?, ?, ?)`),
			h, ct.ID, siteID, validUTF8(note), now.UnixNano(), ct.ExpiresAt.UnixNano())
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("claim token: %w", err)
	}
	return token, ct, nil
}

// ClaimTokens lists the tokens of a site (all sites when siteID is empty),
// newest first.
func (s *Store) ClaimTokens(ctx context.Context, siteID string) ([]ClaimToken, error) {
	q := `SELECT token_id, site_id, note, created_ns, expires_ns, used_ns, device_id FROM claim_tokens`
	var args []any
	if siteID != "" {
		q += ` WHERE site_id = ?`
		args = append(args, siteID)
	}
	rows, err := s.db.QueryContext(ctx, s.q(q+` ORDER BY created_ns DESC`), args...)
	if err != nil {
		return nil, fmt.Errorf("claim tokens: %w", err)
	}
	defer rows.Close()
	var out []ClaimToken
	for rows.Next() {
		var t ClaimToken
		var c, e, u int64
		if err := rows.Scan(&t.ID, &t.SiteID, &t.Note, &c, &e, &u, &t.DeviceID); err != nil {
			return nil, fmt.Errorf("claim tokens: %w", err)
		}
		t.CreatedAt, t.ExpiresAt = time.Unix(0, c).UTC(), time.Unix(0, e).UTC()
		if u != 0 {
			t.UsedAt = time.Unix(0, u).UTC()
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// SetSitePolicy stores the policy (JSON) handed to devices provisioned to
// siteID, creating the site if needed.
func (s *Store) SetSitePolicy(ctx context.Context, siteID string, policy json.RawMessage) error {
	if !json.Valid(policy) {
		return errors.New("site policy: not valid JSON")
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO sites (site_id, policy_json, created_ns) VALUES (?, ?, ?)
		ON CONFLICT (site_id) DO UPDATE SET policy_json = excluded.policy_json`), siteID, string(policy), time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("site policy %s: %w", siteID, err)
	}
	return nil
}

// ProvisionParams is one verified device registration.
type ProvisionParams struct {
	// TokenHash is HashToken of the presented claim token.
	TokenHash string
	// SiteID, when set, must be the token's site (the technician's
	// expectation; a mismatch is refused).
	SiteID   string
	DeviceID string
	Key      device.PublicKey
	// FactsJSON is the hardware facts the device reported.
	FactsJSON string
	// Registration is the signed registration, kept as evidence.
	Registration []byte
	// BrokerPasswordHash, when set, is stored as the device's broker
	// credential (replacing an older one).
	BrokerPasswordHash string
	Now                time.Time
}

// Provisioned is what Provision did.
type Provisioned struct {
	Device  *Device
	SiteID  string
	TokenID string
	// Policy is the site's policy (JSON).
	Policy json.RawMessage
}

// Provision consumes the claim token and registers the device under the
// token's site in one transaction: the token must exist, be unused and
// unexpired and (when p.SiteID is set) be for that site; the device ID
// must be new, or already registered with the same key and not revoked (a
// re-provisioning, which moves it to the token's site). Any refusal
// (ErrTokenUnknown, ErrTokenUsed, ErrTokenExpired, ErrTokenSite,
// ErrConflict) changes nothing, the token included.
func (s *Store) Provision(ctx context.Context, p ProvisionParams) (*Provisioned, error) {
	if err := p.Key.Check(); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	kid := p.Key.KeyID()
	now := p.Now.UnixNano()
	out := &Provisioned{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		lock := ""
		if s.dialect == Postgres {
			lock = " FOR UPDATE" // two devices racing for one token
		}
		var site, tid string
		var expires, used int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT token_id, site_id, expires_ns, used_ns FROM claim_tokens WHERE token_hash = ?`+lock), p.TokenHash).
			Scan(&tid, &site, &expires, &used)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrTokenUnknown
		case err != nil:
			return err
		case used != 0:
			return fmt.Errorf("%w (token %s, at %s)", ErrTokenUsed, tid, time.Unix(0, used).UTC().Format(time.RFC3339))
		case expires <= now:
			return fmt.Errorf("%w (token %s, at %s)", ErrTokenExpired, tid, time.Unix(0, expires).UTC().Format(time.RFC3339))
		case p.SiteID != "" && p.SiteID != site:
			return fmt.Errorf("%w (token %s is for site %q, not %q)", ErrTokenSite, tid, site, p.SiteID)
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE claim_tokens SET used_ns = ?, device_id = ? WHERE token_hash = ? AND used_ns = 0`), now, p.DeviceID, p.TokenHash)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("%w (token %s)", ErrTokenUsed, tid)
		}
		// The device: new, or the same device and key again.
		rows, err := tx.QueryContext(ctx, s.q(`SELECT device_id, kid, revoked FROM devices WHERE device_id = ? OR kid = ?`), p.DeviceID, kid)
		if err != nil {
			return err
		}
		type existing struct {
			id, kid string
			revoked int64
		}
		var found []existing
		for rows.Next() {
			var e existing
			if err := rows.Scan(&e.id, &e.kid, &e.revoked); err != nil {
				rows.Close()
				return err
			}
			found = append(found, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		switch {
		case len(found) == 0:
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO devices (device_id, kid, public_key, site_id, created_ns, key_alg) VALUES (?, ?, ?, ?, ?, ?)`),
				p.DeviceID, kid, p.Key.Raw, site, now, string(p.Key.Alg)); err != nil {
				return err
			}
		case len(found) == 1 && found[0].id == p.DeviceID && found[0].kid == kid && found[0].revoked == 0:
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE devices SET site_id = ? WHERE device_id = ?`), site, p.DeviceID); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: device %s: the device ID is registered with another key, the key with another device, or the device is revoked", ErrConflict, p.DeviceID)
		}
		if p.BrokerPasswordHash != "" {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO broker_credentials (username, password_hash, created_ns, updated_ns) VALUES (?, ?, ?, ?)
				ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, updated_ns = excluded.updated_ns`),
				p.DeviceID, p.BrokerPasswordHash, now, now); err != nil {
				return err
			}
		}
		reg := p.Registration
		if reg == nil {
			reg = []byte{}
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO provisionings (device_id, token_id, site_id, provisioned_ns, facts_json, registration) VALUES (?, ?, ?, ?, ?, ?)`),
			p.DeviceID, tid, site, now, validUTF8(p.FactsJSON), reg); err != nil {
			return err
		}
		var policy string
		err = tx.QueryRowContext(ctx, s.q(`SELECT policy_json FROM sites WHERE site_id = ?`), site).Scan(&policy)
		if errors.Is(err, sql.ErrNoRows) {
			policy, err = "{}", nil
		}
		if err != nil {
			return err
		}
		out.SiteID, out.TokenID, out.Policy = site, tid, json.RawMessage(policy)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", p.DeviceID, err)
	}
	if out.Device, err = s.DeviceByID(ctx, p.DeviceID); err != nil {
		return nil, err
	}
	return out, nil
}

// Provisioning is one stored provisioning of a device.
type Provisioning struct {
	DeviceID      string          `json:"device_id"`
	TokenID       string          `json:"token_id"`
	SiteID        string          `json:"site_id"`
	ProvisionedAt time.Time       `json:"provisioned_at"`
	Facts         json.RawMessage `json:"facts"`
}

// LastProvisioning returns the newest provisioning of a device, or
// ErrNotFound.
func (s *Store) LastProvisioning(ctx context.Context, deviceID string) (*Provisioning, error) {
	var p Provisioning
	var ns int64
	var facts string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT device_id, token_id, site_id, provisioned_ns, facts_json FROM provisionings WHERE device_id = ? ORDER BY provisioned_ns DESC, id DESC LIMIT 1`), deviceID).
		Scan(&p.DeviceID, &p.TokenID, &p.SiteID, &ns, &facts)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("provisioning of %s: %w", deviceID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("provisioning of %s: %w", deviceID, err)
	}
	p.ProvisionedAt = time.Unix(0, ns).UTC()
	if json.Valid([]byte(facts)) {
		p.Facts = json.RawMessage(facts)
	}
	return &p, nil
}

// ProvisionReport is a stored self-test report.
type ProvisionReport struct {
	DeviceID   string          `json:"device_id"`
	ReceivedAt time.Time       `json:"received_at"`
	Passed     bool            `json:"passed"`
	Report     json.RawMessage `json:"report"`
}

// AddProvisionReport stores a verified self-test report (reportJSON) and
// the signed bytes it came in.
func (s *Store) AddProvisionReport(ctx context.Context, deviceID string, passed bool, reportJSON, signed []byte, at time.Time) error {
	if !json.Valid(reportJSON) {
		return errors.New("provision report: not valid JSON")
	}
	pass := 0
	if passed {
		pass = 1
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO provision_reports (device_id, received_ns, passed, report_json, signed) VALUES (?, ?, ?, ?, ?)`),
		deviceID, at.UnixNano(), pass, validUTF8(string(reportJSON)), signed)
	if err != nil {
		return fmt.Errorf("provision report %s: %w", deviceID, err)
	}
	return nil
}

// LastProvisionReport returns the newest self-test report of a device, or
// ErrNotFound.
func (s *Store) LastProvisionReport(ctx context.Context, deviceID string) (*ProvisionReport, error) {
	var r ProvisionReport
	var ns, pass int64
	var js string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT device_id, received_ns, passed, report_json FROM provision_reports WHERE device_id = ? ORDER BY received_ns DESC, id DESC LIMIT 1`), deviceID).
		Scan(&r.DeviceID, &ns, &pass, &js)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("provision report of %s: %w", deviceID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("provision report of %s: %w", deviceID, err)
	}
	r.ReceivedAt, r.Passed, r.Report = time.Unix(0, ns).UTC(), pass != 0, json.RawMessage(js)
	return &r, nil
}

// GuardRow is the stored latest guard report of a device.
type GuardRow struct {
	DeviceID   string          `json:"device_id"`
	SentAt     time.Time       `json:"sent_at"`
	CheckedAt  time.Time       `json:"checked_at"`
	ReceivedAt time.Time       `json:"received_at"`
	Risk       string          `json:"risk"`
	Report     json.RawMessage `json:"report"`
	Envelope   []byte          `json:"envelope,omitempty"`
}

// SetGuardReport stores g as the device's latest guard report unless a
// report with the same or a later sent_at is stored already (retained
// messages are redelivered; an old report replayed must not replace a new
// one). It reports whether it stored g.
func (s *Store) SetGuardReport(ctx context.Context, g GuardRow) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO device_guard (device_id, sent_ns, checked_ns, received_ns, risk, report_json, envelope) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device_id) DO UPDATE SET sent_ns = excluded.sent_ns, checked_ns = excluded.checked_ns, received_ns = excluded.received_ns,
			risk = excluded.risk, report_json = excluded.report_json, envelope = excluded.envelope
		WHERE device_guard.sent_ns < excluded.sent_ns`),
		g.DeviceID, g.SentAt.UnixNano(), g.CheckedAt.UnixNano(), g.ReceivedAt.UnixNano(), g.Risk, validUTF8(string(g.Report)), g.Envelope)
	if err != nil {
		return false, fmt.Errorf("guard report %s: %w", g.DeviceID, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// GuardReport returns the latest stored guard report of a device, or
// ErrNotFound.
func (s *Store) GuardReport(ctx context.Context, deviceID string) (*GuardRow, error) {
	var g GuardRow
	var sent, checked, recv int64
	var js string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT device_id, sent_ns, checked_ns, received_ns, risk, report_json, envelope FROM device_guard WHERE device_id = ?`), deviceID).
		Scan(&g.DeviceID, &sent, &checked, &recv, &g.Risk, &js, &g.Envelope)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("guard report of %s: %w", deviceID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("guard report of %s: %w", deviceID, err)
	}
	g.SentAt, g.CheckedAt, g.ReceivedAt = time.Unix(0, sent).UTC(), time.Unix(0, checked).UTC(), time.Unix(0, recv).UTC()
	g.Report = json.RawMessage(js)
	return &g, nil
}
