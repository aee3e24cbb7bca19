package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
)

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

// openSQLite opens (creating if needed, with its folder) the SQLite
// database at path: a pool of readers and one writer. With existing, it
// creates nothing: the file must be a Latchkey database already.
func openSQLite(ctx context.Context, path string, existing bool) (*DB, error) {
	if existing {
		if err := checkExistingSQLite(ctx, path); err != nil {
			return nil, err
		}
	} else if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create database folder: %w", err)
		}
	}
	// The database holds email addresses: create it readable by us only.
	// SQLite gives its -wal and -shm files the same mode.
	if !existing {
		if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
			f.Close()
		}
	}
	write, err := sql.Open("sqlite", sqliteDSN(path, false, existing))
	if err != nil {
		return nil, err
	}
	// One writer connection: see DB.
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)

	read, err := sql.Open("sqlite", sqliteDSN(path, true, existing))
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
	return &DB{read: read, write: write}, nil
}

// checkExistingSQLite returns an error wrapping ErrNoDatabase unless path
// is a Latchkey database. It looks through a connection of its own,
// read-only and without the pragmas (which would turn any SQLite file
// they open into a WAL database), so nothing is created or changed.
func checkExistingSQLite(ctx context.Context, path string) error {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w at %s", ErrNoDatabase, path)
	}
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%w at %s: it is not a file", ErrNoDatabase, path)
	}
	probe, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer probe.Close()
	ok, err := hasSchema(ctx, probe, false)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !ok {
		return fmt.Errorf("%w at %s: the file has no Latchkey tables", ErrNoDatabase, path)
	}
	return nil
}

// sqliteDSN is the connection string of the database at path; existing
// forbids SQLite to create it.
func sqliteDSN(path string, readOnly, existing bool) string {
	q := url.Values{}
	if existing {
		q.Set("mode", "rw")
	}
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
