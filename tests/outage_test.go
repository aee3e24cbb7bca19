package tests

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/latchkey/latchkey/tests/testkit"
)

// TestPostgresGoesAwayAndComesBack: instance A reaches PostgreSQL through a
// proxy the test cuts, then makes hang; instance B reaches it directly.
// While A cannot reach it, signed-in pages keep working on A (they read
// nothing), sign-ins and account changes answer a 503 page (JSON on JSON
// endpoints) within seconds, /healthz says 503, and nothing is half
// written; when it comes back, A works again without a restart and has
// caught up on what B revoked meanwhile.
func TestPostgresGoesAwayAndComesBack(t *testing.T) {
	store := testkit.PostgresStore(t)
	proxy := testkit.StartProxy(t, store.Target(t))
	secret, mail := testkit.NewSecret(), testkit.StartMailServer(t, false)
	a := testkit.StartApp(t, testkit.AppOptions{Store: store.Through(t, proxy), SecretKeys: secret, Mail: mail,
		PollInterval: testkit.Production})
	b := testkit.StartApp(t, testkit.AppOptions{Store: store, SecretKeys: secret, Mail: mail, PollInterval: testkit.Production,
		Env: map[string]string{"BASE_URL": a.URL}})

	person := a.Browser(t)
	signIn(t, a, person, "steady@example.com")
	pk := addPasskey(t, a, person)
	expectStatus(t, passkeySignIn(t, a.Browser(t), pk), http.StatusOK) // A remembers the passkey
	other := b.Browser(t)
	signIn(t, b, other, "elsewhere@example.com")
	otherOnA := a.Browser(t)
	other.CopyCookies(otherOnA)
	newcomer := a.Browser(t)
	signUpToken := requestLink(t, a, newcomer, "newcomer@example.com")

	// bounded runs a request and fails the test if it takes longer than a
	// person would wait.
	bounded := func(what string, limit time.Duration, do func() *testkit.Response) *testkit.Response {
		t.Helper()
		start := time.Now()
		r := do()
		if took := time.Since(start); took > limit {
			t.Errorf("%s took %v with the database away, want ≤ %v", what, took.Round(time.Millisecond), limit)
		}
		return r
	}

	proxy.Cut()
	expectPage(t, person.Get("/"), http.StatusOK, "You're signed in")
	expectStatus(t, bounded("/healthz", 3*time.Second, func() *testkit.Response { return a.Browser(t).Get("/healthz") }), http.StatusServiceUnavailable)
	r := bounded("a sign-up", 3*time.Second, func() *testkit.Response {
		return newcomer.Post("/signin/link", url.Values{"token": {signUpToken}})
	})
	expectPage(t, r, http.StatusServiceUnavailable, "nothing was changed", "Try again")
	if newcomer.Cookie("__Host-at") != "" {
		t.Error("a sign-up the database never saw signed the browser in")
	}
	expectPage(t, bounded("a link request", 3*time.Second, func() *testkit.Response {
		return a.Browser(t).Post("/signin/email", url.Values{"email": {"steady@example.com"}})
	}), http.StatusServiceUnavailable)
	r = bounded("a passkey sign-in", 3*time.Second, func() *testkit.Response { return passkeySignIn(t, a.Browser(t), pk) })
	expectJSONError(t, r, http.StatusServiceUnavailable)
	if code := jsonField(t, r, "error"); code != "unavailable" {
		t.Errorf("the passkey sign-in says %q, want unavailable", code)
	}
	expectStatus(t, bounded("sign out everywhere", 3*time.Second, func() *testkit.Response {
		return person.Post("/signout/everywhere", nil)
	}), http.StatusServiceUnavailable)
	// Meanwhile B, which reaches the database, ends the other session.
	expectStatus(t, other.Post("/signout/everywhere", nil), http.StatusSeeOther)

	// A network that drops everything: still answered within seconds.
	proxy.Hang()
	expectStatus(t, bounded("a sign-up while the network hangs", 8*time.Second, func() *testkit.Response {
		return newcomer.Post("/signin/link", url.Values{"token": {signUpToken}})
	}), http.StatusServiceUnavailable)
	expectStatus(t, bounded("/healthz while the network hangs", 8*time.Second, func() *testkit.Response {
		return a.Browser(t).Get("/healthz")
	}), http.StatusServiceUnavailable)
	expectPage(t, person.Get("/"), http.StatusOK, "You're signed in") // still reads nothing

	proxy.Restore()
	for deadline := time.Now().Add(10 * time.Second); a.Browser(t).Get("/healthz").StatusCode != http.StatusOK; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/healthz still fails 10 s after the database came back")
		}
	}
	// What B revoked meanwhile is caught up.
	for deadline := time.Now().Add(3 * time.Second); signedIn(t, otherOnA); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("A still accepts a session B ended while A could not reach the database")
		}
	}
	// Nothing was half done: the sign-up link was not used up, the
	// passkey was not marked used, the session was not ended.
	expectStatus(t, newcomer.Post("/signin/link", url.Values{"token": {signUpToken}}), http.StatusSeeOther)
	expectPage(t, newcomer.Get("/account"), http.StatusOK, "newcomer@example.com")
	expectStatus(t, passkeySignIn(t, a.Browser(t), pk), http.StatusOK)
	expectPage(t, person.Get("/account"), http.StatusOK, "steady@example.com")
	if !signedIn(t, person) {
		t.Error("the person was signed out by the outage")
	}
}
