package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Broker credentials (table broker_credentials, migration 2) are the
// password hashes glint-hub mosquitto-config writes into Mosquitto's
// password_file: one row per MQTT username (a device ID, or the hub's own
// user). Only the hash is stored, in Mosquitto's own format, never the
// secret: re-running the command reproduces the same password file, and a
// secret is only ever known to whoever received it when it was generated.

// BrokerCredentials returns every stored username with its password hash.
func (s *Store) BrokerCredentials(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT username, password_hash FROM broker_credentials`)
	if err != nil {
		return nil, fmt.Errorf("broker credentials: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var u, h string
		if err := rows.Scan(&u, &h); err != nil {
			return nil, fmt.Errorf("broker credentials: %w", err)
		}
		out[u] = h
	}
	return out, rows.Err()
}

// BrokerCredential returns the password hash stored for username, or
// ErrNotFound.
func (s *Store) BrokerCredential(ctx context.Context, username string) (string, error) {
	var h string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT password_hash FROM broker_credentials WHERE username = ?`), username).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("broker credential %s: %w", username, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("broker credential %s: %w", username, err)
	}
	return h, nil
}

// AddBrokerCredential stores hash for username unless one is stored
// already; it reports whether it stored it (false: another writer was
// first, and its hash stays).
func (s *Store) AddBrokerCredential(ctx context.Context, username, hash string) (bool, error) {
	now := time.Now().UnixNano()
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO broker_credentials (username, password_hash, created_ns, updated_ns) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		username, hash, now, now)
	if err != nil {
		return false, fmt.Errorf("add broker credential %s: %w", username, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// SetBrokerCredential stores hash for username, replacing any stored one
// (a rotation).
func (s *Store) SetBrokerCredential(ctx context.Context, username, hash string) error {
	now := time.Now().UnixNano()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO broker_credentials (username, password_hash, created_ns, updated_ns) VALUES (?, ?, ?, ?)
		ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, updated_ns = excluded.updated_ns`),
		username, hash, now, now)
	if err != nil {
		return fmt.Errorf("set broker credential %s: %w", username, err)
	}
	return nil
}
