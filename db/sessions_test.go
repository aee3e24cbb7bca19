package db

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"
)

func started(sid, method string) SessionStart {
	return SessionStart{SID: sid, Method: method, Browser: "Firefox", System: "Linux", Expires: time.Now().Add(time.Hour).UnixMilli()}
}

// TestSignInsListTheirSessions: every sign-in lists its session in the
// write that records it (not at its first refresh), saying how and from
// what it signed in; a refresh keeps that; signing in again in the same
// browser takes the old session's place; the list stays bounded however
// many sign-ins come without a refresh; and nothing a client sends can
// break the list's format.
func TestSignInsListTheirSessions(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		now := time.Now()
		u, _, _, err := d.ConsumeSignUpLink(ctx, "dev@example.com", now.UnixMicro(), newHandle(), now, started("first", MethodLink))
		if err != nil {
			t.Fatal(err)
		}
		live := func() []RefreshSession {
			t.Helper()
			got, err := d.UserByHandle(ctx, u.Handle)
			if err != nil {
				t.Fatal(err)
			}
			return got.LiveSessions(time.Now())
		}
		s := live()
		if len(s) != 1 || s[0].SID != "first" || s[0].Gen != 0 || s[0].Method != MethodLink || s[0].Browser != "Firefox" ||
			s[0].System != "Linux" || s[0].AuthTime != now.Unix() || s[0].Rotated != now.UnixMilli() {
			t.Fatalf("after the sign-up the list is %+v", s)
		}
		refresh := func(sid string, gen int64, at time.Time) (int64, error) {
			_, g, _, err := d.RotateRefresh(ctx, Refresh{Handle: u.Handle, SID: sid, Gen: gen, IssuedAt: at.UnixMilli() - 1,
				AuthTime: now.Unix(), Expires: at.Add(time.Hour).UnixMilli(), Method: MethodPasskey, Browser: "Chrome"}, at)
			return g, err
		}
		later := now.Add(time.Minute)
		if g, err := refresh("first", 0, later); err != nil || g != 1 {
			t.Fatalf("refreshing the listed session: %d %v", g, err)
		}
		if s = live(); len(s) != 1 || s[0].Gen != 1 || s[0].Rotated != later.UnixMilli() || s[0].Method != MethodLink || s[0].Browser != "Firefox" {
			t.Fatalf("after a refresh the list is %+v (how it signed in must stay as it was)", s)
		}

		// A passkey sign-in in the same browser (a step-up) replaces it.
		c := addCredential(t, d, u.ID, []byte("cred-dev"), "key")
		step := started("second", MethodPasskey)
		step.Replaces = "first"
		used := asUsed(c, u.Handle, 1, now.UnixMicro())
		used.Session = step
		if _, err := d.SignInWithPasskey(ctx, used, later); err != nil {
			t.Fatal(err)
		}
		if s = live(); len(s) != 1 || s[0].SID != "second" || s[0].Method != MethodPasskey {
			t.Fatalf("after a step-up the list is %+v, want the new session only", s)
		}
		if _, err := refresh("first", 1, later.Add(time.Second)); !errors.Is(err, ErrSessionForgotten) {
			t.Errorf("the replaced session refreshed: %v, want ErrSessionForgotten", err)
		}
		if _, err := refresh("first", 0, later.Add(time.Second)); !errors.Is(err, ErrSessionForgotten) {
			t.Errorf("the replaced session's first token: %v, want ErrSessionForgotten", err)
		}
		if g, err := refresh("second", 0, later.Add(time.Second)); err != nil || g != 1 {
			t.Fatalf("refreshing the new session: %d %v", g, err)
		}
		if got, _ := d.UserByHandle(ctx, u.Handle); len(got.Sessions) != 1 || got.Sessions[0].Replaces != "" {
			t.Errorf("the row still holds %+v: the refresh's write should have dropped the replaced session", got.Sessions)
		}

		// Signing out one session takes it off the list.
		if _, _, err := d.ConsumeSignInLink(ctx, u.Handle, u.Email, later.UnixMicro(), later, started("third", MethodCode)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.EndSession(ctx, u.Handle, "second", later.Add(time.Hour).UnixMilli(), later); err != nil {
			t.Fatal(err)
		}
		if s = live(); len(s) != 1 || s[0].SID != "third" || s[0].Method != MethodCode {
			t.Fatalf("after signing out the second session the list is %+v", s)
		}

		// Many sign-ins, no refresh: the list never holds more than
		// MaxRefreshSessions, and those that fell out must sign in again.
		base := later.Add(time.Minute)
		for i := range MaxRefreshSessions + 8 {
			at := base.Add(time.Duration(i) * time.Second)
			if _, _, err := d.ConsumeSignInLink(ctx, u.Handle, u.Email, at.UnixMicro(), at, started(fmt.Sprintf("n%d", i), MethodLink)); err != nil {
				t.Fatal(err)
			}
			got, _ := d.UserByHandle(ctx, u.Handle)
			if len(got.Sessions) > MaxRefreshSessions {
				t.Fatalf("after %d sign-ins the row lists %d sessions", i+1, len(got.Sessions))
			}
		}
		if s = live(); len(s) != MaxRefreshSessions || s[len(s)-1].SID != fmt.Sprintf("n%d", MaxRefreshSessions+7) {
			t.Fatalf("the list holds %d sessions, the last %+v", len(s), s[len(s)-1])
		}
		_, g, _, err := d.RotateRefresh(ctx, Refresh{Handle: u.Handle, SID: "n0", AuthTime: base.Unix(), IssuedAt: base.UnixMilli(),
			Expires: base.Add(time.Hour).UnixMilli()}, base.Add(time.Hour/2))
		if !errors.Is(err, ErrSessionForgotten) {
			t.Errorf("a session that fell out of the list refreshed: gen %d, %v", g, err)
		}

		// What a client sends never breaks the list.
		hostile := SessionStart{SID: "h.1,2", Method: "x", Browser: "Evil.,Browser", System: strings.Repeat("a", 100), Expires: 1}
		if e := hostile.entry(now); e != "" {
			t.Errorf("a session id with separators made the entry %q", e)
		}
		hostile.SID, hostile.Replaces = "fine", "a.b"
		if e := hostile.entry(now); strings.Count(e, ",") != 0 || strings.Count(e, ".") != sessionFields-1 {
			t.Errorf("hostile fields made the entry %q", e)
		}
		if got := parseRefreshSessions(hostile.entry(now)); len(got) != 1 || got[0].Browser != "" || got[0].System != "" ||
			got[0].Method != "" || got[0].Replaces != "" {
			t.Errorf("hostile fields read back as %+v", got)
		}
	})
}

// TestSessionsMigration: the entries of the list as they were before
// migration 0009 read, after it, as sessions that say nothing of how and
// where they signed in, with their generations as they were.
func TestSessionsMigration(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		u := signUp(t, d, "old@example.com")
		future := time.Now().Add(time.Hour).UnixMilli()
		old := fmt.Sprintf("aaa.3.100.%d.50,bbb.0.200.%d.60", future, future)
		if _, err := d.write.Exec(d.rewrite(`UPDATE users SET refresh_sessions = $1 WHERE id = $2`), old, u.ID); err != nil {
			t.Fatal(err)
		}
		body, err := fs.ReadFile(migrationFiles, "migrations/"+d.Engine()+"/0009_devices.sql")
		if err != nil {
			t.Fatal(err)
		}
		update := body[strings.Index(string(body), "UPDATE"):strings.Index(string(body), ";")]
		if _, err := d.write.Exec(string(update)); err != nil {
			t.Fatal(err)
		}
		got, _ := d.UserByHandle(ctx, u.Handle)
		want := []RefreshSession{{SID: "aaa", Gen: 3, Rotated: 100, Expires: future, AuthTime: 50}, {SID: "bbb", Rotated: 200, Expires: future, AuthTime: 60}}
		if fmt.Sprint(got.Sessions) != fmt.Sprint(want) {
			t.Errorf("migrated, the list reads %+v, want %+v", got.Sessions, want)
		}
	})
}

// TestWrongCodesAreCountedInTheRow: the row counts wrong codes for the
// newest link tried; at MaxCodeFailures the code (and those of older
// links) is void, while the link itself still works; a newer email starts
// again; a code of an older link adds to the newer's count; and a link and
// its code are one credential: using one voids the other.
func TestWrongCodesAreCountedInTheRow(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		u := signUp(t, d, "codes@example.com")
		now := time.Now()
		t1 := now.UnixMicro()
		for i := 1; i <= MaxCodeFailures; i++ {
			n, voided, err := d.CodeFailed(ctx, u.Handle, u.Email, t1)
			if err != nil || n != i || voided != (i == MaxCodeFailures) {
				t.Fatalf("wrong code %d: count %d, voided %v, %v", i, n, voided, err)
			}
		}
		if _, voided, err := d.CodeFailed(ctx, u.Handle, u.Email, t1); err != nil || !voided {
			t.Errorf("a wrong code past the limit: voided %v, %v", voided, err)
		}
		if _, _, err := d.ConsumeSignInLink(ctx, u.Handle, u.Email, t1, now, started("bycode", MethodCode)); !errors.Is(err, errLinkGone) {
			t.Errorf("the right code after %d wrong ones: %v, want the link gone", MaxCodeFailures, err)
		}
		if _, _, err := d.ConsumeSignInLink(ctx, u.Handle, u.Email, t1, now, started("bylink", MethodLink)); err != nil {
			t.Errorf("the link after its code was voided: %v (only the code is guessable)", err)
		}

		// A newer email: its code starts again; an older one's adds to it.
		t2, t3 := t1+10, t1+20
		if n, _, _ := d.CodeFailed(ctx, u.Handle, u.Email, t3); n != 1 {
			t.Errorf("a newer email's first wrong code counts %d", n)
		}
		if n, _, _ := d.CodeFailed(ctx, u.Handle, u.Email, t2); n != 2 {
			t.Errorf("an older email's wrong code counts %d, want 2 (added to the newer's)", n)
		}
		// The right code signs in once, and its link is then used too.
		if _, _, err := d.ConsumeSignInLink(ctx, u.Handle, u.Email, t3, now, started("code3", MethodCode)); err != nil {
			t.Fatalf("the right code: %v", err)
		}
		if _, _, err := d.ConsumeSignInLink(ctx, u.Handle, u.Email, t3, now, started("link3", MethodLink)); !errors.Is(err, errLinkGone) {
			t.Errorf("the link after its code was used: %v", err)
		}
		if _, voided, _ := d.CodeFailed(ctx, u.Handle, u.Email, t3); !voided {
			t.Error("a wrong code for a used link is still counted as if the code could work")
		}
		// And the other way round.
		t4 := t3 + 10
		if _, _, err := d.ConsumeSignInLink(ctx, u.Handle, u.Email, t4, now, started("link4", MethodLink)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.ConsumeSignInLink(ctx, u.Handle, u.Email, t4, now, started("code4", MethodCode)); !errors.Is(err, errLinkGone) {
			t.Errorf("the code after its link was used: %v", err)
		}
	})
}
