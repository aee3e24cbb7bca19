package admin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/latchkey/latchkey/db"
)

// MigrateDB is `latchkey migrate-db --to postgres://…`: it copies the
// SQLite database at DATABASE_PATH into an empty PostgreSQL database, in
// one transaction, and checks the counts. The URL is never printed.
func MigrateDB(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("latchkey migrate-db", flag.ContinueOnError)
	// The flag package's own messages would repeat the error main prints.
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	to := flags.String("to", "", "the empty PostgreSQL database to copy into: postgres://user:pass@host:5432/db")
	usageText := func(w io.Writer) {
		fmt.Fprintln(w, "Usage: latchkey migrate-db --to postgres://user:pass@host:5432/db\n\n"+
			"Copies every account and passkey of the SQLite database at DATABASE_PATH\n"+
			"into an empty PostgreSQL database, in one transaction, and checks the\n"+
			"counts. Stop the servers first; afterwards start them with DATABASE_URL.")
		flags.SetOutput(w)
		flags.PrintDefaults()
		flags.SetOutput(io.Discard)
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usageText(stdout)
			return nil
		}
		usageText(stderr)
		return &ExitError{Code: ExitUsage, Err: err}
	}
	if flags.NArg() > 0 {
		usageText(stderr)
		return usage("migrate-db takes no arguments besides --to")
	}
	if err := db.CheckURL(*to); err != nil {
		return usage("--to %v", err)
	}
	path := strings.TrimSpace(getenv("DATABASE_PATH"))
	if path == "" {
		path = "data/latchkey.db"
	}
	// The source must be a Latchkey database already: a mistyped path is
	// reported, not created empty and copied.
	src, err := db.Open(ctx, db.Config{Path: path, Existing: true})
	if errors.Is(err, db.ErrNoDatabase) {
		return fmt.Errorf("%w (DATABASE_PATH): nothing was copied", err)
	}
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer src.Close()
	dst, err := db.Open(ctx, db.Config{URL: *to})
	if err != nil {
		return fmt.Errorf("opening PostgreSQL: %w", err)
	}
	defer dst.Close()
	copied, err := src.CopyTo(ctx, dst)
	if err != nil {
		return fmt.Errorf("nothing was copied: %w", err)
	}
	fmt.Fprintf(stdout, "Copied %s (accounts, and deleted accounts still remembered) and %s from %s to PostgreSQL; the counts match.\n"+
		"Start every instance with DATABASE_URL set (and DATABASE_PATH unset), with the same SECRET_KEYS as before.\n",
		count(int(copied["users"]), "user row", "user rows"), count(int(copied["credentials"]), "passkey", "passkeys"), path)
	return nil
}
