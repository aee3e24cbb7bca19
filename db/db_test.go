package db

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/db/dbtest"
	"github.com/latchkey/latchkey/errs"
)

// engines are the databases every store test runs on: SQLite always,
// PostgreSQL when TEST_DATABASE_URL names a server (see dbtest).
var engines = []struct {
	name string
	// fresh returns a new, empty database, which any number of DBs (as
	// if instances) can open.
	fresh func(tb testing.TB) Config
}{
	// A file in a temporary folder (":memory:" would give every pooled
	// connection its own empty database).
	{"sqlite", func(tb testing.TB) Config { return Config{Path: filepath.Join(tb.TempDir(), "test.db")} }},
	{"postgres", func(tb testing.TB) Config { return Config{URL: dbtest.PostgresURL(tb)} }},
}

// eachEngine runs test once per engine, as a subtest, with a fresh
// database.
func eachEngine(t *testing.T, test func(t *testing.T, cfg Config)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { test(t, e.fresh(t)) })
	}
}

// MustOpen opens cfg's database, closed when the test ends.
func MustOpen(tb testing.TB, cfg Config) *DB {
	tb.Helper()
	d, err := Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

var ctx = context.Background()

var allMigrations = []string{"0001_init.sql", "0002_released_email.sql", "0003_revocation_order.sql", "0004_recovery_and_disabling.sql", "0005_openid_connect.sql", "0006_language.sql", "0007_oidc_sessions.sql", "0008_groups.sql", "0009_devices.sql"}

func TestMigrationsAreRecordedOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		for range 2 {
			d, err := Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			names, err := d.Migrations(ctx)
			if err != nil || !slices.Equal(names, allMigrations) {
				t.Errorf("migrations %v, %v", names, err)
			}
			if !d.postgres {
				var r string
				if err := d.read.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&r); err != nil || r != "ok" {
					t.Errorf("integrity %q %v", r, err)
				}
			}
			d.Close()
		}
	})
}

// TestConcurrentOpenMigratesOnce: ten instances starting at once on an
// empty database migrate it once, and all of them start.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				d, err := Open(ctx, cfg)
				if err != nil {
					t.Error(err)
					return
				}
				d.Close()
			})
		}
		wg.Wait()
		d := MustOpen(t, cfg)
		if names, _ := d.Migrations(ctx); !slices.Equal(names, allMigrations) {
			t.Errorf("migrations %v", names)
		}
		var rows int
		if err := d.read.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&rows); err != nil || rows != len(allMigrations) {
			t.Errorf("%d rows in schema_migrations (%v), want %d", rows, err, len(allMigrations))
		}
	})
}

// TestExistingCreatesNothing: opened with Existing, a database that is not
// there, or holds no Latchkey tables (an empty file, an empty schema,
// another tool's schema_migrations), is ErrNoDatabase, and nothing is
// created, migrated or changed; a database Latchkey made opens.
func TestExistingCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "typo", "latchkey.db")
	if _, err := Open(ctx, Config{Path: missing, Existing: true}); !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing file: %v, want ErrNoDatabase naming the path", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the missing file's folder was created (%v)", err)
	}
	if _, err := Open(ctx, Config{Path: dir, Existing: true}); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("a folder: %v, want ErrNoDatabase", err)
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Config{Path: empty, Existing: true}); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("an empty file: %v, want ErrNoDatabase", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the folder holds %d entries, want the empty file alone (nothing created beside it)", len(entries))
	}
	if info, err := os.Stat(empty); err != nil || info.Size() != 0 {
		t.Errorf("the empty file was changed: %v, %v", info, err)
	}

	eachEngine(t, func(t *testing.T, cfg Config) {
		existing := cfg
		existing.Existing = true
		if _, err := Open(ctx, existing); !errors.Is(err, ErrNoDatabase) {
			t.Fatalf("a database Latchkey never opened: %v, want ErrNoDatabase", err)
		}
		tables := func() []string {
			t.Helper()
			conn, err := sql.Open(map[bool]string{true: "pgx", false: "sqlite"}[cfg.URL != ""], cmp.Or(cfg.URL, cfg.Path))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			q := "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
			if cfg.URL != "" {
				q = "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
			}
			rows, err := conn.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var names []string
			for rows.Next() {
				var n string
				rows.Scan(&n)
				names = append(names, n)
			}
			return names
		}
		if names := tables(); len(names) != 0 {
			t.Fatalf("refusing the database created tables %v", names)
		}

		// Another tool's migrations table is not Latchkey's.
		conn, err := sql.Open(map[bool]string{true: "pgx", false: "sqlite"}[cfg.URL != ""], cmp.Or(cfg.URL, cfg.Path))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, dirty BOOLEAN NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		conn.ExecContext(ctx, "INSERT INTO schema_migrations VALUES (1, false)")
		if _, err := Open(ctx, existing); !errors.Is(err, ErrNoDatabase) {
			t.Errorf("another tool's schema_migrations: %v, want ErrNoDatabase", err)
		}
		if names := tables(); !slices.Equal(names, []string{"schema_migrations"}) {
			t.Errorf("refusing the database changed its tables: %v", names)
		}
		if _, err := conn.ExecContext(ctx, "DROP TABLE schema_migrations"); err != nil {
			t.Fatal(err)
		}
		conn.Close()

		MustOpen(t, cfg).Close()
		d, err := Open(ctx, existing)
		if err != nil {
			t.Fatalf("a database Latchkey made: %v", err)
		}
		d.Close()
	})
}

// signUp creates an account for email and returns it.
func signUp(t *testing.T, d *DB, email string) *User {
	t.Helper()
	u, created, _, err := d.ConsumeSignUpLink(ctx, email, 1, newHandle(), time.Now(), SessionStart{})
	if err != nil || !created {
		t.Fatalf("sign-up of %s: created %v, %v", email, created, err)
	}
	return u
}

func TestSignUpThenSignInLinks(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		now := time.Now()
		handle := []byte("0123456789abcdef")
		u, created, _, err := d.ConsumeSignUpLink(ctx, "a@example.com", 100, handle, now, SessionStart{})
		if err != nil || !created || u.Email != "a@example.com" || string(u.Handle) != string(handle) {
			t.Fatalf("sign-up: %+v %v %v", u, created, err)
		}
		// The same sign-up link again: refused, and no second account.
		if _, _, _, err := d.ConsumeSignUpLink(ctx, "a@example.com", 100, []byte("fedcba9876543210"), now, SessionStart{}); errs.Code(err) != errs.Gone {
			t.Errorf("reused sign-up link: %v", err)
		}
		// A newer sign-up link for the same address signs in to that account.
		u2, created, _, err := d.ConsumeSignUpLink(ctx, "a@example.com", 150, []byte("fedcba9876543210"), now, SessionStart{})
		if err != nil || created || string(u2.Handle) != string(handle) {
			t.Errorf("newer sign-up link: %+v %v %v", u2, created, err)
		}
		// Sign-in links: single use, older ones void, bound to email and handle.
		if _, _, err := d.ConsumeSignInLink(ctx, handle, "a@example.com", 140, now, SessionStart{}); errs.Code(err) != errs.Gone {
			t.Errorf("older link: %v", err)
		}
		if _, _, err := d.ConsumeSignInLink(ctx, handle, "b@example.com", 200, now, SessionStart{}); errs.Code(err) != errs.Gone {
			t.Errorf("link for another address: %v", err)
		}
		if _, _, err := d.ConsumeSignInLink(ctx, handle, "a@example.com", 200, now, SessionStart{}); err != nil {
			t.Errorf("fresh link: %v", err)
		}
		if _, _, err := d.ConsumeSignInLink(ctx, handle, "a@example.com", 200, now, SessionStart{}); errs.Code(err) != errs.Gone {
			t.Errorf("reused link: %v", err)
		}
		if _, err := d.CheckLink(ctx, handle, "a@example.com", 200, false); errs.Code(err) != errs.Gone {
			t.Errorf("CheckLink of a used link: %v", err)
		}
		if fresh, err := d.CheckLink(ctx, nil, "new@example.com", 1, false); err != nil || !fresh {
			t.Errorf("CheckLink of a sign-up link: %v %v", fresh, err)
		}
		if _, err := d.LinkTarget(ctx, "nobody@example.com"); errs.Code(err) != errs.NotFound {
			t.Errorf("unknown email: %v", err)
		}
	})
}

// race runs f n times at once, each on its own DB (as if on n instances)
// when there are several, and returns the errors in no particular order.
func race(n int, dbs []*DB, f func(i int, d *DB) error) []error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		out   []error
		start = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			err := f(i, dbs[i%len(dbs)])
			mu.Lock()
			out = append(out, err)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return out
}

// count returns how many errors are nil and how many are each code.
func count(errors []error) map[string]int {
	m := map[string]int{}
	for _, err := range errors {
		if err == nil {
			m["ok"]++
		} else {
			m[errs.Code(err)]++
		}
	}
	return m
}

func TestConcurrentSignUpCreatesOneAccount(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		dbs := []*DB{MustOpen(t, cfg), MustOpen(t, cfg), MustOpen(t, cfg)}
		var created atomic.Int32
		got := count(race(10, dbs, func(i int, d *DB) error {
			_, c, _, err := d.ConsumeSignUpLink(ctx, "race@example.com", 100, newHandle(), time.Now(), SessionStart{})
			if c {
				created.Add(1)
			}
			return err
		}))
		if created.Load() != 1 || got["ok"] != 1 || got[errs.Gone] != 9 {
			t.Errorf("10 racing uses of one sign-up link: %d created, results %v", created.Load(), got)
		}
		for _, d := range dbs {
			if d.BusyErrors() != 0 {
				t.Errorf("%d SQLITE_BUSY", d.BusyErrors())
			}
		}
	})
}

// TestConcurrentSignInLinkSignsInOnce: twenty simultaneous uses of one
// sign-in link, across three instances, sign in exactly once.
func TestConcurrentSignInLinkSignsInOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		dbs := []*DB{MustOpen(t, cfg), MustOpen(t, cfg), MustOpen(t, cfg)}
		u := signUp(t, dbs[0], "twenty@example.com")
		got := count(race(20, dbs, func(i int, d *DB) error {
			_, _, err := d.ConsumeSignInLink(ctx, u.Handle, u.Email, 500, time.Now(), SessionStart{})
			return err
		}))
		if got["ok"] != 1 || got[errs.Gone] != 19 {
			t.Errorf("20 racing uses of one sign-in link: %v, want 1 ok and 19 gone", got)
		}
	})
}

func TestRevokedSessionsStayBounded(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		handle := signUp(t, d, "s@example.com").Handle
		now := time.Now()
		far := now.Add(time.Hour).UnixMilli()
		for i := range MaxRevokedSessions {
			if all, _, err := d.EndSession(ctx, handle, fmt.Sprintf("sid%d", i), far, now); err != nil || !all.IsZero() {
				t.Fatalf("ending session %d: ended all at %v, %v", i, all, err)
			}
		}
		u, _ := d.UserByHandle(ctx, handle)
		if len(u.RevokedSessions) != MaxRevokedSessions || u.TokensValidAfter != 0 {
			t.Fatalf("%d sessions, stamp %d", len(u.RevokedSessions), u.TokensValidAfter)
		}
		// One more: the list would overflow, so every session ends instead.
		if all, _, err := d.EndSession(ctx, handle, "overflow", far, now); err != nil || all.UnixMilli() != now.UnixMilli() {
			t.Fatalf("overflow: ended all at %v (want %v), %v", all, now, err)
		}
		u, _ = d.UserByHandle(ctx, handle)
		if len(u.RevokedSessions) != 0 || u.TokensValidAfter != now.UnixMilli() {
			t.Errorf("after overflow: %d sessions, stamp %d", len(u.RevokedSessions), u.TokensValidAfter)
		}
		// Expired entries are dropped on the next write.
		later := now.Add(2 * time.Hour)
		d.EndSession(ctx, handle, "a", now.Add(time.Hour).UnixMilli(), now)
		d.EndSession(ctx, handle, "b", later.Add(time.Hour).UnixMilli(), later)
		u, _ = d.UserByHandle(ctx, handle)
		if len(u.RevokedSessions) != 1 || !u.SessionRevoked("b") || u.SessionRevoked("a") {
			t.Errorf("sessions %+v", u.RevokedSessions)
		}
	})
}

// TestRevocationsAreNumberedInCommitOrder: every revocation takes the next
// number, whatever the revoking instance's clock says, so an instance that
// has read up to number n has seen every revocation before it, even one
// written by an instance whose clock is far behind.
func TestRevocationsAreNumberedInCommitOrder(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		a, b := MustOpen(t, cfg), MustOpen(t, cfg)
		ahead, behind := time.Now().Add(time.Hour), time.Now().Add(-time.Hour)
		x, y := signUp(t, a, "x@example.com"), signUp(t, a, "y@example.com")
		seq, _, err := b.RecentRevocations(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.EndAllSessions(ctx, x.Handle, ahead); err != nil {
			t.Fatal(err)
		}
		rows, err := b.RevocationsAfter(ctx, seq)
		if err != nil || len(rows) != 1 || !bytes.Equal(rows[0].Handle, x.Handle) {
			t.Fatalf("after the first revocation: %+v, %v", rows, err)
		}
		seq = rows[0].Seq
		// An instance whose clock is two hours behind revokes next: the
		// row is found after the first all the same.
		if _, _, err := b.EndSession(ctx, y.Handle, "sid", behind.Add(time.Hour).UnixMilli(), behind); err != nil {
			t.Fatal(err)
		}
		rows, err = b.RevocationsAfter(ctx, seq)
		if err != nil || len(rows) != 1 || !bytes.Equal(rows[0].Handle, y.Handle) || rows[0].Seq != seq+1 {
			t.Fatalf("after a revocation by a clock behind: %+v, %v (want y's row, number %d)", rows, err, seq+1)
		}
		// Concurrent revocations on three instances get distinct numbers.
		dbs := []*DB{a, b, MustOpen(t, cfg)}
		users := make([]*User, 12)
		for i := range users {
			users[i] = signUp(t, a, fmt.Sprintf("c%d@example.com", i))
		}
		for _, err := range race(len(users), dbs, func(i int, d *DB) error {
			if i%2 == 0 {
				_, _, err := d.EndAllSessions(ctx, users[i].Handle, time.Now())
				return err
			}
			_, _, err := d.EndSession(ctx, users[i].Handle, "s", time.Now().Add(time.Hour).UnixMilli(), time.Now())
			return err
		}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		rows, err = a.RevocationsAfter(ctx, seq+1)
		if err != nil || len(rows) != len(users) {
			t.Fatalf("%d rows after 12 concurrent revocations (%v)", len(rows), err)
		}
		for i, r := range rows {
			if r.Seq != seq+2+int64(i) {
				t.Errorf("row %d has number %d, want %d: numbers must be distinct and consecutive", i, r.Seq, seq+2+int64(i))
			}
		}
	})
}

// TestRevocationVoidsTokensIssuedOnAClockAhead: a revocation stamps no
// earlier than the newest token issued, so a sign-in on an instance whose
// clock is ahead is voided by "Sign out everywhere" on one whose clock is
// behind; and a sign-in after a revocation stamped in the future (by a
// clock ahead) still issues tokens newer than the stamp.
func TestRevocationVoidsTokensIssuedOnAClockAhead(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		u := signUp(t, d, "skew@example.com")
		now := time.Now()
		_, iat, err := d.ConsumeSignInLink(ctx, u.Handle, u.Email, 1000, now.Add(5*time.Second), SessionStart{})
		if err != nil {
			t.Fatal(err)
		}
		stamp, _, err := d.EndAllSessions(ctx, u.Handle, now)
		if err != nil {
			t.Fatal(err)
		}
		if iat.After(stamp) {
			t.Errorf("a sign-in at %v survives sign-out everywhere stamped %v by a clock 5 s behind", iat, stamp)
		}
		stamp, _, err = d.EndAllSessions(ctx, u.Handle, now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		_, iat, err = d.ConsumeSignInLink(ctx, u.Handle, u.Email, 2000, now, SessionStart{})
		if err != nil {
			t.Fatal(err)
		}
		if !iat.After(stamp) {
			t.Errorf("a sign-in after a revocation stamped %v (a clock ahead) issued tokens at %v, void at once", stamp, iat)
		}
	})
}

// TestSignInOrderedWithRevocation (defect: a sign-in took its issue time
// after its write): a sign-in that committed before "Sign out everywhere"
// issues tokens the stamp voids, one that committed after issues tokens it
// doesn't, for link and passkey sign-ins alike, with equal clocks and in
// the same millisecond.
func TestSignInOrderedWithRevocation(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		u := signUp(t, d, "order@example.com")
		c := addCredential(t, d, u.ID, []byte("order-cred"), "key")
		now := time.Now()
		signIns := map[string]func(i int) (time.Time, error){
			"link": func(i int) (time.Time, error) {
				_, iat, err := d.ConsumeSignInLink(ctx, u.Handle, u.Email, int64(1000+i), now, SessionStart{})
				return iat, err
			},
			"passkey": func(i int) (time.Time, error) {
				return signInWithPasskey(d, asUsed(c, u.Handle, uint32(i+1), int64(1000+i)), now)
			},
		}
		i := 0
		for name, signIn := range signIns {
			i += 2
			iat, err := signIn(i)
			if err != nil {
				t.Fatal(err)
			}
			stamp, _, err := d.EndAllSessions(ctx, u.Handle, now)
			if err != nil {
				t.Fatal(err)
			}
			if iat.After(stamp) {
				t.Errorf("%s sign-in before sign-out everywhere: tokens at %v outlive the stamp %v", name, iat, stamp)
			}
			iat, err = signIn(i + 1)
			if err != nil {
				t.Fatal(err)
			}
			if !iat.After(stamp) {
				t.Errorf("%s sign-in after sign-out everywhere in the same millisecond: tokens at %v are void (stamp %v)", name, iat, stamp)
			}
		}
	})
}

// TestRefreshNeverOutlivesSignOutEverywhere: a refresh racing "Sign out
// everywhere" on another instance either fails or issues tokens the stamp
// voids.
func TestRefreshNeverOutlivesSignOutEverywhere(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		a, b := MustOpen(t, cfg), MustOpen(t, cfg)
		u := signUp(t, a, "refresh-race@example.com")
		for trial := range 30 {
			_, iat, err := a.ConsumeSignInLink(ctx, u.Handle, u.Email, int64(1000+trial), time.Now(), SessionStart{})
			if err != nil {
				t.Fatal(err)
			}
			sid := fmt.Sprintf("race%d", trial)
			var (
				refreshed time.Time
				rerr      error
				stamp     time.Time
				start     = make(chan struct{})
				wg        sync.WaitGroup
			)
			wg.Go(func() {
				<-start
				_, _, refreshed, rerr = a.RotateRefresh(ctx, Refresh{Handle: u.Handle, SID: sid, IssuedAt: iat.UnixMilli(),
					AuthTime: time.Now().Unix(), Expires: time.Now().Add(time.Hour).UnixMilli()}, time.Now())
			})
			wg.Go(func() {
				<-start
				var err error
				if stamp, _, err = b.EndAllSessions(ctx, u.Handle, time.Now()); err != nil {
					t.Error(err)
				}
			})
			close(start)
			wg.Wait()
			if rerr == nil && refreshed.After(stamp) {
				// It came second, so it must have seen the stamp.
				t.Fatalf("trial %d: a refresh of a token issued at %v produced tokens at %v that outlive sign-out everywhere stamped %v",
					trial, iat, refreshed, stamp)
			}
			if rerr != nil && !errors.Is(rerr, ErrSessionEnded) {
				t.Fatalf("trial %d: refresh failed with %v", trial, rerr)
			}
		}
	})
}

// TestSimultaneousSignOutsAreBothKept: two sessions signing out at the same
// moment on two instances both end (neither write is lost).
func TestSimultaneousSignOutsAreBothKept(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		dbs := []*DB{MustOpen(t, cfg), MustOpen(t, cfg)}
		u := signUp(t, dbs[0], "two-out@example.com")
		for trial := range 10 {
			sids := []string{fmt.Sprintf("left%d", trial), fmt.Sprintf("right%d", trial)}
			for _, err := range race(2, dbs, func(i int, d *DB) error {
				_, _, err := d.EndSession(ctx, u.Handle, sids[i], time.Now().Add(time.Hour).UnixMilli(), time.Now())
				return err
			}) {
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := dbs[0].UserByHandle(ctx, u.Handle)
			if err != nil {
				t.Fatal(err)
			}
			for _, sid := range sids {
				if !got.SessionRevoked(sid) {
					t.Fatalf("trial %d: session %s signed out at the same moment as another is not signed out", trial, sid)
				}
			}
		}
	})
}

// TestEmailChangeRacingSignInLink: a sign-in link for the old address used
// while the address changes on another instance either fails, or signs in
// with tokens the change voids; afterwards it never works.
func TestEmailChangeRacingSignInLink(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		a, b := MustOpen(t, cfg), MustOpen(t, cfg)
		for trial := range 10 {
			old := fmt.Sprintf("old%d@example.com", trial)
			u := signUp(t, a, old)
			issued := time.Now().UnixMicro()
			var (
				iat, stamp time.Time
				lerr, cerr error
				start      = make(chan struct{})
				wg         sync.WaitGroup
			)
			wg.Go(func() {
				<-start
				_, iat, lerr = a.ConsumeSignInLink(ctx, u.Handle, old, issued, time.Now(), SessionStart{})
			})
			wg.Go(func() {
				<-start
				_, stamp, _, cerr = b.ChangeEmail(ctx, u.Handle, old, "new"+old, issued-1, time.Now(), SessionStart{})
			})
			close(start)
			wg.Wait()
			if cerr != nil {
				// The link came first and moved link_used_at past the
				// change's own link: refused, which is the other valid order.
				if !errors.Is(cerr, errLinkGone) || lerr != nil {
					t.Fatalf("trial %d: change %v, sign-in %v", trial, cerr, lerr)
				}
				continue
			}
			if lerr == nil && iat.After(stamp) {
				t.Fatalf("trial %d: a sign-in link for the old address signed in at %v, after the change stamped %v", trial, iat, stamp)
			}
			if lerr != nil && !errors.Is(lerr, errLinkGone) {
				t.Fatalf("trial %d: sign-in %v", trial, lerr)
			}
			if _, _, err := a.ConsumeSignInLink(ctx, u.Handle, old, time.Now().UnixMicro(), time.Now(), SessionStart{}); !errors.Is(err, errLinkGone) {
				t.Fatalf("trial %d: a link for the old address after the change: %v", trial, err)
			}
		}
	})
}

// TestRefreshGenerations: each refresh moves the session to the next
// generation; the one just replaced still works within RefreshGrace (two
// tabs) and gets the current generation; an older one, or the replaced one
// after the grace, ends the session for every holder; a session that fell
// out of the bounded list must sign in again.
func TestRefreshGenerations(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		u := signUp(t, d, "gen@example.com")
		now := time.Now()
		auth := now.Unix()
		refresh := func(sid string, gen int64, at time.Time) (int64, error) {
			_, g, _, err := d.RotateRefresh(ctx, Refresh{Handle: u.Handle, SID: sid, Gen: gen, IssuedAt: now.UnixMilli() - 1,
				AuthTime: auth, Expires: at.Add(time.Hour).UnixMilli()}, at)
			return g, err
		}
		mustGen := func(what string, got int64, err error, want int64) {
			t.Helper()
			if err != nil || got != want {
				t.Fatalf("%s: generation %d, %v; want %d", what, got, err, want)
			}
		}
		g, err := refresh("s1", 0, now)
		mustGen("first refresh", g, err, 1)
		g, err = refresh("s1", 1, now)
		mustGen("second refresh", g, err, 2)
		g, err = refresh("s1", 1, now.Add(RefreshGrace/2))
		mustGen("the replaced token, within the grace (another tab)", g, err, 2)
		g, err = refresh("s1", 2, now.Add(RefreshGrace/2))
		mustGen("the current token", g, err, 3)
		if _, err := refresh("s1", 1, now.Add(RefreshGrace)); !errors.Is(err, ErrRefreshReplayed) {
			t.Fatalf("a token two generations old: %v, want ErrRefreshReplayed", err)
		}
		// The session is over, for the thief and the owner alike.
		if _, err := refresh("s1", 3, now.Add(RefreshGrace)); !errors.Is(err, ErrSessionEnded) {
			t.Fatalf("the owner's current token after the replay: %v, want ErrSessionEnded", err)
		}
		if got, _ := d.UserByHandle(ctx, u.Handle); !got.SessionRevoked("s1") {
			t.Fatal("the replayed session is not recorded as signed out")
		}

		g, err = refresh("s2", 0, now)
		mustGen("another session", g, err, 1)
		if _, err := refresh("s2", 0, now.Add(RefreshGrace+time.Second)); !errors.Is(err, ErrRefreshReplayed) {
			t.Fatalf("the replaced token after the grace: %v, want ErrRefreshReplayed", err)
		}

		// Fill the list: the session refreshed least recently falls out.
		later := now.Add(time.Minute)
		g, err = refresh("first", 0, later)
		mustGen("the oldest session", g, err, 1)
		for i := range MaxRefreshSessions {
			g, err = refresh(fmt.Sprintf("n%d", i), 0, later.Add(time.Duration(i+1)*time.Millisecond))
			mustGen("a new session", g, err, 1)
		}
		if _, err := refresh("first", 1, later.Add(time.Second)); !errors.Is(err, ErrSessionForgotten) {
			t.Errorf("the session that fell out of the list: %v, want ErrSessionForgotten", err)
		}
		// Its sign-in's token cannot start it again either.
		if _, err := refresh("first", 0, later.Add(time.Second)); !errors.Is(err, ErrSessionForgotten) {
			t.Errorf("the fallen-out session's first token: %v, want ErrSessionForgotten", err)
		}
	})
}

// TestSignInCacheNeverOutlivesTheRow: instance A remembers a passkey it
// signed in with. On instance B the passkey is deleted, or its account is,
// and its credential id (authenticators choose them) is registered again —
// on another account, or with another key — where SQLite may hand out the
// deleted row's id. A sign-in on A with the old passkey, verified against
// what A remembers, must then find nothing to update, and change nothing.
func TestSignInCacheNeverOutlivesTheRow(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change runs on instance B; it returns the row now holding the
		// credential id.
		change func(t *testing.T, b *DB, alice, bob *User, old *Credential) *Credential
	}{
		{"passkey deleted, its id registered by another account", func(t *testing.T, b *DB, alice, bob *User, old *Credential) *Credential {
			if _, err := b.DeleteCredential(ctx, alice.ID, old.ID); err != nil {
				t.Fatal(err)
			}
			return addCredential(t, b, bob.ID, old.CredentialID, "attacker's key")
		}},
		{"passkey deleted, its id registered again with another key", func(t *testing.T, b *DB, alice, bob *User, old *Credential) *Credential {
			if _, err := b.DeleteCredential(ctx, alice.ID, old.ID); err != nil {
				t.Fatal(err)
			}
			return addCredential(t, b, alice.ID, old.CredentialID, "new key")
		}},
		{"account deleted, its passkey's id registered by another account", func(t *testing.T, b *DB, alice, bob *User, old *Credential) *Credential {
			if _, _, err := b.DeleteUser(ctx, alice.Handle, time.Now()); err != nil {
				t.Fatal(err)
			}
			return addCredential(t, b, bob.ID, old.CredentialID, "old key") // even the same key
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, cfg Config) {
				a, b := MustOpen(t, cfg), MustOpen(t, cfg)
				alice, bob := signUp(t, a, "alice@example.com"), signUp(t, a, "bob@example.com")
				old := addCredential(t, a, alice.ID, []byte("credential-x"), "old key")
				c, handle, remembered, err := a.CredentialForSignIn(ctx, old.CredentialID)
				if err != nil || !bytes.Equal(handle, alice.Handle) || remembered {
					t.Fatalf("first read: %v %q, from memory %v", err, handle, remembered)
				}
				if _, err := signInWithPasskey(a, asUsed(c, handle, 1, 10), time.Now()); err != nil {
					t.Fatal(err)
				}

				// On SQLite the deleted row was the newest, so its id is
				// handed on: the case a row id alone cannot tell apart.
				// (PostgreSQL never reuses an id.)
				if now2 := tc.change(t, b, alice, bob, old); !a.postgres && now2.ID != old.ID {
					t.Fatalf("the new row got id %d, not the deleted row's %d; the test needs the reuse", now2.ID, old.ID)
				}

				// A still remembers the old passkey (nothing told it)...
				c, handle, remembered, err = a.CredentialForSignIn(ctx, old.CredentialID)
				if err != nil || !bytes.Equal(handle, alice.Handle) || c.ID != old.ID || string(c.PublicKey) != "old key" || !remembered {
					t.Fatalf("A forgot the credential on its own: %+v %q %v, from memory %v", c, handle, err, remembered)
				}
				// ...but using it finds no such passkey, and changes nothing.
				if _, err := signInWithPasskey(a, asUsed(c, handle, 2, 20), time.Now()); errs.Code(err) != errs.NotFound {
					t.Fatalf("using the remembered old passkey: %v, want not found", err)
				}
				fresh, owner, _, err := b.CredentialForSignIn(ctx, old.CredentialID)
				if err != nil || fresh.SignCount != 0 || !fresh.LastUsedAt.IsZero() {
					t.Fatalf("the credential id's new row was changed: %+v %v", fresh, err)
				}
				// And A reads the row afresh next time: the new one.
				c, handle, remembered, err = a.CredentialForSignIn(ctx, old.CredentialID)
				if err != nil || !bytes.Equal(handle, owner) || string(c.PublicKey) != string(fresh.PublicKey) || remembered {
					t.Fatalf("after the failed use A still remembers the old row: %+v %q %v, from memory %v", c, handle, err, remembered)
				}
			})
		})
	}
}

func addCredential(t *testing.T, d *DB, userID int64, credentialID []byte, key string) *Credential {
	t.Helper()
	c := &Credential{UserID: userID, CredentialID: credentialID, PublicKey: []byte(key), Name: "Passkey", CreatedAt: time.Now()}
	if _, err := d.AddCredential(ctx, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func asUsed(c *Credential, owner []byte, count uint32, start int64) UsedCredential {
	return UsedCredential{ID: c.ID, CredentialID: c.CredentialID, PublicKey: c.PublicKey, Owner: owner,
		SignCount: count, CeremonyStart: start}
}

// TestSignInCacheKeepsOnlyOrdinaryRows: a passkey with an unusually large
// key or id is read from the database on every sign-in instead of being
// kept in memory, so memory stays bounded whatever people register.
func TestSignInCacheKeepsOnlyOrdinaryRows(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		u := signUp(t, d, "carol@example.com")
		small := addCredential(t, d, u.ID, []byte("small"), string(make([]byte, 77)))
		large := addCredential(t, d, u.ID, []byte("large"), string(make([]byte, signInCacheMaxRow)))
		for _, tc := range []struct {
			c     *Credential
			reads int64
		}{{small, 1}, {large, 3}} {
			before := d.Queries()["CredentialForSignIn"]
			for i := range 3 {
				_, _, remembered, err := d.CredentialForSignIn(ctx, tc.c.CredentialID)
				if err != nil {
					t.Fatal(err)
				}
				if want := i > 0 && tc.reads == 1; remembered != want {
					t.Errorf("%s key, sign-in %d: from memory %v, want %v", tc.c.CredentialID, i+1, remembered, want)
				}
			}
			if n := d.Queries()["CredentialForSignIn"] - before; n != tc.reads {
				t.Errorf("%s key: 3 sign-ins read the row %d times, want %d", tc.c.CredentialID, n, tc.reads)
			}
		}
	})
}

// TestCredentialUseIsOncePerCeremony: the conditional update alone (no
// memory in front of it) refuses a second use by the same ceremony, an
// older ceremony, and a counter that did not increase.
func TestCredentialUseIsOncePerCeremony(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		u := signUp(t, d, "dee@example.com")
		c := addCredential(t, d, u.ID, []byte("cred"), "key")
		if _, err := signInWithPasskey(d, asUsed(c, u.Handle, 5, 100), time.Now()); err != nil {
			t.Fatal(err)
		}
		for name, tc := range map[string]struct {
			count uint32
			start int64
			want  error
		}{
			"same ceremony again":   {6, 100, ErrPasskeyReplay},
			"older ceremony":        {7, 50, ErrPasskeyReplay},
			"counter not increased": {5, 200, ErrCounterWentBack},
			"counter went back":     {4, 300, ErrCounterWentBack},
			"counter reset to zero": {0, 400, ErrCounterWentBack},
		} {
			if _, err := signInWithPasskey(d, asUsed(c, u.Handle, tc.count, tc.start), time.Now()); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", name, err, tc.want)
			}
		}
		if _, err := signInWithPasskey(d, asUsed(c, u.Handle, 6, 500), time.Now()); err != nil {
			t.Errorf("a newer ceremony with a higher counter: %v", err)
		}
	})
}

// TestPasskeysPerAccountAreLimited: an account takes MaxCredentials
// passkeys and refuses the next, even when registrations on several
// instances race for the last place; deleting one makes room again; an
// account deleted in the meantime is told apart from a full one.
func TestPasskeysPerAccountAreLimited(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		u := signUp(t, d, "fay@example.com")
		for i := range MaxCredentials - 1 {
			addCredential(t, d, u.ID, fmt.Appendf(nil, "cred-%d", i), "key")
		}
		dbs := []*DB{d, MustOpen(t, cfg)}
		got := race(4, dbs, func(i int, d *DB) error {
			_, err := d.AddCredential(ctx, &Credential{UserID: u.ID, CredentialID: fmt.Appendf(nil, "racer-%d", i),
				PublicKey: []byte("key"), Name: "Passkey", CreatedAt: time.Now()})
			return err
		})
		added := 0
		for _, err := range got {
			switch {
			case err == nil:
				added++
			case !errors.Is(err, ErrTooManyPasskeys):
				t.Errorf("a registration over the limit got %v, want ErrTooManyPasskeys", err)
			}
		}
		if added != 1 {
			t.Fatalf("%d of 4 racing registrations took the last place, want 1 (results: %v)", added, got)
		}
		creds, err := d.CredentialsOf(ctx, u.ID)
		if err != nil || len(creds) != MaxCredentials {
			t.Fatalf("the account has %d passkeys (%v), want %d", len(creds), err, MaxCredentials)
		}
		// One of its own passkeys sent again (a retried request) is told
		// apart from a new one: it is registered, not refused for want of
		// room.
		again := &Credential{UserID: u.ID, CredentialID: creds[len(creds)-1].CredentialID, PublicKey: []byte("key"), Name: "Passkey", CreatedAt: time.Now()}
		if _, err := d.AddCredential(ctx, again); !errors.Is(err, errPasskeyTaken) {
			t.Errorf("a registered passkey sent again to a full account: %v, want errPasskeyTaken", err)
		}

		if _, err := d.DeleteCredential(ctx, u.ID, creds[0].ID); err != nil {
			t.Fatal(err)
		}
		addCredential(t, d, u.ID, []byte("after-delete"), "key")

		// Another instance is adding the account's 20th passkey and has
		// not committed yet: this instance's registration waits for it,
		// then counts it. (The race above may not interleave; this always
		// does.)
		mine, theirs := MustOpen(t, cfg), MustOpen(t, cfg)
		v := signUp(t, mine, "gil@example.com")
		for i := range MaxCredentials - 1 {
			addCredential(t, mine, v.ID, fmt.Appendf(nil, "gil-%d", i), "key")
		}
		tx, err := theirs.write.BeginTx(ctx, nil) // SQLite: BEGIN IMMEDIATE, the write lock
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var n int
		if err := tx.QueryRowContext(ctx, theirs.rewrite(`SELECT 1 FROM users WHERE id = $1 FOR UPDATE`), v.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO credentials (user_id, credential_id, public_key, name, created_at)
			VALUES ($1, $2, $3, 'Passkey', 0)`, v.ID, []byte("theirs"), []byte{0}); err != nil {
			t.Fatal(err)
		}
		result := make(chan error, 1)
		started := mine.Queries()["AddCredential"]
		go func() {
			_, err := mine.AddCredential(ctx, &Credential{UserID: v.ID, CredentialID: []byte("mine"), PublicKey: []byte("key"), Name: "Passkey", CreatedAt: time.Now()})
			result <- err
		}()
		for mine.Queries()["AddCredential"] == started {
			time.Sleep(time.Millisecond) // until it has begun
		}
		select {
		case err := <-result:
			t.Fatalf("a registration finished (%v) while another instance held the account's row", err)
		case <-time.After(100 * time.Millisecond): // it waits on the lock
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := <-result; !errors.Is(err, ErrTooManyPasskeys) {
			t.Errorf("a registration racing another instance's 20th: %v, want ErrTooManyPasskeys", err)
		}

		if _, _, err := d.DeleteUser(ctx, u.Handle, time.Now()); err != nil {
			t.Fatal(err)
		}
		_, err = d.AddCredential(ctx, &Credential{UserID: u.ID, CredentialID: []byte("too-late"), PublicKey: []byte("key"), Name: "Passkey", CreatedAt: time.Now()})
		if errs.Code(err) != errs.Gone {
			t.Errorf("adding a passkey to a deleted account: %v, want %s", err, errs.Gone)
		}
	})
}

// TestLastPasskeyOfPasskeyOnlyAccountSurvivesRaces: two deletions racing
// for the last passkey of a passkey-only account (on two instances), or a
// deletion racing email sign-in being turned off, never leave an account
// that cannot sign in.
func TestLastPasskeyOfPasskeyOnlyAccountSurvivesRaces(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		dbs := []*DB{MustOpen(t, cfg), MustOpen(t, cfg)}
		d := dbs[0]
		for trial := range 5 {
			u := signUp(t, d, fmt.Sprintf("only%d@example.com", trial))
			c1 := addCredential(t, d, u.ID, fmt.Appendf(nil, "one-%d", trial), "key")
			c2 := addCredential(t, d, u.ID, fmt.Appendf(nil, "two-%d", trial), "key")
			if err := d.SetEmailSignIn(ctx, u.ID, false, time.Now()); err != nil {
				t.Fatal(err)
			}
			got := count(race(2, dbs, func(i int, d *DB) error {
				_, err := d.DeleteCredential(ctx, u.ID, []int64{c1.ID, c2.ID}[i])
				return err
			}))
			if got["ok"] != 1 || got[errs.Conflict] != 1 {
				t.Fatalf("trial %d: two deletions racing for the last passkey: %v, want one ok and one refused", trial, got)
			}

			// Email sign-in on, one passkey: deleting it races turning
			// email sign-in off.
			v := signUp(t, d, fmt.Sprintf("toggle%d@example.com", trial))
			c := addCredential(t, d, v.ID, fmt.Appendf(nil, "only-%d", trial), "key")
			race(2, dbs, func(i int, d *DB) error {
				if i == 0 {
					_, err := d.DeleteCredential(ctx, v.ID, c.ID)
					return err
				}
				return d.SetEmailSignIn(ctx, v.ID, false, time.Now())
			})
			after, err := d.UserByHandle(ctx, v.Handle)
			if err != nil {
				t.Fatal(err)
			}
			if !after.EmailSignIn && after.Passkeys == 0 {
				t.Fatalf("trial %d: the account ended with email sign-in off and no passkey", trial)
			}
		}
	})
}

// TestPurgeTombstones: a deleted account's tombstone stays while a token
// of it could be valid, and while a sign-up link issued before it gave up
// its address could be in time; it is removed after both. Live accounts
// are never touched, nor the row holding the highest revocation number.
func TestPurgeTombstones(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		live := signUp(t, d, "gus@example.com")
		gone := signUp(t, d, "hal@example.com")
		last := signUp(t, d, "ivy@example.com")
		deletedAt := time.Now()
		if _, _, err := d.DeleteUser(ctx, gone.Handle, deletedAt); err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.DeleteUser(ctx, last.Handle, deletedAt); err != nil {
			t.Fatal(err)
		}
		rows := func(handle []byte) (n int) {
			t.Helper()
			if err := d.read.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE handle = $1`, handle).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		ms, us := deletedAt.UnixMilli(), deletedAt.UnixMicro()
		for _, tc := range []struct {
			name                   string
			before, releasedBefore int64
			removed                int64
		}{
			{"tokens could still be valid", ms, us + 1, 0},
			{"a sign-up link could still be in time", ms + 1, us, 0},
			{"neither", ms + 1, us + 1, 1},
		} {
			if n, err := d.PurgeTombstones(ctx, tc.before, tc.releasedBefore); err != nil || n != tc.removed || int64(rows(gone.Handle)) != 1-tc.removed {
				t.Fatalf("%s: purge removed %d (%v), want %d", tc.name, n, err, tc.removed)
			}
		}
		// The newest tombstone holds the highest revocation number: it
		// stays, so the number is never handed out again, but its address
		// goes; it is removed once a later revocation has a higher number.
		var released sql.NullString
		if err := d.read.QueryRowContext(ctx, `SELECT released_email FROM users WHERE handle = $1`, last.Handle).Scan(&released); err != nil {
			t.Fatalf("the tombstone holding the highest revocation number was purged (%v): the next revocation would reuse its number", err)
		}
		if released.Valid {
			t.Errorf("the tombstone holding the highest revocation number still keeps the address %s", released.String)
		}
		if _, _, err := d.EndAllSessions(ctx, live.Handle, time.Now()); err != nil {
			t.Fatal(err)
		}
		if n, err := d.PurgeTombstones(ctx, ms+1, us+1); err != nil || n != 1 || rows(last.Handle) != 0 {
			t.Errorf("after a later revocation the old tombstone is kept (purged %d, %v)", n, err)
		}
		if _, err := d.UserByHandle(ctx, live.Handle); err != nil {
			t.Errorf("the live account after a purge: %v", err)
		}
	})
}

// TestSignUpLinkDiesWithItsAddress: a sign-up link used to create an
// account cannot create another once that account is deleted or moves to
// another address, while the link is still in time, even when the instance
// that issued it had a clock ahead of the one that released the address;
// one issued after the address was given up can.
func TestSignUpLinkDiesWithItsAddress(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		for _, leave := range []string{"deleted", "moved"} {
			for _, skew := range []time.Duration{0, 5 * time.Second} {
				t.Run(fmt.Sprintf("%s, issuer %v ahead", leave, skew), func(t *testing.T) {
					email := fmt.Sprintf("%s%d@example.com", leave, skew/time.Second)
					issued := time.Now().Add(skew).UnixMicro()
					u, created, _, err := d.ConsumeSignUpLink(ctx, email, issued, newHandle(), time.Now(), SessionStart{})
					if err != nil || !created {
						t.Fatalf("sign-up: %v, created %v", err, created)
					}
					switch leave {
					case "deleted":
						_, _, err = d.DeleteUser(ctx, u.Handle, time.Now())
					case "moved":
						_, _, _, err = d.ChangeEmail(ctx, u.Handle, email, "elsewhere"+email, issued+1, time.Now(), SessionStart{})
					}
					if err != nil {
						t.Fatal(err)
					}
					if _, err := d.CheckLink(ctx, nil, email, issued, false); !errors.Is(err, errLinkGone) {
						t.Errorf("checking the used link again: %v, want it gone", err)
					}
					if _, _, _, err := d.ConsumeSignUpLink(ctx, email, issued, newHandle(), time.Now(), SessionStart{}); !errors.Is(err, errLinkGone) {
						t.Fatalf("the used sign-up link again: %v, want it gone", err)
					}
					later := time.Now().Add(skew).UnixMicro() + 10
					if newAccount, err := d.CheckLink(ctx, nil, email, later, false); err != nil || !newAccount {
						t.Errorf("a newer sign-up link: new account %v, %v", newAccount, err)
					}
					if _, created, _, err := d.ConsumeSignUpLink(ctx, email, later, newHandle(), time.Now(), SessionStart{}); err != nil || !created {
						t.Errorf("a newer sign-up link: %v, created %v", err, created)
					}
				})
			}
		}
	})
}

// TestSignUpRacingDeletionOfTheAddress: a used sign-up link presented
// while the account it created is deleted on another instance never
// creates a second account for the address.
func TestSignUpRacingDeletionOfTheAddress(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		a, b := MustOpen(t, cfg), MustOpen(t, cfg)
		for trial := range 10 {
			email := fmt.Sprintf("gone%d@example.com", trial)
			issued := time.Now().UnixMicro()
			u, _, _, err := a.ConsumeSignUpLink(ctx, email, issued, newHandle(), time.Now(), SessionStart{})
			if err != nil {
				t.Fatal(err)
			}
			var created bool
			race(2, []*DB{a, b}, func(i int, d *DB) error {
				if i == 0 {
					_, _, err := d.DeleteUser(ctx, u.Handle, time.Now())
					return err
				}
				_, created, _, err = d.ConsumeSignUpLink(ctx, email, issued, newHandle(), time.Now(), SessionStart{})
				return err
			})
			if created {
				t.Fatalf("trial %d: the used sign-up link created a second account while the first was deleted", trial)
			}
		}
	})
}

// TestUsedSignUpLinkCannotSignInToTheNextHolder: a sign-up link that
// created an account which then gave the address up cannot sign in to
// whichever account takes the address next, nor can a link issued in the
// very microsecond the address was given up.
func TestUsedSignUpLinkCannotSignInToTheNextHolder(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		base := time.Now().Add(-time.Second).UnixMicro()
		y, _, _, err := d.ConsumeSignUpLink(ctx, "y@example.com", base-10, newHandle(), time.Now(), SessionStart{})
		if err != nil {
			t.Fatal(err)
		}
		// Y asks to move to a@ (its confirmation link issued at base); then
		// a sign-up link for a@ creates X, and X is deleted.
		x, _, _, err := d.ConsumeSignUpLink(ctx, "a@example.com", base+1, newHandle(), time.Now(), SessionStart{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.DeleteUser(ctx, x.Handle, time.Now()); err != nil {
			t.Fatal(err)
		}
		// Y's instance has a clock behind the others: what it records for
		// the change is older than X's link.
		behind := time.UnixMicro(base).Add(-5 * time.Second)
		if _, _, _, err := d.ChangeEmail(ctx, y.Handle, "y@example.com", "a@example.com", base, behind, SessionStart{}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.CheckLink(ctx, nil, "a@example.com", base+1, false); !errors.Is(err, errLinkGone) {
			t.Errorf("checking X's used sign-up link with Y at the address: %v, want it gone", err)
		}
		if u, _, _, err := d.ConsumeSignUpLink(ctx, "a@example.com", base+1, newHandle(), time.Now(), SessionStart{}); !errors.Is(err, errLinkGone) {
			t.Errorf("X's used sign-up link with Y at the address: %+v, %v; want it gone", u, err)
		}

		// A link issued in the microsecond of the deletion is refused too.
		z, _, _, err := d.ConsumeSignUpLink(ctx, "z@example.com", 5, newHandle(), time.Now(), SessionStart{})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if _, _, err := d.DeleteUser(ctx, z.Handle, now); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := d.ConsumeSignUpLink(ctx, "z@example.com", now.UnixMicro(), newHandle(), time.Now(), SessionStart{}); !errors.Is(err, errLinkGone) {
			t.Errorf("a sign-up link issued in the microsecond of the deletion: %v, want it gone", err)
		}
		if _, _, _, err := d.ConsumeSignUpLink(ctx, "z@example.com", now.UnixMicro()+1, newHandle(), time.Now(), SessionStart{}); err != nil {
			t.Errorf("a sign-up link issued a microsecond after the deletion: %v", err)
		}

		// An email change voids every link issued before it, not only those
		// before its confirmation link: a sign-up link to the new address
		// sent in between does not sign in to the account that moved there.
		w, _, _, err := d.ConsumeSignUpLink(ctx, "w@example.com", 5, newHandle(), time.Now(), SessionStart{})
		if err != nil {
			t.Fatal(err)
		}
		requested := time.Now().UnixMicro()
		between, confirmed := requested+1, time.UnixMicro(requested+10)
		if _, _, _, err := d.ChangeEmail(ctx, w.Handle, "w@example.com", "b@example.com", requested, confirmed, SessionStart{}); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := d.ConsumeSignUpLink(ctx, "b@example.com", between, newHandle(), time.Now(), SessionStart{}); !errors.Is(err, errLinkGone) {
			t.Errorf("a sign-up link sent between the change's request and its confirmation: %v, want it gone", err)
		}
	})
}

// newHandle returns a fresh random user handle.
func newHandle() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

// signInWithPasskey records a passkey sign-in and returns its issue time.
func signInWithPasskey(d *DB, u UsedCredential, now time.Time) (time.Time, error) {
	s, err := d.SignInWithPasskey(ctx, u, now)
	return s.IssuedAt, err
}

// issueCode issues a code for the session sid of u (its tokens issued
// at sessionIssued) at now, failing the test if it cannot.
func issueCode(t *testing.T, d *DB, u *User, sid string, sessionIssued int64, now time.Time) Code {
	t.Helper()
	ic, err := d.IssueCode(ctx, u.Handle, sid, sessionIssued, now)
	if err != nil {
		t.Fatalf("issue code: %v", err)
	}
	return Code{Handle: u.Handle, Client: "wiki", IssuedCode: ic, SID: sid, AuthTime: now.Unix(),
		SessionEnds: now.Add(time.Hour).UnixMilli()}
}

// TestAuthorizationCodesRedeemOnce: several codes of one person redeem at
// once (two applications signing them in together, on two instances),
// each only once, whatever the clocks of the instances that redeem them;
// a code issued before "Sign out everywhere" is refused even when it was
// issued by an instance whose clock is ahead, so is a code of a session
// that signed out, and one of a disabled account.
func TestAuthorizationCodesRedeemOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		dbs := []*DB{MustOpen(t, cfg), MustOpen(t, cfg)}
		u := signUp(t, dbs[0], "apps@example.com")
		if _, err := dbs[0].GrantApplication(ctx, u.ID, "wiki", []string{"openid"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		signedIn := time.Now().UnixMilli()
		codes := []Code{issueCode(t, dbs[0], u, "s1", signedIn, time.Now()), issueCode(t, dbs[1], u, "s1", signedIn, time.Now())}
		got := count(race(2, dbs, func(i int, d *DB) error {
			_, err := d.RedeemCode(ctx, codes[i], time.Now())
			return err
		}))
		if got["ok"] != 2 {
			t.Fatalf("two codes in flight for one person: %v, want both redeemed", got)
		}
		third := issueCode(t, dbs[0], u, "s1", signedIn, time.Now())
		got = count(race(6, dbs, func(i int, d *DB) error {
			_, err := d.RedeemCode(ctx, third, time.Now())
			return err
		}))
		if got["ok"] != 1 || got[errs.Gone] != 5 {
			t.Fatalf("one code redeemed six times at once: %v, want once", got)
		}

		// Clocks: a code redeemed by an instance whose clock is right is
		// not forgotten when an instance whose clock is minutes ahead
		// writes the row (it used to prune the list by its own clock).
		fourth := issueCode(t, dbs[0], u, "s1", signedIn, time.Now())
		if _, err := dbs[0].RedeemCode(ctx, fourth, time.Now()); err != nil {
			t.Fatal(err)
		}
		ahead := time.Now().Add(5 * time.Minute)
		if _, err := dbs[1].RedeemCode(ctx, issueCode(t, dbs[1], u, "s1", signedIn, ahead), ahead); err != nil {
			t.Fatal(err)
		}
		if _, err := dbs[0].RedeemCode(ctx, fourth, time.Now()); !errors.Is(err, ErrCodeUsed) {
			t.Errorf("a code redeemed again after a skewed instance wrote the row: %v, want ErrCodeUsed", err)
		}

		// An instance 5 s ahead issues a code; "Sign out everywhere" on
		// one whose clock is right still voids it (database order).
		early := issueCode(t, dbs[1], u, "s1", signedIn, time.Now().Add(5*time.Second))
		if _, _, err := dbs[0].EndAllSessions(ctx, u.Handle, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := dbs[0].RedeemCode(ctx, early, time.Now()); !errors.Is(err, ErrCodeSessionEnded) {
			t.Errorf("a code issued (by a clock ahead) before sign-out everywhere: %v, want ErrCodeSessionEnded", err)
		}
		if _, err := dbs[0].IssueCode(ctx, u.Handle, "s1", signedIn, time.Now()); !errors.Is(err, ErrCodeSessionEnded) {
			t.Errorf("a code for a session older than sign-out everywhere: %v, want ErrCodeSessionEnded", err)
		}

		// A session that signed out gets no code, and its codes die.
		// (Sessions signed in after that stamp, which the skewed instance
		// pushed minutes ahead.)
		fresh := time.Now().Add(10 * time.Minute).UnixMilli()
		pending := issueCode(t, dbs[0], u, "s2", fresh, time.Now().Add(10*time.Minute))
		if _, _, err := dbs[1].EndSession(ctx, u.Handle, "s2", time.Now().Add(time.Hour).UnixMilli(), time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := dbs[0].RedeemCode(ctx, pending, time.Now()); !errors.Is(err, ErrCodeSessionEnded) {
			t.Errorf("a code of a session that signed out: %v, want ErrCodeSessionEnded", err)
		}
		if _, err := dbs[0].IssueCode(ctx, u.Handle, "s2", fresh, time.Now()); !errors.Is(err, ErrCodeSessionEnded) {
			t.Errorf("a code for a session that signed out: %v, want ErrCodeSessionEnded", err)
		}

		later := issueCode(t, dbs[0], u, "s3", fresh, time.Now().Add(10*time.Minute))
		if _, _, _, err := dbs[1].SetDisabled(ctx, u.Handle, true, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := dbs[0].RedeemCode(ctx, later, time.Now()); err == nil {
			t.Errorf("a code of a disabled account redeemed")
		}
	})
}

// TestCodesPerMinuteAreLimitedWhereTheyAreIssued: the 65th code in a
// minute is refused when it would be issued; a minute later codes come
// again; and a code more than codeWindow codes old no longer redeems.
func TestCodesPerMinuteAreLimitedWhereTheyAreIssued(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		u := signUp(t, d, "busy@example.com")
		d.GrantApplication(ctx, u.ID, "wiki", []string{"openid"}, time.Now())
		now := time.Now()
		first := issueCode(t, d, u, "s", now.UnixMilli(), now)
		for range MaxCodesPerMinute - 1 {
			issueCode(t, d, u, "s", now.UnixMilli(), now)
		}
		if _, err := d.IssueCode(ctx, u.Handle, "s", now.UnixMilli(), now.Add(30*time.Second)); !errors.Is(err, ErrTooManyCodes) {
			t.Fatalf("code %d within a minute: %v, want ErrTooManyCodes", MaxCodesPerMinute+1, err)
		}
		for range MaxCodesPerMinute {
			issueCode(t, d, u, "s", now.UnixMilli(), now.Add(61*time.Second))
		}
		if _, err := d.RedeemCode(ctx, first, now.Add(62*time.Second)); err != nil {
			t.Errorf("the first of %d codes: %v", 2*MaxCodesPerMinute, err)
		}
		late := now.Add(3 * time.Minute)
		issueCode(t, d, u, "s", now.UnixMilli(), late)
		issueCode(t, d, u, "s", now.UnixMilli(), late)
		second := first
		second.Seq++
		if _, err := d.RedeemCode(ctx, second, late); !errors.Is(err, ErrCodeUsed) {
			t.Errorf("a code %d codes older than the newest: %v, want ErrCodeUsed", codeWindow, err)
		}
	})
}

// TestApplicationRefreshTokensRotate: an application's refresh token moves
// to the next generation on every use; the one just replaced works again
// within the grace period (two requests at once); after it, a replay ends
// every refresh token of that application for the person (not another
// application's); an unused one ends after its idle expiry; and the
// Latchkey session signing out ends them.
func TestApplicationRefreshTokensRotate(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		u := signUp(t, d, "rotate@example.com")
		now := time.Now()
		wiki, _ := d.GrantApplication(ctx, u.ID, "wiki", []string{"openid", "offline_access"}, now)
		chat, _ := d.GrantApplication(ctx, u.ID, "chat", []string{"openid", "offline_access"}, now)
		redeem := func(client, sid string, at time.Time) AppSession {
			t.Helper()
			c := issueCode(t, d, u, sid, now.UnixMilli(), at)
			c.Client, c.Refresh, c.RefreshExpires = client, true, at.Add(time.Hour).UnixMilli()
			r, err := d.RedeemCode(ctx, c, at)
			if err != nil || r.Session.Gen != 0 || r.Session.ID == "" {
				t.Fatalf("redeem: %+v %v", r.Session, err)
			}
			return r.Session
		}
		rotate := func(s AppSession, g Grant, gen int64, at time.Time) (AppSession, error) {
			_, next, _, err := d.RotateAppRefresh(ctx, AppRefresh{Handle: u.Handle, Client: s.Client, ID: s.ID, Gen: gen,
				GrantedAt: g.GrantedAt, Expires: at.Add(time.Hour).UnixMilli()}, at)
			return next, err
		}
		w := redeem("wiki", "s1", now)
		other := redeem("wiki", "s1", now)
		c := redeem("chat", "s1", now)
		next, err := rotate(w, wiki, 0, now)
		if err != nil || next.Gen != 1 {
			t.Fatalf("first rotation: %+v %v", next, err)
		}
		if again, err := rotate(w, wiki, 0, now.Add(5*time.Second)); err != nil || again.Gen != 1 {
			t.Errorf("the replaced token within the grace period: %+v %v, want generation 1 again", again, err)
		}
		if _, err := rotate(w, wiki, 0, now.Add(20*time.Second)); err == nil {
			t.Fatal("a rotated-out token 20 s later was accepted")
		} else if r, ok := errors.AsType[*ErrAppRefreshReplayed](err); !ok || len(r.Ended.Sessions) != 2 {
			t.Fatalf("replay: %v, want both wiki sessions ended", err)
		}
		if _, err := rotate(next, wiki, 1, now.Add(21*time.Second)); !errors.Is(err, ErrSessionEnded) {
			t.Errorf("the current token after a replay: %v, want ErrSessionEnded", err)
		}
		if _, err := rotate(other, wiki, 0, now.Add(21*time.Second)); !errors.Is(err, ErrSessionEnded) {
			t.Errorf("the application's other session after a replay: %v, want ErrSessionEnded", err)
		}
		if _, err := rotate(c, chat, 0, now.Add(21*time.Second)); err != nil {
			t.Errorf("another application after a replay: %v", err)
		}

		// Idle expiry.
		idle := redeem("wiki", "s1", now.Add(time.Minute))
		if _, err := rotate(idle, wiki, 0, now.Add(time.Minute+2*time.Hour)); !errors.Is(err, ErrSessionEnded) {
			t.Errorf("after its idle expiry: %v, want ErrSessionEnded", err)
		}

		// The Latchkey session signing out ends its applications' tokens,
		// and says which.
		s2 := redeem("wiki", "s2", now.Add(2*time.Minute))
		_, ended, err := d.EndSession(ctx, u.Handle, "s2", now.Add(time.Hour).UnixMilli(), now.Add(2*time.Minute))
		if err != nil || len(ended.Sessions) != 1 || ended.Sessions[0].ID != s2.ID || ended.Grants != nil {
			t.Fatalf("sign-out ended %+v %v", ended, err)
		}
		if _, err := rotate(s2, wiki, 0, now.Add(3*time.Minute)); !errors.Is(err, ErrSessionEnded) {
			t.Errorf("after its session signed out: %v, want ErrSessionEnded", err)
		}
		// So does revoking the grant.
		s3 := redeem("chat", "s3", now.Add(4*time.Minute))
		if _, ended, _ := d.RevokeGrant(ctx, u.ID, "chat"); len(ended.Grants) != 1 || len(ended.Sessions) != 2 {
			t.Errorf("revoking ended %+v", ended)
		}
		if _, err := rotate(s3, chat, 0, now.Add(5*time.Minute)); !errors.Is(err, ErrSessionEnded) {
			t.Errorf("after revoking the grant: %v, want ErrSessionEnded", err)
		}
		// Sign out everywhere ends every application session, once: a
		// second revocation has nothing more to tell.
		redeem("wiki", "s4", now.Add(6*time.Minute))
		if _, ended, _ := d.EndAllSessions(ctx, u.Handle, now.Add(6*time.Minute)); len(ended.Sessions) == 0 {
			t.Errorf("sign out everywhere ended %+v", ended)
		}
		if _, ended, _ := d.EndAllSessions(ctx, u.Handle, now.Add(6*time.Minute)); len(ended.Sessions) != 0 {
			t.Errorf("a second sign out everywhere ended %+v again", ended.Sessions)
		}
	})
}

// TestGrants: granting adds scopes to an application's grant and keeps
// when it was first granted; revoking removes it.
func TestGrants(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		u := signUp(t, d, "grants@example.com")
		first := time.Now()
		g, err := d.GrantApplication(ctx, u.ID, "wiki", []string{"openid"}, first)
		if err != nil || g.GrantedAt != first.UnixMilli() || !g.Covers([]string{"openid"}) {
			t.Fatalf("grant: %+v %v", g, err)
		}
		g, err = d.GrantApplication(ctx, u.ID, "wiki", []string{"openid", "email"}, first.Add(time.Hour))
		if err != nil || g.GrantedAt != first.UnixMilli() || !g.Covers([]string{"email", "openid"}) {
			t.Fatalf("widened grant: %+v %v", g, err)
		}
		d.GrantApplication(ctx, u.ID, "chat", []string{"openid"}, first)
		got, _ := d.UserByHandle(ctx, u.Handle)
		if len(got.Grants) != 2 {
			t.Fatalf("grants %+v", got.Grants)
		}
		if revoked, _, err := d.RevokeGrant(ctx, u.ID, "wiki"); !revoked || err != nil {
			t.Fatalf("revoke: %v %v", revoked, err)
		}
		if revoked, _, _ := d.RevokeGrant(ctx, u.ID, "wiki"); revoked {
			t.Error("revoked twice")
		}
		got, _ = d.UserByHandle(ctx, u.Handle)
		if _, ok := got.GrantTo("wiki"); ok || len(got.Grants) != 1 {
			t.Errorf("after revoking: %+v", got.Grants)
		}
	})
}
