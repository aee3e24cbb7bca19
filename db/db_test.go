package db

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/errs"
)

// MustOpen opens a fresh database in a temporary folder. (":memory:" would
// give every pooled connection its own empty database.)
func MustOpen(tb testing.TB) *DB {
	tb.Helper()
	d, err := Open(context.Background(), filepath.Join(tb.TempDir(), "test.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

var ctx = context.Background()

var allMigrations = []string{"0001_init.sql", "0002_released_email.sql"}

func TestMigrationsAreRecordedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	for range 2 {
		d, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		names, err := d.Migrations(ctx)
		if err != nil || !slices.Equal(names, allMigrations) {
			t.Errorf("migrations %v, %v", names, err)
		}
		var r string
		if err := d.read.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&r); err != nil || r != "ok" {
			t.Errorf("integrity %q %v", r, err)
		}
		d.Close()
	}
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			d, err := Open(ctx, path)
			if err != nil {
				t.Error(err)
				return
			}
			d.Close()
		})
	}
	wg.Wait()
	d, _ := Open(ctx, path)
	defer d.Close()
	if names, _ := d.Migrations(ctx); !slices.Equal(names, allMigrations) {
		t.Errorf("migrations %v", names)
	}
}

func TestSignUpThenSignInLinks(t *testing.T) {
	d := MustOpen(t)
	now := time.Now()
	handle := []byte("0123456789abcdef")
	u, created, err := d.ConsumeSignUpLink(ctx, "a@example.com", 100, handle, now)
	if err != nil || !created || u.Email != "a@example.com" || string(u.Handle) != string(handle) {
		t.Fatalf("sign-up: %+v %v %v", u, created, err)
	}
	// The same sign-up link again: refused, and no second account.
	if _, _, err := d.ConsumeSignUpLink(ctx, "a@example.com", 100, []byte("fedcba9876543210"), now); errs.Code(err) != errs.Gone {
		t.Errorf("reused sign-up link: %v", err)
	}
	// A newer sign-up link for the same address signs in to that account.
	u2, created, err := d.ConsumeSignUpLink(ctx, "a@example.com", 150, []byte("fedcba9876543210"), now)
	if err != nil || created || string(u2.Handle) != string(handle) {
		t.Errorf("newer sign-up link: %+v %v %v", u2, created, err)
	}
	// Sign-in links: single use, older ones void, bound to email and handle.
	if _, err := d.ConsumeSignInLink(ctx, handle, "a@example.com", 140); errs.Code(err) != errs.Gone {
		t.Errorf("older link: %v", err)
	}
	if _, err := d.ConsumeSignInLink(ctx, handle, "b@example.com", 200); errs.Code(err) != errs.Gone {
		t.Errorf("link for another address: %v", err)
	}
	if _, err := d.ConsumeSignInLink(ctx, handle, "a@example.com", 200); err != nil {
		t.Errorf("fresh link: %v", err)
	}
	if _, err := d.ConsumeSignInLink(ctx, handle, "a@example.com", 200); errs.Code(err) != errs.Gone {
		t.Errorf("reused link: %v", err)
	}
	if _, err := d.CheckLink(ctx, handle, "a@example.com", 200); errs.Code(err) != errs.Gone {
		t.Errorf("CheckLink of a used link: %v", err)
	}
	if fresh, err := d.CheckLink(ctx, nil, "new@example.com", 1); err != nil || !fresh {
		t.Errorf("CheckLink of a sign-up link: %v %v", fresh, err)
	}
	if _, _, err := d.LinkTarget(ctx, "nobody@example.com"); errs.Code(err) != errs.NotFound {
		t.Errorf("unknown email: %v", err)
	}
}

func TestConcurrentSignUpCreatesOneAccount(t *testing.T) {
	d := MustOpen(t)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results = map[string]int{}
	)
	for i := range 10 {
		wg.Go(func() {
			h := []byte("0123456789abcde" + string(rune('a'+i)))
			_, created, err := d.ConsumeSignUpLink(ctx, "race@example.com", 100, h, time.Now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case created:
				results["created"]++
			case errs.Code(err) == errs.Gone:
				results["gone"]++
			default:
				results["other"]++
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if results["created"] != 1 || results["gone"] != 9 {
		t.Errorf("results %v", results)
	}
	if d.BusyErrors() != 0 {
		t.Errorf("%d SQLITE_BUSY", d.BusyErrors())
	}
}

func TestRevokedSessionsStayBounded(t *testing.T) {
	d := MustOpen(t)
	handle := []byte("0123456789abcdef")
	if _, _, err := d.ConsumeSignUpLink(ctx, "s@example.com", 1, handle, time.Now()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	far := now.Add(time.Hour).UnixMilli()
	for i := range MaxRevokedSessions {
		if all, err := d.EndSession(ctx, handle, "sid"+string(rune('A'+i%26))+string(rune('a'+i/26)), far, func() time.Time { return now }); err != nil || !all.IsZero() {
			t.Fatalf("ending session %d: ended all at %v, %v", i, all, err)
		}
	}
	u, _ := d.UserByHandle(ctx, handle)
	if len(u.RevokedSessions) != MaxRevokedSessions || u.TokensValidAfter != 0 {
		t.Fatalf("%d sessions, stamp %d", len(u.RevokedSessions), u.TokensValidAfter)
	}
	// One more: the list would overflow, so every session ends instead.
	if all, err := d.EndSession(ctx, handle, "overflow", far, func() time.Time { return now }); err != nil || all.UnixMilli() != now.UnixMilli() {
		t.Fatalf("overflow: ended all at %v (want %v), %v", all, now, err)
	}
	u, _ = d.UserByHandle(ctx, handle)
	if len(u.RevokedSessions) != 0 || u.TokensValidAfter != now.UnixMilli() {
		t.Errorf("after overflow: %d sessions, stamp %d", len(u.RevokedSessions), u.TokensValidAfter)
	}
	// Expired entries are dropped on the next write.
	later := now.Add(2 * time.Hour)
	d.EndSession(ctx, handle, "a", now.Add(time.Hour).UnixMilli(), func() time.Time { return now })
	d.EndSession(ctx, handle, "b", later.Add(time.Hour).UnixMilli(), func() time.Time { return later })
	u, _ = d.UserByHandle(ctx, handle)
	if len(u.RevokedSessions) != 1 || !u.SessionRevoked("b") || u.SessionRevoked("a") {
		t.Errorf("sessions %+v", u.RevokedSessions)
	}
	revs, err := d.RevocationsSince(ctx, now.UnixMilli())
	if err != nil || len(revs) != 1 || string(revs[0].Handle) != string(handle) {
		t.Errorf("RevocationsSince %+v %v", revs, err)
	}
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
			if _, err := b.DeleteUser(ctx, alice.Handle, time.Now); err != nil {
				t.Fatal(err)
			}
			return addCredential(t, b, bob.ID, old.CredentialID, "old key") // even the same key
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "shared.db")
			a, b := openAt(t, path), openAt(t, path)
			now := time.Now()
			alice, _, err := a.ConsumeSignUpLink(ctx, "alice@example.com", 1, []byte("alice-handle-016"), now)
			if err != nil {
				t.Fatal(err)
			}
			bob, _, err := a.ConsumeSignUpLink(ctx, "bob@example.com", 1, []byte("bob-handle-00016"), now)
			if err != nil {
				t.Fatal(err)
			}
			old := addCredential(t, a, alice.ID, []byte("credential-x"), "old key")
			c, handle, remembered, err := a.CredentialForSignIn(ctx, old.CredentialID)
			if err != nil || string(handle) != "alice-handle-016" || remembered {
				t.Fatalf("first read: %v %q, from memory %v", err, handle, remembered)
			}
			if err := a.RecordCredentialUse(ctx, asUsed(c, handle, 1, 10)); err != nil {
				t.Fatal(err)
			}

			// The deleted row was the newest, so SQLite hands its id on:
			// the case a row id alone cannot tell apart.
			if now2 := tc.change(t, b, alice, bob, old); now2.ID != old.ID {
				t.Fatalf("the new row got id %d, not the deleted row's %d; the test needs the reuse", now2.ID, old.ID)
			}

			// A still remembers the old passkey (nothing told it)...
			c, handle, remembered, err = a.CredentialForSignIn(ctx, old.CredentialID)
			if err != nil || string(handle) != "alice-handle-016" || c.ID != old.ID || string(c.PublicKey) != "old key" || !remembered {
				t.Fatalf("A forgot the credential on its own: %+v %q %v, from memory %v", c, handle, err, remembered)
			}
			// ...but using it finds no such passkey, and changes nothing.
			if err := a.RecordCredentialUse(ctx, asUsed(c, handle, 2, 20)); errs.Code(err) != errs.NotFound {
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
	}
}

func openAt(t *testing.T, path string) *DB {
	d, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func addCredential(t *testing.T, d *DB, userID int64, credentialID []byte, key string) *Credential {
	c := &Credential{UserID: userID, CredentialID: credentialID, PublicKey: []byte(key), Name: "Passkey", CreatedAt: time.Now()}
	if err := d.AddCredential(ctx, c); err != nil {
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
	d := MustOpen(t)
	u, _, err := d.ConsumeSignUpLink(ctx, "carol@example.com", 1, []byte("carol-handle-016"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
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
}

// TestCredentialUseIsOncePerCeremony: the conditional update alone (no
// memory in front of it) refuses a second use by the same ceremony, an
// older ceremony, and a counter that did not increase.
func TestCredentialUseIsOncePerCeremony(t *testing.T) {
	d := MustOpen(t)
	u, _, err := d.ConsumeSignUpLink(ctx, "dee@example.com", 1, []byte("dee-handle-00016"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := addCredential(t, d, u.ID, []byte("cred"), "key")
	if err := d.RecordCredentialUse(ctx, asUsed(c, u.Handle, 5, 100)); err != nil {
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
		if err := d.RecordCredentialUse(ctx, asUsed(c, u.Handle, tc.count, tc.start)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if err := d.RecordCredentialUse(ctx, asUsed(c, u.Handle, 6, 500)); err != nil {
		t.Errorf("a newer ceremony with a higher counter: %v", err)
	}
}

// TestPasskeysPerAccountAreLimited: an account takes MaxCredentials
// passkeys and refuses the next, even when several registrations race for
// the last place; deleting one makes room again; an account deleted in the
// meantime is told apart from a full one.
func TestPasskeysPerAccountAreLimited(t *testing.T) {
	d := MustOpen(t)
	u, _, err := d.ConsumeSignUpLink(ctx, "fay@example.com", 1, []byte("fay-handle-00016"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxCredentials - 1 {
		addCredential(t, d, u.ID, fmt.Appendf(nil, "cred-%d", i), "key")
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		added   int
		refused []error
	)
	for i := range 4 {
		wg.Go(func() {
			err := d.AddCredential(ctx, &Credential{UserID: u.ID, CredentialID: fmt.Appendf(nil, "racer-%d", i),
				PublicKey: []byte("key"), Name: "Passkey", CreatedAt: time.Now()})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				added++
			} else {
				refused = append(refused, err)
			}
		})
	}
	wg.Wait()
	if added != 1 {
		t.Fatalf("%d of 4 racing registrations took the last place, want 1 (refusals: %v)", added, refused)
	}
	for _, err := range refused {
		if !errors.Is(err, ErrTooManyPasskeys) {
			t.Errorf("a registration over the limit got %v, want ErrTooManyPasskeys", err)
		}
	}
	creds, err := d.CredentialsOf(ctx, u.ID)
	if err != nil || len(creds) != MaxCredentials {
		t.Fatalf("the account has %d passkeys (%v), want %d", len(creds), err, MaxCredentials)
	}
	// One of its own passkeys sent again (a retried request) is told apart
	// from a new one: it is registered, not refused for want of room.
	again := &Credential{UserID: u.ID, CredentialID: creds[len(creds)-1].CredentialID, PublicKey: []byte("key"), Name: "Passkey", CreatedAt: time.Now()}
	if err := d.AddCredential(ctx, again); !errors.Is(err, errPasskeyTaken) {
		t.Errorf("a registered passkey sent again to a full account: %v, want errPasskeyTaken", err)
	}

	if _, err := d.DeleteCredential(ctx, u.ID, creds[0].ID); err != nil {
		t.Fatal(err)
	}
	addCredential(t, d, u.ID, []byte("after-delete"), "key")

	// Another instance (its own handle on the file) is inserting the
	// account's 20th passkey and has not committed yet: this instance's
	// registration waits for it, then counts it. (The race above seldom
	// interleaves on one handle's single writer; this one always does.)
	path := filepath.Join(t.TempDir(), "two.db")
	mine, theirs := openAt(t, path), openAt(t, path)
	v, _, err := mine.ConsumeSignUpLink(ctx, "gil@example.com", 1, []byte("gil-handle-00016"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxCredentials - 1 {
		addCredential(t, mine, v.ID, fmt.Appendf(nil, "gil-%d", i), "key")
	}
	tx, err := theirs.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO credentials (user_id, credential_id, public_key, name, created_at)
		VALUES (?, 'theirs', x'00', 'Passkey', 0)`, v.ID); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	started := mine.Queries()["AddCredential"]
	go func() {
		result <- mine.AddCredential(ctx, &Credential{UserID: v.ID, CredentialID: []byte("mine"), PublicKey: []byte("key"), Name: "Passkey", CreatedAt: time.Now()})
	}()
	for mine.Queries()["AddCredential"] == started {
		time.Sleep(time.Millisecond) // until it has begun
	}
	select {
	case err := <-result:
		t.Fatalf("a registration finished (%v) while another instance held the write lock", err)
	case <-time.After(100 * time.Millisecond): // it waits on the lock
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-result; !errors.Is(err, ErrTooManyPasskeys) {
		t.Errorf("a registration racing another instance's 20th: %v, want ErrTooManyPasskeys", err)
	}

	if _, err := d.DeleteUser(ctx, u.Handle, time.Now); err != nil {
		t.Fatal(err)
	}
	err = d.AddCredential(ctx, &Credential{UserID: u.ID, CredentialID: []byte("too-late"), PublicKey: []byte("key"), Name: "Passkey", CreatedAt: time.Now()})
	if errs.Code(err) != errs.Gone {
		t.Errorf("adding a passkey to a deleted account: %v, want %s", err, errs.Gone)
	}
}

// TestPurgeTombstones: a deleted account's tombstone stays while a token
// of it could be valid, and while a sign-up link issued before it gave up
// its address could be in time; it is removed after both. Live accounts
// are never touched.
func TestPurgeTombstones(t *testing.T) {
	d := MustOpen(t)
	live, _, err := d.ConsumeSignUpLink(ctx, "gus@example.com", 1, []byte("gus-handle-00016"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	gone, _, err := d.ConsumeSignUpLink(ctx, "hal@example.com", 1, []byte("hal-handle-00016"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	deletedAt, err := d.DeleteUser(ctx, gone.Handle, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	tombstones := func() (n int) {
		t.Helper()
		if err := d.read.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE handle = ?`, gone.Handle).Scan(&n); err != nil {
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
		if n, err := d.PurgeTombstones(ctx, tc.before, tc.releasedBefore); err != nil || n != tc.removed || int64(tombstones()) != 1-tc.removed {
			t.Fatalf("%s: purge removed %d (%v), want %d", tc.name, n, err, tc.removed)
		}
	}
	if _, err := d.UserByHandle(ctx, live.Handle); err != nil {
		t.Errorf("the live account after a purge: %v", err)
	}
}

// TestSignUpLinkDiesWithItsAddress: a sign-up link used to create an
// account cannot create another once that account is deleted or moves to
// another address, while the link is still in time, even when the instance
// that issued it had a clock ahead of the one that released the address;
// one issued after the address was given up can.
func TestSignUpLinkDiesWithItsAddress(t *testing.T) {
	d := MustOpen(t)
	for _, leave := range []string{"deleted", "moved"} {
		for _, skew := range []time.Duration{0, 5 * time.Second} {
			t.Run(fmt.Sprintf("%s, issuer %v ahead", leave, skew), func(t *testing.T) {
				email := fmt.Sprintf("%s%d@example.com", leave, skew/time.Second)
				issued := time.Now().Add(skew).UnixMicro()
				u, created, err := d.ConsumeSignUpLink(ctx, email, issued, newHandle(), time.Now())
				if err != nil || !created {
					t.Fatalf("sign-up: %v, created %v", err, created)
				}
				switch leave {
				case "deleted":
					_, err = d.DeleteUser(ctx, u.Handle, time.Now)
				case "moved":
					_, _, err = d.ChangeEmail(ctx, u.Handle, email, "elsewhere"+email, issued+1, time.Now)
				}
				if err != nil {
					t.Fatal(err)
				}
				if _, err := d.CheckLink(ctx, nil, email, issued); !errors.Is(err, errLinkGone) {
					t.Errorf("checking the used link again: %v, want it gone", err)
				}
				if _, _, err := d.ConsumeSignUpLink(ctx, email, issued, newHandle(), time.Now()); !errors.Is(err, errLinkGone) {
					t.Fatalf("the used sign-up link again: %v, want it gone", err)
				}
				later := time.Now().Add(skew).UnixMicro() + 10
				if newAccount, err := d.CheckLink(ctx, nil, email, later); err != nil || !newAccount {
					t.Errorf("a newer sign-up link: new account %v, %v", newAccount, err)
				}
				if _, created, err := d.ConsumeSignUpLink(ctx, email, later, newHandle(), time.Now()); err != nil || !created {
					t.Errorf("a newer sign-up link: %v, created %v", err, created)
				}
			})
		}
	}
}

// TestUsedSignUpLinkCannotSignInToTheNextHolder: a sign-up link that
// created an account which then gave the address up cannot sign in to
// whichever account takes the address next, nor can a link issued in the
// very microsecond the address was given up.
func TestUsedSignUpLinkCannotSignInToTheNextHolder(t *testing.T) {
	d := MustOpen(t)
	base := time.Now().Add(-time.Second).UnixMicro()
	y, _, err := d.ConsumeSignUpLink(ctx, "y@example.com", base-10, newHandle(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Y asks to move to a@ (its confirmation link issued at base); then a
	// sign-up link for a@ creates X, and X is deleted.
	x, _, err := d.ConsumeSignUpLink(ctx, "a@example.com", base+1, newHandle(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteUser(ctx, x.Handle, time.Now); err != nil {
		t.Fatal(err)
	}
	// Y's instance has a clock behind the others: what it records for the
	// change is older than X's link.
	behind := func() time.Time { return time.UnixMicro(base).Add(-5 * time.Second) }
	if _, _, err := d.ChangeEmail(ctx, y.Handle, "y@example.com", "a@example.com", base, behind); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CheckLink(ctx, nil, "a@example.com", base+1); !errors.Is(err, errLinkGone) {
		t.Errorf("checking X's used sign-up link with Y at the address: %v, want it gone", err)
	}
	if u, _, err := d.ConsumeSignUpLink(ctx, "a@example.com", base+1, newHandle(), time.Now()); !errors.Is(err, errLinkGone) {
		t.Errorf("X's used sign-up link with Y at the address: %+v, %v; want it gone", u, err)
	}

	// A link issued in the microsecond of the deletion is refused too.
	z, _, err := d.ConsumeSignUpLink(ctx, "z@example.com", 5, newHandle(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	deletedAt, err := d.DeleteUser(ctx, z.Handle, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.ConsumeSignUpLink(ctx, "z@example.com", deletedAt.UnixMicro(), newHandle(), time.Now()); !errors.Is(err, errLinkGone) {
		t.Errorf("a sign-up link issued in the microsecond of the deletion: %v, want it gone", err)
	}
	if _, _, err := d.ConsumeSignUpLink(ctx, "z@example.com", deletedAt.UnixMicro()+1, newHandle(), time.Now()); err != nil {
		t.Errorf("a sign-up link issued a microsecond after the deletion: %v", err)
	}

	// An email change voids every link issued before it, not only those
	// before its confirmation link: a sign-up link to the new address sent
	// in between does not sign in to the account that moved there.
	w, _, err := d.ConsumeSignUpLink(ctx, "w@example.com", 5, newHandle(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	requested := time.Now().UnixMicro()
	between := requested + 1
	if _, _, err := d.ChangeEmail(ctx, w.Handle, "w@example.com", "b@example.com", requested, time.Now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.ConsumeSignUpLink(ctx, "b@example.com", between, newHandle(), time.Now()); !errors.Is(err, errLinkGone) {
		t.Errorf("a sign-up link sent between the change's request and its confirmation: %v, want it gone", err)
	}
}

// newHandle returns a fresh random user handle.
func newHandle() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}
