package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	adminpkg "github.com/latchkey/latchkey/admin"
	"github.com/latchkey/latchkey/app"
	"html"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/tests/testkit"
)

// requestLink asks for a link for email from browser b and returns the
// token from the email that arrives.
func requestLink(t testing.TB, a *testkit.App, b *testkit.Browser, email string, extra ...string) string {
	t.Helper()
	before := len(a.Mail.MailsTo(email))
	form := url.Values{"email": {email}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	r := b.Post("/signin/email", form)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin/sent" {
		t.Fatalf("POST /signin/email = %d %q, want 303 /signin/sent", r.StatusCode, r.Header.Get("Location"))
	}
	// Notices are sent in the background and may arrive in between: wait
	// for the email that carries a link.
	return linkToken(t, a.Mail.WaitForMatch(t, email, before, func(m testkit.Mail) bool {
		return strings.Contains(m.Text, "/signin/link?token=")
	}))
}

// linkToken returns the token of the one link in an email.
func linkToken(t testing.TB, m testkit.Mail) string {
	t.Helper()
	links := m.Links()
	if len(links) != 1 {
		t.Fatalf("email %q has %d links, want 1:\n%s", m.Subject, len(links), m.Text)
	}
	u, err := url.Parse(links[0])
	if err != nil {
		t.Fatal(err)
	}
	tok := u.Query().Get("token")
	if tok == "" {
		t.Fatalf("link %s has no token", links[0])
	}
	return tok
}

// signIn signs browser b in as email by link, creating the account if
// needed, and returns where the sign-in redirected.
func signIn(t testing.TB, a *testkit.App, b *testkit.Browser, email string) string {
	t.Helper()
	tok := requestLink(t, a, b, email)
	r := b.Post("/signin/link", url.Values{"token": {tok}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /signin/link = %d, want 303:\n%s", r.StatusCode, r.Body)
	}
	if b.Cookie("__Host-at") == "" || b.Cookie("__Host-rt") == "" {
		t.Fatal("signed in but the browser holds no session cookies")
	}
	return r.Header.Get("Location")
}

// signedIn reports whether the home page shows b as signed in.
func signedIn(t *testing.T, b *testkit.Browser) bool {
	t.Helper()
	r := b.Get("/")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", r.StatusCode)
	}
	return strings.Contains(html.UnescapeString(r.Body), "You're signed in")
}

// expectStatus fails unless r has the status.
func expectStatus(t testing.TB, r *testkit.Response, status int) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s = %d, want %d\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, clip(r.Body))
	}
}

// expectPage fails unless r is an HTML page with the status that contains
// every want.
func expectPage(t *testing.T, r *testkit.Response, status int, want ...string) {
	t.Helper()
	expectStatus(t, r, status)
	if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=UTF-8" {
		t.Errorf("%s: Content-Type %q, want text/html; charset=UTF-8", r.Request.URL.Path, ct)
	}
	for _, w := range want {
		// What a person reads: text is escaped in the HTML ("You&#39;re").
		if !strings.Contains(r.Body, w) && !strings.Contains(html.UnescapeString(r.Body), w) {
			t.Errorf("%s %s: page lacks %q\n%s", r.Request.Method, r.Request.URL.Path, w, clip(r.Body))
		}
	}
}

func clip(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

// tokenClaims decodes a JWT's payload without verifying it.
func tokenClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// tokenHeader decodes a JWT's header.
func tokenHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// setCookieHeader returns the Set-Cookie line for name, or "".
func setCookieHeader(r *testkit.Response, name string) string {
	for _, line := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(line, name+"=") {
			return line
		}
	}
	return ""
}

// twoInstances starts two instances on one database and one secret, behind
// one public origin (A's), as behind a load balancer. poll is how often each
// polls for revocations (0: the test default).
func twoInstances(t *testing.T, store testkit.Store, poll time.Duration) (a, b *testkit.App) {
	t.Helper()
	apps := instances(t, store, 2, poll, nil)
	return apps[0], apps[1]
}

// instances starts n instances on one store and one secret, behind one
// public origin (the first one's), sharing nothing else; env is added to
// each one's environment.
func instances(t *testing.T, store testkit.Store, n int, poll time.Duration, env map[string]string) []*testkit.App {
	t.Helper()
	secret := testkit.NewSecret()
	mail := testkit.StartMailServer(t, false)
	apps := make([]*testkit.App, n)
	for i := range apps {
		e := maps.Clone(env)
		if i > 0 {
			if e == nil {
				e = map[string]string{}
			}
			e["BASE_URL"] = apps[0].URL
		}
		apps[i] = testkit.StartApp(t, testkit.AppOptions{SecretKeys: secret, Store: store, Mail: mail, PollInterval: poll, Env: e})
	}
	return apps
}

// admin runs `latchkey admin args…` against the app's store, with its
// environment, clock and mail server, and returns what it printed and its
// exit status.
func admin(t testing.TB, a *testkit.App, stdin string, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	var out, errOut bytes.Buffer
	opts := app.Options{}
	if a.Clock != nil {
		opts.Clock = a.Clock
	}
	if a.Mail != nil {
		opts.SMTPTLSConfig = a.Mail.TLSConfig
	}
	err := adminpkg.Run(context.Background(), args, adminpkg.Env{
		Getenv: func(k string) string { return a.Env[k] }, Stdin: strings.NewReader(stdin),
		Stdout: &out, Stderr: &errOut, Options: opts,
	})
	if err != nil {
		errOut.WriteString("latchkey: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), adminpkg.ExitCode(err)
}
