package tests

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/tests/testkit"
)

const wantCSP = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	trace := func(path string) *testkit.Response {
		req, _ := http.NewRequest(http.MethodTrace, a.URL+path, nil)
		return b.Do(req)
	}
	for _, r := range []*testkit.Response{
		b.Get("/"), b.Get("/signin"), b.Get("/no/such/page"), b.Get("/signin/link?token=x"),
		b.Post("/signin/email", url.Values{"email": {"x"}}), trace("/account"), trace("/no/such/page"),
	} {
		for h, want := range map[string]string{
			"Content-Security-Policy":      wantCSP,
			"X-Content-Type-Options":       "nosniff",
			"Cross-Origin-Opener-Policy":   "same-origin",
			"Cross-Origin-Resource-Policy": "same-origin",
			"X-Frame-Options":              "DENY",
			"Permissions-Policy":           "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
			"Cache-Control":                "no-store",
		} {
			if got := r.Header.Get(h); got != want {
				t.Errorf("%s %s: %s = %q, want %q", r.Request.Method, r.Request.URL, h, got, want)
			}
		}
		wantReferrer := "same-origin"
		if r.Request.URL.Path == "/signin/link" {
			wantReferrer = "no-referrer" // the address holds a token
		}
		if got := r.Header.Get("Referrer-Policy"); got != wantReferrer {
			t.Errorf("%s: Referrer-Policy %q, want %q", r.Request.URL, got, wantReferrer)
		}
		if r.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s: HSTS on an http:// BASE_URL", r.Request.URL)
		}
		if r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: CORS header present", r.Request.URL)
		}
		if !strings.Contains(r.Header.Get("Content-Type"), "charset=") {
			t.Errorf("%s: Content-Type %q has no charset", r.Request.URL, r.Header.Get("Content-Type"))
		}
	}
	// A signed-in page is never stored by a cache.
	signIn(t, a, b, "pat@example.com")
	if r := b.Get("/account"); r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("/account: Cache-Control %q, want no-store", r.Header.Get("Cache-Control"))
	}
	// Behind TLS termination (BASE_URL https), HSTS is on.
	tls := testkit.StartApp(t, testkit.AppOptions{Env: map[string]string{"BASE_URL": "https://localhost:1"}})
	r := testkit.NewBrowser(t, tls.URL).Get("/")
	if got := r.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
		t.Errorf("https BASE_URL: Strict-Transport-Security %q", got)
	}
}

func TestCrossOriginPostsAreRefused(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "uma@example.com")
	post := func(headers map[string]string) *testkit.Response {
		req, _ := http.NewRequest(http.MethodPost, a.URL+"/signout/everywhere", nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		return b.Do(req)
	}
	for name, h := range map[string]map[string]string{
		"cross-site":          {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		"same-site":           {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.localhost"},
		"old browser, Origin": {"Origin": "https://evil.example"},
	} {
		r := post(h)
		expectPage(t, r, http.StatusForbidden, "another website")
		if !signedIn(t, b) {
			t.Fatalf("%s: the cross-origin request took effect", name)
		}
	}
	// Every state-changing route refuses it, listed from the router so
	// that a new route cannot be left out.
	posts := 0
	for _, rt := range a.App.Handler.(*echo.Echo).Routes() {
		if rt.Method != http.MethodPost {
			continue
		}
		posts++
		path := strings.NewReplacer(":id", "1", ":client", "x").Replace(rt.Path)
		req, _ := http.NewRequest(http.MethodPost, a.URL+path, strings.NewReader("name=x&email=x%40example.com"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://evil.example")
		r := b.Do(req)
		if path == "/oauth2/token" || path == "/oauth2/userinfo" {
			// Applications call these with their own credentials, never
			// cookies: a cross-site request carrying the browser's cookies
			// gets nothing (no client, no bearer token), and no CORS
			// permission for an unregistered origin.
			if r.StatusCode != http.StatusUnauthorized || r.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("cross-site POST %s = %d, allow-origin %q; want 401 and no CORS", path, r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
			}
			continue
		}
		if strings.HasPrefix(path, "/admin") {
			// The console does not exist for this person, whatever the
			// origin (TestConsoleActions sends an operator's cross-site
			// POST: 403).
			if r.StatusCode != http.StatusNotFound {
				t.Errorf("cross-site POST %s from a non-member = %d, want 404", rt.Path, r.StatusCode)
			}
			continue
		}
		if r.StatusCode != http.StatusForbidden || !strings.Contains(r.Body, "another website") {
			t.Errorf("cross-site POST %s = %d, want 403 saying it came from another website", rt.Path, r.StatusCode)
		}
	}
	if posts < 14 {
		t.Errorf("only %d POST routes found", posts)
	}
	if !signedIn(t, b) {
		t.Fatal("a cross-site POST took effect")
	}
	// CORS: a preflight gets no permission.
	req, _ := http.NewRequest(http.MethodOptions, a.URL+"/signin/email", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	if r := b.Do(req); r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Access-Control-Allow-Methods") != "" {
		t.Error("preflight answered with CORS permissions")
	}
}

func TestErrorPagesHaveTheRightStatus(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	expectPage(t, b.Get("/no/such/page"), http.StatusNotFound, "Page not found", `href="/"`)
	expectPage(t, b.Get("/static/nothing.js"), http.StatusNotFound, "Page not found")
	for _, path := range []string{"/", "/signin", "/no/such/page", "/account"} {
		req, _ := http.NewRequest(http.MethodTrace, a.URL+path, nil)
		expectStatus(t, b.Do(req), http.StatusMethodNotAllowed)
	}
	req, _ := http.NewRequest(http.MethodDelete, a.URL+"/signin", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	expectPage(t, b.Do(req), http.StatusMethodNotAllowed, "Method not allowed")
	// A body over 64 KB: 413, whether it says so up front or not.
	big := url.Values{"email": {strings.Repeat("a", 70<<10)}}
	expectPage(t, b.Post("/signin/email", big), http.StatusRequestEntityTooLarge, "64 KB")
	req, _ = http.NewRequest(http.MethodPost, a.URL+"/signin/email", strings.NewReader(big.Encode()))
	req.ContentLength = -1 // chunked
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	expectPage(t, b.Do(req), http.StatusRequestEntityTooLarge)
	// A malformed form body.
	req, _ = http.NewRequest(http.MethodPost, a.URL+"/signin/link", strings.NewReader("token=%zz"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	expectPage(t, b.Do(req), http.StatusBadRequest)
	// Health.
	expectStatus(t, b.Get("/healthz"), http.StatusOK)
}

func TestPerAddressLimitAnswersTheSameAndSendsNothing(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	var first *testkit.Response
	for i := range 5 {
		// Different clients, same address: the limit is the address's.
		b := a.Browser(t)
		b.Header.Set("X-Forwarded-For", "203.0.113."+strconv.Itoa(i))
		r := b.Post("/signin/email", url.Values{"email": {"vic@example.com"}})
		expectStatus(t, r, http.StatusSeeOther)
		if first == nil {
			first = r
		} else if r.Header.Get("Location") != first.Header.Get("Location") || r.Body != first.Body ||
			len(r.Cookies()) != len(first.Cookies()) {
			t.Errorf("request %d answered differently", i+1)
		}
	}
	if n := len(a.Mail.MailsTo("vic@example.com")); n != 3 {
		t.Errorf("%d emails to one address, want 3 (RATE_LIMIT_EMAIL 3/15m)", n)
	}
}

func TestPerClientLimitGives429WithRetryAfter(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	for range 30 {
		expectStatus(t, b.Post("/signin/link", url.Values{"token": {"garbage"}}), http.StatusBadRequest)
	}
	r := b.Post("/signin/link", url.Values{"token": {"garbage"}})
	expectPage(t, r, http.StatusTooManyRequests, "Too many attempts")
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 600 {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	// Another route has its own count.
	expectStatus(t, b.Post("/signin/email", url.Values{"email": {"x@example.com"}}), http.StatusSeeOther)
	// Without TRUSTED_PROXIES, X-Forwarded-For changes nothing.
	b.Header.Set("X-Forwarded-For", "198.51.100.7")
	expectStatus(t, b.Post("/signin/link", url.Values{"token": {"garbage"}}), http.StatusTooManyRequests)

	// Every sign-in endpoint is counted: asking for links (to any address),
	// and starting and finishing passkey sign-ins.
	for _, ask := range []func(c *testkit.Browser, i int) *testkit.Response{
		func(c *testkit.Browser, i int) *testkit.Response {
			return c.Post("/signin/email", url.Values{"email": {"n" + strconv.Itoa(i) + "@example.com"}})
		},
		func(c *testkit.Browser, _ int) *testkit.Response { return c.PostJSON("/signin/passkey/begin", nil) },
		func(c *testkit.Browser, _ int) *testkit.Response { return c.PostJSON("/signin/passkey/finish", `{}`) },
	} {
		c := a.Browser(t)
		codes := map[int]int{}
		for i := range 31 {
			codes[ask(c, i).StatusCode]++
		}
		if codes[http.StatusTooManyRequests] == 0 {
			t.Errorf("31 attempts on one route: %v, want the last refused with 429", codes)
		}
	}
}

func TestTrustedProxiesDecideTheClientAddress(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{Env: map[string]string{
		"TRUSTED_PROXIES": "127.0.0.1/32", "RATE_LIMIT_SIGNIN": "2/10m"}})
	try := func(xff string) int {
		b := a.Browser(t)
		if xff != "" {
			b.Header.Set("X-Forwarded-For", xff)
		}
		return b.Post("/signin/link", url.Values{"token": {"garbage"}}).StatusCode
	}
	// Behind the trusted proxy, each client is counted on its own.
	for range 2 {
		if c := try("198.51.100.1"); c != http.StatusBadRequest {
			t.Fatalf("client 1: %d", c)
		}
	}
	if c := try("198.51.100.1"); c != http.StatusTooManyRequests {
		t.Errorf("client 1 third attempt: %d, want 429", c)
	}
	if c := try("198.51.100.2"); c != http.StatusBadRequest {
		t.Errorf("client 2: %d, want 400", c)
	}
	// A client cannot choose its address by prepending to the header: the
	// proxy's entry (rightmost untrusted) counts.
	if c := try("203.0.113.9, 198.51.100.1"); c != http.StatusTooManyRequests {
		t.Errorf("spoofed prefix: %d, want 429", c)
	}
	// Garbage in the header falls back to the peer address.
	if c := try("not-an-ip"); c != http.StatusBadRequest {
		t.Errorf("garbage XFF: %d", c)
	}
}

// TestAClientThatHangsUpIsNoError: a client that sends half a body and
// hangs up is nobody's error: the app logs no error line for it (anyone
// could fill the operator's error log that way) and keeps serving.
func TestAClientThatHangsUpIsNoError(t *testing.T) {
	var log testkit.SyncBuffer
	a := testkit.StartApp(t, testkit.AppOptions{Log: &log})
	const form, json = "application/x-www-form-urlencoded", "application/json"
	for path, contentType := range map[string]string{
		"/signin/email": form, "/signin/link": form, "/account/email/confirm": form,
		"/signin/passkey/finish": json, "/signin/passkey/begin": json,
	} {
		conn, err := net.Dial("tcp", a.Addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: 100\r\n\r\n{\"x\":", path, strings.TrimPrefix(a.URL, "http://"), contentType)
		conn.Close()
	}
	expectStatus(t, a.Browser(t).Get("/signin"), http.StatusOK)
	a.Stop() // waits for every request in flight, and its log lines
	if strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("clients hanging up were logged as errors:\n%s", log.String())
	}
}
