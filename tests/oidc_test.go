package tests

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/tests/testkit"
)

// The applications of the OpenID Connect tests: notes is a public client
// (PKCE, no secret), wiki a trusted confidential client whose ID tokens
// are EdDSA, chat an untrusted confidential client.
const (
	notesCallback = "http://127.0.0.1:9/notes/callback"
	notesBye      = "http://127.0.0.1:9/notes/bye"
	wikiCallback  = "https://wiki.example.com/oidc/callback"
	chatCallback  = "https://chat.example.com/cb"
	wikiSecret    = "wiki-secret-0123456789-abcdefghijklmnop"
	chatSecret    = "chat-secret-0123456789-abcdefghijklmnop"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + strings.ToLower(strings.TrimSpace(hexString(sum[:])))
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// writeClients writes the clients file of the three applications, and
// the extra entries (JSON objects, comma-separated) after them.
func writeClients(t *testing.T, extra string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "clients.json")
	if extra != "" {
		extra = ",\n" + extra
	}
	clients := `{"clients": [
		{"id": "notes", "name": "Notes", "public": true, "redirect_uris": ["` + notesCallback + `"],
		 "post_logout_redirect_uris": ["` + notesBye + `"], "scopes": ["openid", "email", "profile", "offline_access"]},
		{"id": "wiki", "name": "Team Wiki", "secret_hash": "` + sha256Hex(wikiSecret) + `", "trusted": true,
		 "redirect_uris": ["` + wikiCallback + `"], "scopes": ["openid", "email", "offline_access"],
		 "id_token_signed_response_alg": "EdDSA"},
		{"id": "chat", "name": "Chat", "secret_hash": "` + sha256Hex(chatSecret) + `",
		 "redirect_uris": ["` + chatCallback + `"], "scopes": ["openid", "email"]}` + extra + `
	]}`
	if err := os.WriteFile(file, []byte(clients), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// startOIDC starts Latchkey with the three applications registered, and
// the extra client entries, if any.
func startOIDC(t *testing.T, store testkit.Store, clock *testkit.Clock, extra ...string) *testkit.App {
	t.Helper()
	if store == (testkit.Store{}) {
		store = testkit.SQLiteStore(t)
	}
	return testkit.StartApp(t, testkit.AppOptions{Clock: clock, Store: store,
		Env: map[string]string{"OIDC_CLIENTS_FILE": writeClients(t, strings.Join(extra, ",")), "RATE_LIMIT_SIGNIN": "1000/1m"}})
}

var consentRequest = regexp.MustCompile(`name="request" value="([^"]+)"`)

// authorize drives browser b through an authorization request as a person
// would: it signs in with pk when sent to sign in, allows the application
// when asked (or denies, when allow is false), and returns the query of
// the redirect back to the application.
func authorize(t testing.TB, a *testkit.App, b *testkit.Browser, authURL string, pk *testkit.Passkey, allow bool) url.Values {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	r := b.Get(u.RequestURI())
	for range 3 {
		switch {
		case r.StatusCode == http.StatusSeeOther && strings.HasPrefix(r.Header.Get("Location"), "/signin?next="):
			next, _ := url.Parse(r.Header.Get("Location"))
			back := next.Query().Get("next")
			begin := b.PostJSON("/signin/passkey/begin?next="+url.QueryEscape(back), nil)
			expectStatus(t, begin, http.StatusOK)
			fin := b.PostJSON("/signin/passkey/finish", pk.Assert(t, begin.Body))
			expectStatus(t, fin, http.StatusOK)
			if got := jsonField(t, fin, "redirect"); got != back {
				t.Fatalf("after signing in the page goes to %q, want back to %q", got, back)
			}
			r = b.Get(back)
		case r.StatusCode == http.StatusOK && consentRequest.MatchString(r.Body):
			decision := "deny"
			if allow {
				decision = "allow"
			}
			req := consentRequest.FindStringSubmatch(r.Body)[1]
			r = b.Post("/oauth2/authorize", url.Values{"request": {req}, "decision": {decision}})
		case r.StatusCode == http.StatusSeeOther:
			loc, err := url.Parse(r.Header.Get("Location"))
			if err != nil || loc.Host == "" {
				t.Fatalf("the authorization ended at %q", r.Header.Get("Location"))
			}
			return loc.Query()
		default:
			t.Fatalf("authorization: %d %s\n%s", r.StatusCode, r.Header.Get("Location"), clip(r.Body))
		}
	}
	t.Fatal("the authorization did not end")
	return nil
}

// TestSignInWithGoOIDC: an independent client (coreos/go-oidc with
// golang.org/x/oauth2), as a public client with PKCE, discovers
// Latchkey, sends a person who signs in with a passkey through the real
// pages and consents, exchanges the code, verifies the ID token with the
// key set (nonce, at_hash, auth_time, amr), calls userinfo, refreshes,
// and logs out; "Sign out everywhere" and revoking the application on the
// account page then end its refresh token and its access token.
func TestSignInWithGoOIDC(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		clock := testkit.NewClock()
		a := startOIDC(t, store, clock)
		ctx := context.Background()
		person := a.Browser(t)
		signIn(t, a, person, "oidc@example.com")
		pk := addPasskey(t, a, person)
		expectStatus(t, person.Post("/signout", nil), http.StatusSeeOther)

		provider, err := oidc.NewProvider(ctx, a.URL)
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		conf := oauth2.Config{ClientID: "notes", Endpoint: provider.Endpoint(), RedirectURL: notesCallback,
			Scopes: []string{oidc.ScopeOpenID, "email", "offline_access"}}
		verifier := provider.Verifier(&oidc.Config{ClientID: "notes", Now: clock.Now})
		pkce := oauth2.GenerateVerifier()
		state, nonce := "st-"+randomWord(), "n-"+randomWord()
		back := authorize(t, a, person, conf.AuthCodeURL(state, oauth2.S256ChallengeOption(pkce), oidc.Nonce(nonce)), pk, true)
		if back.Get("state") != state || back.Get("iss") != a.URL || back.Get("code") == "" {
			t.Fatalf("the redirect back carries %v, want the code, state %s and iss %s", back, state, a.URL)
		}
		tok, err := conf.Exchange(ctx, back.Get("code"), oauth2.VerifierOption(pkce))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		rawID, _ := tok.Extra("id_token").(string)
		idToken, err := verifier.Verify(ctx, rawID)
		if err != nil {
			t.Fatalf("ID token: %v", err)
		}
		if err := idToken.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Errorf("at_hash: %v", err)
		}
		var claims struct {
			Email         string   `json:"email"`
			EmailVerified bool     `json:"email_verified"`
			AuthTime      int64    `json:"auth_time"`
			AMR           []string `json:"amr"`
		}
		idToken.Claims(&claims)
		if idToken.Nonce != nonce || claims.Email != "oidc@example.com" || !claims.EmailVerified ||
			claims.AuthTime == 0 || strings.Join(claims.AMR, ",") != "hwk,user" {
			t.Errorf("ID token: nonce %q (want %q), claims %+v", idToken.Nonce, nonce, claims)
		}
		if idToken.Subject != tokenClaims(t, person.Cookie("__Host-at"))["sub"] {
			t.Error("the ID token's sub is not the account's opaque id")
		}
		if strings.Contains(rawID, "oidc@example.com") && !strings.Contains(conf.Scopes[1], "email") {
			t.Error("the email went out without the email scope")
		}
		info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil || info.Email != "oidc@example.com" || info.Subject != idToken.Subject {
			t.Fatalf("userinfo: %+v %v", info, err)
		}

		// Refresh (offline_access): a new ID token for the same person.
		if tok.RefreshToken == "" {
			t.Fatal("no refresh token with offline_access")
		}
		clock.Advance(11 * time.Minute)
		expired := *tok
		expired.Expiry = time.Now().Add(-time.Minute) // (x/oauth2 goes by the real clock)
		refreshed, err := conf.TokenSource(ctx, &expired).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if id2, err := verifier.Verify(ctx, refreshed.Extra("id_token").(string)); err != nil || id2.Subject != idToken.Subject {
			t.Fatalf("refreshed ID token: %v", err)
		}

		// A second application signs the same person in without asking
		// again for their passkey (the session is there), with consent.
		// Then the account page lists both, and can take one back.
		chat := oauth2.Config{ClientID: "chat", ClientSecret: chatSecret, Endpoint: provider.Endpoint(),
			RedirectURL: chatCallback, Scopes: []string{oidc.ScopeOpenID}}
		if _, err := chat.Exchange(ctx, authorize(t, a, person, chat.AuthCodeURL("x"), pk, true).Get("code")); err != nil {
			t.Fatalf("second application: %v", err)
		}
		expectPage(t, person.Get("/account"), http.StatusOK, "Applications", "Notes", "Chat", "/account/applications/notes/revoke")

		// RP-initiated logout with the ID token: signed out here, sent
		// back to the registered address with the state.
		logout := person.Get("/oauth2/logout?" + url.Values{"id_token_hint": {rawID},
			"post_logout_redirect_uri": {notesBye}, "state": {"bye-state"}}.Encode())
		if logout.StatusCode != http.StatusSeeOther || logout.Header.Get("Location") != notesBye+"?state=bye-state" {
			t.Fatalf("logout: %d %q", logout.StatusCode, logout.Header.Get("Location"))
		}
		if signedIn(t, person) {
			t.Error("still signed in to Latchkey after the application's logout")
		}

		// Revoking the application on the account page ends its refresh
		// token and its access token.
		expectStatus(t, passkeySignIn(t, person, pk), http.StatusOK)
		expectStatus(t, person.Post("/account/applications/notes/revoke", nil), http.StatusSeeOther)
		if strings.Contains(person.Get("/account").Body, "/account/applications/notes/revoke") {
			t.Error("the revoked application is still listed")
		}
		if _, err := conf.TokenSource(ctx, &expired).Token(); !isOAuthError(err, "invalid_grant") {
			t.Errorf("refresh after revoking the application: %v, want invalid_grant", err)
		}
		if _, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(refreshed)); err == nil {
			t.Error("userinfo still answers a revoked application's access token")
		}

		// Consent again, then "Sign out everywhere" ends the new refresh
		// token too.
		pkce = oauth2.GenerateVerifier()
		back = authorize(t, a, person, conf.AuthCodeURL("again", oauth2.S256ChallengeOption(pkce)), pk, true)
		again, err := conf.Exchange(ctx, back.Get("code"), oauth2.VerifierOption(pkce))
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		expectStatus(t, person.Post("/signout/everywhere", nil), http.StatusSeeOther)
		again.Expiry = time.Now().Add(-time.Minute)
		if _, err := conf.TokenSource(ctx, again).Token(); !isOAuthError(err, "invalid_grant") {
			t.Errorf("refresh after sign out everywhere: %v, want invalid_grant", err)
		}
	})
}

// isOAuthError reports whether err is the token endpoint's error code.
func isOAuthError(err error, code string) bool {
	re, ok := err.(*oauth2.RetrieveError)
	return ok && re.ErrorCode == code
}

func randomWord() string { return testkit.NewSecret()[:12] }

// TestSignInWithARawConfidentialClient is a second, independent client:
// plain net/http and golang-jwt, as a confidential client authenticating
// with client_secret_post, without PKCE, for a trusted application (no
// consent page) whose ID tokens are EdDSA, verified with the key set.
func TestSignInWithARawConfidentialClient(t *testing.T) {
	clock := testkit.NewClock()
	a := startOIDC(t, testkit.Store{}, clock)
	person := a.Browser(t)
	signIn(t, a, person, "raw@example.com")
	pk := addPasskey(t, a, person)

	var discovery map[string]any
	if err := json.Unmarshal([]byte(a.Browser(t).Get("/.well-known/openid-configuration").Body), &discovery); err != nil {
		t.Fatal(err)
	}
	if discovery["issuer"] != a.URL || discovery["end_session_endpoint"] != a.URL+"/oauth2/logout" {
		t.Fatalf("discovery: %v", discovery)
	}
	authURL := discovery["authorization_endpoint"].(string) + "?" + url.Values{"client_id": {"wiki"}, "redirect_uri": {wikiCallback},
		"response_type": {"code"}, "scope": {"openid email"}, "nonce": {"raw-nonce"}}.Encode()
	back := authorize(t, a, person, authURL, pk, true) // trusted: no consent page
	if back.Has("state") {
		t.Errorf("a state was invented: %v", back)
	}
	tokenResp := postForm(t, discovery["token_endpoint"].(string), url.Values{"grant_type": {"authorization_code"},
		"code": {back.Get("code")}, "redirect_uri": {wikiCallback}, "client_id": {"wiki"}, "client_secret": {wikiSecret}}, nil)
	if tokenResp.status != http.StatusOK {
		t.Fatalf("token: %d %v", tokenResp.status, tokenResp.body)
	}
	// Verify the EdDSA ID token with the key set, independently.
	var set struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg string }
	}
	json.Unmarshal([]byte(a.Browser(t).Get("/.well-known/jwks.json").Body), &set)
	rawID := tokenResp.body["id_token"].(string)
	var claims jwt.MapClaims
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(a.URL), jwt.WithAudience("wiki"),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(clock.Now)).ParseWithClaims(rawID, &claims, func(tok *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == tok.Header["kid"] && k.Kty == "OKP" {
				x, _ := base64.RawURLEncoding.DecodeString(k.X)
				return ed25519.PublicKey(x), nil
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	})
	if err != nil {
		t.Fatalf("EdDSA ID token: %v", err)
	}
	sum := sha512.Sum512([]byte(tokenResp.body["access_token"].(string)))
	if claims["nonce"] != "raw-nonce" || claims["email"] != "raw@example.com" ||
		claims["at_hash"] != base64.RawURLEncoding.EncodeToString(sum[:32]) {
		t.Errorf("ID token claims %v", claims)
	}
	// The access token is an RFC 9068 JWT for the client.
	parts := strings.Split(tokenResp.body["access_token"].(string), ".")
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if !strings.Contains(string(header), `"typ":"at+jwt"`) || !strings.Contains(string(payload), `"aud":"wiki"`) {
		t.Errorf("access token header %s, claims %s", header, payload)
	}
	// Userinfo by a POST body, as RFC 6750 allows.
	info := postForm(t, a.URL+"/oauth2/userinfo", url.Values{"access_token": {tokenResp.body["access_token"].(string)}}, nil)
	if info.status != http.StatusOK || info.body["email"] != "raw@example.com" {
		t.Errorf("userinfo: %d %v", info.status, info.body)
	}
	expectPage(t, person.Get("/account"), http.StatusOK, "Team Wiki") // a trusted app is listed too
}

type formResponse struct {
	status int
	header http.Header
	body   map[string]any
}

// postForm posts a form, with optional extra headers, and decodes the
// JSON answer.
func postForm(t testing.TB, endpoint string, form url.Values, header http.Header) formResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return formResponse{resp.StatusCode, resp.Header, body}
}
