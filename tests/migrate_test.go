package tests

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	adminpkg "github.com/latchkey/latchkey/admin"
	"github.com/latchkey/latchkey/tests/testkit"
)

// TestMigrateFromSQLiteToPostgres moves a deployment: accounts with and
// without passkeys, a signed-out session and a deleted account on SQLite
// are copied by `latchkey migrate-db --to …` into an empty PostgreSQL
// database; the same public address then runs on PostgreSQL, and every
// account signs in as before, with its passkey or by link, sessions carry
// on, and the signed-out session stays signed out.
func TestMigrateFromSQLiteToPostgres(t *testing.T) {
	sqlite, pg := testkit.SQLiteStore(t), testkit.PostgresStore(t)
	secret, mail, addr := testkit.NewSecret(), testkit.StartMailServer(t, false), reserveAddr(t)

	before := restart(t, addr, secret, sqlite, mail)
	withPasskey := before.Browser(t)
	signIn(t, before, withPasskey, "keys@example.com")
	pk := addPasskey(t, before, withPasskey)
	byLink := before.Browser(t)
	signIn(t, before, byLink, "links@example.com")
	leaving := before.Browser(t)
	signIn(t, before, leaving, "leaving@example.com")
	signedOut := before.Browser(t)
	signIn(t, before, signedOut, "links@example.com")
	stale := before.Browser(t)
	signedOut.CopyCookies(stale)
	expectStatus(t, signedOut.Post("/signout", nil), http.StatusSeeOther)
	expectStatus(t, leaving.Post("/account/delete", map[string][]string{"confirm": {"leaving@example.com"}}), http.StatusOK)
	before.Stop()

	getenv := func(k string) string {
		if k == "DATABASE_PATH" {
			return sqlite.Path
		}
		return ""
	}
	var out, errOut bytes.Buffer
	if err := adminpkg.MigrateDB(context.Background(), []string{"--to", pg.URL}, getenv, &out, &errOut); err != nil {
		t.Fatalf("migrate-db: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "and 1 passkey ") || !strings.Contains(out.String(), "the counts match") {
		t.Errorf("migrate-db says: %s", out.String())
	}

	after := restart(t, addr, secret, pg, mail)
	if !signedIn(t, withPasskey) || !signedIn(t, byLink) {
		t.Error("a session from before the move stopped working")
	}
	stale.DeleteCookie("__Host-at")
	if signedIn(t, stale) {
		t.Error("a session signed out before the move works again after it")
	}
	expectStatus(t, passkeySignIn(t, after.Browser(t), pk), http.StatusOK)
	if n := accountsOf(t, after, "keys@example.com", "links@example.com", "leaving@example.com"); n != 2 {
		t.Errorf("%d of the addresses are accounts after the move, want 2 (the deleted one is not)", n)
	}
	expectPage(t, withPasskey.Get("/account"), http.StatusOK, "keys@example.com")
	signIn(t, after, after.Browser(t), "newcomer@example.com") // new rows get new ids

	// Into a database that is no longer empty: refused, nothing copied.
	err := adminpkg.MigrateDB(context.Background(), []string{"--to", pg.URL}, getenv, &out, &errOut)
	if adminpkg.ExitCode(err) != adminpkg.ExitFailure || !strings.Contains(err.Error(), "already has") {
		t.Errorf("copying into a database with users: %v (exit %d)", err, adminpkg.ExitCode(err))
	}
	// Bad usage exits 2, and a password is never printed.
	for _, args := range [][]string{{}, {"--to", "mysql://u:s3cretpw@h/db"}, {"--to", pg.URL, "extra"}, {"--bogus"}} {
		errOut.Reset()
		err := adminpkg.MigrateDB(context.Background(), args, getenv, &out, &errOut)
		if adminpkg.ExitCode(err) != adminpkg.ExitUsage {
			t.Errorf("migrate-db %q: %v (exit %d), want exit 2", args, err, adminpkg.ExitCode(err))
		}
		if err != nil && strings.Contains(err.Error()+errOut.String(), "s3cretpw") {
			t.Errorf("migrate-db %q printed the password", args)
		}
	}
}
