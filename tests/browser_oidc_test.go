package tests

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/tests/testkit"
)

// relyingParty is a small application that signs people in through
// Latchkey with go-oidc and x/oauth2: /login sends the browser to
// Latchkey, /callback exchanges the code (with PKCE), verifies the ID
// token and shows who signed in.
type relyingParty struct {
	URL      string
	issuer   string
	mu       sync.Mutex
	pending  map[string][2]string // state → PKCE verifier, nonce
	provider *oidc.Provider
}

func (rp *relyingParty) config() oauth2.Config {
	return oauth2.Config{ClientID: "notes", Endpoint: rp.provider.Endpoint(), RedirectURL: rp.URL + "/callback",
		Scopes: []string{oidc.ScopeOpenID, "email"}}
}

func (rp *relyingParty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rp.mu.Lock()
	if rp.provider == nil {
		p, err := oidc.NewProvider(ctx, rp.issuer)
		if err != nil {
			rp.mu.Unlock()
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		rp.provider = p
	}
	rp.mu.Unlock()
	conf := rp.config()
	switch r.URL.Path {
	case "/login":
		state, nonce, verifier := randomWord(), randomWord(), oauth2.GenerateVerifier()
		rp.mu.Lock()
		rp.pending[state] = [2]string{verifier, nonce}
		rp.mu.Unlock()
		http.Redirect(w, r, conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), http.StatusSeeOther)
	case "/callback":
		rp.mu.Lock()
		p, ok := rp.pending[r.URL.Query().Get("state")]
		delete(rp.pending, r.URL.Query().Get("state"))
		rp.mu.Unlock()
		if !ok {
			http.Error(w, "unknown state", http.StatusBadRequest)
			return
		}
		tok, err := conf.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(p[0]))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		id, err := rp.provider.Verifier(&oidc.Config{ClientID: "notes"}).Verify(ctx, raw)
		if err != nil || id.Nonce != p[1] {
			http.Error(w, fmt.Sprintf("ID token: %v", err), http.StatusBadGateway)
			return
		}
		info, err := rp.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, `<!DOCTYPE html><html lang="en"><title>Notes</title><h1 id="who">Signed in to Notes as %s</h1>`, html.EscapeString(info.Email))
	default:
		http.NotFound(w, r)
	}
}

// TestBrowserSignsInToAnApplication: in real Chromium, a person with a
// passkey opens a small application that signs in with Latchkey, signs
// in with the passkey (autofill), allows the application on the consent
// page, and lands back in the application, signed in. It saves the
// screenshots of the consent page and of the account's application list.
func TestBrowserSignsInToAnApplication(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rp := &relyingParty{URL: "http://" + ln.Addr().String(), pending: map[string][2]string{}}
	file := filepath.Join(t.TempDir(), "clients.json")
	os.WriteFile(file, []byte(`{"clients": [{"id": "notes", "name": "Notes", "public": true,
		"redirect_uris": ["`+rp.URL+`/callback"], "scopes": ["openid", "email"]}]}`), 0o600)
	a := testkit.StartApp(t, testkit.AppOptions{Env: map[string]string{"OIDC_CLIENTS_FILE": file}})
	rp.issuer = a.URL
	srv := &http.Server{Handler: rp}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	s := newBrowserSession(t, a)
	call(s, webauthn.Enable, webauthn.EnableParams{EnableUI: ptrTo(false)})
	s.addAuthenticator(webauthn.AuthenticatorTransportInternal)
	// An account with a passkey, signed out.
	s.do("request a link", chromedp.Navigate(a.URL+"/signin"), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "nora@example.com"),
		chromedp.Click(chromedp.CSS(`form[action="/signin/email"] button[type="submit"]`)))
	s.waitPath("/signin/sent")
	s.do("open the link", chromedp.Navigate(a.Mail.WaitFor(t, "nora@example.com", 1).Links()[0]),
		chromedp.Click(chromedp.CSS(`form[action="/signin/link"] button`)))
	s.waitPath("/account")
	s.do("add a passkey", chromedp.WaitVisible(chromedp.CSS("button[data-passkey-register]")),
		chromedp.Click(chromedp.CSS("button[data-passkey-register]")))
	s.waitFor("the passkey", `document.querySelectorAll(".passkey-name").length === 1`)
	s.signOut()

	// The application sends the browser to Latchkey, which asks to sign
	// in; the passkey answers the page's autofill request.
	s.do("open the application", chromedp.Navigate(rp.URL+"/login"))
	s.waitFor("the consent page", `location.pathname === "/oauth2/authorize" && !!document.querySelector('button[value="allow"]')`)
	if txt := s.eval(`document.querySelector("h1").textContent`); !strings.Contains(txt, "Notes") {
		t.Errorf("the consent page's title is %q", txt)
	}
	s.screenshot("consent")
	s.do("allow", chromedp.Click(chromedp.CSS(`button[value="allow"]`)))
	s.waitFor("back in the application", `location.host === `+jsString(strings.TrimPrefix(rp.URL, "http://"))+` && !!document.getElementById("who")`)
	if who := s.eval(`document.getElementById("who").textContent`); who != "Signed in to Notes as nora@example.com" {
		t.Errorf("the application says %q", who)
	}
	s.do("the account page", chromedp.Navigate(a.URL+"/account"))
	s.waitFor("the application list", `!!document.getElementById("applications-heading")`)
	s.do("scroll to it", chromedp.ScrollIntoView(chromedp.ID("applications-heading")))
	s.screenshot("account-applications")

	// A second visit to the application: no sign-in, no consent page.
	s.do("open the application again", chromedp.Navigate(rp.URL+"/login"))
	s.waitFor("back in the application", `!!document.getElementById("who")`)

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.exceptions) > 0 {
		t.Errorf("uncaught exceptions in the page: %v", s.exceptions)
	}
}
