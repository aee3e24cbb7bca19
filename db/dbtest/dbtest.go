// Package dbtest gives tests a fresh PostgreSQL schema of their own on the
// server TEST_DATABASE_URL names, so the store's tests and the black-box
// tests run on PostgreSQL as well as on SQLite.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// EnvURL names the variable that points the tests at a PostgreSQL server.
const EnvURL = "TEST_DATABASE_URL"

// PostgresURL returns a postgres:// URL for a new, empty schema of its own
// on the TEST_DATABASE_URL server (its search_path names the schema), and
// drops the schema when the test ends. Without TEST_DATABASE_URL the test
// is skipped, with a message saying how to run it; under CI=true it fails
// instead, because CI must run every test on PostgreSQL.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s is not set, and CI must run the PostgreSQL tests (.ci/run sets it)", EnvURL)
		}
		tb.Skipf("%s is not set: skipping PostgreSQL (to run: %s=postgres://localhost/test go test ./...)", EnvURL, EnvURL)
	}
	conf, err := pgx.ParseConfig(base)
	if err != nil {
		tb.Fatalf("%s: %v", EnvURL, err)
	}
	pool, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatal(err)
	}
	defer pool.Close()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "latchkey_test_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pool.ExecContext(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		tb.Fatalf("creating a test schema on %s: %v", conf.Host, err)
	}
	tb.Cleanup(func() {
		pool, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.ExecContext(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Logf("dropping test schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		// A keyword/value connection string: add the parameter its way.
		return base + " search_path=" + schema
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
