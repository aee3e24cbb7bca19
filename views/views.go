// Package views holds Latchkey's templ components: the layout, every page,
// and the emails (HTML and plain text). Views take plain typed arguments;
// handlers decide what goes in them.
package views

import (
	"context"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/latchkey/latchkey/static"
)

// SiteName is the product's name as pages and emails show it.
const SiteName = "Latchkey"

// Page is what the layout needs to know about every page.
type Page struct {
	Title    string
	SignedIn bool
	// Wide pages (the account page) get a wider column.
	Wide bool
}

func staticURL(name string) string { return "/static/" + name + "?v=" + static.Version }

// Ago describes how long before now t was, in words.
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 24*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	case d < 30*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	}
	return "on " + t.UTC().Format("2 January 2006")
}

// Stamp formats t for a tooltip or an email: unambiguous, in UTC.
func Stamp(t time.Time) string { return t.UTC().Format("2 January 2006, 15:04 UTC") }

func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// Minutes describes a duration in whole minutes, for "works for 10 minutes".
func Minutes(d time.Duration) string {
	m := int(d.Round(time.Minute) / time.Minute)
	if m < 1 {
		return "less than a minute"
	}
	if m%60 == 0 {
		return plural(m/60, "hour")
	}
	return plural(m, "minute")
}

// textLines renders plain-text email lines, joined with CRLF and not
// HTML-escaped: templ's text nodes escape and fold whitespace, which is
// right for HTML and wrong for text/plain.
func textLines(lines ...string) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, strings.Join(lines, "\r\n")+"\r\n")
		return err
	})
}

func statusText(code int) string { return strconv.Itoa(code) }

func noticeTextLines(e NoticeEmail) []string {
	lines := []string{e.Subject, ""}
	for _, p := range e.Paragraphs {
		lines = append(lines, p, "")
	}
	if e.When != "" {
		lines = append(lines, "When: "+e.When)
		if e.Browser != "" {
			lines = append(lines, "From: "+e.Browser)
		}
		lines = append(lines, "")
	}
	if e.IfNotYou != "" {
		lines = append(lines, "Wasn't you? "+e.IfNotYou, "")
	}
	return append(lines, "-- ", SiteName+" at "+e.Host)
}
