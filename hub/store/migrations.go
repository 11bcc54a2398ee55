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
	{3, "provisioning, key algorithms, guard reports", []string{
		// Every device registered so far has an Ed25519 key.
		`ALTER TABLE devices ADD COLUMN key_alg TEXT NOT NULL DEFAULT 'EdDSA'`,
		// Sites with the policy handed to devices at provisioning (JSON,
		// opaque to the store).
		`CREATE TABLE sites (
			site_id     TEXT PRIMARY KEY,
			policy_json TEXT NOT NULL DEFAULT '{}',
			created_ns  BIGINT NOT NULL
		)`,
		// One-time claim tokens: only the SHA-256 of the token is stored;
		// token_id (a prefix of that hash) names it in listings and logs.
		`CREATE TABLE claim_tokens (
			token_hash TEXT PRIMARY KEY,
			token_id   TEXT NOT NULL,
			site_id    TEXT NOT NULL,
			note       TEXT NOT NULL DEFAULT '',
			created_ns BIGINT NOT NULL,
			expires_ns BIGINT NOT NULL,
			used_ns    BIGINT NOT NULL DEFAULT 0,
			device_id  TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX claim_tokens_site ON claim_tokens (site_id, created_ns)`,
		// What each provisioning registered: the signed registration as
		// evidence, and the hardware facts it carried.
		`CREATE TABLE provisionings (
			id             {{SERIAL}},
			device_id      TEXT NOT NULL,
			token_id       TEXT NOT NULL,
			site_id        TEXT NOT NULL,
			provisioned_ns BIGINT NOT NULL,
			facts_json     TEXT NOT NULL,
			registration   {{BLOB}} NOT NULL
		)`,
		`CREATE INDEX provisionings_device ON provisionings (device_id, provisioned_ns)`,
		// Self-test reports sent after provisioning (signed by the device).
		`CREATE TABLE provision_reports (
			id          {{SERIAL}},
			device_id   TEXT NOT NULL,
			received_ns BIGINT NOT NULL,
			passed      BIGINT NOT NULL,
			report_json TEXT NOT NULL,
			signed      {{BLOB}} NOT NULL
		)`,
		`CREATE INDEX provision_reports_device ON provision_reports (device_id, received_ns)`,
		// The newest verified guard report of each device.
		`CREATE TABLE device_guard (
			device_id   TEXT PRIMARY KEY,
			sent_ns     BIGINT NOT NULL,
			checked_ns  BIGINT NOT NULL,
			received_ns BIGINT NOT NULL,
			risk        TEXT NOT NULL,
			report_json TEXT NOT NULL,
			envelope    {{BLOB}} NOT NULL
		)`,
	}},
}
