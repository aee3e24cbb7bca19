// Package views holds Latchkey's templ components: the layout, every page,
// and the emails (HTML and plain text). Views take plain typed arguments;
// handlers decide what goes in them.
package views

import (
	"context"
	"html"
	"io"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/latchkey/latchkey/i18n"
	"github.com/latchkey/latchkey/static"
)

// SiteName is the product's name as pages and emails show it.
const SiteName = "Latchkey"

// Page is what the layout needs to know about every page.
type Page struct {
	Title    string // in the person's language
	SignedIn bool
	// Wide pages (the account page) get a wider column.
	Wide bool
	// T speaks the person's language.
	T i18n.T
	// Path is the page's own path and query, where the language switcher
	// comes back to.
	Path string
}

func staticURL(name string) string { return "/static/" + name + "?v=" + static.Version }

func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// raw renders HTML that is safe already (i18n.T.H: messages without markup
// around escaped data).
func raw(h i18n.HTML) templ.Component { return templ.Raw(string(h)) }

// scriptMessages are the messages passkey.js shows, in the page's
// language, as data attributes of a hidden element it reads them from.
func scriptMessages(t i18n.T) i18n.HTML {
	var b strings.Builder
	b.WriteString(`<div id="script-messages" hidden`)
	for _, m := range [][2]string{
		{"cancelled", "js.cancelled"}, {"cancelled-signin", "js.cancelled_signin"},
		{"already", "js.already_registered"}, {"security", "js.security"},
		{"unsupported", "js.unsupported"}, {"network", "js.network"},
		{"failed", "js.failed"}, {"error", "js.error"},
	} {
		b.WriteString(` data-msg-` + m[0] + `="` + html.EscapeString(t.S(m[1])) + `"`)
	}
	b.WriteString(`></div>`)
	return i18n.HTML(b.String())
}

// languageOptions are the language switcher's choices, each language's
// name in itself (and marked as such), the page's own selected.
func languageOptions(t i18n.T) i18n.HTML {
	var b strings.Builder
	for _, l := range t.Languages() {
		tag := html.EscapeString(l.Tag)
		b.WriteString(`<option value="` + tag + `" lang="` + tag + `"`)
		if l.Tag == t.Lang() {
			b.WriteString(` selected`)
		}
		b.WriteString(`>` + html.EscapeString(l.Name) + `</option>`)
	}
	return i18n.HTML(b.String())
}

// email is an address as pages show it.
func email(address string) i18n.HTML {
	return i18n.HTML(`<span class="email">` + html.EscapeString(address) + `</span>`)
}

// strong is text in bold.
func strong(s string) i18n.HTML { return i18n.HTML("<strong>" + html.EscapeString(s) + "</strong>") }

// textLines renders plain-text email lines, joined with CRLF and not
// HTML-escaped: templ's text nodes escape and fold whitespace, which is
// right for HTML and wrong for text/plain.
func textLines(lines ...string) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, strings.Join(lines, "\r\n")+"\r\n")
		return err
	})
}

func linkTextLines(e LinkEmail) []string {
	lines := []string{e.Subject(), "", e.intro(), "",
		e.T.S("email.open_link", "Action", e.action(), "Duration", e.T.Duration(e.TTL)), "", e.Link, ""}
	if e.Code != "" {
		lines = append(lines, e.T.S("email.code"), "", "    "+e.Code, "", e.T.S("email.code_works", "Duration", e.T.Duration(e.TTL))+" "+e.T.S("email.code_secret", "Site", SiteName), "")
	}
	return append(lines, e.T.S("email.ignore"), "", "-- ", SiteName+" · "+e.Host)
}

func noticeTextLines(e NoticeEmail) []string {
	lines := []string{e.Subject, ""}
	for _, p := range e.Paragraphs {
		lines = append(lines, p, "")
	}
	if !e.When.IsZero() {
		lines = append(lines, e.T.S("notice.when", "Date", e.T.Date(e.When)))
		if e.Browser != "" {
			lines = append(lines, e.T.S("notice.from", "Browser", e.Browser))
		}
		lines = append(lines, "")
	}
	if e.IfNotYou != "" {
		lines = append(lines, e.T.S("notice.not_you")+" "+e.IfNotYou, "")
	}
	return append(lines, "-- ", SiteName+" · "+e.Host)
}
