package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// copiedTables are copied in this order (credentials refer to users).
var copiedTables = []string{"users", "credentials"}

// Copied says how many rows of each table CopyTo copied.
type Copied map[string]int64

// CopyTo copies every user and passkey of this (SQLite) database into the
// empty PostgreSQL database dst, in one transaction on each side: a
// consistent snapshot of the source, and all or nothing in the
// destination. Row ids are kept. Before committing it checks that the
// destination holds exactly as many rows of each table as the source.
// dst must be at the same migration as the source (Open it first) and
// hold no users.
func (d *DB) CopyTo(ctx context.Context, dst *DB) (Copied, error) {
	if d.postgres || !dst.postgres {
		return nil, errors.New("copying goes from SQLite to PostgreSQL")
	}
	from, err := d.Migrations(ctx)
	if err != nil {
		return nil, err
	}
	to, err := dst.Migrations(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(from, to) {
		return nil, fmt.Errorf("the databases are at different migrations (%d and %d): run the same version of Latchkey on both", len(from), len(to))
	}
	src, err := d.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer src.Rollback()
	copied := Copied{}
	err = dst.tryTx(ctx, func(tx *tx) error {
		var existing int64
		if err := tx.row(`SELECT count(*) FROM users`).Scan(&existing); err != nil {
			return err
		}
		if existing > 0 {
			return fmt.Errorf("the PostgreSQL database already has users (%d rows): copy into an empty one", existing)
		}
		for _, table := range copiedTables {
			n, err := copyTable(ctx, src, tx, table)
			if err != nil {
				return fmt.Errorf("copying %s: %w", table, err)
			}
			copied[table] = n
			var got int64
			if err := tx.row(`SELECT count(*) FROM ` + table).Scan(&got); err != nil {
				return err
			}
			if got != n {
				return fmt.Errorf("copying %s: read %d, found %d in PostgreSQL", table, n, got)
			}
			// New rows continue after the copied ids.
			if _, err := tx.exec(`SELECT setval(pg_get_serial_sequence('` + table + `', 'id'),
				COALESCE((SELECT MAX(id) FROM ` + table + `), 0) + 1, false)`); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return copied, nil
}

// copyTable copies every row of table, column by column, turning SQLite's
// 0/1 into PostgreSQL's booleans where the destination column is one.
func copyTable(ctx context.Context, src *sql.Tx, dst *tx, table string) (int64, error) {
	booleans := map[string]bool{}
	rows, err := dst.query(`SELECT column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 AND data_type = 'boolean'`, table)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return 0, err
		}
		booleans[c] = true
	}
	rows.Close()

	rows, err = src.QueryContext(ctx, `SELECT * FROM `+table+` ORDER BY id`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	marks := make([]string, len(cols))
	for i := range cols {
		marks[i] = fmt.Sprintf("$%d", i+1)
	}
	insert := `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) OVERRIDING SYSTEM VALUE VALUES (` + strings.Join(marks, ", ") + `)`
	values := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range values {
		ptrs[i] = &values[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		for i, c := range cols {
			if v, ok := values[i].(int64); ok && booleans[c] {
				values[i] = v != 0
			}
		}
		if _, err := dst.exec(insert, values...); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}
