package tests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/tests/testkit"
)

// logoutReceiver is an application's back-channel logout endpoint: it
// checks every logout token it is sent as an application must (signature
// by a key Latchkey publishes, typ, iss, aud, iat, exp, jti, events, sub
// or sid, no nonce) and records it, with the path it came to.
type logoutReceiver struct {
	t      *testing.T
	issuer string
	keys   *oidc.RemoteKeySet
	srv    *httptest.Server

	mu       sync.Mutex
	received []receivedLogout
	failNext int           // answer 500 to this many more requests
	hang     chan struct{} // while open, requests hang
	hangPath string        // only requests to this path hang ("": all)
}

type receivedLogout struct {
	Path   string
	Claims map[string]any
	At     time.Time
}

func newLogoutReceiver(t *testing.T) *logoutReceiver {
	r := &logoutReceiver{t: t}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

// trust makes the receiver verify tokens with the keys issuer publishes.
func (r *logoutReceiver) trust(issuer string) {
	r.issuer = issuer
	r.keys = oidc.NewRemoteKeySet(context.Background(), issuer+"/.well-known/jwks.json")
}

func (r *logoutReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	hang, fail := r.hang, r.failNext > 0
	if r.hangPath != "" && req.URL.Path != r.hangPath {
		hang = nil
	}
	if fail {
		r.failNext--
	}
	r.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-req.Context().Done():
			return
		}
	}
	if fail {
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		r.t.Errorf("logout sent as %s %s", req.Method, req.Header.Get("Content-Type"))
	}
	token := req.PostFormValue("logout_token")
	claims, err := r.verify(token)
	if err != nil {
		r.t.Errorf("a logout token the application must refuse: %v\n%s", err, token)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.received = append(r.received, receivedLogout{Path: req.URL.Path, Claims: claims, At: time.Now()})
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// verify checks a logout token as OpenID Connect Back-Channel Logout 1.0
// (2.6) asks a relying party to.
func (r *logoutReceiver) verify(token string) (map[string]any, error) {
	payload, err := r.keys.VerifySignature(context.Background(), token)
	if err != nil {
		return nil, err
	}
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	var h map[string]any
	var c map[string]any
	if json.Unmarshal(header, &h) != nil || json.Unmarshal(payload, &c) != nil {
		return nil, errString("not JSON")
	}
	events, _ := c["events"].(map[string]any)
	iat, _ := c["iat"].(float64)
	exp, _ := c["exp"].(float64)
	now := float64(time.Now().Unix())
	switch {
	case h["typ"] != "logout+jwt":
		return nil, errString("typ is not logout+jwt")
	case c["iss"] != r.issuer:
		return nil, errString("wrong issuer")
	case c["aud"] == nil || c["jti"] == nil || c["jti"] == "":
		return nil, errString("no aud or jti")
	case iat == 0 || exp == 0 || exp-iat > 120 || exp < now-1 || iat > now+1:
		return nil, errString("iat/exp wrong or exp more than 2 minutes after iat")
	case events == nil || events["http://schemas.openid.net/event/backchannel-logout"] == nil:
		return nil, errString("no back-channel logout event")
	case c["sub"] == nil && c["sid"] == nil:
		return nil, errString("neither sub nor sid")
	case c["nonce"] != nil:
		return nil, errString("a nonce in a logout token")
	}
	return c, nil
}

type errString string

func (e errString) Error() string { return string(e) }

// waitFor waits (up to 5 s: the contract's bound) until n logouts have
// arrived, and returns them.
func (r *logoutReceiver) waitFor(n int) []receivedLogout {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		got := append([]receivedLogout(nil), r.received...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d logout tokens arrived within 5 s, want %d: %v", len(got), n, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// take returns and forgets what arrived.
func (r *logoutReceiver) take() []receivedLogout {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.received
	r.received = nil
	return got
}

// backChannelClients are two applications that take logout tokens at
// receiver (under prefix): portal, a confidential client, and board,
// which requires session ids.
func backChannelClients(receiver, prefix string) string {
	return `{"id": "portal", "name": "Portal", "secret_hash": "` + sha256Hex(chatSecret) + `",
		 "redirect_uris": ["https://portal.example.com/cb"], "scopes": ["openid", "email", "offline_access"],
		 "backchannel_logout_uri": "` + receiver + prefix + `/portal"},
		{"id": "board", "name": "Board", "public": true, "redirect_uris": ["http://127.0.0.1:9/board/cb"], "scopes": ["openid"],
		 "id_token_signed_response_alg": "EdDSA",
		 "backchannel_logout_uri": "` + receiver + prefix + `/board", "backchannel_logout_session_required": true}`
}

// signInTo drives b (signed in) through an authorization for client and
// redeems the code; it returns the token response.
func signInTo(t testing.TB, a *testkit.App, b *testkit.Browser, pk *testkit.Passkey, client string) formResponse {
	t.Helper()
	q := url.Values{"client_id": {client}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"}}
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {client}}
	switch client {
	case "portal", "quiet":
		q.Set("redirect_uri", "https://"+client+".example.com/cb")
		q.Set("scope", "openid offline_access")
		form.Set("client_secret", chatSecret)
	case "board":
		verifier := oauth2.GenerateVerifier()
		q.Set("redirect_uri", "http://127.0.0.1:9/board/cb")
		q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
		q.Set("code_challenge_method", "S256")
		form.Set("code_verifier", verifier)
	}
	back := authorize(t, a, b, a.URL+"/oauth2/authorize?"+q.Encode(), pk, true)
	form.Set("code", back.Get("code"))
	form.Set("redirect_uri", q.Get("redirect_uri"))
	r := postForm(t, a.URL+"/oauth2/token", form, nil)
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d %v", client, r.status, r.body)
	}
	return r
}

// TestBackChannelLogout: applications that registered a back-channel
// logout endpoint are told, within 5 s, by the instance where it
// happened, when the session that signed them in signs out (a token with
// its sid, the one in their ID token, and sub), when the person signs out
// everywhere, removes the application, or is disabled or deleted (a token
// with sub; one per session for an application that requires session
// ids). An endpoint that fails is tried again, and each failure is a
// security event.
func TestBackChannelLogout(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		receiver := newLogoutReceiver(t)
		secret := testkit.NewSecret()
		mail := testkit.StartMailServer(t, false)
		start := func(prefix string, base string) *testkit.App {
			env := map[string]string{"OIDC_CLIENTS_FILE": writeClients(t, backChannelClients(receiver.srv.URL, prefix)),
				"RATE_LIMIT_SIGNIN": "1000/1m", "LOG_FORMAT": "json"}
			if base != "" {
				env["BASE_URL"] = base
			}
			return testkit.StartApp(t, testkit.AppOptions{SecretKeys: secret, Store: store, Mail: mail, Env: env})
		}
		a := start("/a", "")
		b := start("/b", a.URL)
		receiver.trust(a.URL)

		person := a.Browser(t)
		signIn(t, a, person, "bye@example.com")
		pk := addPasskey(t, a, person)
		expectStatus(t, passkeySignIn(t, person, pk), http.StatusOK)
		portal := signInTo(t, a, person, pk, "portal")
		signInTo(t, a, person, pk, "board")
		sid := tokenClaims(t, portal.body["id_token"].(string))["sid"]
		sub := tokenClaims(t, portal.body["id_token"].(string))["sub"]
		if sid == nil || sid == "" {
			t.Fatal("the ID token carries no sid")
		}

		// "Sign out" on instance B: both applications, with the sid.
		onB := b.Browser(t)
		person.CopyCookies(onB)
		expectStatus(t, onB.Post("/signout", nil), http.StatusSeeOther)
		got := receiver.waitFor(2)
		for _, l := range got {
			if !strings.HasPrefix(l.Path, "/b/") || l.Claims["sid"] != sid || l.Claims["sub"] != sub {
				t.Errorf("after sign out on B: %s %v, want from B with sid %v and sub %v", l.Path, l.Claims, sid, sub)
			}
		}
		receiver.take()
		if r := postForm(t, a.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"portal"},
			"client_secret": {chatSecret}, "refresh_token": {portal.body["refresh_token"].(string)}}, nil); r.body["error"] != "invalid_grant" {
			t.Errorf("the portal's refresh token after its session signed out: %v", r.body)
		}

		// Two sessions, then "Sign out everywhere" on A: the portal gets
		// one token with sub only; the board (session ids required) one
		// per session, with sub and sid.
		expectStatus(t, passkeySignIn(t, person, pk), http.StatusOK)
		signInTo(t, a, person, pk, "portal")
		first := tokenClaims(t, signInTo(t, a, person, pk, "board").body["id_token"].(string))["sid"]
		laptop := a.Browser(t)
		expectStatus(t, passkeySignIn(t, laptop, pk), http.StatusOK)
		second := tokenClaims(t, signInTo(t, a, laptop, pk, "board").body["id_token"].(string))["sid"]
		expectStatus(t, person.Post("/signout/everywhere", nil), http.StatusSeeOther)
		got = receiver.waitFor(3)
		sids := map[any]bool{}
		for _, l := range got {
			switch {
			case !strings.HasPrefix(l.Path, "/a/") || l.Claims["sub"] != sub:
				t.Errorf("after sign out everywhere on A: %s %v", l.Path, l.Claims)
			case l.Path == "/a/portal" && l.Claims["sid"] != nil:
				t.Errorf("the portal's token names a session: %v", l.Claims)
			case l.Path == "/a/board":
				sids[l.Claims["sid"]] = true
			}
		}
		if !sids[first] || !sids[second] || len(got) != 3 {
			t.Errorf("after sign out everywhere: %v, want the portal once and the board for sessions %v and %v", got, first, second)
		}
		receiver.take()

		// Removing the application on the account page tells it.
		expectStatus(t, passkeySignIn(t, person, pk), http.StatusOK)
		signInTo(t, a, person, pk, "portal")
		expectStatus(t, person.Post("/account/applications/portal/revoke", nil), http.StatusSeeOther)
		if got := receiver.waitFor(1); len(got) != 1 || got[0].Path != "/a/portal" || got[0].Claims["sub"] != sub {
			t.Errorf("after removing the portal: %v", got)
		}
		receiver.take()

		// A failing endpoint is tried again; each failure is an event.
		signInTo(t, a, person, pk, "portal")
		receiver.mu.Lock()
		receiver.failNext = 2
		receiver.mu.Unlock()
		stdout, stderr, exit := admin(t, a, "", "disable", "bye@example.com")
		if exit != 0 {
			t.Fatalf("admin disable: %d %s %s", exit, stdout, stderr)
		}
		if got := receiver.waitFor(2); len(got) != 2 {
			t.Errorf("after disabling: %v", got)
		}
		if n := strings.Count(stderr, `"event":"backchannel_logout_failed"`); n != 2 {
			t.Errorf("%d backchannel_logout_failed events, want 2:\n%s", n, stderr)
		}
		receiver.take()

		// Deleting the account tells every application granted.
		admin(t, a, "", "enable", "bye@example.com")
		expectStatus(t, passkeySignIn(t, person, pk), http.StatusOK)
		expectStatus(t, person.Post("/account/delete", url.Values{"confirm": {"bye@example.com"}}), http.StatusOK)
		if got := receiver.waitFor(2); len(got) != 2 {
			t.Errorf("after deleting the account: %v", got)
		}
	})
}

// TestSignOutDoesNotWaitForApplications: an application whose endpoint
// hangs does not delay the person's answer.
func TestSignOutDoesNotWaitForApplications(t *testing.T) {
	receiver := newLogoutReceiver(t)
	receiver.hang = make(chan struct{})
	a := testkit.StartApp(t, testkit.AppOptions{Env: map[string]string{
		"OIDC_CLIENTS_FILE": writeClients(t, backChannelClients(receiver.srv.URL, "")), "RATE_LIMIT_SIGNIN": "1000/1m"}})
	receiver.trust(a.URL)
	person := a.Browser(t)
	signIn(t, a, person, "hang@example.com")
	pk := addPasskey(t, a, person)
	expectStatus(t, passkeySignIn(t, person, pk), http.StatusOK)
	signInTo(t, a, person, pk, "portal")
	start := time.Now()
	expectStatus(t, person.Post("/signout", nil), http.StatusSeeOther)
	if took := time.Since(start); took > time.Second {
		t.Errorf("sign out took %s while the application's endpoint hangs", took)
	}
	// An application whose endpoint hangs holds up only its own
	// logouts: with more of them pending than it may have in flight, the
	// other application still hears of a sign-out at once.
	receiver.mu.Lock()
	receiver.hangPath = "/board"
	receiver.mu.Unlock()
	for range 6 {
		expectStatus(t, passkeySignIn(t, person, pk), http.StatusOK)
		signInTo(t, a, person, pk, "board")
		expectStatus(t, person.Post("/signout", nil), http.StatusSeeOther)
	}
	expectStatus(t, passkeySignIn(t, person, pk), http.StatusOK)
	signInTo(t, a, person, pk, "portal")
	expectStatus(t, person.Post("/signout", nil), http.StatusSeeOther)
	for _, l := range receiver.waitFor(1) {
		if l.Path != "/portal" {
			t.Errorf("a logout arrived at %s", l.Path)
		}
	}
	receiver.take()
	receiver.mu.Lock()
	receiver.hangPath = ""
	receiver.mu.Unlock()

	// Once the endpoint answers again, the token arrives.
	receiver.mu.Lock()
	close(receiver.hang)
	receiver.hang = nil
	receiver.mu.Unlock()
	receiver.waitFor(1)
}
