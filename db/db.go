// Package db opens Latchkey's SQLite database, applies its migrations and
// holds the raw SQL for its two tables: users.go and credentials.go.
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/latchkey/latchkey/errs"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// DB is the database: a pool of read connections and a single write
// connection. One writer means writes from this process queue in Go instead
// of colliding inside SQLite, so SQLITE_BUSY can only come from another
// process, and busy_timeout absorbs that.
type DB struct {
	read  *sql.DB
	write *sql.DB
	// r and w are the prepared statements of each pool.
	r, w *stmtCache

	// busy counts SQLITE_BUSY errors that reached us (after busy_timeout).
	busy atomic.Int64
	// queries counts statements by the name of the method that ran them,
	// so tests can prove which paths touch the database.
	queries queryCounter

	// signIns saves passkey sign-ins their first read; see signInCache.
	signIns signInCache
}

// pragmas are set on every connection through the DSN, because the pool
// opens connections on its own and a PRAGMA run once would reach only one.
var pragmas = []string{
	// Wait (instead of failing) when another process holds the write lock.
	// First: they run in order, and switching a new database to WAL takes
	// that lock too (two instances starting at once).
	"busy_timeout(5000)",
	// WAL lets readers proceed while the writer commits.
	"journal_mode(WAL)",
	// In WAL mode NORMAL is still corruption-safe; a power cut can lose
	// the last commits, never the database. It saves an fsync per commit.
	"synchronous(NORMAL)",
	// credentials.user_id ON DELETE CASCADE relies on this.
	"foreign_keys(1)",
	// Temporary b-trees in memory; nothing we do needs them on disk.
	"temp_store(MEMORY)",
}

// Open opens (creating if needed, with its folder) the database at path and
// applies any migrations not yet applied.
func Open(ctx context.Context, path string) (*DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create database folder: %w", err)
		}
	}
	// The database holds email addresses: create it readable by us only.
	// SQLite gives its -wal and -shm files the same mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	write, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, err
	}
	// One writer connection: see DB.
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)

	read, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		write.Close()
		return nil, err
	}
	// database/sql keeps only 2 idle connections by default; under load it
	// would keep closing and reopening SQLite connections. Keep them all.
	n := max(4, 2*runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	read.SetConnMaxIdleTime(0)

	d := &DB{read: read, write: write, r: newStmtCache(read), w: newStmtCache(write)}
	// A brand-new file opened by several processes at once (instances
	// starting together) can answer SQLITE_BUSY without waiting while one
	// of them turns it into a WAL database: try again for a few seconds.
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		err := d.migrate(ctx)
		if err == nil {
			return d, nil
		}
		if !isBusy(err) || wait > 2*time.Second {
			d.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			d.Close()
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	if readOnly {
		// A read connection that tries to write is a bug; make it fail.
		q.Add("_pragma", "query_only(1)")
	} else {
		// Transactions take the write lock at BEGIN, so a transaction
		// that reads then writes cannot deadlock with another process.
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Close closes both pools.
func (d *DB) Close() error {
	d.r.close()
	d.w.close()
	return errors.Join(d.read.Close(), d.write.Close())
}

// Ping checks that the database answers a query.
func (d *DB) Ping(ctx context.Context) error {
	var one int
	return d.read.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// BusyErrors returns how many SQLITE_BUSY errors reached this process.
func (d *DB) BusyErrors() int64 { return d.busy.Load() }

// Queries returns how many statements each method has run.
func (d *DB) Queries() map[string]int64 { return d.queries.snapshot() }

// migrate applies embedded migrations in order, each in its own transaction
// together with its row in schema_migrations. BEGIN IMMEDIATE (the write
// connection's txlock) serialises instances starting at the same time.
func (d *DB) migrate(ctx context.Context) error {
	// In a transaction, which the writer pool begins IMMEDIATE: it takes the
	// write lock up front, waiting for it (busy_timeout). A bare statement
	// would start as a reader and fail at once with SQLITE_BUSY if another
	// process wrote meanwhile (two instances starting together).
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := filepath.Base(name)
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number", base)
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return err
		}
		if err := d.applyMigration(ctx, version, base, string(body)); err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
	}
	return nil
}

func (d *DB) applyMigration(ctx context.Context, version int, name, body string) error {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var applied int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = ?", version).Scan(&applied); err != nil {
		return err
	}
	if applied > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
		version, name, time.Now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}

// Migrations returns the names of the applied migrations, oldest first.
func (d *DB) Migrations(ctx context.Context) ([]string, error) {
	rows, err := d.read.QueryContext(ctx, "SELECT name FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// internal wraps a database error as an internal error, counting SQLITE_BUSY.
func (d *DB) internal(op string, err error) error {
	if err == nil {
		return nil
	}
	if isBusy(err) {
		d.busy.Add(1)
	}
	return errs.Wrap(fmt.Errorf("%s: %w", op, err), errs.Internal, "")
}

// isBusy reports whether err is SQLITE_BUSY (or one of its extended codes).
func isBusy(err error) bool {
	se, ok := errors.AsType[*sqlite.Error](err)
	return ok && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// isUniqueViolation reports whether err is a UNIQUE constraint failure.
func isUniqueViolation(err error) bool {
	se, ok := errors.AsType[*sqlite.Error](err)
	return ok && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}
