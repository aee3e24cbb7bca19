package tests

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/tests/testkit"
)

// emailCode matches a one-time code as emails show it.
var emailCode = regexp.MustCompile(`\b([ABCDEFGHJKMNPQRSTVWXYZ2-9]{4}-[ABCDEFGHJKMNPQRSTVWXYZ2-9]{4})\b`)

// requestCode asks for an email for address from b (on /signin/email, or
// another form's path) and returns the link's token and the code the
// email carries beside it.
func requestCode(t *testing.T, a *testkit.App, b *testkit.Browser, address string, path ...string) (token, code string) {
	t.Helper()
	before := len(a.Mail.MailsTo(address))
	form := "/signin/email"
	if len(path) > 0 {
		form = path[0]
	}
	r := b.Post(form, url.Values{"email": {address}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin/sent" {
		t.Fatalf("POST %s = %d %q", form, r.StatusCode, r.Header.Get("Location"))
	}
	m := a.Mail.WaitForMatch(t, address, before, func(m testkit.Mail) bool { return strings.Contains(m.Text, "/signin/link?token=") })
	codes := emailCode.FindAllStringSubmatch(m.Text, -1)
	if len(codes) != 1 || !strings.Contains(m.HTML, codes[0][1]) {
		t.Fatalf("the email holds %d codes (want one, in its text and HTML parts):\n%s", len(codes), m.Text)
	}
	return linkToken(t, m), codes[0][1]
}

// typeCode posts a code from b's /signin/sent page.
func typeCode(b *testkit.Browser, code string) *testkit.Response {
	return b.Post("/signin/code", url.Values{"code": {code}})
}

// wrongCode returns a code that is not code.
func wrongCode(code string) string {
	if strings.HasPrefix(code, "A") {
		return "B" + code[1:]
	}
	return "A" + code[1:]
}

// expectSignedInByCode checks r signed b in and sent it to want.
func expectSignedInByCode(t *testing.T, b *testkit.Browser, r *testkit.Response, want string) {
	t.Helper()
	expectStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != want {
		t.Errorf("the code's sign-in goes to %q, want %q", r.Header.Get("Location"), want)
	}
	if !signedIn(t, b) {
		t.Fatal("the right code did not sign the browser in")
	}
}

// TestOneTimeCode: the code beside the link in every sign-in, sign-up and
// recovery email signs in the browser that asked, and no other; typed
// in any case, with spaces or dashes; once; and the code and the link
// are one credential. On both engines.
func TestOneTimeCode(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		clock := testkit.NewClock()
		a := testkit.StartApp(t, testkit.AppOptions{Store: store, Clock: clock, Env: map[string]string{"RATE_LIMIT_EMAIL": "100/1m"}})

		// A sign-up by code: the phone reads the email, the laptop asked.
		laptop, phone := a.Browser(t), a.Browser(t)
		expectPage(t, laptop.Get("/signin/sent"), http.StatusOK, `autocomplete="one-time-code"`, `<label for="code">`)
		tok, code := requestCode(t, a, laptop, "coder@example.com")
		// The same code in another browser: useless, whether or not
		// it has asked for an email of its own.
		expectPage(t, typeCode(phone, code), http.StatusBadRequest, "didn't ask for an email")
		requestCode(t, a, phone, "someone-else@example.com")
		expectPage(t, typeCode(phone, code), http.StatusBadRequest, "That code isn't right")
		typed := strings.ToLower(strings.ReplaceAll(code, "-", " "))
		expectSignedInByCode(t, laptop, typeCode(laptop, typed), "/account")
		expectPage(t, laptop.Get("/account"), http.StatusOK, "coder@example.com", "with a code from an email")
		if laptop.Cookie("__Host-linkreq") != "" {
			t.Error("signed in, the browser still holds its link-request cookie")
		}
		// Used by its code, the link is void; the code too.
		expectStatus(t, phone.Post("/signin/link", url.Values{"token": {tok}}), http.StatusGone)

		// A sign-in by code to the existing account, from a browser
		// with next= in the form; the link is then void.
		other := a.Browser(t)
		r := other.Post("/signin/email", url.Values{"email": {"coder@example.com"}, "next": {"/account?from=code"}})
		expectStatus(t, r, http.StatusSeeOther)
		m := a.Mail.Last(t, "coder@example.com")
		code = emailCode.FindStringSubmatch(m.Text)[1]
		expectSignedInByCode(t, other, typeCode(other, code), "/account?from=code")
		expectStatus(t, phone.Post("/signin/link", url.Values{"token": {linkToken(t, m)}}), http.StatusGone)
		expectPage(t, typeCode(other, code), http.StatusBadRequest, "didn't ask for an email")

		// Used by its link (on the phone), the code is void.
		third := a.Browser(t)
		tok, code = requestCode(t, a, third, "coder@example.com")
		expectStatus(t, phone.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
		expectPage(t, typeCode(third, code), http.StatusGone, "no longer works", `href="/signin"`)
		if signedIn(t, third) {
			t.Error("a code whose link was used signed in")
		}

		// A recovery email carries one too: it signs in and starts the
		// recovery, as the link would.
		expectStatus(t, passkeySignIn(t, other, addPasskey(t, a, other)), http.StatusOK)
		lost := a.Browser(t)
		_, code = requestCode(t, a, lost, "coder@example.com", "/signin/recover")
		expectSignedInByCode(t, lost, typeCode(lost, code), "/account")
		expectPage(t, lost.Get("/account"), http.StatusOK, "Account recovery")

		// A malformed code counts nothing; an expired one is gone.
		late := a.Browser(t)
		_, code = requestCode(t, a, late, "late@example.com")
		for _, junk := range []string{"", "1234", "ABCD-EFG0", strings.Repeat("A", 500), "<script>"} {
			expectPage(t, typeCode(late, junk), http.StatusBadRequest, "8 letters and digits")
		}
		clock.Advance(a.Config.LinkTTL + time.Second)
		expectPage(t, typeCode(late, code), http.StatusGone, "expired")
		if signedIn(t, late) {
			t.Error("an expired code signed in")
		}
	})
}

// TestWrongCodesVoidTheCode: five wrong codes void the email's code (the
// right one is then refused, and the page says to ask for a new email);
// the count is kept where every instance sees it, so sending an older
// copy of the cookie to another instance buys no more tries; a new
// email starts again. For an existing account (counted in its row) and
// for a sign-up (counted by the instance, and in the cookie).
func TestWrongCodesVoidTheCode(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		a, b := twoInstances(t, store, 0)
		signIn(t, a, a.Browser(t), "counted@example.com")

		laptop := a.Browser(t)
		tok, code := requestCode(t, a, laptop, "counted@example.com")
		asked := laptop.Cookie("__Host-linkreq")
		for left := 4; left >= 2; left-- {
			expectPage(t, typeCode(laptop, wrongCode(code)), http.StatusBadRequest, "That code isn't right. You can try "+itoa(left)+" more times.")
		}
		// An attacker with the cookie as it was before those tries, on
		// the other instance: two more, and the code is void.
		replay := b.Browser(t)
		replay.SetCookie("__Host-linkreq", asked)
		expectPage(t, typeCode(replay, wrongCode(code)), http.StatusBadRequest, "You can try 1 more time.")
		expectPage(t, typeCode(replay, wrongCode(code)), http.StatusGone, "no longer works", "Ask for a new email")
		expectPage(t, typeCode(laptop, code), http.StatusGone, "no longer works")
		replay.SetCookie("__Host-linkreq", asked)
		expectPage(t, typeCode(replay, code), http.StatusGone, "no longer works")
		if signedIn(t, laptop) || signedIn(t, replay) {
			t.Fatal("a code signed in after five wrong ones")
		}
		// The link itself cannot be guessed, and still works.
		expectStatus(t, a.Browser(t).Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
		// A new email, a new count.
		_, code = requestCode(t, a, laptop, "counted@example.com")
		expectPage(t, typeCode(laptop, wrongCode(code)), http.StatusBadRequest, "You can try 4 more times.")
		expectSignedInByCode(t, laptop, typeCode(laptop, code), "/account")

		// A sign-up's code: counted by the instance and the cookie.
		newcomer := a.Browser(t)
		_, code = requestCode(t, a, newcomer, "newcomer@example.com")
		asked = newcomer.Cookie("__Host-linkreq")
		for range 4 {
			expectStatus(t, typeCode(newcomer, wrongCode(code)), http.StatusBadRequest)
		}
		expectStatus(t, typeCode(newcomer, wrongCode(code)), http.StatusGone)
		counted := newcomer.Cookie("__Host-linkreq")
		newcomer.SetCookie("__Host-linkreq", asked) // the older copy, on the same instance
		expectPage(t, typeCode(newcomer, code), http.StatusGone, "no longer works")
		if signedIn(t, newcomer) {
			t.Error("a sign-up's code signed in after five wrong ones, with an older copy of the cookie")
		}
		// The other instance counts its own, and the cookie carries the
		// count there: the browser that asked gets five tries, not more.
		// (An older copy of the cookie buys five more there: see
		// docs/security.md for what that costs an attacker.)
		onB := b.Browser(t)
		onB.SetCookie("__Host-linkreq", counted)
		expectPage(t, typeCode(onB, code), http.StatusGone, "no longer works")
	})
}

// TestTheCodeFieldTellsNothing: the cookie and the code field answer the
// same whether the address has an account that signs in by email, has
// none, or has one that gets a notice instead of a link (passkeys only).
func TestTheCodeFieldTellsNothing(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{Env: map[string]string{"RATE_LIMIT_EMAIL": "100/1m", "RATE_LIMIT_SIGNIN": "1000/1m"}})
	owner := a.Browser(t)
	signIn(t, a, owner, "aaaa@example.com")
	keys := a.Browser(t)
	signIn(t, a, keys, "cccc@example.com")
	expectStatus(t, passkeySignIn(t, keys, addPasskey(t, a, keys)), http.StatusOK)
	expectStatus(t, keys.Post("/account/email-signin", url.Values{"enabled": {"false"}}), http.StatusOK)

	var cookies []int
	var pages []string
	// (Addresses of one length: the cookie holds the address, which the
	// one who asks knows.)
	for _, address := range []string{"aaaa@example.com", "bbbb@example.com", "cccc@example.com"} {
		b := a.Browser(t)
		r := b.Post("/signin/email", url.Values{"email": {address}})
		expectStatus(t, r, http.StatusSeeOther)
		cookies = append(cookies, len(setCookieHeader(r, "__Host-linkreq")))
		var answers []string
		for range 5 {
			r := typeCode(b, "ABCD-EFGH")
			answers = append(answers, itoa(r.StatusCode)+" "+html.UnescapeString(r.Body))
		}
		pages = append(pages, strings.Join(answers, "\n"))
	}
	if cookies[0] != cookies[1] || cookies[1] != cookies[2] {
		t.Errorf("the link-request cookie is %v characters long for an account, a new address and a passkey-only account", cookies)
	}

	// Nor does the cookie of a recovery request, or of a request with a
	// next, tell a recoverable account (passkeys, email sign-in on) from
	// any other address.
	recoverable := a.Browser(t)
	signIn(t, a, recoverable, "dddd@example.com")
	addPasskey(t, a, recoverable)
	for _, route := range []string{"/signin/email", "/signin/recover"} {
		for _, next := range []string{"", "/account?" + strings.Repeat("x", 60)} {
			var lengths []int
			for _, address := range []string{"aaaa@example.com", "bbbb@example.com", "cccc@example.com", "dddd@example.com"} {
				r := a.Browser(t).Post(route, url.Values{"email": {address}, "next": {next}})
				expectStatus(t, r, http.StatusSeeOther)
				lengths = append(lengths, len(setCookieHeader(r, "__Host-linkreq")))
			}
			if lengths[0] != lengths[1] || lengths[1] != lengths[2] || lengths[2] != lengths[3] {
				t.Errorf("%s with next %q: the cookie is %v characters long for an account, a new address, a passkey-only and a recoverable account", route, next, lengths)
			}
		}
	}
	if pages[0] != pages[1] || pages[1] != pages[2] {
		t.Errorf("five wrong codes answer differently for an account, a new address and a passkey-only account:\n%s\n---\n%s\n---\n%s", clip(pages[0]), clip(pages[1]), clip(pages[2]))
	}
}

// TestCodesAreRateLimited: POSTs of codes count per client, like the
// sign-in endpoints.
func TestCodesAreRateLimited(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{Env: map[string]string{"RATE_LIMIT_SIGNIN": "3/1m"}})
	b := a.Browser(t)
	for range 3 {
		expectStatus(t, typeCode(b, "ABCD-EFGH"), http.StatusBadRequest)
	}
	r := typeCode(b, "ABCD-EFGH")
	expectStatus(t, r, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}
