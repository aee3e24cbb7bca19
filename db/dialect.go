package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"hash/fnv"
	"io"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is what differs between SQLite and PostgreSQL, and nothing else.
// Queries are written once, in the form both engines read except for two
// spellings that rewrite turns into SQLite's.
type dialect struct {
	postgres bool
	// namespace keeps the advisory lock keys and the notification channel
	// of one Latchkey database apart from another's (another schema of the
	// same PostgreSQL database).
	namespace string
	// channel is the NOTIFY channel revocations are announced on.
	channel string

	rewritten sync.Map // query → SQLite's spelling of it
}

// rewrite returns query as the engine reads it. Queries are written with
// PostgreSQL's GREATEST (SQLite's multi-argument max), strpos (SQLite's
// instr, same arguments), byte-wise comparison (COLLATE "C", SQLite's
// default) and row locks (SELECT … FOR UPDATE), which SQLite does not
// need: a write transaction there holds the database's one write lock
// from BEGIN IMMEDIATE on.
func (d *dialect) rewrite(query string) string {
	if d.postgres {
		return query
	}
	if q, ok := d.rewritten.Load(query); ok {
		return q.(string)
	}
	q := strings.ReplaceAll(query, "GREATEST(", "max(")
	q = strings.ReplaceAll(q, " FOR UPDATE", "")
	q = strings.ReplaceAll(q, "strpos(", "instr(")
	q = strings.ReplaceAll(q, ` COLLATE "C"`, "") // (SQLite compares text byte by byte already)
	d.rewritten.Store(query, q)
	return q
}

// lockKey is an advisory lock key for name within this database.
func (d *dialect) lockKey(name string) int64 {
	h := fnv.New64a()
	io.WriteString(h, d.namespace)
	io.WriteString(h, "\x00")
	io.WriteString(h, name)
	return int64(h.Sum64())
}

// advisoryLock takes PostgreSQL transaction-level advisory locks, in key
// order (two transactions taking the same keys cannot deadlock). SQLite's
// write transactions are serialised already.
func (t *tx) advisoryLock(names ...string) error {
	if !t.d.postgres {
		return nil
	}
	keys := make([]int64, len(names))
	for i, n := range names {
		keys[i] = t.d.lockKey(n)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 && k == keys[i-1] {
			continue
		}
		t.d.statements.Add(1)
		if _, err := t.Tx.ExecContext(t.ctx, "SELECT pg_advisory_xact_lock($1)", k); err != nil {
			return err
		}
	}
	return nil
}

// lockMigrations serialises instances migrating the same database.
func (t *tx) lockMigrations() error { return t.advisoryLock("migrations") }

// lockEmails serialises transactions about the same addresses: a sign-up
// link creating an account for an address, and an account giving that
// address up (deleted, or moved), which voids the links issued before.
// Without it a sign-up on PostgreSQL could miss a release committed while
// it waited on the address's unique index.
//
// Locks are always taken in this order: addresses, then revocations, then
// rows (users before credentials).
func (t *tx) lockEmails(emails ...string) error {
	names := make([]string, len(emails))
	for i, e := range emails {
		names[i] = "email:" + e
	}
	return t.advisoryLock(names...)
}

// lockRevocations is taken by every write that revokes (and so takes the
// next revocation number), and held until it commits: revocation numbers
// are then committed in the order they are given, so an instance that has
// read number n has seen every revocation before it. On PostgreSQL it also
// announces the revocation, on commit, to every instance that listens.
func (t *tx) lockRevocations() error {
	if err := t.advisoryLock("revocations"); err != nil {
		return err
	}
	if t.d.postgres {
		t.d.statements.Add(1)
		_, err := t.Tx.ExecContext(t.ctx, "SELECT pg_notify($1, '')", t.d.channel)
		return err
	}
	return nil
}

// nextRevocation is the SQL expression for the next revocation number,
// valid while lockRevocations is held.
const nextRevocation = `(SELECT COALESCE(MAX(revocation_seq), 0) + 1 FROM users)`

// isBusy reports whether err is SQLITE_BUSY (or one of its extended codes).
func isBusy(err error) bool {
	se, ok := errors.AsType[*sqlite.Error](err)
	return ok && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// pgCode returns PostgreSQL's SQLSTATE of err, or "".
func pgCode(err error) string {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code
	}
	return ""
}

// isUniqueViolation reports whether err is a UNIQUE constraint failure.
func isUniqueViolation(err error) bool {
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
	}
	return pgCode(err) == "23505"
}

// retryable reports whether a transaction failed only because another one
// got in its way: PostgreSQL's serialization failure or deadlock.
func (d *dialect) retryable(err error) bool {
	switch pgCode(err) {
	case "40001", "40P01":
		return true
	}
	return false
}

// unavailable reports whether err means the database cannot be reached or
// did not answer in time, as opposed to a fault in a query: a timeout, a
// connection refused or cut, a server shutting down or out of
// connections; on SQLite, a write lock held past busy_timeout.
func (d *dialect) unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || isBusy(err) {
		return true
	}
	if code := pgCode(err); code != "" {
		return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "57P") || code == "53300"
	}
	if !d.postgres {
		return false
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) || strings.Contains(err.Error(), "conn closed")
}
