package tests

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/tests/testkit"
)

// screenshotOf saves one element of the page (a CSS selector) to
// docs/screenshots/name.png.
func (s *browserSession) screenshotOf(name, selector string) {
	s.t.Helper()
	s.waitFor("transitions to end", `document.getAnimations().every(a => a.playState !== "running")`)
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(selector)))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join("..", "docs", "screenshots", name+".png"), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// credentials returns what a virtual authenticator holds.
func (s *browserSession) credentials(id webauthn.AuthenticatorID) []*webauthn.Credential {
	s.t.Helper()
	return call(s, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id}).Credentials
}

// TestBrowserKeepsPasswordManagersInStep: in Chromium, with the DevTools
// virtual authenticators standing in for password managers, the account
// page tells the browser which passkeys the account still has and what
// its address is (the WebAuthn Signal API): a passkey deleted on the
// account page is deleted from its authenticator, and after an address
// change the passkeys carry the new address as their name. Where the
// browser lacks the calls, the page works without an error. Along the
// way: signing in with the emailed code, and the account page's list of
// sessions, in screenshots.
func TestBrowserKeepsPasswordManagersInStep(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	s := newBrowserSession(t, a)
	call(s, webauthn.Enable, webauthn.EnableParams{EnableUI: ptrTo(false)})
	platform := s.addAuthenticator(webauthn.AuthenticatorTransportInternal)
	// No autofill request on the sign-in page, which the authenticator
	// would answer at once.
	call(s, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);`})

	var (
		mu      sync.Mutex
		deleted [][]byte
		updated []*webauthn.Credential
	)
	go func() {
		for ev, err := range chromedp.Events(s.ctx, webauthn.CredentialDeleted) {
			if err != nil {
				return
			}
			mu.Lock()
			deleted = append(deleted, ev.CredentialID)
			mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range chromedp.Events(s.ctx, webauthn.CredentialUpdated) {
			if err != nil {
				return
			}
			mu.Lock()
			updated = append(updated, ev.Credential)
			mu.Unlock()
		}
	}()
	waitEvent := func(what string, done func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			ok := done()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s event", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Sign up with the emailed code, typed as a person would.
	s.do("ask for an email", chromedp.Navigate(a.URL+"/signin"), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "sig@example.com"),
		chromedp.Click(chromedp.CSS(`form[action="/signin/email"] button[type="submit"]`)))
	s.waitPath("/signin/sent")
	if ac := s.eval(`document.getElementById("code").autocomplete`); ac != "one-time-code" {
		t.Errorf("the code field's autocomplete is %q", ac)
	}
	s.screenshot("signin-code")
	code := emailCode.FindStringSubmatch(a.Mail.WaitFor(t, "sig@example.com", 1).Text)[1]
	s.do("type the code", chromedp.SendKeys(chromedp.ID("code"), strings.ToLower(code)),
		chromedp.Click(chromedp.CSS(`form[action="/signin/code"] button[type="submit"]`)))
	s.waitPath("/account")

	// A passkey on the platform authenticator; a passkey sign-in (fresh
	// enough to add another); a second passkey on a security key.
	s.do("add a passkey", chromedp.WaitVisible(chromedp.CSS("button[data-passkey-register]")),
		chromedp.Click(chromedp.CSS("button[data-passkey-register]")))
	s.waitFor("the new passkey", `document.querySelectorAll(".passkey-name").length === 1`)
	s.do("sign out", chromedp.Click(chromedp.CSS(`header form[action="/signout"] button`)))
	s.waitPath("/")
	s.do("sign in with the passkey", chromedp.Navigate(a.URL+"/signin"), chromedp.WaitVisible(chromedp.ID("passkey-signin")),
		chromedp.Click(chromedp.ID("passkey-signin")))
	s.waitPath("/account")
	key := s.addAuthenticator(webauthn.AuthenticatorTransportUsb)
	s.do("add a second passkey", chromedp.WaitVisible(chromedp.CSS("button[data-passkey-register]")),
		chromedp.Click(chromedp.CSS("button[data-passkey-register]")))
	s.waitFor("two passkeys", `location.pathname === "/account" && document.querySelectorAll(".passkey-name").length === 2`)
	onKey := s.credentials(key)
	if len(onKey) != 1 || len(s.credentials(platform)) != 1 {
		t.Fatalf("the authenticators hold %d and %d passkeys, want 1 each", len(s.credentials(platform)), len(onKey))
	}

	// A phone signs in too: the list of sessions, in a screenshot.
	phone := a.Browser(t)
	phone.Header.Set("User-Agent", iPhoneUA)
	signIn(t, a, phone, "sig@example.com")
	s.do("reload", chromedp.Navigate(a.URL+"/account"))
	s.waitFor("two sessions", `document.querySelectorAll("#sessions > li").length === 2`)
	s.screenshotOf("account-sessions", `section[aria-labelledby="session-heading"]`)

	// Delete the security key's passkey on the account page: the
	// browser is told, and the authenticator forgets it.
	s.do("delete the second passkey", chromedp.Click(chromedp.CSS(`ul.passkeys li:nth-child(2) form[action$="/delete"] button`)))
	s.waitFor("one passkey left", `location.pathname === "/account" && document.querySelectorAll(".passkey-name").length === 1`)
	waitEvent("WebAuthn.credentialDeleted", func() bool {
		for _, id := range deleted {
			if bytes.Equal(id, onKey[0].CredentialID) {
				return true
			}
		}
		return false
	})
	if left := s.credentials(key); len(left) != 0 {
		t.Errorf("the security key still holds %d passkeys after its passkey was deleted on the account page", len(left))
	}
	if left := s.credentials(platform); len(left) != 1 {
		t.Errorf("the platform authenticator holds %d passkeys, want its 1 (still the account's)", len(left))
	}

	// Change the address: the passkeys take the new one as their name.
	s.eval(`(() => { const f = document.querySelector('form[action="/account/email"]'); f.email.value = "sig.new@example.com"; f.submit(); return ""; })()`)
	s.waitFor("the notice", `document.querySelector('.ok-box[role="status"]') !== null`)
	link := a.Mail.WaitFor(t, "sig.new@example.com", 1).Links()[0]
	s.do("confirm the new address", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`form[action="/account/email/confirm"] button`)),
		chromedp.Click(chromedp.CSS(`form[action="/account/email/confirm"] button`)))
	s.waitFor("the account page with the new address", `document.querySelector('.ok-box[role="status"]') !== null && document.getElementById("passkey-signals")?.dataset.name === "sig.new@example.com"`)
	waitEvent("WebAuthn.credentialUpdated", func() bool {
		for _, c := range updated {
			if c.UserName == "sig.new@example.com" {
				return true
			}
		}
		return false
	})
	if got := s.credentials(platform); len(got) != 1 || got[0].UserName != "sig.new@example.com" || got[0].UserDisplayName != "sig.new@example.com" {
		for _, c := range got {
			t.Errorf("the passkey's name is %q (%q), want the new address", c.UserName, c.UserDisplayName)
		}
	}

	// A browser without the Signal API: the page works, without an error.
	call(s, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `delete PublicKeyCredential.signalAllAcceptedCredentials; delete PublicKeyCredential.signalCurrentUserDetails;
			delete PublicKeyCredential.signalUnknownCredential;`})
	s.do("the account page without the Signal API", chromedp.Navigate(a.URL+"/account"))
	s.waitFor("the page", `document.readyState === "complete" && typeof PublicKeyCredential.signalCurrentUserDetails === "undefined"`)
	if r := phone.Get("/account"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("the phone's session survived the address change: %d", r.StatusCode)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.exceptions) > 0 {
		t.Errorf("uncaught exceptions in the page: %v", s.exceptions)
	}
}
