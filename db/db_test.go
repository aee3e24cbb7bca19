package db

import (
	"context"
	"path/filepath"
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

func TestMigrationsAreRecordedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	for range 2 {
		d, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		names, err := d.Migrations(ctx)
		if err != nil || len(names) != 1 || names[0] != "0001_init.sql" {
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
	if names, _ := d.Migrations(ctx); len(names) != 1 {
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
		if err := d.EndSession(ctx, handle, "sid"+string(rune('A'+i%26))+string(rune('a'+i/26)), far, func() time.Time { return now }); err != nil {
			t.Fatal(err)
		}
	}
	u, _ := d.UserByHandle(ctx, handle)
	if len(u.RevokedSessions) != MaxRevokedSessions || u.TokensValidAfter != 0 {
		t.Fatalf("%d sessions, stamp %d", len(u.RevokedSessions), u.TokensValidAfter)
	}
	// One more: the list would overflow, so every session ends instead.
	if err := d.EndSession(ctx, handle, "overflow", far, func() time.Time { return now }); err != nil {
		t.Fatal(err)
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

// TestSignInCacheNeverOutlivesTheRow: instance A remembers a credential it
// signed in with; instance B deletes it, and SQLite gives its row id to
// another account's new passkey. A sign-in on A with the deleted passkey
// (verified against the remembered key) must find nothing to update — and
// must leave the other account's passkey untouched.
func TestSignInCacheNeverOutlivesTheRow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	open := func() *DB {
		d, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	a, b := open(), open()
	now := time.Now()
	alice, _, err := a.ConsumeSignUpLink(ctx, "alice@example.com", 1, []byte("alice-handle-016"), now)
	if err != nil {
		t.Fatal(err)
	}
	bob, _, err := a.ConsumeSignUpLink(ctx, "bob@example.com", 1, []byte("bob-handle-00016"), now)
	if err != nil {
		t.Fatal(err)
	}
	old := &Credential{UserID: alice.ID, CredentialID: []byte("old-credential"), PublicKey: []byte("old key"), Name: "Old", CreatedAt: now}
	if err := a.AddCredential(ctx, old); err != nil {
		t.Fatal(err)
	}
	c, handle, err := a.CredentialForSignIn(ctx, old.CredentialID)
	if err != nil || string(handle) != "alice-handle-016" {
		t.Fatalf("first read: %v %q", err, handle)
	}
	if err := a.RecordCredentialUse(ctx, UsedCredential{ID: c.ID, CredentialID: c.CredentialID, SignCount: 1, CeremonyStart: 10}); err != nil {
		t.Fatal(err)
	}

	if _, err := b.DeleteCredential(ctx, alice.ID, old.ID); err != nil {
		t.Fatal(err)
	}
	reused := &Credential{UserID: bob.ID, CredentialID: []byte("bobs-credential"), PublicKey: []byte("bob key"), Name: "Bob's", CreatedAt: now}
	if err := b.AddCredential(ctx, reused); err != nil {
		t.Fatal(err)
	}
	if reused.ID != old.ID {
		t.Fatalf("SQLite did not reuse row id %d (got %d); the test needs it to", old.ID, reused.ID)
	}

	// A still remembers the deleted passkey (nothing told it otherwise)...
	c, handle, err = a.CredentialForSignIn(ctx, old.CredentialID)
	if err != nil || string(handle) != "alice-handle-016" || c.ID != old.ID || c.SignCount != 1 {
		t.Fatalf("A forgot the credential on its own: %+v %q %v", c, handle, err)
	}
	// ...but using it finds no such passkey.
	err = a.RecordCredentialUse(ctx, UsedCredential{ID: c.ID, CredentialID: c.CredentialID, SignCount: 2, CeremonyStart: 20})
	if errs.Code(err) != errs.NotFound {
		t.Fatalf("using a deleted passkey remembered by A: %v, want not found", err)
	}
	bobs, _, err := b.CredentialForSignIn(ctx, reused.CredentialID)
	if err != nil || bobs.SignCount != 0 || !bobs.LastUsedAt.IsZero() {
		t.Fatalf("bob's passkey was changed: %+v %v", bobs, err)
	}
	// And A reads the row again next time: it is gone.
	if _, _, err := a.CredentialForSignIn(ctx, old.CredentialID); errs.Code(err) != errs.NotFound {
		t.Fatalf("after the failed use A still finds the deleted passkey: %v", err)
	}
}
