package tests

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/tests/testkit"
)

// TestStatementsPerOperation counts the SQL statements each thing a person
// does sends to the database (lock and notify statements included, BEGIN
// and COMMIT not), on both engines, and logs the table the README quotes:
//
//	go test -run TestStatementsPerOperation -v ./tests
//
// A signed-in page reads nothing; a refresh is one locked read and one
// write of the user's row.
func TestStatementsPerOperation(t *testing.T) {
	var table strings.Builder
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		// No background catch-up during the count: poll hourly, no push.
		a := testkit.StartApp(t, testkit.AppOptions{Store: store, PollInterval: time.Hour,
			Env: map[string]string{"DATABASE_NOTIFY": "off", "OIDC_CLIENTS_FILE": writeClients(t, "")}})
		b := a.Browser(t)
		counts := map[string]int64{}
		var order []string
		measure := func(what string, do func()) {
			t.Helper()
			before := a.App.DB.Statements()
			do()
			counts[what] = a.App.DB.Statements() - before
			order = append(order, what)
		}
		var tok string
		measure("link request (new address)", func() { tok = requestLink(t, a, b, "count@example.com") })
		measure("link page (GET)", func() { expectStatus(t, b.Get("/signin/link?token="+tok), http.StatusOK) })
		measure("link sign-up", func() { expectStatus(t, b.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther) })
		tok = requestLink(t, a, b, "count@example.com")
		measure("link sign-in", func() { expectStatus(t, b.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther) })
		other := a.Browser(t)
		_, code := requestCode(t, a, other, "count@example.com")
		measure("wrong code (an account)", func() { expectStatus(t, typeCode(other, wrongCode(code)), http.StatusBadRequest) })
		measure("code sign-in", func() { expectStatus(t, typeCode(other, code), http.StatusSeeOther) })
		measure("signed-in page (GET /)", func() {
			for range 10 {
				if !signedIn(t, b) {
					t.Fatal("signed out")
				}
			}
		})
		counts["signed-in page (GET /)"] /= 10
		measure("account page", func() { expectStatus(t, b.Get("/account"), http.StatusOK) })
		measure("silent refresh", func() {
			b.DeleteCookie("__Host-at")
			if !signedIn(t, b) {
				t.Fatal("the refresh failed")
			}
		})
		var pk *testkit.Passkey
		measure("passkey registration", func() { pk = addPasskey(t, a, b) })
		measure("passkey sign-in, first on this instance", func() {
			a.App.DB.ForgetSignInCredential(pk.Cred.ID)
			expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK)
		})
		measure("passkey sign-in", func() { expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK) })
		measure("rename a passkey", func() {
			expectStatus(t, b.Post("/account/passkeys/"+firstPasskeyID(t, b)+"/rename", url.Values{"name": {"Phone"}}), http.StatusSeeOther)
		})
		counts["rename a passkey"]-- // firstPasskeyID read the account page
		counts["rename a passkey"]--
		measure("email change: request", func() {
			expectStatus(t, b.Post("/account/email", url.Values{"email": {"counted@example.com"}}), http.StatusOK)
		})
		change := emailLink(t, a, "counted@example.com", 0, "/account/email/confirm")
		measure("email change: confirm", func() {
			expectStatus(t, b.Post("/account/email/confirm", url.Values{"token": {change}}), http.StatusOK)
		})
		// An application: authorize with the consent page, the consent,
		// the code's redemption, a refresh and userinfo.
		u, verifier := notesRequest(a.URL, nil)
		var consent *testkit.Response
		measure("OIDC authorize (consent page)", func() { consent = b.Get(pathOf(t, u)) })
		sealed := consentRequest.FindStringSubmatch(consent.Body)
		if sealed == nil {
			t.Fatalf("no consent page: %d %s", consent.StatusCode, consent.Header.Get("Location"))
		}
		var back *testkit.Response
		measure("OIDC consent (allow)", func() {
			back = b.Post("/oauth2/authorize", url.Values{"request": {sealed[1]}, "decision": {"allow"}})
		})
		loc, _ := url.Parse(back.Header.Get("Location"))
		var tokens formResponse
		measure("OIDC code redemption", func() { tokens = redeemNotes(t, a.URL, loc.Query().Get("code"), verifier) })
		measure("OIDC authorize (granted: a code)", func() { codeFor(t, b, a.URL) })
		measure("OIDC refresh grant", func() { refreshNotes(t, a.URL, tokens.body["refresh_token"].(string)) })
		measure("OIDC userinfo", func() {
			r := postForm(t, a.URL+"/oauth2/userinfo", url.Values{"access_token": {tokens.body["access_token"].(string)}}, nil)
			if r.status != http.StatusOK {
				t.Fatalf("userinfo: %d %v", r.status, r.body)
			}
		})

		other = a.Browser(t)
		b.CopyCookies(other)
		measure("sign out", func() { expectStatus(t, b.Post("/signout", nil), http.StatusSeeOther) })
		expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK)
		measure("sign out everywhere", func() { expectStatus(t, b.Post("/signout/everywhere", nil), http.StatusSeeOther) })

		for _, what := range order {
			fmt.Fprintf(&table, "%-8s %-40s %d\n", store.Engine, what, counts[what])
		}
		if n := counts["signed-in page (GET /)"]; n != 0 {
			t.Errorf("a signed-in page sent %d statements, want 0", n)
		}
		if n := counts["silent refresh"]; n != 2 {
			t.Errorf("a silent refresh sent %d statements, want 2 (read the row locked, write it)", n)
		}
	})
	t.Logf("statements per operation:\n%s", table.String())
}
