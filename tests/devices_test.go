package tests

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/tests/testkit"
)

// iPhoneUA is Safari's User-Agent on an iPhone.
const iPhoneUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1"

var (
	sessionItem    = regexp.MustCompile(`(?s)<li id="session-([A-Za-z0-9_-]+)">(.*?)</li>`)
	sessionSignOut = regexp.MustCompile(`action="/account/sessions/([A-Za-z0-9_-]+)/signout"`)
	datetime       = regexp.MustCompile(`datetime="([^"]+)"`)
)

// listedSessions returns the sessions b's account page lists, by id: the
// text of each entry.
func listedSessions(t *testing.T, b *testkit.Browser) (map[string]string, []string) {
	t.Helper()
	r := b.Get("/account")
	expectStatus(t, r, http.StatusOK)
	out := map[string]string{}
	var order []string
	for _, m := range sessionItem.FindAllStringSubmatch(r.Body, -1) {
		out[m[1]] = m[2]
		order = append(order, m[1])
	}
	return out, order
}

// sidOf returns the session id in b's access token.
func sidOf(t *testing.T, b *testkit.Browser) string {
	t.Helper()
	sid, _ := tokenClaims(t, b.Cookie("__Host-at"))["sid"].(string)
	if sid == "" {
		t.Fatal("the browser holds no session")
	}
	return sid
}

// TestWhereYouAreSignedIn: the account page lists every session of the
// account from its sign-in (not its first refresh), with the kind of
// browser and system, how it signed in, when, and when it was last
// active, this browser first; signing in again in a browser takes its
// old session's place; "Sign out" on another session ends it as its own
// sign-out would, on every instance, its refresh token too, and is a
// security event; every bad request is a 4xx.
func TestWhereYouAreSignedIn(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		secret, mail, clock := testkit.NewSecret(), testkit.StartMailServer(t, false), testkit.NewClock()
		var log testkit.SyncBuffer
		a := testkit.StartApp(t, testkit.AppOptions{SecretKeys: secret, Store: store, Mail: mail, Clock: clock, Log: &log,
			Env: map[string]string{"LOG_FORMAT": "json", "LOG_LEVEL": "info"}})
		b := testkit.StartApp(t, testkit.AppOptions{SecretKeys: secret, Store: store, Mail: mail, Clock: clock,
			Env: map[string]string{"BASE_URL": a.URL}})

		laptop := a.Browser(t)
		signIn(t, a, laptop, "devices@example.com")
		pk := addPasskey(t, a, laptop)
		firstLaptopSID := sidOf(t, laptop)
		phone := b.Browser(t)
		phone.Header.Set("User-Agent", iPhoneUA)
		expectStatus(t, passkeySignIn(t, phone, pk), http.StatusOK)
		phoneSID := sidOf(t, phone)

		// Both listed at once, this browser first; only the other has a
		// sign-out button.
		listed, order := listedSessions(t, laptop)
		if len(order) != 2 || order[0] != firstLaptopSID || order[1] != phoneSID {
			t.Fatalf("the account page lists %v, want this browser %s then the phone %s", order, firstLaptopSID, phoneSID)
		}
		for _, want := range []string{"Chrome on Linux", "This browser", "with an email link"} {
			if !strings.Contains(listed[firstLaptopSID], want) {
				t.Errorf("this browser's entry lacks %q:\n%s", want, listed[firstLaptopSID])
			}
		}
		for _, want := range []string{"Safari on iOS", "with a passkey", "last active", "Sign out Safari on iOS, signed in"} {
			if !strings.Contains(listed[phoneSID], want) {
				t.Errorf("the phone's entry lacks %q:\n%s", want, listed[phoneSID])
			}
		}
		if forms := sessionSignOut.FindAllStringSubmatch(laptop.Get("/account").Body, -1); len(forms) != 1 || forms[0][1] != phoneSID {
			t.Errorf("sign-out buttons for %v, want the phone's only", forms)
		}

		// A step-up in the laptop: its new session takes the old one's
		// place (the old one has no browser any more).
		expectStatus(t, passkeySignIn(t, laptop, pk), http.StatusOK)
		laptopSID := sidOf(t, laptop)
		if _, order = listedSessions(t, laptop); len(order) != 2 || order[0] != laptopSID || order[1] != phoneSID {
			t.Errorf("after a step-up the page lists %v, want %s and %s", order, laptopSID, phoneSID)
		}

		// Last active is the last refresh.
		clock.Advance(11 * time.Minute)
		refreshedAt := clock.Now()
		if !signedIn(t, phone) {
			t.Fatal("the phone's silent refresh failed")
		}
		listed, _ = listedSessions(t, laptop)
		times := datetime.FindAllStringSubmatch(listed[phoneSID], -1)
		if len(times) != 2 {
			t.Fatalf("the phone's entry has %d times, want its sign-in and its last activity:\n%s", len(times), listed[phoneSID])
		}
		active, err := time.Parse(time.RFC3339, times[1][1])
		if err != nil || refreshedAt.Sub(active) > time.Second || active.Sub(refreshedAt) > 2*time.Second {
			t.Errorf("last active %s, want the refresh at %s", times[1][1], refreshedAt.UTC().Format(time.RFC3339))
		}

		// The laptop signs the phone out, here on A; the phone is on B.
		stolen := b.Browser(t)
		phone.CopyCookies(stolen)
		r := laptop.Post("/account/sessions/"+phoneSID+"/signout", nil)
		expectStatus(t, r, http.StatusSeeOther)
		if r.Header.Get("Location") != "/account" {
			t.Errorf("signing out another session goes to %q", r.Header.Get("Location"))
		}
		deadline := time.Now().Add(2 * time.Second)
		for signedIn(t, phone) {
			if time.Now().After(deadline) {
				t.Fatal("instance B still accepts the phone's session 2 s after it was signed out on A")
			}
			time.Sleep(20 * time.Millisecond)
		}
		stolen.DeleteCookie("__Host-at")
		if signedIn(t, stolen) {
			t.Error("the signed-out session's refresh token still works")
		}
		if !signedIn(t, laptop) {
			t.Error("signing out the phone signed out the laptop")
		}
		if _, order = listedSessions(t, laptop); len(order) != 1 || order[0] != laptopSID {
			t.Errorf("after signing the phone out the page lists %v", order)
		}
		if !strings.Contains(log.String(), `"event":"signout_session"`) || !strings.Contains(log.String(), `"session":"`+phoneSID+`"`) {
			t.Error("no signout_session security event naming the phone's session")
		}
		for _, line := range strings.Split(log.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["event"] == "signout_session" && e["user"] == "" {
				t.Errorf("the event names no account: %s", line)
			}
		}

		// Bad requests: a clear 4xx each, and nothing ends.
		stranger := a.Browser(t)
		signIn(t, a, stranger, "stranger@example.com")
		for _, tc := range []struct {
			sid    string
			status int
		}{
			{phoneSID, http.StatusNotFound},           // ended already
			{sidOf(t, stranger), http.StatusNotFound}, // another account's
			{"nope", http.StatusNotFound},
			{strings.Repeat("a", 200), http.StatusNotFound},
			{"a.b", http.StatusNotFound},
			{url.PathEscape("<script>"), http.StatusNotFound},
			{laptopSID, http.StatusBadRequest}, // this browser's: that is "Sign out"
		} {
			r := laptop.Post("/account/sessions/"+tc.sid+"/signout", nil)
			expectPage(t, r, tc.status)
		}
		if !signedIn(t, laptop) || !signedIn(t, stranger) {
			t.Error("a refused request ended a session")
		}
		r = a.Browser(t).Post("/account/sessions/"+laptopSID+"/signout", nil)
		expectStatus(t, r, http.StatusSeeOther)
		if !strings.HasPrefix(r.Header.Get("Location"), "/signin") {
			t.Errorf("signed out, the action goes to %q", r.Header.Get("Location"))
		}
		expectStatus(t, laptop.Get("/account/sessions/"+laptopSID+"/signout"), http.StatusMethodNotAllowed)
	})
}

// TestAnEmailChangeListsOnlyTheSessionThatGoesOn: confirming a new
// address signs out every other session, and the account page then lists
// this browser's alone.
func TestAnEmailChangeListsOnlyTheSessionThatGoesOn(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b, other := a.Browser(t), a.Browser(t)
	signIn(t, a, b, "mover@example.com")
	signIn(t, a, other, "mover@example.com")
	if _, order := listedSessions(t, b); len(order) != 2 {
		t.Fatalf("%d sessions listed before the change, want 2", len(order))
	}
	expectStatus(t, b.Post("/account/email", url.Values{"email": {"moved@example.com"}}), http.StatusOK)
	change := emailLink(t, a, "moved@example.com", 0, "/account/email/confirm")
	expectStatus(t, b.Post("/account/email/confirm", url.Values{"token": {change}}), http.StatusOK)
	listed, order := listedSessions(t, b)
	if len(order) != 1 || order[0] != sidOf(t, b) || !strings.Contains(listed[order[0]], "This browser") {
		t.Errorf("after the change the page lists %v, want this browser's session %s", order, sidOf(t, b))
	}
	if signedIn(t, other) {
		t.Error("the other session survived the change")
	}
}

// TestSigningOutAnotherSessionTellsItsApplications: ending another
// session on the account page ends it for the applications it signed in
// too, as its own sign-out would: they get a back-channel logout token
// with its sid, and their refresh tokens of it stop working.
func TestSigningOutAnotherSessionTellsItsApplications(t *testing.T) {
	receiver := newLogoutReceiver(t)
	a := testkit.StartApp(t, testkit.AppOptions{Env: map[string]string{
		"OIDC_CLIENTS_FILE": writeClients(t, backChannelClients(receiver.srv.URL, "/a")), "RATE_LIMIT_SIGNIN": "1000/1m"}})
	receiver.trust(a.URL)
	laptop := a.Browser(t)
	signIn(t, a, laptop, "apps@example.com")
	pk := addPasskey(t, a, laptop)
	phone := a.Browser(t)
	expectStatus(t, passkeySignIn(t, phone, pk), http.StatusOK)
	board := tokenClaims(t, signInTo(t, a, phone, pk, "board").body["id_token"].(string))
	portal := signInTo(t, a, phone, pk, "portal")

	expectStatus(t, laptop.Post("/account/sessions/"+sidOf(t, phone)+"/signout", nil), http.StatusSeeOther)
	got := receiver.waitFor(2)
	for _, l := range got {
		if l.Claims["sid"] != board["sid"] || l.Claims["sub"] != board["sub"] {
			t.Errorf("logout token %s %v, want sid %v and sub %v", l.Path, l.Claims, board["sid"], board["sub"])
		}
	}
	if r := postForm(t, a.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"portal"},
		"client_secret": {chatSecret}, "refresh_token": {portal.body["refresh_token"].(string)}}, nil); r.body["error"] != "invalid_grant" {
		t.Errorf("the portal's refresh token of the signed-out session: %v", r.body)
	}
}
