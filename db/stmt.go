package db

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// stmtCache keeps one prepared statement per query text (as written; it
// prepares the engine's spelling of it). SQLite spends
// more time preparing a small statement than running it, and database/sql
// re-prepares a *sql.Stmt only once per pooled connection, so preparing
// each query once roughly halves the cost of the hot paths (sign-in,
// refresh). The set of queries is fixed in the code, so the cache is
// bounded.
type stmtCache struct {
	pool    *sql.DB
	dialect *dialect
	counter *atomic.Int64 // statements sent
	mu      sync.Mutex
	m       map[string]*sql.Stmt
}

func newStmtCache(pool *sql.DB, d *dialect, counter *atomic.Int64) *stmtCache {
	return &stmtCache{pool: pool, dialect: d, counter: counter, m: make(map[string]*sql.Stmt)}
}

// cached returns the prepared statement for query, or nil if it has not
// been prepared.
func (c *stmtCache) cached(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[query]
}

func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if s := c.cached(query); s != nil {
		return s, nil
	}
	// Prepared without the lock held: preparing on the writer waits for
	// its connection, which a transaction may hold while it asks cached.
	s, err := c.pool.PrepareContext(ctx, c.dialect.rewrite(query))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil { // closed meanwhile
		s.Close()
		return nil, sql.ErrConnDone
	}
	if other, ok := c.m[query]; ok { // prepared twice at once
		s.Close()
		return other, nil
	}
	c.m[query] = s
	return s, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.m {
		s.Close()
	}
	c.m = nil
}

// queryRow runs a prepared single-row query on the pool of c.
func (c *stmtCache) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	c.counter.Add(1)
	s, err := c.get(ctx, query)
	if err != nil {
		// The unprepared query fails the same way, and its Row carries
		// the error to Scan.
		return c.pool.QueryRowContext(ctx, c.dialect.rewrite(query), args...)
	}
	return s.QueryRowContext(ctx, args...)
}

// query runs a prepared query on the pool of c.
func (c *stmtCache) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	c.counter.Add(1)
	s, err := c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// exec runs a prepared statement on the pool of c.
func (c *stmtCache) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c.counter.Add(1)
	s, err := c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}
