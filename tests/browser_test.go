package tests

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/tests/testkit"
)

// chromium returns Debian's Chromium. In CI its absence fails the test
// (.ci/run installs it); elsewhere the test skips and says how to get it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is not installed, and CI must run the browser test: apt-get install -y chromium")
	}
	t.Skip("Chromium is not installed; to run the browser test: sudo apt-get install -y chromium")
	return ""
}

// browserSession is one headless Chromium with the DevTools virtual
// authenticator, driving the real app.
type browserSession struct {
	t          *testing.T
	ctx        context.Context
	app        *testkit.App
	mu         sync.Mutex
	exceptions []string
}

func newBrowserSession(t *testing.T, a *testkit.App) *browserSession {
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // start the browser, with no timeout
		t.Fatalf("starting Chromium: %v", err)
	}
	s := &browserSession{t: t, ctx: ctx, app: a}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			s.mu.Lock()
			s.exceptions = append(s.exceptions, ev.ExceptionDetails.Text+" "+describe(ev.ExceptionDetails.Exception))
			s.mu.Unlock()
		}
	}()
	return s
}

func describe(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	return o.Description
}

// do runs steps with a time limit, failing the test on error.
func (s *browserSession) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(s.ctx, chromedp.Location())
		s.t.Fatalf("%s: %v (page %s)", what, err, loc)
	}
}

func (s *browserSession) eval(expr string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		s.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

func call[P, R any](s *browserSession, cmd cdp.Command[P, R], params P) R {
	s.t.Helper()
	r, err := chromedp.Call(s.ctx, cmd, params)
	if err != nil {
		s.t.Fatalf("%s: %v", cmd.Method, err)
	}
	return r
}

// waitPath waits until the page is at path and loaded. A navigation
// interrupts evaluation, so it asks again until the deadline.
func (s *browserSession) waitPath(path string) {
	s.t.Helper()
	s.waitFor(path, "location.pathname === "+jsString(path)+" && document.readyState === 'complete'")
}

// waitFor waits until a JavaScript condition holds, across navigations.
func (s *browserSession) waitFor(what, cond string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(s.ctx, chromedp.Location())
			s.t.Fatalf("waiting for %s: %v (page %s)", what, err, loc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func jsString(v string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// screenshot saves the page to docs/screenshots/name.png.
func (s *browserSession) screenshot(name string) {
	s.t.Helper()
	// Colours change with a short transition: let them settle.
	s.waitFor("transitions to end", `document.getAnimations().every(a => a.playState !== "running")`)
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *browserSession) addAuthenticator(transport webauthn.AuthenticatorTransport) webauthn.AuthenticatorID {
	s.t.Helper()
	r := call(s, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol:                    webauthn.AuthenticatorProtocolCtap2,
		Ctap2version:                webauthn.Ctap2versionCtap21,
		Transport:                   transport,
		HasResidentKey:              true,
		HasUserVerification:         true,
		IsUserVerified:              true,
		AutomaticPresenceSimulation: true,
		// A platform passkey syncs; a security key does not.
		DefaultBackupEligibility: transport == webauthn.AuthenticatorTransportInternal,
		DefaultBackupState:       transport == webauthn.AuthenticatorTransportInternal,
	}})
	return r.AuthenticatorID
}

// TestBrowserPasskeyJourney is a person's whole passkey journey in real
// Chromium: sign up by link, add a passkey, sign in with the button and
// through autofill, add a second passkey, and delete one after a step-up.
// It saves the screenshots the README shows.
func TestBrowserPasskeyJourney(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock})
	s := newBrowserSession(t, a)
	call(s, webauthn.Enable, webauthn.EnableParams{EnableUI: ptrTo(false)})
	s.addAuthenticator(webauthn.AuthenticatorTransportInternal)

	// Record the mediation of every navigator.credentials.get, so the test
	// can tell autofill from the button.
	call(s, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
		(() => {
			const get = navigator.credentials.get.bind(navigator.credentials);
			navigator.credentials.get = (o) => {
				const m = JSON.parse(sessionStorage.getItem("mediations") || "[]");
				m.push((o && o.mediation) || "optional");
				sessionStorage.setItem("mediations", JSON.stringify(m));
				return get(o);
			};
		})();`})

	// 1. The sign-in page, at 320 px too, in light and dark.
	s.do("open sign-in", chromedp.Navigate(a.URL+"/signin"), chromedp.WaitVisible(chromedp.ID("passkey-signin")))
	s.screenshot("signin")
	s.do("narrow viewport", chromedp.EmulateViewport(320, 720))
	if w := s.eval(`String(document.documentElement.scrollWidth)`); w != "320" {
		t.Errorf("at 320 px the sign-in page is %s px wide", w)
	}
	call(s, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
	if bg := s.eval(`getComputedStyle(document.body).backgroundColor`); bg != "rgb(15, 18, 24)" {
		t.Errorf("dark mode background %s", bg)
	}
	s.screenshot("signin-narrow-dark")
	call(s, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{})
	s.do("wide viewport", chromedp.EmulateViewport(1280, 900))

	// No passkey yet: the button gives a calm message, not an exception.
	s.do("passkey with none", chromedp.Click(chromedp.ID("passkey-signin")),
		chromedp.WaitVisible(chromedp.ID("passkey-status")))
	if msg := s.eval(`document.getElementById("passkey-status").textContent`); !strings.Contains(msg, "No passkey was used") {
		t.Errorf("missing-passkey message %q", msg)
	}

	// 2. Sign up by email link.
	s.do("request a link",
		chromedp.SendKeys(chromedp.ID("email"), "alice@example.com"),
		chromedp.Click(chromedp.CSS(`form[action="/signin/email"] button[type="submit"]`)),
	)
	s.waitPath("/signin/sent")
	link := a.Mail.WaitFor(t, "alice@example.com", 1).Links()[0]
	s.do("open the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`form[action="/signin/link"] button`)))
	if txt := s.eval(`document.querySelector('form[action="/signin/link"] button').textContent`); !strings.Contains(txt, "Continue as alice@example.com") {
		t.Errorf("confirmation button says %q", txt)
	}
	s.screenshot("link-confirmation")
	s.do("confirm", chromedp.Click(chromedp.CSS(`form[action="/signin/link"] button`)))
	s.waitPath("/account")

	// 3. Add a passkey.
	s.do("add a passkey", chromedp.WaitVisible(chromedp.CSS("button[data-passkey-register]")),
		chromedp.Click(chromedp.CSS("button[data-passkey-register]")))
	s.waitFor("the new passkey", `document.querySelectorAll(".passkey-name").length === 1`)

	// 4. Sign out; sign in with the button (autofill switched off, as in a
	// browser without conditional mediation).
	s.signOut()
	noAutofill := call(s, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);`})
	s.do("open sign-in", chromedp.Navigate(a.URL+"/signin"), chromedp.WaitVisible(chromedp.ID("passkey-signin")),
		chromedp.Click(chromedp.ID("passkey-signin")))
	s.waitPath("/account")
	if m := s.eval(`sessionStorage.getItem("mediations")`); !strings.Contains(m, "optional") {
		t.Errorf("button sign-in mediations %s", m)
	}
	call(s, page.RemoveScriptToEvaluateOnNewDocument, page.RemoveScriptToEvaluateOnNewDocumentParams{Identifier: noAutofill.Identifier})
	s.signOut()

	// 5. Sign in through autofill: the page starts a conditional request
	// on load, which the virtual authenticator answers.
	s.eval(`sessionStorage.removeItem("mediations"), ""`)
	s.do("open sign-in", chromedp.Navigate(a.URL+"/signin"))
	s.waitPath("/account")
	if m := s.eval(`sessionStorage.getItem("mediations") || ""`); m != `["conditional"]` {
		t.Errorf("autofill sign-in mediations %s, want [\"conditional\"]", m)
	}

	// 6. A second passkey, on a security key (the platform authenticator
	// rightly refuses: it already holds a passkey for this account).
	s.addAuthenticator(webauthn.AuthenticatorTransportUsb)
	s.do("add a second passkey", chromedp.Navigate(a.URL+"/account"),
		chromedp.WaitVisible(chromedp.CSS("button[data-passkey-register]")),
		chromedp.Click(chromedp.CSS("button[data-passkey-register]")))
	s.waitFor("two passkeys", `document.querySelectorAll(".passkey-name").length === 2`)
	s.screenshot("account-two-passkeys")

	// 7. Later, deleting a passkey asks for a step-up first.
	clock.Advance(11 * time.Minute)
	s.do("delete, stale", chromedp.Navigate(a.URL+"/account"),
		chromedp.Click(chromedp.CSS(`ul.passkeys li:first-child form[action$="/delete"] button`)))
	s.waitPath("/account/reauth")
	s.do("step-up page", chromedp.WaitVisible(chromedp.CSS("button[data-passkey-reauth]")))
	s.screenshot("step-up")
	s.do("confirm with a passkey", chromedp.Click(chromedp.CSS("button[data-passkey-reauth]")))
	s.waitPath("/account")
	s.do("delete, fresh", chromedp.WaitVisible(chromedp.CSS(".passkey-name")),
		chromedp.Click(chromedp.CSS(`ul.passkeys li:first-child form[action$="/delete"] button`)))
	s.waitFor("one passkey left", `location.pathname === "/account" && document.querySelectorAll(".passkey-name").length === 1`)

	// 8. Passkeys only: turn email sign-in off (the step-up just now
	// counts), then try to delete the last passkey, which is refused.
	s.do("turn email sign-in off", chromedp.Click(chromedp.CSS(`form[action="/account/email-signin"] button`)))
	s.waitFor("passkeys only", `document.body.textContent.includes("Passkeys only")`)
	s.do("delete the last passkey", chromedp.Click(chromedp.CSS(`ul.passkeys li:first-child form[action$="/delete"] button`)))
	s.waitFor("the refusal", `document.body.textContent.includes("only passkey of an account that signs in with passkeys only")`)
	s.screenshot("last-passkey-refused")
	s.do("back to the account", chromedp.Navigate(a.URL+"/account"))
	s.waitFor("the passkey is still there", `document.querySelectorAll(".passkey-name").length === 1`)

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.exceptions) > 0 {
		t.Errorf("uncaught exceptions in the page: %v", s.exceptions)
	}
}

func (s *browserSession) signOut() {
	s.t.Helper()
	s.do("sign out", chromedp.Click(chromedp.CSS(`header form[action="/signout"] button`)))
	s.waitPath("/")
}

func ptrTo[T any](v T) *T { return &v }
