package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/events"
	"github.com/latchkey/latchkey/tests/testkit"
)

// The regression tests of the review of the OpenID Connect provider made
// as an attacker would: each fails on the provider before the fix, on
// both engines.

// notesRequest returns an authorization request of the notes application
// (a public client, with PKCE) and its PKCE verifier; extra adds or
// replaces parameters.
func notesRequest(base string, extra url.Values) (path, verifier string) {
	verifier = oauth2.GenerateVerifier()
	q := url.Values{"client_id": {"notes"}, "redirect_uri": {notesCallback}, "response_type": {"code"},
		"scope": {"openid email offline_access"}, "state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	return base + "/oauth2/authorize?" + q.Encode(), verifier
}

// redeemNotes exchanges a notes code at the token endpoint of base.
func redeemNotes(t *testing.T, base, code, verifier string) formResponse {
	t.Helper()
	return postForm(t, base+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {notesCallback}, "client_id": {"notes"}, "code_verifier": {verifier}}, nil)
}

// refreshNotes uses a notes refresh token at base.
func refreshNotes(t *testing.T, base, refresh string) formResponse {
	t.Helper()
	return postForm(t, base+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh},
		"client_id": {"notes"}}, nil)
}

// pathOf returns the path and query of an absolute URL.
func pathOf(t *testing.T, u string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return parsed.RequestURI()
}

// toSignIn reports whether r sends the browser to the sign-in page (and
// not back to the application with a code).
func toSignIn(r *testkit.Response) bool {
	return r.StatusCode == http.StatusSeeOther && strings.HasPrefix(r.Header.Get("Location"), "/signin?")
}

// oidcInstances starts one instance per clock (nil: the real time) on
// one store and one secret, behind the first one's origin, with the test
// applications registered; each polls revocations every poll, and never
// hears them pushed, so an instance's in-memory set is as late as it
// gets.
func oidcInstances(t *testing.T, store testkit.Store, clocks []*testkit.Clock, poll time.Duration, env map[string]string) []*testkit.App {
	t.Helper()
	secret := testkit.NewSecret()
	mail := testkit.StartMailServer(t, false)
	file := writeClients(t, "")
	apps := make([]*testkit.App, len(clocks))
	for i, clock := range clocks {
		e := map[string]string{"OIDC_CLIENTS_FILE": file, "RATE_LIMIT_SIGNIN": "1000/1m", "DATABASE_NOTIFY": "off"}
		for k, v := range env {
			e[k] = v
		}
		if i > 0 {
			e["BASE_URL"] = apps[0].URL
		}
		apps[i] = testkit.StartApp(t, testkit.AppOptions{SecretKeys: secret, Store: store, Mail: mail, PollInterval: poll, Clock: clock, Env: e})
	}
	return apps
}

// personWithNotes signs a new person in with a passkey on a and lets the
// notes application sign them in once; it returns their browser and
// passkey.
func personWithNotes(t *testing.T, a *testkit.App, email string) (*testkit.Browser, *testkit.Passkey) {
	t.Helper()
	person := a.Browser(t)
	signIn(t, a, person, email)
	pk := addPasskey(t, a, person)
	expectStatus(t, passkeySignIn(t, person, pk), http.StatusOK)
	u, _ := notesRequest(a.URL, nil)
	if back := authorize(t, a, person, u, pk, true); back.Get("code") == "" {
		t.Fatalf("no code: %v", back)
	}
	return person, pk
}

// codeFor asks, from browser b (signed in, notes granted), for a notes
// code without any page in between, and returns it with its verifier.
func codeFor(t *testing.T, b *testkit.Browser, base string) (code, verifier string) {
	t.Helper()
	u, verifier := notesRequest(base, nil)
	r := b.Get(pathOf(t, u))
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("asking for a code: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	return loc.Query().Get("code"), verifier
}

// TestPromptLoginNeedsASignInAfterTheRequest (defect 1): after the sign-in
// detour, nothing a client or person adds to the address makes an old
// session count as a fresh sign-in: not the old lk_after parameter, not a
// forged, moved or unused resume value. Only a sign-in after the request
// gives a code, whose auth_time says so.
func TestPromptLoginNeedsASignInAfterTheRequest(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		clock := testkit.NewClock()
		a := startOIDC(t, store, clock)
		person, pk := personWithNotes(t, a, "login@example.com")
		clock.Advance(20 * time.Minute)

		u, verifier := notesRequest(a.URL, url.Values{"prompt": {"login"}})
		r := person.Get(pathOf(t, u))
		if !toSignIn(r) {
			t.Fatalf("prompt=login with a 20-minute-old session: %d %s, want the sign-in page", r.StatusCode, r.Header.Get("Location"))
		}
		// The old flaw: a parameter the person adds to the address.
		if r := person.Get(pathOf(t, u) + "&lk_after=1"); !toSignIn(r) {
			t.Errorf("lk_after added: %d %s, want the sign-in page again", r.StatusCode, r.Header.Get("Location"))
		}
		signInPage, _ := url.Parse(r.Header.Get("Location"))
		resumeAddress := signInPage.Query().Get("next")
		resumed, _ := url.Parse(resumeAddress)
		resume := resumed.Query().Get("lk_resume")
		if resume == "" {
			t.Fatalf("the sign-in page comes back to %s, without a sealed resume value", resumeAddress)
		}
		otherState, _ := notesRequest(a.URL, url.Values{"prompt": {"login"}, "state": {"other"}, "lk_resume": {resume}})
		for name, forged := range map[string]string{
			"a forged resume value":        pathOf(t, u) + "&lk_resume=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			"the resume address, unsigned": resumeAddress,
			"the resume value moved":       pathOf(t, otherState),
		} {
			if r := person.Get(forged); !toSignIn(r) {
				t.Errorf("%s: %d %s, want the sign-in page again", name, r.StatusCode, r.Header.Get("Location"))
			}
		}

		before := clock.Now().Unix()
		back := authorize(t, a, person, u, pk, true)
		tok := redeemNotes(t, a.URL, back.Get("code"), verifier)
		if tok.status != http.StatusOK {
			t.Fatalf("redeeming: %d %v", tok.status, tok.body)
		}
		if at := int64(tokenClaims(t, tok.body["id_token"].(string))["auth_time"].(float64)); at < before {
			t.Errorf("auth_time %d is older than the request (%d)", at, before)
		}
		// The address the sign-in came back to, opened again later (from
		// the history of a browser left signed in), asks again.
		clock.Advance(5 * time.Minute)
		if r := person.Get(resumeAddress); !toSignIn(r) {
			t.Errorf("the resume address 5 minutes after the sign-in: %d %s, want the sign-in page", r.StatusCode, r.Header.Get("Location"))
		}
	})
}

// TestASignedOutSessionGetsNoCode (defect 2): right after "Sign out" or
// "Sign out everywhere" through one instance, the old cookies ask another
// instance, whose revocation set has not caught up, for a code: they are
// sent to sign in. A code issued before does not redeem, and a refresh
// token the session's application got no longer refreshes.
func TestASignedOutSessionGetsNoCode(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		apps := oidcInstances(t, store, []*testkit.Clock{nil, nil}, time.Hour, nil)
		a, b := apps[0], apps[1]
		for _, signOut := range []string{"/signout", "/signout/everywhere"} {
			t.Run(strings.TrimPrefix(signOut, "/"), func(t *testing.T) {
				person, _ := personWithNotes(t, a, "signedout"+strings.ReplaceAll(signOut, "/", "-")+"@example.com")
				code, verifier := codeFor(t, person, a.URL)
				tok := redeemNotes(t, a.URL, code, verifier)
				refresh, _ := tok.body["refresh_token"].(string)
				if tok.status != http.StatusOK || refresh == "" {
					t.Fatalf("redeeming: %d %v", tok.status, tok.body)
				}
				pending, pendingVerifier := codeFor(t, person, a.URL)
				old := b.Browser(t)
				person.CopyCookies(old)

				expectStatus(t, person.Post(signOut, nil), http.StatusSeeOther)
				u, _ := notesRequest(a.URL, nil)
				if r := old.Get(pathOf(t, u)); !toSignIn(r) {
					t.Errorf("the signed-out cookies on the other instance: %d %s, want the sign-in page", r.StatusCode, r.Header.Get("Location"))
				}
				if r := redeemNotes(t, b.URL, pending, pendingVerifier); r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
					t.Errorf("a code issued before the sign-out: %d %v, want invalid_grant", r.status, r.body)
				}
				if r := refreshNotes(t, b.URL, refresh); r.body["error"] != "invalid_grant" {
					t.Errorf("the application's refresh token after the sign-out: %d %v, want invalid_grant", r.status, r.body)
				}
			})
		}
	})
}

// TestCodesOfAClockAheadDieWithSignOutEverywhere (defect 3): an instance
// whose clock is 5 s ahead issues a code; "Sign out everywhere" on an
// instance whose clock is right voids it all the same.
func TestCodesOfAClockAheadDieWithSignOutEverywhere(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		ahead := testkit.NewClock()
		ahead.Advance(5 * time.Second)
		apps := oidcInstances(t, store, []*testkit.Clock{nil, ahead}, 0, nil)
		a, b := apps[0], apps[1]
		person, _ := personWithNotes(t, a, "ahead@example.com")
		onB := b.Browser(t)
		person.CopyCookies(onB)
		code, verifier := codeFor(t, onB, a.URL)
		expectStatus(t, person.Post("/signout/everywhere", nil), http.StatusSeeOther)
		if r := redeemNotes(t, a.URL, code, verifier); r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
			t.Errorf("a code issued 5 s ahead, before sign out everywhere: %d %v, want invalid_grant", r.status, r.body)
		}
	})
}

// TestACodeRedeemsOnceWhateverTheClocks (defect 4): a code redeemed on an
// instance whose clock is right is still known as redeemed after an
// instance whose clock is minutes ahead wrote the row.
func TestACodeRedeemsOnceWhateverTheClocks(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		ahead := testkit.NewClock()
		ahead.Advance(5 * time.Minute)
		apps := oidcInstances(t, store, []*testkit.Clock{nil, ahead}, 0, nil)
		a, b := apps[0], apps[1]
		person, _ := personWithNotes(t, a, "clocks@example.com")
		first, firstVerifier := codeFor(t, person, a.URL)
		if r := redeemNotes(t, a.URL, first, firstVerifier); r.status != http.StatusOK {
			t.Fatalf("first redemption: %d %v", r.status, r.body)
		}
		onB := b.Browser(t)
		person.CopyCookies(onB)
		second, secondVerifier := codeFor(t, onB, a.URL)
		if r := redeemNotes(t, b.URL, second, secondVerifier); r.status != http.StatusOK {
			t.Fatalf("a code on the instance ahead: %d %v", r.status, r.body)
		}
		if r := redeemNotes(t, a.URL, first, firstVerifier); r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
			t.Errorf("the first code again: %d %v, want invalid_grant", r.status, r.body)
		}
	})
}

// TestApplicationRefreshTokensRotate (defect 5): every refresh of an
// application, public or confidential, returns a new refresh token; the
// one it replaced still works within 10 s (two requests at once), and
// after that ends every refresh token of the application for the person;
// a refresh token unused for SESSION_IDLE_TTL ends.
func TestApplicationRefreshTokensRotate(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		clock := testkit.NewClock()
		a := testkit.StartApp(t, testkit.AppOptions{Clock: clock, Store: store, Env: map[string]string{
			"OIDC_CLIENTS_FILE": writeClients(t, ""), "RATE_LIMIT_SIGNIN": "1000/1m", "SESSION_IDLE_TTL": "1h"}})
		person, _ := personWithNotes(t, a, "rotate@example.com")
		newRefresh := func() string {
			code, verifier := codeFor(t, person, a.URL)
			r := redeemNotes(t, a.URL, code, verifier)
			if r.status != http.StatusOK || r.body["refresh_token"] == nil {
				t.Fatalf("redeeming: %d %v", r.status, r.body)
			}
			return r.body["refresh_token"].(string)
		}
		r0 := newRefresh()
		other := newRefresh()
		next := refreshNotes(t, a.URL, r0)
		r1, _ := next.body["refresh_token"].(string)
		if next.status != http.StatusOK || r1 == "" || r1 == r0 {
			t.Fatalf("a refresh: %d, refresh token rotated: %v", next.status, r1 != r0)
		}
		if again := refreshNotes(t, a.URL, r0); again.status != http.StatusOK {
			t.Errorf("the replaced token at once (two requests racing): %d %v", again.status, again.body)
		}
		clock.Advance(11 * time.Second)
		if r := refreshNotes(t, a.URL, r0); r.body["error"] != "invalid_grant" {
			t.Errorf("the replaced token 11 s later: %d %v, want invalid_grant", r.status, r.body)
		}
		for name, tok := range map[string]string{"the current token": r1, "another session's token": other} {
			if r := refreshNotes(t, a.URL, tok); r.body["error"] != "invalid_grant" {
				t.Errorf("%s after the replay: %d %v, want invalid_grant", name, r.status, r.body)
			}
		}

		// A confidential client's refresh tokens rotate too.
		wiki := oauth2.Config{ClientID: "wiki", ClientSecret: wikiSecret, RedirectURL: wikiCallback,
			Endpoint: oauth2.Endpoint{TokenURL: a.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
		q := url.Values{"client_id": {"wiki"}, "redirect_uri": {wikiCallback}, "response_type": {"code"}, "scope": {"openid offline_access"}}
		back := person.Get("/oauth2/authorize?" + q.Encode())
		loc, _ := url.Parse(back.Header.Get("Location"))
		tok, err := wiki.Exchange(context.Background(), loc.Query().Get("code"))
		if err != nil {
			t.Fatal(err)
		}
		tok.Expiry = time.Now().Add(-time.Minute)
		refreshed, err := wiki.TokenSource(context.Background(), tok).Token()
		if err != nil || refreshed.RefreshToken == tok.RefreshToken {
			t.Errorf("a confidential client's refresh: %v, rotated %v", err, err == nil && refreshed.RefreshToken != tok.RefreshToken)
		}
		// Idle: unused for SESSION_IDLE_TTL, it ends; used, it lives on.
		idle, used := newRefresh(), newRefresh()
		for range 2 {
			clock.Advance(40 * time.Minute)
			r := refreshNotes(t, a.URL, used)
			if r.status != http.StatusOK {
				t.Fatalf("a token used every 40 minutes: %d %v", r.status, r.body)
			}
			used = r.body["refresh_token"].(string)
		}
		if r := refreshNotes(t, a.URL, idle); r.body["error"] != "invalid_grant" {
			t.Errorf("a token unused for 80 minutes (idle limit 1h): %d %v, want invalid_grant", r.status, r.body)
		}

	})
}

// TestTheTokenEndpointServesApplicationServers (defect 6): one server
// redeems its users' codes from one address without being limited; a
// client id whose authentications fail too often from an address is
// refused there, 429 with Retry-After and an OAuth body, before its
// secret is compared; the application's own server, elsewhere, is not
// locked out.
func TestTheTokenEndpointServesApplicationServers(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		a := testkit.StartApp(t, testkit.AppOptions{Store: store, Env: map[string]string{
			"OIDC_CLIENTS_FILE": writeClients(t, ""), "RATE_LIMIT_SIGNIN": "3/1m", "TRUSTED_PROXIES": "127.0.0.1/32"}})
		person, _ := personWithNotes(t, a, "server@example.com")
		for i := range 6 {
			code, verifier := codeFor(t, person, a.URL)
			if r := redeemNotes(t, a.URL, code, verifier); r.status != http.StatusOK {
				t.Fatalf("exchange %d from one address: %d %v", i+1, r.status, r.body)
			}
		}
		from := func(addr, secret string) formResponse {
			return postForm(t, a.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"},
				"client_id": {"chat"}, "client_secret": {secret}}, http.Header{"X-Forwarded-For": {addr}})
		}
		const server, attacker, newServer = "198.51.100.7", "203.0.113.9", "192.0.2.44"
		if r := from(server, chatSecret); r.body["error"] != "invalid_grant" {
			t.Fatalf("the application server authenticates: %d %v", r.status, r.body)
		}
		for i := range 3 {
			if r := from(attacker, "wrong"); r.status != http.StatusUnauthorized || r.body["error"] != "invalid_client" {
				t.Fatalf("failure %d: %d %v", i+1, r.status, r.body)
			}
		}
		r := from(attacker, "wrong")
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || r.body["error"] != "slow_down" {
			t.Errorf("the fourth failure: %d, Retry-After %q, %v; want 429 with Retry-After and an OAuth error", r.status, r.header.Get("Retry-After"), r.body)
		}
		if r := from(attacker, chatSecret); r.status != http.StatusTooManyRequests {
			t.Errorf("the right secret from the limited address: %d %v, want 429 (not even compared)", r.status, r.body)
		}
		for _, addr := range []string{server, newServer} {
			if r := from(addr, chatSecret); r.body["error"] != "invalid_grant" {
				t.Errorf("the application's server at %s while another address is limited: %d %v, want it served", addr, r.status, r.body)
			}
		}
	})
}

// TestPromptConsentSurvivesTheSignIn (defect 7): prompt=consent from a
// signed-out person shows the consent page after they sign in, even for
// an application they allowed before.
func TestPromptConsentSurvivesTheSignIn(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		a := startOIDC(t, store, nil)
		person, pk := personWithNotes(t, a, "consent@example.com")
		expectStatus(t, person.Post("/signout", nil), http.StatusSeeOther)
		u, _ := notesRequest(a.URL, url.Values{"prompt": {"consent"}})
		r := person.Get(pathOf(t, u))
		if !toSignIn(r) {
			t.Fatalf("signed out: %d %s", r.StatusCode, r.Header.Get("Location"))
		}
		next, _ := url.Parse(r.Header.Get("Location"))
		back := next.Query().Get("next")
		begin := person.PostJSON("/signin/passkey/begin?next="+url.QueryEscape(back), nil)
		expectStatus(t, passkeyFinish(t, person, pk, begin), http.StatusOK)
		expectPage(t, person.Get(back), http.StatusOK, "Notes", `name="decision"`)
	})
}

func passkeyFinish(t *testing.T, b *testkit.Browser, pk *testkit.Passkey, begin *testkit.Response) *testkit.Response {
	t.Helper()
	expectStatus(t, begin, http.StatusOK)
	return b.PostJSON("/signin/passkey/finish", pk.Assert(t, begin.Body))
}

var fraction = regexp.MustCompile(`"(iat|exp|auth_time|nbf)":\s*-?\d+\.\d`)

// TestApplicationTokensCarryWholeSeconds (defect 8): no time in an ID,
// access or refresh token given to an application has a fraction.
func TestApplicationTokensCarryWholeSeconds(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		a := startOIDC(t, store, nil)
		person, _ := personWithNotes(t, a, "seconds@example.com")
		code, verifier := codeFor(t, person, a.URL)
		r := redeemNotes(t, a.URL, code, verifier)
		refreshed := refreshNotes(t, a.URL, r.body["refresh_token"].(string))
		for _, res := range []formResponse{r, refreshed} {
			for _, field := range []string{"id_token", "access_token", "refresh_token"} {
				tok, _ := res.body[field].(string)
				parts := strings.Split(tok, ".")
				if len(parts) != 3 {
					t.Fatalf("%s: %q", field, tok)
				}
				payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
				if m := fraction.FindString(string(payload)); m != "" || !strings.Contains(string(payload), `"iat":`) {
					t.Errorf("%s carries %s: %s", field, m, payload)
				}
			}
		}
	})
}

// TestApplicationEventsNameTheAppInTheirOwnField (defect 9): every
// security event of an application's sign-in is a JSON line with one
// "client" (the address) and the application in "app".
func TestApplicationEventsNameTheAppInTheirOwnField(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		var log testkit.SyncBuffer
		a := testkit.StartApp(t, testkit.AppOptions{Store: store, Log: &log, Env: map[string]string{
			"OIDC_CLIENTS_FILE": writeClients(t, ""), "RATE_LIMIT_SIGNIN": "1000/1m", "LOG_FORMAT": "json"}})
		person, _ := personWithNotes(t, a, "events@example.com")
		code, verifier := codeFor(t, person, a.URL)
		redeemNotes(t, a.URL, code, verifier)
		expectStatus(t, person.Post("/account/applications/notes/revoke", nil), http.StatusSeeOther)
		seen := map[string]bool{}
		for _, line := range strings.Split(log.String(), "\n") {
			if !strings.Contains(line, `"security event"`) {
				continue
			}
			keys, err := jsonKeys(line)
			if err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			for _, k := range keys {
				if n := countOf(keys, k); n > 1 {
					t.Errorf("%d members named %q: %s", n, k, line)
				}
			}
			var e map[string]any
			json.Unmarshal([]byte(line), &e)
			name, _ := e["event"].(string)
			if strings.HasPrefix(name, "application_") {
				seen[name] = true
				if e["app"] != "notes" || e["client"] != "127.0.0.1" {
					t.Errorf("%s: app %v, client %v; want notes and the address", name, e["app"], e["client"])
				}
			}
		}
		for _, want := range []string{"application_granted", "application_signin", "application_token", "application_revoked"} {
			if !seen[want] {
				t.Errorf("no %s event in the log", want)
			}
		}
	})
}

// jsonKeys returns the member names of a JSON object in order, repeats
// included (encoding/json keeps the last of two).
func jsonKeys(line string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

var eventRow = regexp.MustCompile("(?m)^\\| ((?:`[a-z_]+`(?:, )?)+)")

// TestTheEventsTableListsTheEventsLogged (defect 9): docs/operating.md's
// table of security events names exactly the events package's names, and
// each of those is logged somewhere in the code.
func TestTheEventsTableListsTheEventsLogged(t *testing.T) {
	doc, err := os.ReadFile("../docs/operating.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)
	if i := strings.Index(section, "## Security events"); i >= 0 {
		section = section[i:]
		if j := strings.Index(section[3:], "\n## "); j >= 0 {
			section = section[:j+3]
		}
	}
	var listed []string
	for _, m := range eventRow.FindAllStringSubmatch(section, -1) {
		for _, name := range strings.Split(m[1], ", ") {
			listed = append(listed, strings.Trim(name, "`"))
		}
	}
	var declared []string
	for _, n := range events.All() {
		declared = append(declared, n.String())
	}
	slices.Sort(listed)
	slices.Sort(declared)
	if !slices.Equal(listed, declared) {
		t.Errorf("docs/operating.md lists %v\nthe code logs %v", listed, declared)
	}

	// Each declared name is used outside the events package.
	src, err := os.ReadFile("../events/events.go")
	if err != nil {
		t.Fatal(err)
	}
	var code bytes.Buffer
	filepath.Walk("..", func(path string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") && !strings.Contains(path, "/events/") {
			b, _ := os.ReadFile(path)
			code.Write(b)
		}
		return nil
	})
	for _, m := range regexp.MustCompile(`(?m)^\s+([A-Z]\w+)\s+= name\(`).FindAllStringSubmatch(string(src), -1) {
		if !regexp.MustCompile(`\bevents\.` + m[1] + `\b`).Match(code.Bytes()) {
			t.Errorf("events.%s is declared but never logged", m[1])
		}
	}
}

var messageID = regexp.MustCompile(`^[a-z_]+\.[a-z_.]+$`)

// TestTokenErrorsAreWords (defect 10): the token endpoint's
// error_description is text, never one of the pages' message ids.
func TestTokenErrorsAreWords(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		a := startOIDC(t, store, nil)
		person, _ := personWithNotes(t, a, "words@example.com")
		code, verifier := codeFor(t, person, a.URL)
		redeemNotes(t, a.URL, code, verifier)
		used := redeemNotes(t, a.URL, code, verifier)
		other, otherVerifier := codeFor(t, person, a.URL)
		expectStatus(t, person.Post("/signout/everywhere", nil), http.StatusSeeOther)
		ended := redeemNotes(t, a.URL, other, otherVerifier)
		for name, r := range map[string]formResponse{"a used code": used, "a code of an ended session": ended} {
			d, _ := r.body["error_description"].(string)
			if r.body["error"] != "invalid_grant" || d == "" || messageID.MatchString(d) || strings.Contains(d, "error.") {
				t.Errorf("%s: %v", name, r.body)
			}
		}
	})
}

// TestTooManyCodesIsRefusedAtAuthorize (defect 11): past the per-account
// limit of codes in a minute, the person goes back to the application
// with an error, not with a code the token endpoint would refuse.
func TestTooManyCodesIsRefusedAtAuthorize(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		a := startOIDC(t, store, nil)
		person, _ := personWithNotes(t, a, "many@example.com")
		var last url.Values
		for i := 0; i < 70; i++ {
			u, _ := notesRequest(a.URL, nil)
			r := person.Get(pathOf(t, u))
			loc, err := url.Parse(r.Header.Get("Location"))
			if r.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), notesCallback) {
				t.Fatalf("request %d: %d %s", i+1, r.StatusCode, r.Header.Get("Location"))
			}
			if last = loc.Query(); last.Get("code") == "" {
				break
			}
		}
		if last.Get("error") != "temporarily_unavailable" || last.Get("state") != "s" || !strings.Contains(last.Get("error_description"), "minute") {
			t.Errorf("past the limit: %v, want temporarily_unavailable at the redirect URI", last)
		}
	})
}
