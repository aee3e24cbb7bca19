package tests

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/tests/testkit"
)

func TestAccountPageAndHomeFromTheTokenAlone(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)

	// Signed out: the account page sends you to sign in, and back.
	r := b.Get("/account")
	expectStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/signin?next=%2Faccount" {
		t.Errorf("Location %q, want /signin?next=%%2Faccount", loc)
	}
	if signedIn(t, b) {
		t.Fatal("home page says signed in before signing in")
	}

	signIn(t, a, b, "nina@example.com")
	expectPage(t, b.Get("/account"), http.StatusOK, "nina@example.com", "Sign out", "Sign out everywhere")
	home := b.Get("/")
	expectPage(t, home, http.StatusOK, "You're signed in", "with an email link")
	if strings.Contains(home.Body, "nina") {
		t.Error("the home page shows the email, which the token does not hold")
	}
	// The home page is rendered from the token even with the database
	// gone (it reads nothing from it).
	a.App.DB.Close()
	expectPage(t, b.Get("/"), http.StatusOK, "You're signed in")
}

func TestSilentRefresh(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock})
	b := a.Browser(t)
	signIn(t, a, b, "olga@example.com")
	oldAccess, oldRefresh := b.Cookie("__Host-at"), b.Cookie("__Host-rt")
	sid := tokenClaims(t, oldAccess)["sid"]

	// The access token expires (the server's clock moves on); the refresh
	// token is still good: the request goes through with new cookies.
	clock.Advance(11 * time.Minute)
	r := b.Get("/account")
	expectPage(t, r, http.StatusOK, "olga@example.com")
	if setCookieHeader(r, "__Host-at") == "" || setCookieHeader(r, "__Host-rt") == "" {
		t.Fatal("no new cookies after a refresh")
	}
	newAccess := b.Cookie("__Host-at")
	if newAccess == oldAccess || b.Cookie("__Host-rt") == oldRefresh {
		t.Error("tokens were not rotated")
	}
	c := tokenClaims(t, newAccess)
	if c["sid"] != sid {
		t.Errorf("sid changed across a refresh: %v -> %v", sid, c["sid"])
	}
	if c["auth_time"] != tokenClaims(t, oldAccess)["auth_time"] {
		t.Error("auth_time changed across a refresh")
	}

	// A missing access cookie (the browser dropped it) refreshes too.
	b.DeleteCookie("__Host-at")
	expectPage(t, b.Get("/account"), http.StatusOK, "olga@example.com")

	// A page that fails after a silent refresh still shows the person as
	// signed in (its header offers the account, not "Sign in"), and the
	// refresh sticks.
	b.DeleteCookie("__Host-at")
	r = b.Get("/signin/link?token=garbage")
	expectPage(t, r, http.StatusBadRequest, `<a href="/account">Account</a>`)
	if setCookieHeader(r, "__Host-at") == "" || b.Cookie("__Host-at") == "" {
		t.Error("a silent refresh on a failing page set no access cookie")
	}

	// Idle longer than SESSION_IDLE_TTL: the session is over.
	clock.Advance(169 * time.Hour)
	r = b.Get("/account")
	expectStatus(t, r, http.StatusSeeOther)
}

func TestSessionEndsAtItsAbsoluteLimit(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock, Env: map[string]string{
		"SESSION_IDLE_TTL": "2h", "SESSION_MAX_TTL": "5h", "ACCESS_TOKEN_TTL": "10m"}})
	b := a.Browser(t)
	signIn(t, a, b, "pam@example.com")
	// Used every 90 minutes, it never idles out, but it ends 5 h after the
	// sign-in.
	for i := range 3 {
		clock.Advance(90 * time.Minute)
		if !signedIn(t, b) {
			t.Fatalf("signed out after %d × 90 min", i+1)
		}
	}
	clock.Advance(90 * time.Minute) // 6 h after sign-in
	if signedIn(t, b) {
		t.Error("still signed in past SESSION_MAX_TTL")
	}
}

func TestSignOutEndsThisSessionEverywhereItsTokensAre(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "quinn@example.com")
	thief := a.Browser(t)
	b.CopyCookies(thief) // the same session's tokens, somewhere else
	other := a.Browser(t)
	signIn(t, a, other, "quinn@example.com") // another session of the same user
	if !signedIn(t, thief) {
		t.Fatal("copied cookies do not work before sign-out")
	}
	stolenAccess, stolenRefresh := thief.Cookie("__Host-at"), thief.Cookie("__Host-rt")

	r := b.Post("/signout", nil)
	expectStatus(t, r, http.StatusSeeOther)
	for _, name := range []string{"__Host-at", "__Host-rt"} {
		if line := setCookieHeader(r, name); !strings.Contains(line, "Max-Age=0") {
			t.Errorf("sign-out does not clear %s: %q", name, line)
		}
	}
	if signedIn(t, b) {
		t.Error("still signed in after sign-out")
	}
	if signedIn(t, thief) {
		t.Error("the session's copied tokens still work after sign-out")
	}
	// Each token alone, replayed: the access token fails on the request
	// path, the refresh token fails at refresh.
	for _, only := range []string{"__Host-at", "__Host-rt"} {
		replay := a.Browser(t)
		if only == "__Host-at" {
			replay.SetCookie(only, stolenAccess)
		} else {
			replay.SetCookie(only, stolenRefresh)
		}
		if signedIn(t, replay) {
			t.Errorf("replayed %s still works after sign-out", only)
		}
	}
	if !signedIn(t, other) {
		t.Error("signing out one session ended another")
	}
}

func TestSignOutEverywhereEndsEverySession(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b1, b2 := a.Browser(t), a.Browser(t)
	signIn(t, a, b1, "rita@example.com")
	signIn(t, a, b2, "rita@example.com")
	bystander := a.Browser(t)
	signIn(t, a, bystander, "sam@example.com")

	expectStatus(t, b1.Post("/signout/everywhere", nil), http.StatusSeeOther)
	if signedIn(t, b1) || signedIn(t, b2) {
		t.Error("a session survived sign-out everywhere")
	}
	if !signedIn(t, bystander) {
		t.Error("another user's session ended")
	}
	// A sign-in right after works: token times carry milliseconds.
	time.Sleep(time.Millisecond)
	signIn(t, a, b2, "rita@example.com")
	if !signedIn(t, b2) {
		t.Error("signing in again right after sign-out everywhere does not stick")
	}
	// Signed out, the action itself sends you to sign in.
	r := a.Browser(t).Post("/signout/everywhere", nil)
	expectStatus(t, r, http.StatusSeeOther)
	if !strings.HasPrefix(r.Header.Get("Location"), "/signin") {
		t.Errorf("signed-out POST /signout/everywhere → %q", r.Header.Get("Location"))
	}
}

func TestRevocationReachesAnotherInstanceWithinSeconds(t *testing.T) {
	testkit.EachEngine(t, testRevocationReachesAnotherInstanceWithinSeconds)
}

func testRevocationReachesAnotherInstanceWithinSeconds(t *testing.T, store testkit.Store) {
	a, bInst := twoInstances(t, store, 0)

	onA := a.Browser(t)
	signIn(t, a, onA, "tina@example.com")
	onB := bInst.Browser(t)
	onB.SetCookie("__Host-at", onA.Cookie("__Host-at"))
	if !signedIn(t, onB) {
		t.Fatal("instance B does not accept instance A's token")
	}
	expectStatus(t, onA.Post("/signout", url.Values{}), http.StatusSeeOther)
	deadline := time.Now().Add(2 * time.Second)
	for signedIn(t, onB) {
		if time.Now().After(deadline) {
			t.Fatal("instance B still accepts the token 2 s after sign-out on A")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSignOutAfterASilentRefreshLeavesNoToken(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock})
	b := a.Browser(t)
	signIn(t, a, b, "vera@example.com")
	clock.Advance(11 * time.Minute) // the access token has expired: sign-out refreshes first
	r := b.Post("/signout", nil)
	expectStatus(t, r, http.StatusSeeOther)
	for _, name := range []string{"__Host-at", "__Host-rt"} {
		lines := 0
		for _, line := range r.Header.Values("Set-Cookie") {
			if strings.HasPrefix(line, name+"=") {
				lines++
				if !strings.Contains(line, "Max-Age=0") {
					t.Errorf("sign-out sets a live %s: %s", name, line)
				}
			}
		}
		if lines != 1 {
			t.Errorf("%d Set-Cookie lines for %s, want one deletion", lines, name)
		}
	}
	if b.Cookie("__Host-at") != "" || signedIn(t, b) {
		t.Error("the browser still holds a session after sign-out")
	}
}

// TestRefreshRacingSignOutEverywhere has a thief refresh a stolen refresh
// token as fast as it can while the owner signs out everywhere: whatever the
// thief minted during the race must be dead afterwards.
func TestRefreshRacingSignOutEverywhere(t *testing.T) {
	testkit.EachEngine(t, testRefreshRacingSignOutEverywhere)
}

func testRefreshRacingSignOutEverywhere(t *testing.T, store testkit.Store) {
	apps := instances(t, store, 3, 0, nil)
	a := apps[0]
	owner := a.Browser(t)
	signIn(t, a, owner, "walt@example.com")
	stolen := owner.Cookie("__Host-rt")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	thieves := make([]*testkit.Browser, 8)
	for i := range thieves {
		thief := apps[i%len(apps)].Browser(t) // on every instance
		thief.SetCookie("__Host-rt", stolen)
		thieves[i] = thief
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				thief.DeleteCookie("__Host-at") // force a refresh every time
				thief.Get("/")
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	expectStatus(t, owner.Post("/signout/everywhere", nil), http.StatusSeeOther)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	for i, thief := range thieves {
		if signedIn(t, thief) {
			t.Errorf("thief %d is still signed in after sign-out everywhere", i)
		}
	}
}

// TestARevokedSessionCannotBeRefreshedAnywhere: long after a sign-out (and
// after "Sign out everywhere"), when no instance keeps the revocation in
// memory any more, the old refresh cookie is still refused — by the user's
// row, on an instance started after the fact.
func TestARevokedSessionCannotBeRefreshedAnywhere(t *testing.T) {
	testkit.EachEngine(t, testARevokedSessionCannotBeRefreshedAnywhere)
}

func testARevokedSessionCannotBeRefreshedAnywhere(t *testing.T, store testkit.Store) {
	for _, action := range []string{"/signout", "/signout/everywhere"} {
		t.Run(action, func(t *testing.T) {
			clock := testkit.NewClock()
			secret, dbPath := testkit.NewSecret(), store
			if store.Engine == "sqlite" {
				dbPath = testkit.SQLiteStore(t) // one per subtest
			} else {
				dbPath = testkit.PostgresStore(t)
			}
			mail := testkit.StartMailServer(t, false)
			a := testkit.StartApp(t, testkit.AppOptions{Clock: clock, SecretKeys: secret, Store: dbPath, Mail: mail})
			b := a.Browser(t)
			signIn(t, a, b, "vera@example.com")
			stolen := b.Cookie("__Host-rt")
			expectStatus(t, b.Post(action, nil), http.StatusSeeOther)

			clock.Advance(time.Hour) // every access token and in-memory revocation is long gone
			later := testkit.StartApp(t, testkit.AppOptions{Clock: clock, SecretKeys: secret, Store: dbPath, Mail: mail,
				Env: map[string]string{"BASE_URL": a.URL}})
			thief := later.Browser(t)
			thief.SetCookie("__Host-rt", stolen)
			r := thief.Get("/account")
			expectStatus(t, r, http.StatusSeeOther)
			if thief.Cookie("__Host-at") != "" {
				t.Fatal("a revoked session's refresh token bought a new access token")
			}
			// The same person signing in again is fine.
			signIn(t, later, later.Browser(t), "vera@example.com")
		})
	}
}

// TestSignOutOverflowEndsEverySessionHereAtOnce: once an account has more
// signed-out sessions than the list holds, the next sign-out ends every
// session instead, and on the instance that did it, at once (no poll).
func TestSignOutOverflowEndsEverySessionHereAtOnce(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{PollInterval: time.Hour,
		Env: map[string]string{"RATE_LIMIT_SIGNIN": "10000/1m"}})
	keeper := a.Browser(t)
	signIn(t, a, keeper, "busy@example.com")
	pk := addPasskey(t, a, keeper)
	for i := range db.MaxRevokedSessions + 1 {
		if i == db.MaxRevokedSessions && !signedIn(t, keeper) {
			t.Fatal("the other session ended before the list was full")
		}
		b := a.Browser(t)
		expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK)
		expectStatus(t, b.Post("/signout", nil), http.StatusSeeOther)
	}
	if signedIn(t, keeper) {
		t.Error("after the sign-out that overflowed the list, another session of the account is still signed in on this instance")
	}
}

// TestRevocationReachesInstancesWhateverTheirClocks (defect: the catch-up
// went by the writers' clocks): with instance A's clock 12 s behind B's,
// "Sign out everywhere" through A is felt on B within seconds; and after
// B's clock jumps 30 s ahead and B revokes a session, revocations through
// A still reach B, and B's reach A.
func TestRevocationReachesInstancesWhateverTheirClocks(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		secret, mail := testkit.NewSecret(), testkit.StartMailServer(t, false)
		behind, onTime := testkit.NewClock(), testkit.NewClock()
		behind.Advance(-12 * time.Second)
		a := testkit.StartApp(t, testkit.AppOptions{Clock: behind, Store: store, SecretKeys: secret, Mail: mail})
		b := testkit.StartApp(t, testkit.AppOptions{Clock: onTime, Store: store, SecretKeys: secret, Mail: mail,
			Env: map[string]string{"BASE_URL": a.URL}})
		// Sessions are signed in on A: B, ahead, accepts A's tokens (A
		// refuses B's, issued in what is its future).
		trial := func(name string, revokeOn, other *testkit.App) {
			t.Helper()
			person := a.Browser(t)
			signIn(t, a, person, name+"@example.com")
			here, there := revokeOn.Browser(t), other.Browser(t)
			person.CopyCookies(here)
			person.CopyCookies(there)
			if !signedIn(t, here) || !signedIn(t, there) {
				t.Fatalf("%s: the session does not work on both instances", name)
			}
			expectStatus(t, here.Post("/signout/everywhere", nil), http.StatusSeeOther)
			for deadline := time.Now().Add(2 * time.Second); signedIn(t, there); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: the other instance still accepts the session 2 s after sign-out everywhere", name)
				}
			}
			there.DeleteCookie("__Host-at")
			if signedIn(t, there) {
				t.Fatalf("%s: a refresh after sign-out everywhere worked", name)
			}
		}
		trial("behind-to-on-time", a, b)
		onTime.Advance(30 * time.Second) // B's clock jumps ahead…
		trial("ahead-to-behind", b, a)   // …and it revokes
		trial("behind-after-the-jump", a, b)
	})
}

// TestReplayedRefreshTokenEndsTheSession (defect: a rotated-out refresh
// token kept working): a copy of a refresh token used after its owner
// refreshed ends the session for both holders, on every instance; two
// tabs refreshing with the same token at the same moment both stay
// signed in.
func TestReplayedRefreshTokenEndsTheSession(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		clock := testkit.NewClock()
		secret, mail := testkit.NewSecret(), testkit.StartMailServer(t, false)
		var log testkit.SyncBuffer
		a := testkit.StartApp(t, testkit.AppOptions{Clock: clock, Store: store, SecretKeys: secret, Mail: mail, Log: &log})
		b := testkit.StartApp(t, testkit.AppOptions{Clock: clock, Store: store, SecretKeys: secret, Mail: mail, Log: &log,
			Env: map[string]string{"BASE_URL": a.URL}})

		owner := a.Browser(t)
		signIn(t, a, owner, "replay@example.com")
		thief := b.Browser(t)
		thief.SetCookie("__Host-rt", owner.Cookie("__Host-rt")) // stolen before any refresh

		clock.Advance(11 * time.Minute) // the owner's access token expires: refreshed
		if !signedIn(t, owner) {
			t.Fatal("the owner's refresh failed")
		}
		clock.Advance(db.RefreshGrace + time.Second)
		// The thief replays the old token, once and again: refused, no
		// cookies.
		for range 3 {
			if signedIn(t, thief) || thief.Cookie("__Host-at") != "" {
				t.Fatal("a rotated-out refresh token bought a session")
			}
			thief.SetCookie("__Host-rt", "") // what it had
		}
		// The owner is signed out too, at once on the thief's instance and
		// within seconds on the owner's.
		onB := b.Browser(t)
		owner.CopyCookies(onB)
		if signedIn(t, onB) {
			t.Error("the owner's session still works on the instance that saw the replay")
		}
		deadline := time.Now().Add(2 * time.Second)
		for signedIn(t, owner) {
			if time.Now().After(deadline) {
				t.Fatal("the owner's session still works 2 s after its refresh token was replayed")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !regexp.MustCompile(`level=WARN msg="security event" event=refresh_replayed user=\S+ client=\S+ browser=.* session=\S+`).MatchString(log.String()) {
			t.Errorf("no warn-level security event, naming the user and the session, for the replay in the log:\n%s", log.String())
		}

		// Two tabs of one browser refresh with the same token at once.
		tab1 := a.Browser(t)
		signIn(t, a, tab1, "tabs@example.com")
		for round := range 3 {
			tab2 := b.Browser(t)
			tab1.CopyCookies(tab2)
			clock.Advance(11 * time.Minute)
			var wg sync.WaitGroup
			ok := make([]bool, 2)
			for i, tab := range []*testkit.Browser{tab1, tab2} {
				tab.DeleteCookie("__Host-at")
				wg.Go(func() { ok[i] = signedIn(t, tab) })
			}
			wg.Wait()
			if !ok[0] || !ok[1] {
				t.Fatalf("round %d: two tabs refreshing at once: signed in %v", round, ok)
			}
			// Whichever response the browser kept, it works on.
			if !signedIn(t, tab2) {
				t.Fatalf("round %d: the second tab's cookies stopped working", round)
			}
		}
	})
}
