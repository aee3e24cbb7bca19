// Package i18n holds Latchkey's message catalogs, one embedded JSON file per
// language (catalogs/en.json, de.json, …: adding a language is adding one
// file), and picks a person's language. Plural rules are CLDR's, from
// golang.org/x/text; dates and relative times are written from the
// catalog too.
package i18n

import (
	"embed"
	"encoding/json"
	"fmt"
	"html"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
)

//go:embed catalogs/*.json
var files embed.FS

// Default is the language every other falls back to.
const Default = "en"

// Language is one language a catalog exists for.
type Language struct {
	Tag  string // BCP 47, such as "de"
	Name string // in itself, such as "Deutsch"
}

// Catalog is every language's messages. It is read once, and never
// changes after.
type Catalog struct {
	langs   []Language
	tags    []language.Tag
	matcher language.Matcher
	// messages holds every message, parsed, by language then id.
	messages map[string]map[string]*message
	tagOf    map[string]language.Tag
	// fragments holds HTML that depends on nothing but the language,
	// built once per language (see T.Fragment).
	fragments sync.Map
}

// message is one message: its text, or a text per plural form, each split
// at its placeholders ({{.Name}}) once, when the catalog is read.
type message struct {
	forms  map[plural.Form][]segment // a plain message has Other only
	plural bool
}

// segment is a piece of a message: text, or the placeholder name.
type segment struct{ text, name string }

var (
	placeholderRE = regexp.MustCompile(`{{\s*\.([A-Za-z]+)\s*}}`)
	formNames     = map[string]plural.Form{"zero": plural.Zero, "one": plural.One, "two": plural.Two,
		"few": plural.Few, "many": plural.Many, "other": plural.Other}
)

func parseSegments(s string) []segment {
	var out []segment
	for {
		m := placeholderRE.FindStringSubmatchIndex(s)
		if m == nil {
			if s != "" || out == nil {
				out = append(out, segment{text: s})
			}
			return out
		}
		if m[0] > 0 {
			out = append(out, segment{text: s[:m[0]]})
		}
		out = append(out, segment{name: s[m[2]:m[3]]})
		s = s[m[1]:]
	}
}

// Load reads the embedded catalogs. English comes first; every other
// language falls back to it for a message it lacks (a test makes sure none
// lacks any).
func Load() (*Catalog, error) {
	names, err := fs.Glob(files, "catalogs/*.json")
	if err != nil {
		return nil, err
	}
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case strings.HasSuffix(a, "/"+Default+".json"):
			return -1
		case strings.HasSuffix(b, "/"+Default+".json"):
			return 1
		}
		return strings.Compare(a, b)
	})
	c := &Catalog{messages: map[string]map[string]*message{}, tagOf: map[string]language.Tag{}}
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		tag := strings.TrimSuffix(path.Base(name), ".json")
		lt, err := language.Parse(tag)
		if err != nil {
			return nil, fmt.Errorf("catalog %s: %w", name, err)
		}
		var raw map[string]any
		if err := json.Unmarshal(data, &raw); err != nil {
			return nil, fmt.Errorf("catalog %s: %w", name, err)
		}
		msgs := map[string]*message{}
		for id, v := range raw {
			m := &message{forms: map[plural.Form][]segment{}}
			switch v := v.(type) {
			case string:
				m.forms[plural.Other] = parseSegments(v)
			case map[string]any:
				m.plural = true
				for form, text := range v {
					f, ok := formNames[form]
					s, isString := text.(string)
					if !ok || !isString {
						return nil, fmt.Errorf("catalog %s: %s: %q is not a plural form with a text", name, id, form)
					}
					m.forms[f] = parseSegments(s)
				}
				if m.forms[plural.Other] == nil {
					return nil, fmt.Errorf("catalog %s: %s: a plural message needs an \"other\" form", name, id)
				}
			default:
				return nil, fmt.Errorf("catalog %s: %s is neither a text nor plural forms", name, id)
			}
			msgs[id] = m
		}
		c.messages[tag] = msgs
		c.tagOf[tag] = lt
		c.langs = append(c.langs, Language{Tag: tag, Name: c.T(tag).S("language.name")})
		c.tags = append(c.tags, lt)
	}
	if c.messages[Default] == nil {
		return nil, fmt.Errorf("no %s.json catalog", Default)
	}
	c.matcher = language.NewMatcher(c.tags)
	return c, nil
}

// MustLoad is Load for tests and tools; the catalogs are embedded, so a
// failure is a bug caught by the first test.
func MustLoad() *Catalog {
	c, err := Load()
	if err != nil {
		panic(err)
	}
	return c
}

// Languages returns the languages, English first.
func (c *Catalog) Languages() []Language { return c.langs }

// Supported reports whether tag is exactly one of the languages.
func (c *Catalog) Supported(tag string) bool { return c.messages[tag] != nil }

// Pick chooses a language: the first of explicit (a cookie, then the
// account's stored choice) that is supported, else the best match for an
// Accept-Language header, else English.
func (c *Catalog) Pick(acceptLanguage string, explicit ...string) string {
	for _, e := range explicit {
		if c.Supported(e) {
			return e
		}
	}
	if acceptLanguage == "" || len(acceptLanguage) > 512 {
		return Default
	}
	prefs, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(prefs) == 0 {
		return Default
	}
	_, i, conf := c.matcher.Match(prefs...)
	if conf == language.No {
		return Default
	}
	return c.langs[i].Tag
}

// T returns the translator for lang (English when unsupported).
func (c *Catalog) T(lang string) T {
	if !c.Supported(lang) {
		lang = Default
	}
	return T{c: c, lang: lang}
}

// T translates into one language. The zero T speaks English with the
// message ids as text (for code that runs without a catalog).
type T struct {
	c    *Catalog
	lang string
}

// Lang returns the language's tag, for <html lang> and the cookie.
func (t T) Lang() string {
	if t.lang == "" {
		return Default
	}
	return t.lang
}

// Languages returns every language, for the switcher.
func (t T) Languages() []Language {
	if t.c == nil {
		return nil
	}
	return t.c.langs
}

// S returns the message id, with template data given as name, value
// pairs ("Email", "a@example.com"). A missing message returns the id
// itself, and missing data "<no value>", which tests catch.
func (t T) S(id string, kv ...any) string {
	m := t.message(id)
	if m == nil {
		return id
	}
	return render(m.forms[plural.Other], kv, -1)
}

// N returns the message id in its plural form for n (available to the
// message as .Count), with more template data as pairs.
func (t T) N(id string, n int, kv ...any) string {
	m := t.message(id)
	if m == nil {
		return id
	}
	segs := m.forms[plural.Other]
	if m.plural {
		form := plural.Cardinal.MatchPlural(t.c.tagOf[t.Lang()], n, 0, 0, 0, 0)
		if f, ok := m.forms[form]; ok {
			segs = f
		}
	}
	return render(segs, kv, n)
}

// message finds id in the language, else in English.
func (t T) message(id string) *message {
	if t.c == nil {
		return nil
	}
	if m := t.c.messages[t.Lang()][id]; m != nil {
		return m
	}
	return t.c.messages[Default][id]
}

// render writes a message's segments with the data: count (unless
// negative) as Count, the rest from name, value pairs.
func render(segs []segment, kv []any, count int) string {
	if len(segs) == 1 && segs[0].name == "" {
		return segs[0].text
	}
	var b strings.Builder
	for _, sg := range segs {
		if sg.name == "" {
			b.WriteString(sg.text)
			continue
		}
		if sg.name == "Count" && count >= 0 {
			b.WriteString(strconv.Itoa(count))
			continue
		}
		b.WriteString(value(sg.name, kv))
	}
	return b.String()
}

// value is the data for name among the pairs, as text.
func value(name string, kv []any) string {
	for i := 0; i+1 < len(kv); i += 2 {
		if k, _ := kv[i].(string); k != name {
			continue
		}
		switch v := kv[i+1].(type) {
		case string:
			return v
		case HTML:
			return string(v)
		case int:
			return strconv.Itoa(v)
		default:
			return fmt.Sprint(v)
		}
	}
	return "<no value>"
}

// HTML is text that is already HTML (escaped, or markup of our own).
type HTML string

// Fragment returns the HTML that build makes for this language, built
// once per language and name and kept: for parts of every page that
// depend on the language alone (the script's messages, the switcher's
// choices), which would otherwise be looked up and escaped again on every
// request. build must depend on nothing but t.
func (t T) Fragment(name string, build func(T) HTML) HTML {
	if t.c == nil {
		return build(t)
	}
	key := t.lang + "\x00" + name
	if h, ok := t.c.fragments.Load(key); ok {
		return h.(HTML)
	}
	h := build(t)
	t.c.fragments.Store(key, h)
	return h
}

// H returns the message id as HTML: messages hold no markup and no HTML
// special characters (a test checks), plain string data is escaped, and
// HTML data (such as an address in its <span>) goes in as it is.
func (t T) H(id string, kv ...any) HTML {
	esc := make([]any, len(kv))
	for i, v := range kv {
		switch v := v.(type) {
		case HTML:
			esc[i] = string(v)
		case string:
			if i%2 == 1 {
				esc[i] = html.EscapeString(v)
			} else {
				esc[i] = v
			}
		default:
			esc[i] = v
		}
	}
	return HTML(t.S(id, esc...))
}

// Date writes an instant unambiguously, in UTC: "5 December 2026, 14:05
// UTC" in the language's own words and order.
func (t T) Date(tm time.Time) string {
	tm = tm.UTC()
	return t.S("date.format", "Day", tm.Day(), "Month", t.month(tm.Month()), "Year", tm.Year(),
		"Time", tm.Format("15:04"))
}

// Day writes a date: "5 December 2026".
func (t T) Day(tm time.Time) string {
	tm = tm.UTC()
	return t.S("date.day", "Day", tm.Day(), "Month", t.month(tm.Month()), "Year", tm.Year())
}

func (t T) month(m time.Month) string {
	return strings.Fields(t.S("date.months"))[m-1]
}

// Ago says how long before now tm was: "just now", "3 minutes ago",
// "on 5 December 2026".
func (t T) Ago(tm, now time.Time) string {
	if tm.IsZero() {
		return t.S("time.never")
	}
	d := now.Sub(tm)
	switch {
	case d < time.Minute:
		return t.S("time.just_now")
	case d < time.Hour:
		return t.N("time.minutes_ago", int(d/time.Minute))
	case d < 24*time.Hour:
		return t.N("time.hours_ago", int(d/time.Hour))
	case d < 30*24*time.Hour:
		return t.N("time.days_ago", int(d/(24*time.Hour)))
	}
	return t.S("time.on_day", "Day", t.Day(tm))
}

// Duration says how long d is, in whole minutes or hours: "10 minutes",
// "24 hours", "less than a minute".
func (t T) Duration(d time.Duration) string {
	m := int(d.Round(time.Minute) / time.Minute)
	switch {
	case m < 1:
		return t.S("time.less_than_a_minute")
	case m%60 == 0:
		return t.N("time.hours", m/60)
	}
	return t.N("time.minutes", m)
}
