package tests

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/app"
	"github.com/latchkey/latchkey/tests/testkit"
)

// TestOpenIDConnectConformance ports the cases of the OpenID Foundation's
// Basic OP conformance plan (each subtest named after its module), and
// what RFC 6749, 7636 and 9207 ask of an authorization server, to tests
// against the real app, on both engines.
func TestOpenIDConnectConformance(t *testing.T) {
	testkit.EachEngine(t, testConformance)
}

func testConformance(t *testing.T, store testkit.Store) {
	clock := testkit.NewClock()
	a := startOIDC(t, store, clock)
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
	// redirected returns the query a request sends back to the client.
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
	// idToken redeems a code and returns the verified ID token and its
	// raw form.
	idToken := func(c, pkce string) (*oidc.IDToken, string, *oauth2.Token) {
		t.Helper()
		tok, err := notes.Exchange(ctx, c, oauth2.VerifierOption(pkce))
		if err != nil {
			t.Fatal(err)
		}
		raw := tok.Extra("id_token").(string)
		id, err := verifier.Verify(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		return id, raw, tok
	}
	authTime := func(id *oidc.IDToken) int64 {
		var claims struct {
			AuthTime int64 `json:"auth_time"`
		}
		id.Claims(&claims)
		return claims.AuthTime
	}

	t.Run("OIDCCServer", func(t *testing.T) {
		// nonce echoed, at_hash right, auth_time present, sid present.
		c, pkce := code(url.Values{"nonce": {"n-0S6_WzA2Mj"}})
		id, raw, tok := idToken(c, pkce)
		if id.Nonce != "n-0S6_WzA2Mj" || authTime(id) == 0 || id.VerifyAccessToken(tok.AccessToken) != nil {
			t.Errorf("nonce %q, auth_time %d, at_hash %v", id.Nonce, authTime(id), id.VerifyAccessToken(tok.AccessToken))
		}
		sum := sha256.Sum256([]byte(tok.AccessToken))
		if id.AccessTokenHash != base64.RawURLEncoding.EncodeToString(sum[:16]) {
			t.Errorf("at_hash %q", id.AccessTokenHash)
		}
		if tokenClaims(t, raw)["sid"] == "" || tokenClaims(t, raw)["sid"] == nil {
			t.Error("the ID token has no sid")
		}
	})
	t.Run("OIDCCEnsureRequestWithoutNonceSucceedsForCodeFlow", func(t *testing.T) {
		c, pkce := code(nil)
		if id, _, _ := idToken(c, pkce); id.Nonce != "" {
			t.Errorf("a nonce was invented: %q", id.Nonce)
		}
	})
	t.Run("OIDCCAuthCodeReuse", func(t *testing.T) {
		c, pkce := code(nil)
		if r := redeem(c, pkce); r.status != http.StatusOK {
			t.Fatalf("first redemption: %d %v", r.status, r.body)
		}
		oauthError(redeem(c, pkce), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("OIDCCAuthCodeReuseAfter30Seconds", func(t *testing.T) {
		// The code is refused, and what its first use gave ends too
		// (RFC 6749 4.1.2): its access token no longer reaches userinfo.
		c, pkce := code(nil)
		first := redeem(c, pkce)
		if first.status != http.StatusOK {
			t.Fatalf("first redemption: %d %v", first.status, first.body)
		}
		clock.Advance(30 * time.Second)
		oauthError(redeem(c, pkce), http.StatusBadRequest, "invalid_grant")
		token := &oauth2.Token{AccessToken: first.body["access_token"].(string), TokenType: "Bearer"}
		if _, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(token)); err == nil {
			t.Error("the access token of a code used twice still reaches userinfo")
		}
	})
	t.Run("OIDCCEnsureRequestWithValidPkceSucceeds", func(t *testing.T) {
		c, pkce := code(nil)
		if r := redeem(c, pkce); r.status != http.StatusOK {
			t.Errorf("%d %v", r.status, r.body)
		}
	})
	t.Run("RFC7636WrongVerifier", func(t *testing.T) {
		c, _ := code(nil)
		oauthError(redeem(c, oauth2.GenerateVerifier()), http.StatusBadRequest, "invalid_grant")
		oauthError(redeem(c, ""), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("OIDCCEnsureRegisteredRedirectUri", func(t *testing.T) {
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
	t.Run("OIDCCPromptNoneNotLoggedIn", func(t *testing.T) {
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
	})
	t.Run("OIDCCPromptNoneLoggedIn", func(t *testing.T) {
		code(nil) // (granted)
		if q := redirected(person, url.Values{"prompt": {"none"}}); q.Get("code") == "" {
			t.Errorf("signed in and granted: %v, want a code", q)
		}
	})
	t.Run("OIDCCMaxAge10000", func(t *testing.T) {
		if q := redirected(person, url.Values{"max_age": {"10000"}}); q.Get("code") == "" {
			t.Errorf("a session well within max_age: %v, want a code without a sign-in", q)
		}
	})
	for _, tc := range []struct {
		module string
		extra  url.Values
	}{{"OIDCCMaxAge1", url.Values{"max_age": {"1"}}}, {"OIDCCPromptLogin", url.Values{"prompt": {"login"}}}} {
		t.Run(tc.module, func(t *testing.T) {
			clock.Advance(2 * time.Minute)
			u, pkce := authorizeURL(tc.extra)
			parsed, _ := url.Parse(u)
			r := person.Get(parsed.RequestURI())
			if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/signin?") {
				t.Fatalf("%d %s, want the sign-in page", r.StatusCode, r.Header.Get("Location"))
			}
			before := clock.Now().Unix()
			back := authorize(t, a, person, u, pk, true)
			if id, _, _ := idToken(back.Get("code"), pkce); authTime(id) < before {
				t.Errorf("auth_time %d is older than the request (%d)", authTime(id), before)
			}
			clock.Advance(2 * time.Minute)
			if q := redirected(person, url.Values{"max_age": {"60"}, "prompt": {"none"}}); q.Get("error") != "login_required" {
				t.Errorf("max_age exceeded with prompt=none: %v", q)
			}
		})
	}
	t.Run("OIDCCEnsureRequestWithUnknownParameterSucceeds", func(t *testing.T) {
		if q := redirected(person, url.Values{"extra": {"foobar"}}); q.Get("code") == "" {
			t.Errorf("%v", q)
		}
	})
	for _, tc := range []struct {
		module string
		extra  url.Values
	}{
		{"OIDCCDisplayPage", url.Values{"display": {"page"}}},
		{"OIDCCDisplayPopup", url.Values{"display": {"popup"}}},
		{"OIDCCEnsureRequestWithAcrValuesSucceeds", url.Values{"acr_values": {"1 2"}}},
		{"OIDCCClaimsEssential", url.Values{"claims": {`{"userinfo":{"name":{"essential":true}}}`}}},
		{"OIDCCScopeEmail", url.Values{"scope": {"openid email"}}},
		{"OIDCCEnsureOtherScopeOrderSucceeds", url.Values{"scope": {"email openid"}}},
	} {
		t.Run(tc.module, func(t *testing.T) {
			expectStatus(t, passkeySignIn(t, person, pk), http.StatusOK)
			c, pkce := code(tc.extra)
			if id, _, _ := idToken(c, pkce); id.Subject == "" {
				t.Error("no subject")
			}
		})
	}
	t.Run("OIDCCIdTokenHint", func(t *testing.T) {
		expectStatus(t, passkeySignIn(t, person, pk), http.StatusOK)
		c, pkce := code(nil)
		_, own, _ := idToken(c, pkce)
		if q := redirected(person, url.Values{"prompt": {"none"}, "id_token_hint": {own}}); q.Get("code") == "" {
			t.Errorf("prompt=none with the person's own ID token: %v, want a code", q)
		}
		other := a.Browser(t)
		signIn(t, a, other, "other-conformance@example.com")
		otherPK := addPasskey(t, a, other)
		u, otherPKCE := authorizeURL(nil)
		back := authorize(t, a, other, u, otherPK, true)
		_, theirs, _ := idToken(back.Get("code"), otherPKCE)
		if q := redirected(person, url.Values{"prompt": {"none"}, "id_token_hint": {theirs}}); q.Get("error") != "login_required" {
			t.Errorf("prompt=none with another account's ID token: %v, want login_required", q)
		}
		if q := redirected(person, url.Values{"prompt": {"none"}, "id_token_hint": {"x.y.z"}}); q.Get("error") != "invalid_request" {
			t.Errorf("prompt=none with a forged hint: %v, want invalid_request", q)
		}
	})
	t.Run("OIDCCLoginHint", func(t *testing.T) {
		stranger := a.Browser(t)
		u, _ := authorizeURL(url.Values{"login_hint": {"Hinted@Example.com"}})
		r := stranger.Get(pathOf(t, u))
		if !toSignIn(r) {
			t.Fatalf("%d %s", r.StatusCode, r.Header.Get("Location"))
		}
		expectPage(t, stranger.Get(r.Header.Get("Location")), http.StatusOK, `value="hinted@example.com"`)
	})
	t.Run("hostile login_hint and ui_locales", func(t *testing.T) {
		// A hint that is no address fills in nothing (and is never put on
		// the page as it came); locales that are garbage, or far too
		// long, are ignored: the page is in the browser's language.
		stranger := a.Browser(t)
		for _, extra := range []url.Values{
			{"login_hint": {`"><script>alert(1)</script>@x.example`}},
			{"login_hint": {"ann@example.com\r\nBcc: evil@example.com"}},
			{"login_hint": {strings.Repeat("a", 300) + "@example.com"}},
			{"ui_locales": {"<script> ;q=2, de;;;"}},
			{"ui_locales": {strings.Repeat("de ", 200)}},
			{"ui_locales": {"\x00\xff"}},
		} {
			u, _ := authorizeURL(extra)
			r := stranger.Get(pathOf(t, u))
			if !toSignIn(r) {
				t.Fatalf("%v: %d %s", extra, r.StatusCode, r.Header.Get("Location"))
			}
			page := stranger.Get(r.Header.Get("Location"))
			expectPage(t, page, http.StatusOK, `<html lang="en"`)
			if strings.Contains(page.Body, "<script>alert") || strings.Contains(page.Body, "evil@") || regexp.MustCompile(`id="email"[^>]*value="[^"]`).MatchString(page.Body) {
				t.Errorf("%v: the page took the hint in:\n%s", extra, clip(page.Body))
			}
		}
	})
	t.Run("OIDCCUiLocales", func(t *testing.T) {
		stranger := a.Browser(t)
		u, _ := authorizeURL(url.Values{"ui_locales": {"de-CH fr"}})
		r := stranger.Get(pathOf(t, u))
		if !toSignIn(r) {
			t.Fatalf("%d %s", r.StatusCode, r.Header.Get("Location"))
		}
		expectPage(t, stranger.Get(r.Header.Get("Location")), http.StatusOK, `<html lang="de"`, "Anmelden")
		// The consent page, for a person who never chose a language.
		q := url.Values{"client_id": {"chat"}, "redirect_uri": {chatCallback}, "response_type": {"code"}, "scope": {"openid"}, "ui_locales": {"es"}}
		expectPage(t, person.Get("/oauth2/authorize?"+q.Encode()), http.StatusOK, `<html lang="es"`)
		// A person's own choice wins.
		chosen := a.Browser(t)
		chosen.SetCookie("__Host-lang", "fr")
		r = chosen.Get(pathOf(t, u))
		expectPage(t, chosen.Get(r.Header.Get("Location")), http.StatusOK, `<html lang="fr"`)
	})
	t.Run("OIDCCEnsurePostRequestSucceeds", func(t *testing.T) {
		u, pkce := authorizeURL(nil)
		parsed, _ := url.Parse(u)
		req, _ := http.NewRequest(http.MethodPost, a.URL+"/oauth2/authorize", strings.NewReader(parsed.RawQuery))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://notes.example.org")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		r := person.Do(req)
		if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/oauth2/authorize?") {
			t.Fatalf("a relying party's form POST: %d %s", r.StatusCode, r.Header.Get("Location"))
		}
		back := authorize(t, a, person, a.URL+r.Header.Get("Location"), pk, true)
		if id, _, _ := idToken(back.Get("code"), pkce); id.Subject == "" {
			t.Error("no subject")
		}
		// The consent page's answer is still a change only this site may
		// post.
		q := url.Values{"client_id": {"chat"}, "redirect_uri": {chatCallback}, "response_type": {"code"}, "scope": {"openid"}}
		page := person.Get("/oauth2/authorize?" + q.Encode())
		sealed := consentRequest.FindStringSubmatch(page.Body)
		if sealed == nil {
			t.Fatalf("no consent page:\n%s", clip(page.Body))
		}
		req, _ = http.NewRequest(http.MethodPost, a.URL+"/oauth2/authorize",
			strings.NewReader(url.Values{"request": {sealed[1]}, "decision": {"allow"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		expectStatus(t, person.Do(req), http.StatusForbidden)
	})
	t.Run("OIDCCRefreshToken", func(t *testing.T) {
		offline := notes
		offline.Scopes = []string{"openid", "email", "offline_access"}
		u, pkce := authorizeURL(url.Values{"scope": {"openid email offline_access"}})
		back := authorize(t, a, person, u, pk, true)
		tok, err := offline.Exchange(ctx, back.Get("code"), oauth2.VerifierOption(pkce))
		if err != nil || tok.RefreshToken == "" {
			t.Fatalf("%v, refresh token %q", err, tok.RefreshToken)
		}
		id, _ := verifier.Verify(ctx, tok.Extra("id_token").(string))
		tok.Expiry = time.Now().Add(-time.Minute)
		next, err := offline.TokenSource(ctx, tok).Token()
		if err != nil {
			t.Fatal(err)
		}
		id2, err := verifier.Verify(ctx, next.Extra("id_token").(string))
		if err != nil || id2.Subject != id.Subject || next.RefreshToken == tok.RefreshToken {
			t.Errorf("refreshed: %v, same subject %v, rotated %v", err, id2 != nil && id2.Subject == id.Subject, next.RefreshToken != tok.RefreshToken)
		}
	})
	t.Run("OIDCCUserinfoGetPostHeaderPostBody", func(t *testing.T) {
		c, pkce := code(nil)
		access := redeem(c, pkce).body["access_token"].(string)
		for _, how := range []string{"GET header", "POST header", "POST body"} {
			var req *http.Request
			switch how {
			case "GET header":
				req, _ = http.NewRequest(http.MethodGet, a.URL+"/oauth2/userinfo", nil)
				req.Header.Set("Authorization", "Bearer "+access)
			case "POST header":
				req, _ = http.NewRequest(http.MethodPost, a.URL+"/oauth2/userinfo", nil)
				req.Header.Set("Authorization", "Bearer "+access)
			case "POST body":
				req, _ = http.NewRequest(http.MethodPost, a.URL+"/oauth2/userinfo", strings.NewReader("access_token="+access))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("userinfo by %s: %d", how, resp.StatusCode)
			}
		}
	})
	t.Run("OIDCCServerClientSecretPost", func(t *testing.T) {
		chat := oauth2.Config{ClientID: "chat", ClientSecret: chatSecret, RedirectURL: chatCallback, Scopes: []string{"openid"},
			Endpoint: oauth2.Endpoint{AuthURL: provider.Endpoint().AuthURL, TokenURL: provider.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
		if _, err := chat.Exchange(ctx, authorize(t, a, person, chat.AuthCodeURL("c"), pk, true).Get("code")); err != nil {
			t.Error(err)
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
	t.Run("OIDCCResponseTypeMissing and requests the provider does not support", func(t *testing.T) {
		for _, tc := range []struct {
			extra url.Values
			want  string
		}{
			{url.Values{"response_type": nil}, "unsupported_response_type"},
			{url.Values{"response_type": {"token"}}, "unsupported_response_type"},
			{url.Values{"response_type": {"code id_token"}}, "unsupported_response_type"},
			{url.Values{"code_challenge": nil, "code_challenge_method": nil}, "invalid_request"}, // public client without PKCE
			{url.Values{"code_challenge_method": {"plain"}}, "invalid_request"},
			{url.Values{"scope": {"email"}}, "invalid_scope"},
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
	t.Run("OIDCCUnsignedRequestObjectSupportedCorrectlyOrRejectedAsUnsupported", func(t *testing.T) {
		if q := redirected(person, url.Values{"request": {"eyJhbGciOiJub25lIn0.eyJzdGF0ZSI6InMifQ."}}); q.Get("error") != "request_not_supported" || q.Get("state") != "s" {
			t.Errorf("%v, want request_not_supported", q)
		}
	})
	t.Run("OIDCCRequestUriUnsignedSupportedCorrectlyOrRejectedAsUnsupported", func(t *testing.T) {
		if q := redirected(person, url.Values{"request_uri": {"https://notes.example.org/req.jwt"}}); q.Get("error") != "request_uri_not_supported" || q.Get("state") != "s" {
			t.Errorf("%v, want request_uri_not_supported", q)
		}
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
		q := url.Values{"client_id": {"chat"}, "redirect_uri": {chatCallback}, "response_type": {"code"}, "scope": {"openid"}, "state": {"d"}, "prompt": {"consent"}}
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
	t.Run("discovery lists what is supported", func(t *testing.T) {
		var d map[string]any
		json.Unmarshal([]byte(a.Browser(t).Get("/.well-known/openid-configuration").Body), &d)
		for _, k := range []string{"backchannel_logout_supported", "backchannel_logout_session_supported"} {
			if d[k] != true {
				t.Errorf("discovery: %s = %v", k, d[k])
			}
		}
		if !strings.Contains(fmt.Sprint(d["claims_supported"]), "sid") || !strings.Contains(fmt.Sprint(d["ui_locales_supported"]), "de") {
			t.Errorf("discovery: claims %v, ui_locales %v", d["claims_supported"], d["ui_locales_supported"])
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
		{`{"clients": [{"id": "a", "name": "A", "public": true, "redirect_uris": ["https://a.example/cb"], "allowed_groups": ["ops", "Ops"]}]}`, `client "a": allowed_groups: "Ops"`},
		{`{"clients": [{"id": "a", "name": "A", "public": true, "redirect_uris": ["https://a.example/cb"], "allowed_groups": []}]}`, `client "a": allowed_groups`},
		{`{"clients": [{"id": "a", "name": "A", "public": true, "redirect_uris": ["https://a.example/cb"], "scopes": ["openid", "roles"]}]}`, `client "a": scopes`},
		{`{"clients": [{"id": "a", "name": "A", "public": true, "redirect_uris": ["https://a.example/cb"], "backchannel_logout_uri": "http://a.example/logout"}]}`, `client "a": backchannel_logout_uri`},
		{`{"clients": [{"id": "a", "name": "A", "public": true, "redirect_uris": ["https://a.example/cb"], "backchannel_logout_session_required": true}]}`, `client "a": backchannel_logout_session_required`},
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
	// ADMIN_GROUP must be a group name.
	for _, bad := range []string{"Admins", "ops team", "-x", strings.Repeat("a", 65)} {
		_, err := app.ConfigFromEnv(func(k string) string {
			if k == "ADMIN_GROUP" {
				return bad
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), "ADMIN_GROUP") {
			t.Errorf("ADMIN_GROUP=%q: %v, want a configuration error naming it", bad, err)
		}
	}
	// A group nobody is in yet is fine (the operator adds people later).
	path := t.TempDir() + "/clients.json"
	os.WriteFile(path, []byte(`{"clients": [{"id": "a", "name": "A", "public": true, "redirect_uris": ["https://a.example/cb"],
		"scopes": ["openid", "groups"], "allowed_groups": ["no-one-yet"]}]}`), 0o600)
	if _, err := app.ConfigFromEnv(func(k string) string {
		if k == "OIDC_CLIENTS_FILE" {
			return path
		}
		return ""
	}); err != nil {
		t.Errorf("a valid group nobody is in: %v", err)
	}
}
