package db

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// CheckURL checks a DATABASE_URL without connecting. Its errors never
// quote the URL, which may hold a password.
func CheckURL(s string) error {
	if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return errors.New("want a postgres:// or postgresql:// URL")
	}
	if _, err := pgx.ParseConfig(s); err != nil {
		return errors.New("is not a valid postgres:// URL")
	}
	return nil
}

// openPostgres connects to the PostgreSQL database cfg.URL names. Reads
// and writes share one pool; row locks take the place of SQLite's single
// writer.
func openPostgres(ctx context.Context, cfg Config) (*DB, error) {
	// pgx's own parse errors quote the URL (password masked); ours say
	// nothing of it at all.
	conf, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, errors.New("DATABASE_URL is not a valid postgres:// URL")
	}
	if conf.ConnectTimeout == 0 {
		conf.ConnectTimeout = 3 * time.Second
	}
	pool := stdlib.OpenDB(*conf)
	n := cfg.MaxConns
	if n <= 0 {
		n = 10
	}
	pool.SetMaxOpenConns(n)
	pool.SetMaxIdleConns(n)
	pool.SetConnMaxLifetime(time.Hour)

	var database, schema *string
	pingCtx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
	defer cancel()
	if err := pool.QueryRowContext(pingCtx, "SELECT current_database(), current_schema()").Scan(&database, &schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if schema == nil {
		pool.Close()
		return nil, errors.New("PostgreSQL: no schema of the search_path exists; create it first")
	}
	namespace := *database + "." + *schema
	h := fnv.New64a()
	h.Write([]byte(namespace))
	d := &DB{
		dialect: dialect{postgres: true, namespace: namespace, channel: fmt.Sprintf("latchkey_revocations_%016x", h.Sum64())},
		read:    pool,
		write:   pool,
	}
	d.listen = func(ctx context.Context, wake func()) error { return d.listenOnce(ctx, conf, wake) }
	return d, nil
}

// listenOnce opens a dedicated connection, LISTENs for revocations, calls
// wake once listening (so the caller catches up on what it may have
// missed before) and again on every notification, until the connection
// fails or ctx ends.
func (d *DB) listenOnce(ctx context.Context, conf *pgx.ConnConfig, wake func()) error {
	connectCtx, cancel := context.WithTimeout(ctx, d.opTimeout)
	conn, err := pgx.ConnectConfig(connectCtx, conf.Copy())
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{d.channel}.Sanitize()); err != nil {
		return err
	}
	wake()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		wake()
	}
}

// Pushes reports whether the database announces revocations as they
// happen (PostgreSQL's LISTEN/NOTIFY).
func (d *DB) Pushes() bool { return d.listen != nil }

// Listen calls wake whenever a revocation may have been committed
// anywhere: after each (re)connection of its listening connection, which
// the caller uses to catch up, and on each notification. It reconnects
// after failures, with backoff, reporting each failure to onError, until
// ctx ends. On a database that does not push it returns at once.
func (d *DB) Listen(ctx context.Context, wake func(), onError func(error)) {
	if d.listen == nil {
		return
	}
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		started := time.Now()
		err := d.listen(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		onError(err)
		if time.Since(started) > 10*time.Second {
			backoff = 50 * time.Millisecond // it had been working
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
