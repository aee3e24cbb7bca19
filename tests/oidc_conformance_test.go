package tests

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/app"
	"github.com/latchkey/latchkey/tests/testkit"
)

// TestOpenIDConnectConformance ports the basic-profile cases of the
// OpenID conformance suite (and what RFC 6749, 7636 and 9207 ask of an
// authorization server) to tests against the real app.
func TestOpenIDConnectConformance(t *testing.T) {
	clock := testkit.NewClock()
	a := startOIDC(t, testkit.Store{}, clock)
	ctx := context.Background()
	person := a.Browser(t)
	signIn(t, a, person, "conformance@example.com")
	pk := addPasskey(t, a, person)
	expectStatus(t, passkeySignIn(t, person, pk), http.StatusOK)
	provider, err := oidc.NewProvider(ctx, a.URL)
	if err != nil {
		t.Fatal(err)
	}
	notes := oauth2.Config{ClientID: "notes", Endpoint: provider.Endpoint(), RedirectURL: notesCallback, Scopes: []string{"openid", "email"}}
	verifier := provider.Verifier(&oidc.Config{ClientID: "notes", Now: clock.Now})
	authorizeURL := func(extra url.Values) (string, string) {
		pkce := oauth2.GenerateVerifier()
		q := url.Values{"client_id": {"notes"}, "redirect_uri": {notesCallback}, "response_type": {"code"},
			"scope": {"openid email"}, "state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(pkce)},
			"code_challenge_method": {"S256"}}
		for k, v := range extra {
			q[k] = v
		}
		return a.URL + "/oauth2/authorize?" + q.Encode(), pkce
	}
	// code gets a code for notes (consenting the first time).
	code := func(extra url.Values) (string, string) {
		t.Helper()
		u, pkce := authorizeURL(extra)
		back := authorize(t, a, person, u, pk, true)
		if back.Get("code") == "" {
			t.Fatalf("no code: %v", back)
		}
		return back.Get("code"), pkce
	}
	exchange := func(form url.Values) formResponse {
		t.Helper()
		return postForm(t, a.URL+"/oauth2/token", form, nil)
	}
	redeem := func(c, pkce string) formResponse {
		t.Helper()
		return exchange(url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {notesCallback},
			"client_id": {"notes"}, "code_verifier": {pkce}})
	}
	oauthError := func(r formResponse, status int, code string) {
		t.Helper()
		if r.status != status || r.body["error"] != code {
			t.Errorf("got %d %v, want %d %s", r.status, r.body, status, code)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("an error of the token endpoint may be cached: %q", r.header.Get("Cache-Control"))
		}
	}
	// redirected returns the error a request sends back to the client.
	redirected := func(b *testkit.Browser, extra url.Values) url.Values {
		t.Helper()
		u, _ := authorizeURL(extra)
		parsed, _ := url.Parse(u)
		r := b.Get(parsed.RequestURI())
		expectStatus(t, r, http.StatusSeeOther)
		loc, _ := url.Parse(r.Header.Get("Location"))
		if !strings.HasPrefix(loc.String(), notesCallback+"?") {
			t.Fatalf("sent to %s, not back to the client", loc)
		}
		return loc.Query()
	}

	t.Run("code reuse is invalid_grant", func(t *testing.T) {
		c, pkce := code(nil)
		if r := redeem(c, pkce); r.status != http.StatusOK {
			t.Fatalf("first redemption: %d %v", r.status, r.body)
		}
		oauthError(redeem(c, pkce), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("wrong PKCE verifier is invalid_grant", func(t *testing.T) {
		c, _ := code(nil)
		oauthError(redeem(c, oauth2.GenerateVerifier()), http.StatusBadRequest, "invalid_grant")
		oauthError(redeem(c, ""), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("redirect URI mismatch", func(t *testing.T) {
		// At the authorization endpoint: a page here, never a redirect to
		// the unregistered address.
		for _, uri := range []string{"https://evil.example/cb", notesCallback + "/", notesCallback + "?x=1", ""} {
			u, _ := authorizeURL(url.Values{"redirect_uri": {uri}})
			parsed, _ := url.Parse(u)
			r := person.Get(parsed.RequestURI())
			expectPage(t, r, http.StatusBadRequest, "not registered")
			if loc := r.Header.Get("Location"); loc != "" {
				t.Errorf("redirect URI %q: redirected to %s", uri, loc)
			}
		}
		// At the token endpoint: invalid_grant.
		c, pkce := code(nil)
		oauthError(exchange(url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {notesCallback + "x"},
			"client_id": {"notes"}, "code_verifier": {pkce}}), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("nonce is echoed, at_hash is right, auth_time is present", func(t *testing.T) {
		c, pkce := code(url.Values{"nonce": {"n-0S6_WzA2Mj"}})
		tok, err := notes.Exchange(ctx, c, oauth2.VerifierOption(pkce))
		if err != nil {
			t.Fatal(err)
		}
		id, err := verifier.Verify(ctx, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			AuthTime int64 `json:"auth_time"`
		}
		id.Claims(&claims)
		if id.Nonce != "n-0S6_WzA2Mj" || claims.AuthTime == 0 || id.VerifyAccessToken(tok.AccessToken) != nil {
			t.Errorf("nonce %q, auth_time %d, at_hash %v", id.Nonce, claims.AuthTime, id.VerifyAccessToken(tok.AccessToken))
		}
		sum := sha256.Sum256([]byte(tok.AccessToken))
		if id.AccessTokenHash != base64.RawURLEncoding.EncodeToString(sum[:16]) {
			t.Errorf("at_hash %q", id.AccessTokenHash)
		}
	})
	t.Run("prompt=none", func(t *testing.T) {
		if q := redirected(a.Browser(t), url.Values{"prompt": {"none"}}); q.Get("error") != "login_required" || q.Get("state") != "s" || q.Get("iss") != a.URL {
			t.Errorf("signed out: %v, want login_required with state and iss", q)
		}
		// Signed in but the chat application was never allowed.
		q := url.Values{"client_id": {"chat"}, "redirect_uri": {chatCallback}, "response_type": {"code"}, "scope": {"openid"}, "prompt": {"none"}}
		r := person.Get("/oauth2/authorize?" + q.Encode())
		loc, _ := url.Parse(r.Header.Get("Location"))
		if loc == nil || loc.Query().Get("error") != "consent_required" {
			t.Errorf("not granted: %s, want consent_required", r.Header.Get("Location"))
		}
		// Signed in and granted: a code, without any page.
		if q := redirected(person, url.Values{"prompt": {"none"}}); q.Get("code") == "" {
			t.Errorf("signed in and granted: %v, want a code", q)
		}
	})
	t.Run("max_age and prompt=login force a fresh sign-in", func(t *testing.T) {
		clock.Advance(2 * time.Minute)
		for _, extra := range []url.Values{{"max_age": {"60"}}, {"prompt": {"login"}}} {
			u, pkce := authorizeURL(extra)
			parsed, _ := url.Parse(u)
			r := person.Get(parsed.RequestURI())
			if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/signin?next=") {
				t.Fatalf("%v: %d %s, want the sign-in page", extra, r.StatusCode, r.Header.Get("Location"))
			}
			before := clock.Now().Unix()
			back := authorize(t, a, person, u, pk, true)
			tok, err := notes.Exchange(ctx, back.Get("code"), oauth2.VerifierOption(pkce))
			if err != nil {
				t.Fatal(err)
			}
			id, _ := verifier.Verify(ctx, tok.Extra("id_token").(string))
			var claims struct {
				AuthTime int64 `json:"auth_time"`
			}
			id.Claims(&claims)
			if claims.AuthTime < before {
				t.Errorf("%v: auth_time %d is older than the request (%d)", extra, claims.AuthTime, before)
			}
			clock.Advance(2 * time.Minute)
		}
		if q := redirected(person, url.Values{"max_age": {"60"}, "prompt": {"none"}}); q.Get("error") != "login_required" {
			t.Errorf("max_age exceeded with prompt=none: %v", q)
		}
	})
	t.Run("unknown client gets a page here", func(t *testing.T) {
		u, _ := authorizeURL(url.Values{"client_id": {"nobody"}})
		parsed, _ := url.Parse(u)
		expectPage(t, person.Get(parsed.RequestURI()), http.StatusBadRequest, "not one this site knows")
		oauthError(exchange(url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"nobody"}}),
			http.StatusUnauthorized, "invalid_client")
	})
	t.Run("bad client secret is invalid_client", func(t *testing.T) {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {chatCallback}}
		r := postForm(t, a.URL+"/oauth2/token", form, http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("chat:wrong"))}})
		oauthError(r, http.StatusUnauthorized, "invalid_client")
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("no WWW-Authenticate: Basic after a failed Basic authentication")
		}
		form.Set("client_id", "chat")
		form.Set("client_secret", "wrong")
		oauthError(exchange(form), http.StatusUnauthorized, "invalid_client")
		form.Set("client_secret", chatSecret) // right secret, and Basic too: two methods
		oauthError(postForm(t, a.URL+"/oauth2/token", form, http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("chat:"+chatSecret))}}),
			http.StatusBadRequest, "invalid_request")
	})
	t.Run("a code is bound to its client", func(t *testing.T) {
		c, pkce := code(nil)
		oauthError(exchange(url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {notesCallback},
			"client_id": {"chat"}, "client_secret": {chatSecret}, "code_verifier": {pkce}}), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("a code expires after a minute", func(t *testing.T) {
		c, pkce := code(nil)
		clock.Advance(61 * time.Second)
		oauthError(redeem(c, pkce), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("tampered and foreign codes", func(t *testing.T) {
		c, pkce := code(nil)
		oauthError(redeem(c[:len(c)-2]+"AA", pkce), http.StatusBadRequest, "invalid_grant")
		oauthError(redeem(person.Cookie("__Host-rt"), pkce), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("requests the provider does not support", func(t *testing.T) {
		for _, tc := range []struct {
			extra url.Values
			want  string
		}{
			{url.Values{"response_type": {"token"}}, "unsupported_response_type"},
			{url.Values{"response_type": {"code id_token"}}, "unsupported_response_type"},
			{url.Values{"code_challenge": nil, "code_challenge_method": nil}, "invalid_request"}, // public client without PKCE
			{url.Values{"code_challenge_method": {"plain"}}, "invalid_request"},
			{url.Values{"scope": {"email"}}, "invalid_scope"},
			{url.Values{"request": {"eyJ.x.y"}}, "request_not_supported"},
			{url.Values{"response_mode": {"fragment"}}, "invalid_request"},
		} {
			if q := redirected(person, tc.extra); q.Get("error") != tc.want || q.Get("state") != "s" {
				t.Errorf("%v: %v, want %s", tc.extra, q, tc.want)
			}
		}
		oauthError(exchange(url.Values{"grant_type": {"password"}, "client_id": {"notes"}}), http.StatusBadRequest, "unsupported_grant_type")
		oauthError(exchange(url.Values{"grant_type": {"client_credentials"}, "client_id": {"chat"}, "client_secret": {chatSecret}}),
			http.StatusBadRequest, "unsupported_grant_type")
	})
	t.Run("state passes untouched, or not at all", func(t *testing.T) {
		odd := "a b&c=d/é%20"
		u, _ := authorizeURL(url.Values{"state": {odd}})
		if got := authorize(t, a, person, u, pk, true).Get("state"); got != odd {
			t.Errorf("state %q came back as %q", odd, got)
		}
		u, _ = authorizeURL(url.Values{"state": nil})
		if back := authorize(t, a, person, u, pk, true); back.Has("state") || back.Get("code") == "" {
			t.Errorf("without a state: %v", back)
		}
	})
	t.Run("deny sends access_denied", func(t *testing.T) {
		q := url.Values{"client_id": {"chat"}, "redirect_uri": {chatCallback}, "response_type": {"code"}, "scope": {"openid"}, "state": {"d"}}
		back := authorize(t, a, person, a.URL+"/oauth2/authorize?"+q.Encode(), pk, false)
		if back.Get("error") != "access_denied" || back.Get("state") != "d" {
			t.Errorf("denied: %v", back)
		}
	})
	t.Run("two applications sign the same person in at the same moment", func(t *testing.T) {
		chat := oauth2.Config{ClientID: "chat", ClientSecret: chatSecret, Endpoint: provider.Endpoint(), RedirectURL: chatCallback, Scopes: []string{"openid"}}
		chatCode := authorize(t, a, person, chat.AuthCodeURL("c"), pk, true).Get("code")
		notesCode, pkce := code(nil)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Go(func() { _, errs[0] = chat.Exchange(ctx, chatCode) })
		wg.Go(func() { _, errs[1] = notes.Exchange(ctx, notesCode, oauth2.VerifierOption(pkce)) })
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Errorf("two codes redeemed at once: %v", errs)
		}
	})
	t.Run("userinfo refuses bad tokens", func(t *testing.T) {
		for _, h := range []string{"", "Bearer", "Bearer x.y.z", "Basic abc", "Bearer " + person.Cookie("__Host-at")} {
			req, _ := http.NewRequest(http.MethodGet, a.URL+"/oauth2/userinfo", nil)
			if h != "" {
				req.Header.Set("Authorization", h)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("Authorization %.30q: %d %q", h, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		}
	})
	t.Run("CORS only for registered origins", func(t *testing.T) {
		for _, tc := range []struct {
			origin string
			allow  bool
		}{{"http://127.0.0.1:9", true}, {"https://chat.example.com", true}, {"https://evil.example", false}} {
			for _, path := range []string{"/oauth2/token", "/oauth2/userinfo", "/.well-known/openid-configuration", "/.well-known/jwks.json"} {
				req, _ := http.NewRequest(http.MethodOptions, a.URL+path, nil)
				req.Header.Set("Origin", tc.origin)
				req.Header.Set("Access-Control-Request-Method", "POST")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				got := resp.Header.Get("Access-Control-Allow-Origin")
				if (got == tc.origin) != tc.allow || (tc.allow && resp.StatusCode != http.StatusNoContent) {
					t.Errorf("preflight of %s from %s: %d, allow-origin %q", path, tc.origin, resp.StatusCode, got)
				}
			}
		}
		// A form that ends in a redirect back to an application may go
		// there: form-action names the registered redirect origins, and
		// no other.
		csp := person.Get("/signin").Header.Get("Content-Security-Policy")
		if !strings.HasSuffix(csp, "form-action 'self' http://127.0.0.1:9 https://chat.example.com https://wiki.example.com") {
			t.Errorf("CSP %q", csp)
		}
		// Pages get no CORS at all.
		req, _ := http.NewRequest(http.MethodGet, a.URL+"/account", nil)
		req.Header.Set("Origin", "http://127.0.0.1:9")
		resp, _ := http.DefaultClient.Do(req)
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Error("a page answered with CORS headers")
		}
	})
	t.Run("the token endpoint is rate limited", func(t *testing.T) {
		b := testkit.StartApp(t, testkit.AppOptions{Env: map[string]string{"OIDC_CLIENTS_FILE": a.Env["OIDC_CLIENTS_FILE"], "RATE_LIMIT_SIGNIN": "3/1m"}})
		var last formResponse
		for range 4 {
			last = postForm(t, b.URL+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {"notes"}, "code": {"x"}}, nil)
		}
		if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
			t.Errorf("the fourth attempt: %d %v", last.status, last.body)
		}
	})
}

// TestInvalidClientFilesStopTheServer: a bad OIDC_CLIENTS_FILE stops the
// server at start, with a message naming the client and the field.
func TestInvalidClientFilesStopTheServer(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{`{"clients": [{"id": "a", "name": "A", "redirect_uris": ["https://a.example/cb"]}]}`, `client "a": secret_hash`},
		{`{"clients": [{"id": "a", "name": "A", "public": true, "redirect_uris": ["http://a.example/cb"]}]}`, `client "a": redirect_uris`},
		{`{"clients": [{"id": "a", "name": "A", "public": true, "redirect_uris": ["https://a.example/cb#x"]}]}`, `client "a": redirect_uris`},
		{`{"clients": [{"id": "a", "name": "A", "public": true, "redirect_uris": []}]}`, `client "a": redirect_uris`},
		{`{"clients": [{"id": "a b", "name": "A", "public": true, "redirect_uris": ["https://a.example/cb"]}]}`, `client "a b": id`},
		{`{"clients": [{"name": "A", "public": true, "redirect_uris": ["https://a.example/cb"]}]}`, `client 1: id`},
		{`{"clients": [{"id": "a", "public": true, "redirect_uris": ["https://a.example/cb"]}]}`, `client "a": name`},
		{`{"clients": [{"id": "a", "name": "A", "public": true, "redirect_uris": ["https://a.example/cb"], "scopes": ["email"]}]}`, `client "a": scopes`},
		{`{"clients": [{"id": "a", "name": "A", "public": true, "secret_hash": "sha256:00", "redirect_uris": ["https://a.example/cb"]}]}`, `client "a": secret_hash`},
		{`{"clients": [{"id": "a", "name": "A", "public": true, "redirect_uris": ["https://a.example/cb"]}, {"id": "a", "name": "B", "public": true, "redirect_uris": ["https://b.example/cb"]}]}`, `client "a": id: listed twice`},
		{`{"clients": [{"id": "a", "name": "A", "public": true, "redirect_uris": ["https://a.example/cb"], "colour": "blue"}]}`, `unknown field "colour"`},
		{`not json`, "OIDC_CLIENTS_FILE"},
	} {
		path := t.TempDir() + "/clients.json"
		os.WriteFile(path, []byte(tc.file), 0o600)
		_, err := app.ConfigFromEnv(func(k string) string {
			if k == "OIDC_CLIENTS_FILE" {
				return path
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s\n  gives %v, want it to name %q", tc.file, err, tc.want)
		}
	}
}
