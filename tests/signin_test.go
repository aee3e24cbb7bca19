package tests

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/tests/testkit"
)

func TestSignInPageIsAccessibleAndSelfContained(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	r := a.Browser(t).Get("/signin")
	expectPage(t, r, http.StatusOK,
		`<label for="email">Email address</label>`,
		`autocomplete="username webauthn"`,
		`type="email"`,
		`maxlength="254"`, // as the server allows
		`<html lang="en">`,
		`name="viewport" content="width=device-width, initial-scale=1"`,
		"Email me a link",
		"Sign in with a passkey",
	)
	// No inline scripts, inline styles or event handlers (CSP forbids
	// them), and nothing loaded from another origin.
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`(?:src|href)="(?:https?:)?//`),
	} {
		if bad.MatchString(r.Body) {
			t.Errorf("sign-in page matches %s", bad)
		}
	}
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(r.Body, -1) {
		if !strings.Contains(tag, ` src="/static/`) {
			t.Errorf("script without a same-origin src: %s", tag)
		}
	}
	// The passkey button stays hidden until the script shows it, so the
	// page works without JavaScript.
	if !regexp.MustCompile(`<div data-requires-webauthn hidden>`).MatchString(r.Body) {
		t.Error("passkey section is not hidden by default")
	}
	css := a.Browser(t).Get(regexp.MustCompile(`/static/app\.css\?v=[0-9a-f]+`).FindString(r.Body))
	expectStatus(t, css, http.StatusOK)
	if ct := css.Header.Get("Content-Type"); ct != "text/css; charset=utf-8" {
		t.Errorf("stylesheet Content-Type %q", ct)
	}
	// Whole, whatever range or condition is asked: nothing to revalidate.
	for h, v := range map[string]string{"Range": "bytes=999999-", "If-Match": `"x"`, "If-None-Match": "*"} {
		req, _ := http.NewRequest(http.MethodGet, a.URL+"/static/app.css", nil)
		req.Header.Set(h, v)
		if r := a.Browser(t).Do(req); r.StatusCode != http.StatusOK || r.Body != css.Body {
			t.Errorf("the stylesheet with %s: %s → %d, %d bytes", h, v, r.StatusCode, len(r.Body))
		}
	}
	for _, want := range []string{"prefers-color-scheme: dark", "max-width: 380px"} {
		if !strings.Contains(css.Body, want) {
			t.Errorf("stylesheet lacks %q", want)
		}
	}
}

func TestKnownAndUnknownAddressesGetIdenticalAnswers(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	signIn(t, a, a.Browser(t), "known@example.com")

	ask := func(email string) *testkit.Response {
		return a.Browser(t).Post("/signin/email", url.Values{"email": {email}})
	}
	known, unknown := ask("known@example.com"), ask("unknown@example.com")
	if known.StatusCode != http.StatusSeeOther || unknown.StatusCode != http.StatusSeeOther {
		t.Fatalf("statuses %d and %d, want 303", known.StatusCode, unknown.StatusCode)
	}
	if known.Header.Get("Location") != unknown.Header.Get("Location") || known.Body != unknown.Body {
		t.Errorf("responses differ: %q %q / %q %q", known.Header.Get("Location"), known.Body, unknown.Header.Get("Location"), unknown.Body)
	}
	// Same cookies: same names and attributes (the values are sealed and
	// random, so they always differ).
	shape := func(r *testkit.Response) []string {
		var out []string
		for _, c := range r.Cookies() {
			out = append(out, c.Name, c.Path, itoa(c.MaxAge), boolStr(c.Secure), boolStr(c.HttpOnly), itoa(int(c.SameSite)))
		}
		return out
	}
	if k, u := shape(known), shape(unknown); strings.Join(k, ",") != strings.Join(u, ",") || len(k) == 0 {
		t.Errorf("cookies differ: %v / %v", k, u)
	}
	for _, h := range []string{"Content-Type", "Content-Length", "Cache-Control"} {
		if known.Header.Get(h) != unknown.Header.Get(h) {
			t.Errorf("header %s differs: %q / %q", h, known.Header.Get(h), unknown.Header.Get(h))
		}
	}
	// Both addresses got an email: a sign-in link and a sign-up link.
	if got := a.Mail.Last(t, "known@example.com").Subject; got != "Sign in to Latchkey" {
		t.Errorf("known address got %q", got)
	}
	if got := a.Mail.Last(t, "unknown@example.com").Subject; got != "Create your Latchkey account" {
		t.Errorf("unknown address got %q", got)
	}
}

func TestEmailHasOneLinkFromBaseURLOnly(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	// Host-header poisoning: whatever the request claims, the link names
	// BASE_URL.
	b.Header.Set("X-Forwarded-Host", "evil.example")
	b.Header.Set("X-Forwarded-Proto", "https")
	b.Header.Set("Forwarded", "host=evil.example;proto=https")
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/signin/email", strings.NewReader("email=Carol%40Example.COM"))
	req.Host = "evil.example"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	r := b.Do(req)
	expectStatus(t, r, http.StatusSeeOther)

	m := a.Mail.WaitFor(t, "carol@example.com", 1) // normalised address
	links := m.Links()
	if len(links) != 1 || !strings.HasPrefix(links[0], a.URL+"/signin/link?token=") {
		t.Fatalf("text links %v, want one link under %s", links, a.URL)
	}
	if strings.Contains(m.HTML, "evil.example") || strings.Contains(m.Text, "evil.example") {
		t.Error("email mentions the poisoned host")
	}
	if !strings.Contains(m.HTML, `href="`+links[0]+`"`) {
		t.Error("HTML part does not carry the same link")
	}
	if !strings.Contains(m.Header.Get("Content-Type"), "multipart/alternative") {
		t.Errorf("Content-Type %q, want multipart/alternative (text and HTML)", m.Header.Get("Content-Type"))
	}
	if m.From != "no-reply@localhost" {
		t.Errorf("envelope sender %q", m.From)
	}
}

func TestInvalidAddressesGetTheFormBackAndNoEmail(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	cases := map[string]string{
		"":                                  "Enter your email address.",
		"   ":                               "Enter your email address.",
		"alice@example.com\r\nBcc: x@y.z":   "Enter just one email address",
		"alice@example.com,bob@example.com": "Enter just one email address",
		"Alice <alice@example.com>":         "Enter just one email address",
		strings.Repeat("a", 250) + "@x.com": "too long",
		"alice":                             "doesn&#39;t look like an email address",
		"alice@localhost":                   "doesn&#39;t look like an email address",
		"alice@@example.com":                "Enter just one email address",
		".alice@example.com":                "doesn&#39;t look like an email address",
	}
	for email, msg := range cases {
		r := b.Post("/signin/email", url.Values{"email": {email}})
		expectPage(t, r, http.StatusBadRequest, msg, `aria-invalid="true"`, `action="/signin/email"`)
	}
	if n := a.Mail.Count(); n != 0 {
		t.Errorf("%d emails sent for invalid addresses", n)
	}
}

func TestLinkPageNeverConsumesAndNamesTheAccount(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	asker := a.Browser(t)
	tok := requestLink(t, a, asker, "dave@example.com")
	path := "/signin/link?token=" + tok

	// A mail scanner: GET twice and HEAD, from a browser without cookies.
	scanner := a.Browser(t)
	for range 2 {
		r := scanner.Get(path)
		expectPage(t, r, http.StatusOK, "Continue as dave@example.com", "requested from another browser", `action="/signin/link"`)
		if rp := r.Header.Get("Referrer-Policy"); rp != "no-referrer" {
			t.Errorf("link page Referrer-Policy %q, want no-referrer", rp)
		}
		if strings.Contains(r.Body, `name="referrer"`) {
			t.Error("a referrer meta tag overrides the no-referrer header")
		}
	}
	head, _ := http.NewRequest(http.MethodHead, a.URL+path, nil)
	expectStatus(t, scanner.Do(head), http.StatusOK)

	// The browser that asked does not get the warning.
	r := asker.Get(path)
	expectPage(t, r, http.StatusOK, "Continue as dave@example.com", "Create your account")
	if strings.Contains(r.Body, "another browser") {
		t.Error("the asking browser is told it is another browser")
	}

	// A garbled link-request cookie is just "another browser".
	forged := a.Browser(t)
	forged.SetCookie("__Host-linkreq", "forged-value")
	expectPage(t, forged.Get(path), http.StatusOK, "requested from another browser")

	// After all that, the link still works, even from the other browser.
	r = scanner.Post("/signin/link", url.Values{"token": {tok}})
	expectStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != "/account" {
		t.Errorf("Location %q, want /account", r.Header.Get("Location"))
	}
	if r.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Error("POST /signin/link lacks Referrer-Policy: no-referrer")
	}
	expectPage(t, scanner.Get("/account"), http.StatusOK, "dave@example.com")
}

func TestLinkSetsHostCookies(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	tok := requestLink(t, a, b, "erin@example.com")
	r := b.Post("/signin/link", url.Values{"token": {tok}})
	expectStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", r.Header.Get("Cache-Control"))
	}
	for name, maxAge := range map[string]int{"__Host-at": 600, "__Host-rt": 7 * 24 * 3600} {
		line := setCookieHeader(r, name)
		for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
			if !strings.Contains(line, attr) {
				t.Errorf("%s lacks %s: %s", name, attr, line)
			}
		}
		if strings.Contains(line, "Domain=") {
			t.Errorf("%s has a Domain: %s", name, line)
		}
		var got int
		for _, c := range r.Cookies() {
			if c.Name == name {
				got = c.MaxAge
			}
		}
		if got < maxAge-2 || got > maxAge {
			t.Errorf("%s Max-Age %d, want about %d", name, got, maxAge)
		}
	}
	access := b.Cookie("__Host-at")
	h, c := tokenHeader(t, access), tokenClaims(t, access)
	if h["alg"] != "EdDSA" || h["typ"] != "at+jwt" || h["kid"] == nil {
		t.Errorf("access token header %v", h)
	}
	for _, claim := range []string{"iss", "aud", "sub", "iat", "exp", "auth_time", "amr", "sid", "jti"} {
		if c[claim] == nil {
			t.Errorf("access token lacks %s: %v", claim, c)
		}
	}
	if c["iss"] != a.URL || c["aud"] != a.URL {
		t.Errorf("iss/aud %v %v, want %s", c["iss"], c["aud"], a.URL)
	}
	if amr, _ := c["amr"].([]any); len(amr) != 1 || amr[0] != "email" {
		t.Errorf("amr %v, want [email]", c["amr"])
	}
	if strings.Contains(access, "erin") || strings.Contains(string(mustJSON(c)), "erin") {
		t.Error("the access token carries the email")
	}
	rc := tokenClaims(t, b.Cookie("__Host-rt"))
	if tokenHeader(t, b.Cookie("__Host-rt"))["typ"] != "rt+jwt" || rc["aud"] != a.URL+"/refresh" || rc["sid"] != c["sid"] {
		t.Errorf("refresh token header/claims wrong: %v", rc)
	}
	t.Logf("access cookie: %d bytes (name=value)", len("__Host-at=")+len(access))
}

func TestLinkIsSingleUseAndVoidsOlderLinks(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "frank@example.com")

	older := requestLink(t, a, b, "frank@example.com")
	time.Sleep(5 * time.Millisecond) // distinct issue times
	newer := requestLink(t, a, b, "frank@example.com")

	expectStatus(t, a.Browser(t).Post("/signin/link", url.Values{"token": {newer}}), http.StatusSeeOther)
	// Used: 410, with a way to a new link.
	for _, tok := range []string{newer, older} {
		r := a.Browser(t).Post("/signin/link", url.Values{"token": {tok}})
		expectPage(t, r, http.StatusGone, "already been used", `href="/signin"`, "Get a new link")
		expectPage(t, a.Browser(t).Get("/signin/link?token="+tok), http.StatusGone, `href="/signin"`)
	}
}

func TestExpiredLinkIsGone(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock, Env: map[string]string{"LINK_TTL": "10m"}})
	b := a.Browser(t)
	tok := requestLink(t, a, b, "grace@example.com")
	clock.Advance(10*time.Minute + time.Second)
	expectPage(t, b.Get("/signin/link?token="+tok), http.StatusGone, "expired", `href="/signin"`)
	expectPage(t, b.Post("/signin/link", url.Values{"token": {tok}}), http.StatusGone, "expired")
}

func TestDamagedLinksAreBadRequests(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	tok := requestLink(t, a, b, "heidi@example.com")
	flipped := []byte(tok)
	flipped[len(flipped)/2] ^= 1
	if flipped[len(flipped)/2] == '-' || flipped[len(flipped)/2] == '_' {
		flipped[len(flipped)/2] = 'A'
	}
	for name, bad := range map[string]string{
		"tampered":  string(flipped),
		"truncated": tok[:len(tok)-5],
		"garbage":   "not-a-token",
		"empty":     "",
		"padding":   tok + "==",
		"huge":      strings.Repeat("A", 5000),
		"unicode":   "ünïcödé",
	} {
		t.Run(name, func(t *testing.T) {
			expectPage(t, b.Get("/signin/link?token="+url.QueryEscape(bad)), http.StatusBadRequest, "damaged", `href="/signin"`)
			expectPage(t, b.Post("/signin/link", url.Values{"token": {bad}}), http.StatusBadRequest, "damaged")
		})
	}
	// The real token still works afterwards.
	expectStatus(t, b.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
}

// TestConcurrentUseOfOneLinkSignsInOnce: twenty simultaneous POSTs of one
// link, spread over three instances, sign in exactly once.
func TestConcurrentUseOfOneLinkSignsInOnce(t *testing.T) {
	testkit.EachEngine(t, testConcurrentUseOfOneLinkSignsInOnce)
}

func testConcurrentUseOfOneLinkSignsInOnce(t *testing.T, store testkit.Store) {
	apps := instances(t, store, 3, 0, nil)
	a := apps[0]
	for _, email := range []string{"ivan@example.com", "judy@example.com"} {
		if email == "judy@example.com" {
			signIn(t, a, a.Browser(t), email) // a sign-in (not sign-up) link
		}
		tok := requestLink(t, a, a.Browser(t), email)
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			codes = map[int]int{}
		)
		start := make(chan struct{})
		for i := range 20 {
			wg.Go(func() {
				b := apps[i%len(apps)].Browser(t)
				<-start
				r := b.Post("/signin/link", url.Values{"token": {tok}})
				mu.Lock()
				codes[r.StatusCode]++
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		if codes[http.StatusSeeOther] != 1 || codes[http.StatusGone] != 19 {
			t.Errorf("%s: statuses %v, want one 303 and nineteen 410", email, codes)
		}
	}
}

func TestNextIsFollowedOnlyWithinTheSite(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	i := 0
	for next, want := range map[string]string{
		"/account?tab=passkeys": "/account?tab=passkeys",
		"//evil.example":        "/account",
		`/\evil.example`:        "/account",
		"/%2F%2Fevil.example":   "/account",
		"/%5C%5Cevil.example":   "/account",
		"https:evil.example":    "/account",
		"https://evil.example/": "/account",
		"javascript:alert(1)":   "/account",
		"/\t/evil.example":      "/account",
		"evil.example":          "/account",
		"":                      "/account",
	} {
		i++ // a new address each time: an address gets 3 emails per 15 minutes
		b := a.Browser(t)
		tok := requestLink(t, a, b, "kim"+itoa(i)+"@example.com", "next", next)
		r := b.Post("/signin/link", url.Values{"token": {tok}})
		expectStatus(t, r, http.StatusSeeOther)
		if got := r.Header.Get("Location"); got != want {
			t.Errorf("next=%q: Location %q, want %q", next, got, want)
		}
	}
	// The sign-in page carries a safe next into its form, and drops others.
	expectPage(t, a.Browser(t).Get("/signin?next=%2Faccount"), http.StatusOK, `name="next" value="/account"`)
	if r := a.Browser(t).Get("/signin?next=%2F%2Fevil.example"); strings.Contains(r.Body, "evil.example") {
		t.Error("sign-in page carries an unsafe next")
	}
}

func TestMailFailureTellsThePersonAndCreatesNothing(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	a.Mail.SetMode(testkit.MailReject)
	r := b.Post("/signin/email", url.Values{"email": {"leo@example.com"}})
	expectPage(t, r, http.StatusServiceUnavailable, "couldn&#39;t send the email", `value="leo@example.com"`, "Email me a link")
	if setCookieHeader(r, "__Host-linkreq") != "" {
		t.Error("a failed request still set the link-request cookie")
	}
	a.Mail.SetMode(testkit.MailOK)
	tok := requestLink(t, a, b, "leo@example.com")
	// Nothing was created: the next link is still a sign-up link.
	expectPage(t, b.Get("/signin/link?token="+tok), http.StatusOK, "Create your account")
}

func TestMailOverSTARTTLS(t *testing.T) {
	mail := testkit.StartMailServer(t, true)
	a := testkit.StartApp(t, testkit.AppOptions{Mail: mail})
	requestLink(t, a, a.Browser(t), "mia@example.com")
	if !a.Mail.Last(t, "mia@example.com").TLS {
		t.Error("smtp:// did not upgrade with STARTTLS when the server offered it")
	}
	// ?starttls=required refuses a server without STARTTLS.
	plain := testkit.StartMailServer(t, false)
	strict := testkit.StartApp(t, testkit.AppOptions{Mail: plain, Env: map[string]string{"SMTP_URL": plain.URL() + "?starttls=required"}})
	r := strict.Browser(t).Post("/signin/email", url.Values{"email": {"mia@example.com"}})
	expectStatus(t, r, http.StatusServiceUnavailable)
	if plain.Count() != 0 {
		t.Error("starttls=required sent over plain SMTP")
	}
}
