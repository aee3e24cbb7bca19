package tests

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/i18n"
	"github.com/latchkey/latchkey/tests/testkit"
	"github.com/latchkey/latchkey/views"
)

var catalog = i18n.MustLoad()

// messages reads a catalog file as a person would read it: every text of
// every message (each plural form), by id.
func messages(t *testing.T, lang string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile("../i18n/catalogs/" + lang + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for id, v := range raw {
		switch v := v.(type) {
		case string:
			out[id] = []string{v}
		case map[string]any:
			for _, f := range v {
				out[id] = append(out[id], f.(string))
			}
		}
	}
	return out
}

var (
	placeholderPattern = regexp.MustCompile(`{{[^}]*}}`)
	tagPattern         = regexp.MustCompile(`(?s)<[^>]*>`)
	spacePattern       = regexp.MustCompile(`[\s\x{a0}\x{202f}]+`)
)

// readable is what a person reads of a page or an email: tags out,
// entities decoded, all white space one space.
func readable(s string) string {
	s = tagPattern.ReplaceAllString(s, " ")
	return strings.TrimSpace(spacePattern.ReplaceAllString(html.UnescapeString(s), " "))
}

// compact is readable without white space, for comparing text that tags
// or line breaks may split.
func compact(s string) string { return spacePattern.ReplaceAllString(readable(s), "") }

// englishOnly returns the pieces of English text (between placeholders,
// twelve characters or more) that the language's catalog does not also
// hold: seeing one of them on a page in that language is English left
// over.
func englishOnly(t *testing.T, lang string) []string {
	t.Helper()
	var theirs strings.Builder
	for _, texts := range messages(t, lang) {
		for _, s := range texts {
			theirs.WriteString(readable(s) + "\n")
		}
	}
	var out []string
	for _, texts := range messages(t, i18n.Default) {
		for _, s := range texts {
			for _, piece := range placeholderPattern.Split(s, -1) {
				piece = readable(piece)
				if len(piece) >= 12 && !strings.Contains(theirs.String(), piece) {
					out = append(out, piece)
				}
			}
		}
	}
	return out
}

// speaks checks that a page or email reads wholly in lang: every wanted
// text is there, no English is left over, and no message is missing its
// data or shown by its id.
func speaks(t *testing.T, lang, what, body string, english []string, want ...string) {
	t.Helper()
	text, flat := readable(body), compact(body)
	for _, w := range want {
		if !strings.Contains(flat, compact(w)) {
			t.Errorf("%s: %s lacks %q:\n%s", lang, what, w, clip(text))
		}
	}
	for _, e := range english {
		if strings.Contains(flat, compact(e)) {
			t.Errorf("%s: %s still speaks English: %q", lang, what, e)
		}
	}
	if strings.Contains(text, "<no value>") {
		t.Errorf("%s: %s shows a message without its data", lang, what)
	}
	for id := range messages(t, i18n.Default) {
		if regexp.MustCompile(`(^|\s)` + regexp.QuoteMeta(id) + `($|\s)`).MatchString(text) {
			t.Errorf("%s: %s shows the message id %q instead of its text", lang, what, id)
		}
	}
}

// speaksPage is speaks for an HTML page: also the status, <html lang>,
// and the page's own title.
func speaksPage(t *testing.T, lang string, r *testkit.Response, status int, title string, english []string, want ...string) {
	t.Helper()
	what := r.Request.Method + " " + r.Request.URL.Path
	expectStatus(t, r, status)
	if !strings.Contains(r.Body, `<html lang="`+lang+`">`) {
		t.Errorf("%s: %s lacks <html lang=%q>", lang, what, lang)
	}
	if want := "<title>" + html.EscapeString(title) + " · " + views.SiteName + "</title>"; !strings.Contains(r.Body, want) &&
		!strings.Contains(html.UnescapeString(r.Body), "<title>"+title+" · ") {
		t.Errorf("%s: %s is not titled %q", lang, what, title)
	}
	speaks(t, lang, what, r.Body, english, append(want, title)...)
}

// speaksMail is speaks for an email: its subject, text and HTML.
func speaksMail(t *testing.T, lang string, m testkit.Mail, subject string, english []string, want ...string) {
	t.Helper()
	if m.Subject != subject {
		t.Errorf("%s: email subject %q, want %q", lang, m.Subject, subject)
	}
	speaks(t, lang, "email "+m.Subject+" (text)", m.Text, english, want...)
	speaks(t, lang, "email "+m.Subject+" (HTML)", m.HTML, english, want...)
	if !strings.Contains(m.HTML, `lang="`+lang+`"`) {
		t.Errorf("%s: the HTML of email %q lacks lang=%q", lang, m.Subject, lang)
	}
}

// TestEveryPageAndEmailSpeaksTheBrowsersLanguage: a browser set to German,
// French or Spanish goes through the whole of Latchkey (sign-up by link,
// passkeys, step-up, email change, recovery, deleting the account, error
// pages) and meets every page and email in its language, with plurals and
// dates in it too.
func TestEveryPageAndEmailSpeaksTheBrowsersLanguage(t *testing.T) {
	for _, tc := range []struct{ lang, accept string }{
		{"de", "de-DE,de;q=0.9,en;q=0.5"}, {"fr", "fr-CH, fr;q=0.9, en;q=0.8"}, {"es", "es-419,es;q=0.9"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			lang, tr := tc.lang, catalog.T(tc.lang)
			english := englishOnly(t, lang)
			if len(english) < 200 {
				t.Fatalf("only %d English pieces to look for: the check would prove little", len(english))
			}
			site := []any{"Site", views.SiteName}
			clock := testkit.NewClock()
			a := startOIDC(t, testkit.Store{}, clock) // (for the consent page)
			b := a.Browser(t)
			b.Header.Set("Accept-Language", tc.accept)
			host := strings.TrimPrefix(a.URL, "http://")
			addr := "lang-" + lang + "@example.com"

			speaksPage(t, lang, b.Get("/"), http.StatusOK, tr.S("title.home"), english, tr.S("home.title"))
			speaksPage(t, lang, b.Get("/signin"), http.StatusOK, tr.S("title.signin"), english, tr.S("signin.lead"))
			speaksPage(t, lang, b.Get("/signin/recover"), http.StatusOK, tr.S("title.recover"), english)

			// Sign-up: the email is in the requester's language.
			tok := requestLink(t, a, b, addr)
			speaksPage(t, lang, b.Get("/signin/sent"), http.StatusOK, tr.S("title.sent"), english,
				tr.S("sent.title"))
			speaksMail(t, lang, a.Mail.Last(t, addr), tr.S("email.signup.subject", site...), english,
				tr.S("email.signup.intro", "Site", views.SiteName, "Host", host))
			speaksPage(t, lang, b.Get("/signin/link?token="+url.QueryEscape(tok)), http.StatusOK, tr.S("title.link_signup"), english,
				tr.S("link.signup.lead", "Email", addr, "Site", views.SiteName))
			expectStatus(t, b.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
			speaksPage(t, lang, b.Get("/"), http.StatusOK, tr.S("title.home_signed_in"), english, tr.S("home.signed_in"))
			speaksPage(t, lang, b.Get("/account"), http.StatusOK, tr.S("title.account"), english, tr.S("account.title"))

			// An application asks to sign the person in, then out.
			speaksPage(t, lang, b.Get("/oauth2/authorize?"+url.Values{"client_id": {"notes"}, "redirect_uri": {notesCallback},
				"response_type": {"code"}, "scope": {"openid email profile"}, "state": {"s"}, "nonce": {"n"},
				"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}.Encode()),
				http.StatusOK, tr.S("title.consent", "Application", "Notes"), english,
				tr.S("consent.title", "Application", "Notes"), tr.S("consent.allow"))
			speaksPage(t, lang, b.Get("/oauth2/logout?client_id=notes"), http.StatusOK, tr.S("title.signout"), english)
			speaksPage(t, lang, b.Get("/oauth2/authorize?client_id=nobody"), http.StatusBadRequest, tr.S("error.title.invalid"), english)

			// Passkeys: the account page dates them, the notice says so,
			// and the delete page counts them (one, then two).
			pk := addPasskey(t, a, b)
			added := a.Mail.WaitForMatch(t, addr, 0, func(m testkit.Mail) bool {
				return m.Subject == tr.S("notice.passkey_added.subject", site...)
			})
			speaksMail(t, lang, added, tr.S("notice.passkey_added.subject", site...), english,
				tr.S("notice.browser_on", "Browser", "Chrome", "System", "Linux"))
			speaksPage(t, lang, b.Get("/account"), http.StatusOK, tr.S("title.account"), english, tr.S("time.just_now"))
			expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK) // (deleting asks for a passkey now)
			speaksPage(t, lang, b.Get("/account/delete"), http.StatusOK, tr.S("title.delete"), english, tr.N("delete.passkeys", 1))
			addPasskey(t, a, b)
			speaksPage(t, lang, b.Get("/account/delete"), http.StatusOK, tr.S("title.delete"), english, tr.N("delete.passkeys", 2))
			id := firstPasskeyID(t, b)
			expectStatus(t, b.Post("/account/passkeys/"+id+"/rename", url.Values{"name": {"Laptop"}}), http.StatusSeeOther)
			clock.Advance(a.Config.ReauthTTL + time.Minute) // (the step-up page asks only when the last is old)
			speaksPage(t, lang, b.Get("/account/reauth?next=/account"), http.StatusOK, tr.S("title.reauth"), english, tr.S("reauth.title"))

			// An email change: the confirmation, its page, and the result
			// in another browser (which any browser may open).
			other := a.Browser(t)
			other.Header.Set("Accept-Language", tc.accept)
			expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK)
			newAddr := "neu-" + addr
			speaksPage(t, lang, b.Post("/account/email", url.Values{"email": {newAddr}}), http.StatusOK, tr.S("title.account"), english)
			change := a.Mail.WaitFor(t, newAddr, 1)
			speaksMail(t, lang, change, tr.S("email.change.subject", site...), english)
			ctok := linkToken(t, change)
			speaksPage(t, lang, b.Get("/account/email/confirm?token="+url.QueryEscape(ctok)), http.StatusOK, tr.S("title.email_change"), english)
			r := other.Post("/account/email/confirm", url.Values{"token": {ctok}})
			speaksPage(t, lang, r, http.StatusOK, tr.S("title.email_changed"), english, tr.S("email_changed.title", "Email", newAddr))

			// Error pages, and the JSON errors the page's script shows.
			speaksPage(t, lang, other.Get("/no/such/page"), http.StatusNotFound, tr.S("error.title.not_found"), english)
			speaksPage(t, lang, other.Get("/signin/link?token=forged"), http.StatusBadRequest, tr.S("error.title.invalid"), english)
			speaksPage(t, lang, other.Post("/signin/link", url.Values{"token": {tok}}), http.StatusGone, tr.S("error.title.gone"), english)
			speaksPage(t, lang, other.Post("/language", url.Values{"lang": {"xx"}}), http.StatusBadRequest, tr.S("error.title.invalid"), english)
			speaksPage(t, lang, other.Post("/signin/email", url.Values{"email": {"not an address"}}), http.StatusBadRequest, tr.S("title.signin"), english)
			j := other.PostJSON("/signin/passkey/finish", "{")
			expectJSONError(t, j, http.StatusBadRequest)
			speaks(t, lang, "a JSON error", jsonField(t, j, "message"), english)

			// Recovery, asked for from a browser signed out.
			other.Post("/signin/recover", url.Values{"email": {newAddr}})
			speaksMail(t, lang, a.Mail.WaitForMatch(t, newAddr, 1, func(m testkit.Mail) bool { return strings.Contains(m.Text, "/signin/link?token=") }),
				tr.S("email.recovery.subject", site...), english)

			// Deleting the account.
			expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK)
			r = b.Post("/account/delete", url.Values{"confirm": {newAddr}})
			speaksPage(t, lang, r, http.StatusOK, tr.S("title.deleted"), english)
		})
	}
}

// TestTheLanguageChoiceIsRememberedAndFollowsTheAccount: the switcher on
// any page changes the language and comes back to that page; the choice
// outlives Accept-Language in a cookie and, for a signed-in person, in
// their row, so another browser takes it up at sign-in and their emails
// are in it whoever asks.
func TestTheLanguageChoiceIsRememberedAndFollowsTheAccount(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		a := testkit.StartApp(t, testkit.AppOptions{Store: store})
		de, fr, es := catalog.T("de"), catalog.T("fr"), catalog.T("es")
		site := []any{"Site", views.SiteName}
		b := a.Browser(t)
		b.Header.Set("Accept-Language", "de")

		// Signed out: the switcher sets a cookie and returns to the page.
		expectPage(t, b.Get("/signin"), http.StatusOK, `<html lang="de">`, `action="/language"`, `name="next" value="/signin"`)
		r := b.Post("/language", url.Values{"lang": {"fr"}, "next": {"/signin?next=%2Faccount"}})
		expectStatus(t, r, http.StatusSeeOther)
		if loc := r.Header.Get("Location"); loc != "/signin?next=%2Faccount" {
			t.Errorf("the switcher went to %q, want back to the page", loc)
		}
		if c := setCookieHeader(r, "__Host-lang"); !strings.Contains(c, "__Host-lang=fr") || !strings.Contains(c, "Secure") ||
			!strings.Contains(c, "HttpOnly") || !strings.Contains(c, "Path=/") || !strings.Contains(c, "Max-Age=31536000") {
			t.Errorf("language cookie %q", c)
		}
		expectPage(t, b.Get("/signin"), http.StatusOK, `<html lang="fr">`, fr.S("signin.lead"))

		// A link asked for now is in French, the requester's language.
		addr := "polyglot@example.com"
		tok := requestLink(t, a, b, addr)
		if m := a.Mail.Last(t, addr); m.Subject != fr.S("email.signup.subject", site...) {
			t.Errorf("sign-up email %q, want it in French", m.Subject)
		}
		expectStatus(t, b.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)

		// Signed in: the choice goes in the row too.
		expectStatus(t, b.Post("/language", url.Values{"lang": {"es"}, "next": {"/account"}}), http.StatusSeeOther)
		expectPage(t, b.Get("/account"), http.StatusOK, `<html lang="es">`, es.S("account.title"))

		// Another browser, in German, asks for a link: the email is in
		// Spanish, the account's language, and so are the pages once it
		// signs in.
		phone := a.Browser(t)
		phone.Header.Set("Accept-Language", "de-DE")
		expectPage(t, phone.Get("/"), http.StatusOK, `<html lang="de">`)
		tok = requestLink(t, a, phone, addr)
		if m := a.Mail.Last(t, addr); m.Subject != es.S("email.signin.subject", site...) {
			t.Errorf("sign-in email %q, want it in Spanish (the account's language)", m.Subject)
		}
		expectStatus(t, phone.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
		expectPage(t, phone.Get("/account"), http.StatusOK, `<html lang="es">`, es.S("account.title"))
		if phone.Cookie("__Host-lang") != "es" {
			t.Errorf("the phone did not take up the account's language: cookie %q", phone.Cookie("__Host-lang"))
		}
		// Notices about the account speak its language too, whoever acts.
		phone.DeleteCookie("__Host-lang")
		addPasskey(t, a, phone)
		a.Mail.WaitForMatch(t, addr, 0, func(m testkit.Mail) bool { return m.Subject == es.S("notice.passkey_added.subject", site...) })

		// A browser that chose for itself keeps its choice at sign-in.
		tablet := a.Browser(t)
		expectStatus(t, tablet.Post("/language", url.Values{"lang": {"de"}}), http.StatusSeeOther)
		signIn(t, a, tablet, addr)
		expectPage(t, tablet.Get("/account"), http.StatusOK, `<html lang="de">`, de.S("account.title"))

		// What the switcher does not offer, or a header it cannot read,
		// gets English or a clear answer, never a 500.
		odd := a.Browser(t)
		expectPage(t, odd.Post("/language", url.Values{"lang": {"xx"}}), http.StatusBadRequest, `<html lang="en">`)
		if loc := odd.Post("/language", url.Values{"lang": {"de"}, "next": {"https://evil.example/"}}).Header.Get("Location"); loc != "/" {
			t.Errorf("the switcher followed next=https://evil.example/ to %q", loc)
		}
		if loc := odd.Post("/language", url.Values{"lang": {"de"}, "next": {"//evil.example/"}}).Header.Get("Location"); loc != "/" {
			t.Errorf("the switcher followed next=//evil.example/ to %q", loc)
		}
		for _, header := range []string{"ja, zh;q=0.9", "*", ";;;q=abc,,", strings.Repeat("de,", 400), "ünïcødé"} {
			odd := a.Browser(t)
			odd.Header.Set("Accept-Language", header)
			if r := odd.Get("/signin"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `<html lang="en">`) {
				t.Errorf("Accept-Language %.40q: %d, want the page in English", header, r.StatusCode)
			}
		}
		odd.SetCookie("__Host-lang", "../../etc")
		expectPage(t, odd.Get("/signin"), http.StatusOK, `<html lang="en">`)
	})
}
