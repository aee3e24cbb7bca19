package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/latchkey/latchkey/tests/testkit"
)

// axeVersion is the axe-core .ci/run installs from npm.
const axeVersion = "4.14.1"

// axeScript returns axe-core's script: from AXE_CORE_JS, else where
// .ci/run installs it (npm install --prefix .axe axe-core@4.14.1, not in
// the repository). In CI its absence fails the test; elsewhere the test
// skips and says how to get it.
func axeScript(t *testing.T) string {
	t.Helper()
	path := os.Getenv("AXE_CORE_JS")
	if path == "" {
		path = "../.axe/node_modules/axe-core/axe.min.js"
	}
	src, err := os.ReadFile(path)
	if err != nil {
		msg := fmt.Sprintf("axe-core is not installed (%v); from the repository's root: npm install --no-save --prefix .axe axe-core@%s", err, axeVersion)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if !strings.Contains(string(src[:min(len(src), 200)]), axeVersion) {
		t.Fatalf("%s is not axe-core %s", path, axeVersion)
	}
	return string(src)
}

// axeViolation is what the test reports of one of axe's findings.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// axe runs axe-core on the page as it is now, against WCAG 2.1 A and AA,
// and fails the test for every violation.
func (s *browserSession) axe(script, what string) {
	s.t.Helper()
	if s.eval(`typeof axe`) != "object" {
		s.eval(script + `;""`)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {
			runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
			resultTypes: ["violations"],
		}).then(r => JSON.stringify({
			passes: r.passes.length,
			violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
				nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary)})),
		}))`, chromedp.EvalAwaitPromise))
	if err != nil {
		s.t.Fatalf("axe on %s: %v", what, err)
	}
	var result struct {
		Passes     int            `json:"passes"`
		Violations []axeViolation `json:"violations"`
	}
	if err := json.Unmarshal([]byte(out), &result); err != nil {
		s.t.Fatalf("axe on %s: %v", what, err)
	}
	if result.Passes == 0 {
		s.t.Errorf("axe on %s checked nothing", what)
	}
	for _, v := range result.Violations {
		s.t.Errorf("%s: %s (%s, %s):\n\t%s", what, v.Help, v.ID, v.Impact, strings.Join(v.Nodes, "\n\t"))
	}
}

// axeEverywhere runs axe on the page in light and dark, wide and at
// 320 px, and checks the page is titled, unique among those seen, and
// fits 320 px.
func (s *browserSession) axeEverywhere(script, what string, titles map[string]string) {
	s.t.Helper()
	title := s.eval(`document.title`)
	if other, seen := titles[title]; seen && other != what {
		s.t.Errorf("%s has the title %q, as %s has", what, title, other)
	}
	titles[title] = what
	if s.eval(`document.documentElement.lang`) == "" {
		s.t.Errorf("%s: <html> has no lang", what)
	}
	for _, scheme := range []string{"light", "dark"} {
		call(s, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		for _, width := range []int64{1280, 320} {
			s.do("viewport", chromedp.EmulateViewport(width, 800))
			// Colours change with a short transition: judge them once
			// they have settled.
			s.waitFor("transitions to end", `document.getAnimations().every(a => a.playState !== "running")`)
			s.axe(script, fmt.Sprintf("%s (%s, %d px)", what, scheme, width))
			if width == 320 {
				if w := s.eval(`String(document.documentElement.scrollWidth)`); w != "320" {
					s.t.Errorf("%s (%s): %s px wide at 320 px", what, scheme, w)
				}
			}
		}
	}
	call(s, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{})
	s.do("viewport", chromedp.EmulateViewport(1280, 900))
}

// TestAccessibilityOfEveryPage runs axe-core on every page a person meets,
// in light and dark and at 320 px, failing on any WCAG 2.1 A or AA
// violation; it also checks what axe cannot: form errors tied to their
// fields, announced status messages, unique titles, and reduced motion.
func TestAccessibilityOfEveryPage(t *testing.T) {
	clock := testkit.NewClock()
	a := startOIDC(t, testkit.Store{}, clock, grafanaClient) // (for the consent and no-access pages)
	s := newBrowserSession(t, a)
	script := axeScript(t)
	call(s, webauthn.Enable, webauthn.EnableParams{EnableUI: ptrTo(false)})
	s.addAuthenticator(webauthn.AuthenticatorTransportInternal)
	// No autofill request on the sign-in page, which the authenticator
	// would answer at once, signing in.
	call(s, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);`})
	titles := map[string]string{}
	visit := func(what, path string) {
		t.Helper()
		s.do("open "+what, chromedp.Navigate(a.URL+path))
		s.waitFor(what, `document.readyState === "complete"`)
		s.axeEverywhere(script, what, titles)
	}

	visit("the home page", "/")
	visit("the sign-in page", "/signin")

	// A form error: the field says it is invalid and points at the
	// message, which is announced.
	s.eval(`(() => { const f = document.querySelector('form[action="/signin/email"]'); f.noValidate = true;
		f.email.value = "not an address"; f.submit(); return ""; })()`)
	s.waitFor("the form error", `document.querySelector("#email[aria-invalid=true]") !== null`)
	if msg := s.eval(`(() => { const e = document.getElementById("email");
		return (e.getAttribute("aria-describedby") || "").split(" ").map(id => document.getElementById(id)?.textContent || "").join(" "); })()`); strings.TrimSpace(msg) == "" {
		t.Error("the invalid email field is not described by its error message")
	}
	s.axeEverywhere(script, "the sign-in page with an error", map[string]string{})

	visit("the recovery page", "/signin/recover")

	s.do("open sign-in", chromedp.Navigate(a.URL+"/signin"), chromedp.WaitVisible(chromedp.ID("email")))
	s.eval(`(() => { const f = document.querySelector('form[action="/signin/email"]'); f.email.value = "ada@example.com"; f.submit(); return ""; })()`)
	s.waitPath("/signin/sent")
	if s.eval(`String(document.querySelector('[role="status"]') !== null)`) != "true" {
		t.Error("the link-sent page does not announce itself as a status")
	}
	s.axeEverywhere(script, "the link-sent page", titles)
	// A wrong code: an error tied to the field; five: the page asks for a
	// new email.
	s.eval(`(() => { const f = document.querySelector('form[action="/signin/code"]'); f.code.value = "ABCD-EFGH"; f.submit(); return ""; })()`)
	s.waitFor("the code error", `document.querySelector("#code[aria-invalid=true]") !== null`)
	if s.eval(`(() => { const e = document.getElementById("code"); return String((e.getAttribute("aria-describedby") || "").split(" ").some(id => (document.getElementById(id)?.textContent || "").includes("isn't right"))); })()`) != "true" {
		t.Error("the code field is not described by its error message")
	}
	s.axeEverywhere(script, "the link-sent page with a wrong code", map[string]string{})
	for range 4 {
		// (The mark goes with the page, so the wait is for the next one.)
		s.eval(`(() => { window.submitted = true; const f = document.querySelector('form[action="/signin/code"]'); f.code.value = "ABCD-EFGH"; f.submit(); return ""; })()`)
		s.waitFor("the answer", `!window.submitted && document.readyState === "complete"`)
	}
	s.waitFor("the void code", `document.querySelector('form[action="/signin/code"]') === null && document.querySelector('[role="alert"]') !== null`)
	s.axeEverywhere(script, "the link-sent page after five wrong codes", map[string]string{})

	link := a.Mail.WaitFor(t, "ada@example.com", 1).Links()[0]
	s.do("open the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`form[action="/signin/link"] button`)))
	s.axeEverywhere(script, "the link confirmation", titles)
	s.do("confirm", chromedp.Click(chromedp.CSS(`form[action="/signin/link"] button`)))
	s.waitPath("/account")

	// An email change asked for: the account page announces it.
	s.eval(`(() => { const f = document.querySelector('form[action="/account/email"]'); f.email.value = "ada.new@example.com"; f.submit(); return ""; })()`)
	s.waitFor("the notice", `document.querySelector('.ok-box[role="status"]') !== null`)
	s.axeEverywhere(script, "the account page with a notice", map[string]string{})
	change := a.Mail.WaitFor(t, "ada.new@example.com", 1).Links()[0]
	visit("the new address's confirmation", strings.TrimPrefix(change, a.URL))

	s.do("add a passkey", chromedp.Navigate(a.URL+"/account"), chromedp.WaitVisible(chromedp.CSS("button[data-passkey-register]")),
		chromedp.Click(chromedp.CSS("button[data-passkey-register]")))
	s.waitFor("the passkey", `document.querySelectorAll(".passkey-name").length === 1`)
	visit("the home page, signed in", "/")
	// Signed in on a phone too: another session, with its button.
	phone := a.Browser(t)
	phone.Header.Set("User-Agent", iPhoneUA)
	signIn(t, a, phone, "ada@example.com")
	visit("the account page with a passkey", "/account")
	if n := s.eval(`String(document.querySelectorAll('#sessions form[action$="/signout"]').length)`); n != "1" {
		t.Errorf("the account page offers %s sessions to sign out, want the phone's", n)
	}

	// An application asks to sign in: the consent page; and asks to sign
	// out: the sign-out page.
	visit("the consent page", "/oauth2/authorize?"+url.Values{"client_id": {"notes"}, "redirect_uri": {notesCallback},
		"response_type": {"code"}, "scope": {"openid email"}, "state": {"s"}, "nonce": {"n"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}.Encode())
	if s.eval(`String(document.querySelector('form[action="/oauth2/authorize"]') !== null)`) != "true" {
		t.Error("the consent page asks nothing")
	}
	visit("the application's sign-out page", "/oauth2/logout?client_id=notes")
	visit("an application's no-access page", "/oauth2/authorize?"+url.Values{"client_id": {"grafana"}, "redirect_uri": {grafanaCallback},
		"response_type": {"code"}, "scope": {"openid groups"}}.Encode())
	if s.eval(`String(document.querySelector("h1").textContent.includes("Grafana"))`) != "true" {
		t.Error("the no-access page does not name the application")
	}
	s.screenshot("no-access")

	// The operator's console, for a member of the admin group, with
	// another account to look after.
	other := a.Browser(t)
	signIn(t, a, other, "grace@example.org")
	addPasskey(t, a, other)
	for _, args := range [][]string{{"group", "add", "ada@example.com", "admin"}, {"group", "add", "grace@example.org", "ops", "db-admins"}} {
		if _, errOut, exit := admin(t, a, "", args...); exit != 0 {
			t.Fatalf("admin %v: %s", args, errOut)
		}
	}
	visitAgain := func(what, path string) { // (a page seen before, in another state)
		t.Helper()
		s.do("open "+what, chromedp.Navigate(a.URL+path))
		s.waitFor(what, `document.readyState === "complete"`)
		s.axeEverywhere(script, what, map[string]string{})
	}
	visitAgain("the account page of an operator", "/account")
	if s.eval(`String(document.querySelector('a[href="/admin"]') !== null)`) != "true" {
		t.Error("the account page of a member of the admin group does not link to the console")
	}
	visit("the console's accounts", "/admin")
	s.screenshot("console-accounts")
	visitAgain("the console's search", "/admin?q=grace")
	s.do("open grace's page", chromedp.Click(chromedp.CSS(`ul.accounts a`)), chromedp.WaitVisible(chromedp.ID("add-group")))
	s.axeEverywhere(script, "the console's page of an account", titles)
	s.screenshot("console-account")
	// A change needs a recent passkey sign-in: the step-up first.
	grace := s.eval(`location.pathname`)
	s.do("step up", chromedp.Navigate(a.URL+"/account/reauth?next="+url.QueryEscape(grace)),
		chromedp.WaitVisible(chromedp.CSS("button[data-passkey-reauth]")), chromedp.Click(chromedp.CSS("button[data-passkey-reauth]")))
	s.waitPath(grace)
	// A bad group name: an error tied to its field.
	s.eval(`(() => { const f = document.getElementById("add-group").form; f.add.value = "Not A Group"; f.submit(); return ""; })()`)
	s.waitFor("the group error", `document.querySelector("#add-group[aria-invalid=true]") !== null`)
	s.axeEverywhere(script, "the console's page of an account with an error", map[string]string{})
	visit("the console's invitations", "/admin/invite")
	visit("the console's applications", "/admin/applications")

	// Later, deleting the account asks for a step-up first.
	clock.Advance(a.Config.ReauthTTL + time.Minute)
	visit("the step-up page", "/account/reauth?next=%2Faccount%2Fdelete")
	s.do("confirm with a passkey", chromedp.Click(chromedp.CSS("button[data-passkey-reauth]")))
	s.waitPath("/account/delete")
	s.axeEverywhere(script, "the delete page", titles)
	// Typing the wrong address: an error tied to its field.
	s.eval(`(() => { const f = document.querySelector('form[action="/account/delete"]'); f.confirm.value = "someone@else.example"; f.submit(); return ""; })()`)
	s.waitFor("the delete error", `document.querySelector("[aria-invalid=true]") !== null`)
	if s.eval(`(() => { const e = document.querySelector("[aria-invalid=true]"); const d = document.getElementById(e.getAttribute("aria-describedby") || ""); return String(!!d && d.textContent.trim() !== ""); })()`) != "true" {
		t.Error("the delete page's error is not tied to its field")
	}
	s.axeEverywhere(script, "the delete page with an error", map[string]string{})

	visit("a page that does not exist", "/no/such/page")
	visit("a forged link", "/signin/link?token=forged")
	s.do("open the link again", chromedp.Navigate(link))
	s.waitFor("the used link's page", `document.querySelector('[role="alert"]') !== null`)
	s.axeEverywhere(script, "a link used already", titles)

	// Reduced motion: transitions only for people who have not asked for
	// less motion.
	s.do("open the account", chromedp.Navigate(a.URL+"/account"), chromedp.WaitVisible(chromedp.CSS("button[type=submit]")))
	motion := func() string {
		return s.eval(`getComputedStyle(document.querySelector("button[type=submit]")).transitionDuration`)
	}
	if d := motion(); d == "0s" || d == "" {
		t.Errorf("buttons have no transition (%q): the reduced-motion check below would prove nothing", d)
	}
	call(s, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-reduced-motion", Value: "reduce"}}})
	if d := motion(); strings.Trim(strings.ReplaceAll(d, "0s", ""), ", ") != "" {
		t.Errorf("with reduced motion, buttons still move: transition-duration %q", d)
	}
	call(s, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{})

	// The account page and the sign-in page in German, and the
	// screenshot the README shows.
	s.eval(`(() => { const f = document.querySelector('form[action="/language"]'); f.lang.value = "de"; f.submit(); return ""; })()`)
	s.waitFor("the page in German", `document.documentElement.lang === "de"`)
	s.axeEverywhere(script, "the account page in German", map[string]string{})
	s.signOut()
	s.do("German", chromedp.Navigate(a.URL+"/signin"), chromedp.WaitVisible(chromedp.ID("language")))
	if s.eval(`document.documentElement.lang`) != "de" {
		t.Error("signing out forgot the language chosen")
	}
	s.axeEverywhere(script, "the sign-in page in German", map[string]string{})
	s.screenshot("signin-de")

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.exceptions) > 0 {
		t.Errorf("uncaught exceptions in the page: %v", s.exceptions)
	}
}

// press sends one key, as a keyboard does.
func (s *browserSession) press(key string) {
	s.t.Helper()
	s.do("press "+describeKey(key), chromedp.KeyEvent(key))
}

func describeKey(key string) string {
	switch key {
	case kb.Tab:
		return "Tab"
	case kb.Enter:
		return "Enter"
	case " ":
		return "Space"
	}
	return fmt.Sprintf("%q", key)
}

// typeText types text into the focused field, key by key.
func (s *browserSession) typeText(text string) {
	s.t.Helper()
	s.do("type "+text, chromedp.KeyEvent(text))
}

// focusRing describes the focused element and whether a person can see
// that it has focus: a solid outline at least 2 px wide, or a box
// shadow, inside the viewport.
const focusRing = `(() => {
	const e = document.activeElement;
	if (!e || e === document.body) return "nothing focused";
	const st = getComputedStyle(e), r = e.getBoundingClientRect();
	const ring = (st.outlineStyle !== "none" && parseFloat(st.outlineWidth) >= 2) || st.boxShadow !== "none";
	const visible = r.width > 0 && r.height > 0 && r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth;
	const name = e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " + JSON.stringify((e.getAttribute("aria-label") || e.textContent || e.value || "").trim().slice(0, 40));
	if (!ring) return "no visible focus ring on " + name;
	if (!visible) return "focus off screen on " + name;
	return "ok " + name;
})()`

// tabTo presses Tab until the focused element matches selector (unless
// it has focus already, as a field with autofocus does), checking the
// focus ring at every stop. (After the last element, focus goes to the
// browser's own controls: nothing on the page has it.)
func (s *browserSession) tabTo(selector string) {
	s.t.Helper()
	focused := func() bool {
		return s.eval(`String(document.activeElement.matches(`+jsString(selector)+`))`) == "true"
	}
	for i := 0; i < 40; i++ {
		if i > 0 || !focused() {
			s.press(kb.Tab)
		}
		if ring := s.eval(focusRing); !strings.HasPrefix(ring, "ok ") && ring != "nothing focused" {
			s.t.Errorf("Tab stop %d on %s: %s", i+1, s.eval(`location.pathname`), ring)
		}
		if focused() {
			return
		}
	}
	s.t.Fatalf("40 presses of Tab never reached %s on %s", selector, s.eval(`location.pathname`))
}

// TestKeyboardOnlyJourney: with Tab, Enter, Space and typing only, a
// person signs up by link, adds a passkey, renames it and deletes it,
// and, made an operator, finds their account in the console and adds it
// to a group, seeing where the focus is at every step.
func TestKeyboardOnlyJourney(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	s := newBrowserSession(t, a)
	call(s, webauthn.Enable, webauthn.EnableParams{EnableUI: ptrTo(false)})
	s.addAuthenticator(webauthn.AuthenticatorTransportInternal)
	// No autofill request on the sign-in page's field, which would take
	// the keyboard's first Enter for a passkey.
	call(s, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);`})

	// A headless window never has the system's focus: emulate it, so the
	// page shows focus as a window in front would.
	call(s, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
	s.do("open the site", chromedp.Navigate(a.URL+"/"))
	s.waitPath("/")
	// The skip link comes first, and shows itself.
	s.tabTo(`a.skip`)
	s.tabTo(`a[href="/signin"]`)
	s.press(kb.Enter)
	s.waitPath("/signin")

	s.tabTo(`#email`)
	s.typeText("kim@example.com")
	s.tabTo(`form[action="/signin/email"] button[type=submit]`)
	s.press(kb.Enter)
	s.waitPath("/signin/sent")

	link := a.Mail.WaitFor(t, "kim@example.com", 1).Links()[0]
	s.do("open the emailed link", chromedp.Navigate(link))
	s.waitPath("/signin/link")
	s.tabTo(`form[action="/signin/link"] button`)
	s.press(" ")
	s.waitPath("/account")

	s.tabTo(`button[data-passkey-register]`)
	s.press(kb.Enter)
	s.waitFor("the new passkey", `document.querySelectorAll(".passkey-name").length === 1`)

	s.tabTo(`form[action$="/rename"] input[name=name]`)
	s.typeText("Work laptop") // (Tab into a field selects what it holds)
	s.tabTo(`form[action$="/rename"] button`)
	s.press(" ")
	s.waitFor("the new name", `document.querySelector(".passkey-name")?.textContent.trim() === "Work laptop"`)

	// Deleting asks for a passkey first, which the keyboard gives too.
	s.tabTo(`form[action$="/delete"] button`)
	s.press(kb.Enter)
	s.waitPath("/account/reauth")
	s.tabTo(`button[data-passkey-reauth]`)
	s.press(" ")
	s.waitPath("/account")
	s.tabTo(`form[action$="/delete"] button`)
	s.press(kb.Enter)
	s.waitFor("no passkey left", `location.pathname === "/account" && document.querySelectorAll(".passkey-name").length === 0`)
	if n := len(a.Mail.MailsTo("kim@example.com")); n < 3 {
		t.Errorf("%d emails to kim@example.com, want the link and the added and removed notices", n)
	}

	// The console, from the account page's link.
	if _, errOut, exit := admin(t, a, "", "group", "add", "kim@example.com", "admin"); exit != 0 {
		t.Fatalf("admin group add: %s", errOut)
	}
	s.do("reload the account page", chromedp.Navigate(a.URL+"/account"))
	s.waitPath("/account")
	s.tabTo(`main a[href="/admin"]`)
	s.press(kb.Enter)
	s.waitPath("/admin")
	s.tabTo(`#q`)
	s.typeText("kim")
	s.tabTo(`form[role=search] button[type=submit]`)
	s.press(kb.Enter)
	s.waitFor("the search's result", `location.search === "?q=kim" && document.querySelectorAll("ul.accounts a").length === 1`)
	s.tabTo(`ul.accounts a`)
	s.press(kb.Enter)
	s.waitFor("the account's page", `location.pathname.startsWith("/admin/accounts/")`)
	s.tabTo(`#add-group`)
	s.typeText("ops")
	s.tabTo(`#add-group ~ button`)
	s.press(kb.Enter)
	s.waitFor("the group added", `document.querySelector(".ok-box") !== null && [...document.querySelectorAll("ul.groups .badge")].some(b => b.textContent === "ops")`)
}
