package tests

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/tests/testkit"
)

// FuzzLinkPages sends arbitrary tokens to the link pages of the real app
// (sign-in and email change, opened and confirmed), and as a typed code
// and a link-request cookie to the code's endpoint: every answer is a
// 4xx page (or the confirmation page), never a 5xx.
func FuzzLinkPages(f *testing.F) {
	a := testkit.StartApp(f, testkit.AppOptions{Env: map[string]string{"RATE_LIMIT_SIGNIN": "1000000/1s"}})
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("_", 300))
	f.Add("%00")
	f.Fuzz(func(t *testing.T, tok string) {
		for _, req := range []*http.Request{
			httptest.NewRequest(http.MethodGet, "/signin/link?token="+url.QueryEscape(tok), nil),
			formRequest("/signin/link", url.Values{"token": {tok}}),
			httptest.NewRequest(http.MethodGet, "/account/email/confirm?token="+url.QueryEscape(tok), nil),
			formRequest("/account/email/confirm", url.Values{"token": {tok}}),
			formRequest("/signin/code", url.Values{"code": {tok}}),
			withCookie(formRequest("/signin/code", url.Values{"code": {"ABCD-EFGH"}}), "__Host-linkreq", tok),
		} {
			w := httptest.NewRecorder()
			a.App.Handler.ServeHTTP(w, req)
			if w.Code >= 500 || w.Code < 200 {
				t.Fatalf("%s %q → %d", req.Method, tok, w.Code)
			}
		}
	})
}

// FuzzAccessCookie sends arbitrary access cookies: the answer is always
// "signed out" (303 to sign in), never a 5xx.
func FuzzAccessCookie(f *testing.F) {
	a := testkit.StartApp(f, testkit.AppOptions{})
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		req := httptest.NewRequest(http.MethodGet, "/account", nil)
		req.Header.Set("Cookie", "__Host-at="+tok+"; __Host-rt="+tok)
		w := httptest.NewRecorder()
		a.App.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("cookie %q → %d", tok, w.Code)
		}
	})
}

// withCookie adds a cookie to req, as sent.
func withCookie(req *http.Request, name, value string) *http.Request {
	req.Header.Add("Cookie", name+"="+value)
	return req
}

func formRequest(path string, form url.Values) *http.Request {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}
