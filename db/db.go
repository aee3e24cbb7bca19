// Package db is Latchkey's store: users and their passkeys, on SQLite (the
// default, one file) or PostgreSQL (many machines). Each query is written
// once, with $N placeholders both drivers bind; what truly differs between
// the engines (schema types, row and advisory locks, error codes, pushed
// notifications) lives in dialect.go, sqlite.go and postgres.go. The raw SQL
// is in users.go, credentials.go and revocations.go.
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/latchkey/latchkey/errs"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// Config says which database to open.
type Config struct {
	// Path is the SQLite file, used when URL is empty.
	Path string
	// URL is a postgres:// (or postgresql://) URL: use PostgreSQL.
	URL string
	// OpTimeout bounds every database operation, so that an unreachable
	// database makes a request fail within it instead of hanging
	// (default 5s).
	OpTimeout time.Duration
	// MaxConns is PostgreSQL's pool size per instance (default 10).
	MaxConns int
	// Existing opens only a database Latchkey has already made: where
	// there is none (a missing SQLite file, or a database without
	// Latchkey's tables), Open returns an error wrapping ErrNoDatabase
	// and creates, migrates and changes nothing. The operator's commands
	// open this way, so that a typo in DATABASE_PATH is reported instead
	// of answered from a new, empty database.
	Existing bool
}

// ErrNoDatabase is what Open with Config.Existing finds where there is no
// Latchkey database.
var ErrNoDatabase = errors.New("no Latchkey database")

// DB is the store. On SQLite it is a pool of read connections and a single
// write connection: writes from this process queue in Go instead of
// colliding inside SQLite. On PostgreSQL both are the same pool, and row
// locks order what SQLite's single writer ordered.
type DB struct {
	dialect
	read  *sql.DB
	write *sql.DB
	// r and w are the prepared statements of each pool.
	r, w *stmtCache

	opTimeout time.Duration

	// busy counts SQLITE_BUSY errors that reached us (after busy_timeout).
	busy atomic.Int64
	// queries counts operations by the name of the method that ran them,
	// so tests can prove which paths touch the database.
	queries queryCounter
	// statements counts the SQL statements sent (locks included; BEGIN
	// and COMMIT not), so tests can say what each operation costs.
	statements atomic.Int64

	// signIns saves passkey sign-ins their first read; see signInCache.
	signIns signInCache

	// listen is how this database pushes revocations (PostgreSQL's
	// LISTEN/NOTIFY); nil when it cannot.
	listen func(ctx context.Context, wake func()) error
}

// Open opens the database cfg names, creating it if needed, and applies
// any migrations not yet applied.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	var (
		d   *DB
		err error
	)
	if cfg.URL != "" {
		d, err = openPostgres(ctx, cfg)
	} else {
		d, err = openSQLite(ctx, cfg.Path, cfg.Existing)
	}
	if err != nil {
		return nil, err
	}
	d.opTimeout = cfg.OpTimeout
	d.r, d.w = newStmtCache(d.read, &d.dialect, &d.statements), newStmtCache(d.write, &d.dialect, &d.statements)
	if cfg.Existing && d.postgres {
		// (SQLite's file was checked before it was opened.)
		if err := d.checkExisting(ctx); err != nil {
			d.Close()
			return nil, err
		}
	}
	if err := d.migrate(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Close closes the pools.
func (d *DB) Close() error {
	d.r.close()
	d.w.close()
	if d.read == d.write {
		return d.read.Close()
	}
	return errors.Join(d.read.Close(), d.write.Close())
}

// Engine names the database engine: "sqlite" or "postgres".
func (d *DB) Engine() string {
	if d.postgres {
		return "postgres"
	}
	return "sqlite"
}

// Ping checks that the database answers a query.
func (d *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.opTimeout)
	defer cancel()
	var one int
	return d.fail("ping", d.read.QueryRowContext(ctx, "SELECT 1").Scan(&one))
}

// BusyErrors returns how many SQLITE_BUSY errors reached this process.
func (d *DB) BusyErrors() int64 { return d.busy.Load() }

// Statements returns how many SQL statements this DB has sent (lock
// statements included, BEGIN and COMMIT not).
func (d *DB) Statements() int64 { return d.statements.Load() }

// Queries returns how many operations each method has run.
func (d *DB) Queries() map[string]int64 { return d.queries.snapshot() }

// op starts the operation name: it is counted, and bounded by the
// operation timeout.
func (d *DB) op(ctx context.Context, name string) (context.Context, context.CancelFunc) {
	d.queries.add(name)
	if !d.postgres {
		// SQLite answers from a local file, within its busy timeout. A
		// deadline, or a request's cancellation, would only make the
		// driver watch every statement with a goroutine of its own (which
		// cost more than the statements of a passkey sign-in).
		return context.WithoutCancel(ctx), func() {}
	}
	return context.WithTimeout(ctx, d.opTimeout)
}

// migrate applies the engine's embedded migrations in order, each in its
// own transaction together with its row in schema_migrations. Instances
// starting at the same time serialise on the engine's lock (SQLite's
// BEGIN IMMEDIATE, an advisory lock on PostgreSQL), so the first applies
// each migration and the others find it applied.
func (d *DB) migrate(ctx context.Context) error {
	err := d.migrationTx(ctx, func(tx *tx) error {
		_, err := tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	dir := "migrations/" + d.Engine()
	names, err := fs.Glob(migrationFiles, dir+"/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := path.Base(name)
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number", base)
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return err
		}
		err = d.migrationTx(ctx, func(tx *tx) error {
			var applied int
			if err := tx.row("SELECT count(*) FROM schema_migrations WHERE version = $1", version).Scan(&applied); err != nil || applied > 0 {
				return err
			}
			if _, err := tx.exec(string(body)); err != nil {
				return err
			}
			_, err := tx.exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
				version, base, time.Now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
	}
	return nil
}

// hasSchema reports whether conn's database holds Latchkey's tables: a
// schema_migrations table (other tools make tables of that name too) that
// records Latchkey's first migration under its name.
func hasSchema(ctx context.Context, conn *sql.DB, postgres bool) (bool, error) {
	tableExists := "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
	if postgres {
		// In the schema migrate would create it in, not anywhere on the
		// search_path.
		tableExists = "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_migrations'"
	}
	var n int
	if err := conn.QueryRowContext(ctx, tableExists).Scan(&n); err != nil || n == 0 {
		return false, err
	}
	first, err := fs.Glob(migrationFiles, "migrations/sqlite/0001_*.sql")
	if err != nil || len(first) != 1 {
		return false, fmt.Errorf("the first migration is not embedded: %v", err)
	}
	// Another tool's table of that name may lack these columns: the
	// database answered the query before, so a failure here says the
	// table is not Latchkey's.
	var name string
	if err := conn.QueryRowContext(ctx, "SELECT name FROM schema_migrations WHERE version = 1").Scan(&name); err != nil {
		return false, nil
	}
	return name == path.Base(first[0]), nil
}

// checkExisting returns an error wrapping ErrNoDatabase unless this
// PostgreSQL database holds Latchkey's tables.
func (d *DB) checkExisting(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.opTimeout)
	defer cancel()
	ok, err := hasSchema(ctx, d.read, true)
	if err != nil {
		return fmt.Errorf("looking for Latchkey's tables: %w", err)
	}
	if !ok {
		database, schema, _ := strings.Cut(d.namespace, ".")
		return fmt.Errorf("%w in the PostgreSQL database %q (schema %q)", ErrNoDatabase, database, schema)
	}
	return nil
}

// migrationTx runs one step of migrate in a transaction that holds the
// migration lock. A brand-new SQLite file opened by several processes at
// once can answer SQLITE_BUSY without waiting while one of them turns it
// into a WAL database: that is tried again for a few seconds.
func (d *DB) migrationTx(ctx context.Context, fn func(*tx) error) error {
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		err := d.inTx(ctx, func(tx *tx) error {
			tx.once = true
			if err := tx.lockMigrations(); err != nil {
				return err
			}
			return fn(tx)
		})
		if err == nil || !isBusy(err) || wait > 2*time.Second {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
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

// tx is a write transaction: its statements are written once and rewritten
// for the engine, and it can take the engine's locks. They run as the
// writer's prepared statements (see stmtCache) once prepared.
type tx struct {
	*sql.Tx
	d   *DB
	ctx context.Context
	// unprepared are the queries this transaction ran unprepared: they
	// are prepared once it ends (preparing one now would wait for the
	// connection the transaction holds, the only writer on SQLite).
	unprepared []string
	// once marks a transaction whose statements run once per process
	// (migrations): they are not prepared.
	once bool
}

// prepared returns the writer's prepared statement for query, bound to
// this transaction, or nil if it is not prepared yet.
func (t *tx) prepared(query string) *sql.Stmt {
	if t.once {
		return nil
	}
	if s := t.d.w.cached(query); s != nil {
		return t.Tx.StmtContext(t.ctx, s)
	}
	t.unprepared = append(t.unprepared, query)
	return nil
}

func (t *tx) row(query string, args ...any) *sql.Row {
	t.d.statements.Add(1)
	if s := t.prepared(query); s != nil {
		return s.QueryRowContext(t.ctx, args...)
	}
	return t.Tx.QueryRowContext(t.ctx, t.d.rewrite(query), args...)
}

func (t *tx) exec(query string, args ...any) (sql.Result, error) {
	t.d.statements.Add(1)
	if s := t.prepared(query); s != nil {
		return s.ExecContext(t.ctx, args...)
	}
	return t.Tx.ExecContext(t.ctx, t.d.rewrite(query), args...)
}

func (t *tx) query(query string, args ...any) (*sql.Rows, error) {
	t.d.statements.Add(1)
	if s := t.prepared(query); s != nil {
		return s.QueryContext(t.ctx, args...)
	}
	return t.Tx.QueryContext(t.ctx, t.d.rewrite(query), args...)
}

// maxAttempts bounds how often a transaction that PostgreSQL aborted as a
// serialization failure or a deadlock is tried.
const maxAttempts = 4

// inTx runs fn in a write transaction and commits it. fn may run more than
// once: a transaction aborted by a serialization failure or a deadlock is
// tried again from the start (a bounded number of times), so fn must only
// read and write through tx and set its results afresh each time.
func (d *DB) inTx(ctx context.Context, fn func(*tx) error) error {
	for attempt := 1; ; attempt++ {
		err := d.tryTx(ctx, fn)
		if err == nil || attempt == maxAttempts || !d.retryable(err) {
			return err
		}
		// Let the other transaction finish, with jitter so that two
		// retrying ones do not collide again.
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * time.Duration(1+mrand.IntN(5)) * time.Millisecond):
		}
	}
}

func (d *DB) tryTx(ctx context.Context, fn func(*tx) error) error {
	sqlTx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := &tx{Tx: sqlTx, d: d, ctx: ctx}
	defer d.prepareLater(ctx, t)
	if err := fn(t); err != nil {
		sqlTx.Rollback()
		return err
	}
	return sqlTx.Commit()
}

// prepareLater prepares the queries a transaction ran unprepared, after it
// ended. A failure leaves them unprepared until the next time.
func (d *DB) prepareLater(ctx context.Context, t *tx) {
	for _, q := range t.unprepared {
		d.w.get(ctx, q)
	}
}

// errUnavailable is what people see when the database does not answer.
const errUnavailableMessage = "error.database_unavailable"

// fail turns a database error into the error vocabulary: errors of the
// vocabulary pass through, an unreachable (or, on SQLite, locked) database
// is errs.Unavailable (503, "try again"), anything else errs.Internal.
// sql.ErrNoRows must be handled before (see notFound).
func (d *DB) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*errs.Error](err); ok {
		return err
	}
	if isBusy(err) {
		d.busy.Add(1)
	}
	if d.unavailable(err) {
		return errs.Wrap(fmt.Errorf("%s: %w", op, err), errs.Unavailable, errUnavailableMessage)
	}
	return errs.Wrap(fmt.Errorf("%s: %w", op, err), errs.Internal, "")
}

// notFound turns sql.ErrNoRows into the not-found error, so handlers never
// see database errors.
func (d *DB) notFound(op string, err error, message string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return errs.E(errs.NotFound, message)
	}
	return d.fail(op, err)
}
