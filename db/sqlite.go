package db

import (
	"context"
	"database/sql"
	"fmt"
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
// database at path: a pool of readers and one writer.
func openSQLite(_ context.Context, path string) (*DB, error) {
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
	write, err := sql.Open("sqlite", sqliteDSN(path, false))
	if err != nil {
		return nil, err
	}
	// One writer connection: see DB.
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)

	read, err := sql.Open("sqlite", sqliteDSN(path, true))
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

func sqliteDSN(path string, readOnly bool) string {
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
