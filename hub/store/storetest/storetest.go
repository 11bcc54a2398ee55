// Package storetest opens throwaway hub stores for tests: a SQLite file in
// the test's temporary directory, or a fresh schema in the machine's
// PostgreSQL (127.0.0.1:5432, database test, trust auth), dropped when the
// test ends. PostgreSQL missing fails the test under CI=true.
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/sync/testsvc"
)

// Dialects lists both engines, for table-driven suites.
var Dialects = []store.Dialect{store.SQLite, store.Postgres}

// PostgresBase is the connection URL of the test database.
const PostgresBase = "postgres://root@127.0.0.1:5432/test?sslmode=disable"

// DSN returns a fresh data source for dialect, cleaned up with t.
func DSN(t testing.TB, dialect store.Dialect) string {
	t.Helper()
	switch dialect {
	case store.SQLite:
		return filepath.Join(t.TempDir(), "hub.db")
	case store.Postgres:
		testsvc.Require(t, "postgresql", testsvc.PostgresAddr)
		schema := testsvc.UniqueName("t")
		db, err := sql.Open("pgx", PostgresBase)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
			db.Close()
			t.Fatalf("create schema: %v", err)
		}
		t.Cleanup(func() {
			if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
				t.Logf("drop schema %s: %v", schema, err)
			}
			db.Close()
		})
		return fmt.Sprintf("%s&search_path=%s", PostgresBase, schema)
	}
	t.Fatalf("unknown dialect %q", dialect)
	return ""
}

// Open returns a migrated store, closed with t.
func Open(t testing.TB, dialect store.Dialect) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dialect, DSN(t, dialect))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
