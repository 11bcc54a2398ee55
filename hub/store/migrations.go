package store

// migration is one schema step. SQL is written once with two macros that
// differ between the dialects: {{BLOB}} (BLOB / BYTEA) and {{SERIAL}} (an
// auto-increment primary key). Integers are BIGINT in both (SQLite's
// INTEGER affinity accepts it); times are Unix nanoseconds, so range
// queries are plain integer comparisons on both engines.
type migration struct {
	version int
	name    string
	sql     []string
}

var migrations = []migration{
	{1, "initial schema", []string{
		`CREATE TABLE devices (
			device_id   TEXT PRIMARY KEY,
			kid         TEXT NOT NULL UNIQUE,
			public_key  {{BLOB}} NOT NULL,
			site_id     TEXT NOT NULL DEFAULT '',
			revoked     BIGINT NOT NULL DEFAULT 0,
			created_ns  BIGINT NOT NULL,
			last_seen_ns BIGINT NOT NULL DEFAULT 0,
			last_seq    BIGINT NOT NULL DEFAULT 0,
			online      BIGINT NOT NULL DEFAULT 0,
			queue_depth BIGINT NOT NULL DEFAULT 0,
			status_json TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE TABLE results (
			id          TEXT PRIMARY KEY,
			device_id   TEXT NOT NULL,
			seq         BIGINT NOT NULL,
			site_id     TEXT NOT NULL,
			kid         TEXT NOT NULL,
			status      TEXT NOT NULL,
			subject     TEXT NOT NULL,
			created_ns  BIGINT NOT NULL,
			received_ns BIGINT NOT NULL,
			canonical   BIGINT NOT NULL,
			record_json TEXT NOT NULL,
			envelope    {{BLOB}} NOT NULL,
			UNIQUE (device_id, seq)
		)`,
		`CREATE INDEX results_device_created ON results (device_id, created_ns)`,
		`CREATE INDEX results_created ON results (created_ns)`,
		`CREATE INDEX results_status_created ON results (status, created_ns)`,
		`CREATE TABLE quarantine (
			qid         {{SERIAL}},
			received_ns BIGINT NOT NULL,
			topic       TEXT NOT NULL,
			device_id   TEXT NOT NULL,
			kid         TEXT NOT NULL,
			record_id   TEXT NOT NULL,
			reason      TEXT NOT NULL,
			detail      TEXT NOT NULL,
			envelope    {{BLOB}} NOT NULL
		)`,
		`CREATE INDEX quarantine_reason ON quarantine (reason, received_ns)`,
	}},
	{2, "broker credentials", []string{
		// Mosquitto password hashes ($7$ PBKDF2-SHA512) by MQTT username,
		// written by glint-hub mosquitto-config; never the secret itself.
		`CREATE TABLE broker_credentials (
			username      TEXT PRIMARY KEY,
			password_hash TEXT NOT NULL,
			created_ns    BIGINT NOT NULL,
			updated_ns    BIGINT NOT NULL
		)`,
	}},
}
