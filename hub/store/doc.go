// Package store is glint-hub's central database: devices and their public
// keys, stored results (raw envelope plus the decoded record), and the
// quarantine of rejected input. The same schema runs on SQLite
// (modernc.org/sqlite, pure Go, WAL, the default) and PostgreSQL
// (github.com/jackc/pgx/v5 through database/sql), created and upgraded by
// the numbered migrations in migrations.go.
//
// Results are committed in batches: Commit takes many verified items in one
// transaction and reports, per item, whether it was stored, was a duplicate
// (same record ID: a unique key; it is receipted again, never stored twice)
// or broke the per-device sequence rule (seq reused by another record, or far
// older than the newest seen: quarantined). A receipt is only sent after
// Commit returns, i.e. after the transaction is durable: SQLite runs with
// synchronous=FULL, PostgreSQL with its default synchronous_commit=on.
package store
