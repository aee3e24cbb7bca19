package i18n

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/language"
)

// catalogs reads every catalog file: language → id → message (a string,
// or plural forms).
func catalogs(t *testing.T) map[string]map[string]any {
	t.Helper()
	names, _ := fs.Glob(files, "catalogs/*.json")
	out := map[string]map[string]any{}
	for _, name := range names {
		data, _ := files.ReadFile(name)
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[strings.TrimSuffix(filepath.Base(name), ".json")] = m
	}
	if len(out) < 4 {
		t.Fatalf("%d catalogs, want English, German, French and Spanish at least", len(out))
	}
	return out
}

var placeholder = regexp.MustCompile(`{{\s*\.[A-Za-z]+\s*}}`)

// forms returns a message's texts by plural form ("" for a plain one).
func forms(v any) map[string]string {
	switch v := v.(type) {
	case string:
		return map[string]string{"": v}
	case map[string]any:
		out := map[string]string{}
		for k, s := range v {
			out[k], _ = s.(string)
		}
		return out
	}
	return nil
}

func placeholders(s string) []string {
	p := placeholder.FindAllString(s, -1)
	for i := range p {
		p[i] = strings.ReplaceAll(p[i], " ", "")
	}
	slices.Sort(p)
	return slices.Compact(p)
}

// sameAsEnglish are the messages a language writes exactly as English
// does, checked by a person: any other message the same as English is one
// not yet translated.
var sameAsEnglish = map[string][]string{
	"de": {"account.passkeys", "passkey.default_name"},        // Passkeys
	"fr": {"account.applications", "date.day", "date.format"}, // Applications; 5 mars 2026
	"es": {"error.status"},                                    // Error 404
}

// TestCatalogsAreComplete: every language has exactly English's messages
// (none missing, none the code no longer uses), with the same
// placeholders, the plural forms its plural rules need, no HTML special
// characters, and a name of its own.
func TestCatalogsAreComplete(t *testing.T) {
	cats := catalogs(t)
	en := cats[Default]
	for lang, cat := range cats {
		for id := range en {
			if _, ok := cat[id]; !ok {
				t.Errorf("%s lacks %q", lang, id)
			}
		}
		for id, v := range cat {
			ref, ok := en[id]
			if !ok {
				t.Errorf("%s has %q, which English does not", lang, id)
				continue
			}
			want := placeholders(strings.Join(mapValues(forms(ref)), " "))
			for form, s := range forms(v) {
				if s == "" {
					t.Errorf("%s %q %s: empty", lang, id, form)
				}
				if got := placeholders(s); !slices.Equal(got, want) && !(id == "delete.passkeys" && form == "one") {
					t.Errorf("%s %q %s: placeholders %v, English has %v", lang, id, form, got, want)
				}
				if strings.ContainsAny(s, "<>&") {
					t.Errorf("%s %q: holds an HTML special character: %q", lang, id, s)
				}
			}
			if lang != Default && reflect.DeepEqual(v, ref) && !slices.Contains(sameAsEnglish[lang], id) {
				t.Errorf("%s %q is the same as English: not translated yet?", lang, id)
			}
			_, plural := ref.(map[string]any)
			if f := forms(v); plural && (f["one"] == "" || f["other"] == "") {
				t.Errorf("%s %q: a plural message needs one and other forms, has %v", lang, id, mapKeys(f))
			}
			if _, isPlural := v.(map[string]any); isPlural != plural {
				t.Errorf("%s %q: plural in one language and not the other", lang, id)
			}
		}
		titles := map[string]string{}
		for id, v := range cat {
			if s, ok := v.(string); ok && (strings.HasPrefix(id, "title.") || strings.HasPrefix(id, "error.title.")) {
				if other, dup := titles[s]; dup {
					t.Errorf("%s: %q and %q are both titled %q: every page needs a title of its own", lang, id, other, s)
				}
				titles[s] = id
			}
		}
		if months := strings.Fields(forms(cat["date.months"])[""]); len(months) != 12 {
			t.Errorf("%s: date.months has %d months", lang, len(months))
		}
		if _, err := language.Parse(lang); err != nil {
			t.Errorf("%s.json: not a language tag: %v", lang, err)
		}
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func mapKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// sources returns the code that can use messages: every .go file that is
// neither a test nor generated, and every .templ file.
func sources(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "tests" || d.Name() == ".git" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		name := d.Name()
		if (strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") && !strings.HasSuffix(name, "_templ.go")) ||
			strings.HasSuffix(name, ".templ") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out[path] = string(b)
		}
		return nil
	})
	return out
}

var literal = regexp.MustCompile(`"([a-z][a-z_]*(?:\.[a-z0-9_]+)+)"`)

// TestEveryMessageIsUsedAndExists: every message of the catalogs is named
// by the code, and every message id the code names is in the catalogs.
func TestEveryMessageIsUsedAndExists(t *testing.T) {
	en := catalogs(t)[Default]
	prefixes := map[string]bool{}
	for id := range en {
		prefixes[strings.SplitN(id, ".", 2)[0]] = true
	}
	used := map[string]bool{"language.name": true} // (read by Load)
	for path, src := range sources(t) {
		for _, m := range literal.FindAllStringSubmatch(src, -1) {
			id := m[1]
			if _, ok := en[id]; ok {
				used[id] = true
				continue
			}
			if prefixes[strings.SplitN(id, ".", 2)[0]] && !regexp.MustCompile(`\.(js|css|png|json|sql|go|db)$`).MatchString(id) {
				t.Errorf("%s names the message %q, which no catalog has", path, id)
			}
		}
	}
	for id := range en {
		if !used[id] {
			t.Errorf("the catalogs have %q, which the code no longer uses", id)
		}
	}
}

var (
	templBlock    = regexp.MustCompile(`(?ms)^templ [^\n]*\{\n(.*?)\n\}\n`)
	goExpr        = regexp.MustCompile(`\{[^{}]*(\{[^{}]*\}[^{}]*)*\}`)
	tag           = regexp.MustCompile(`<[^<>]*>`)
	call          = regexp.MustCompile(`@[A-Za-z_][\w.]*`)
	visibleAttr   = regexp.MustCompile(`\b(aria-label|title|alt|placeholder)="([^"]*)"`)
	controlLine   = regexp.MustCompile(`^\s*(if |else|for |switch |case |default:|\}|\{ children)`)
	letters       = regexp.MustCompile(`\p{L}{2,}`)
	allowedInText = regexp.MustCompile(`\bLatchkey\b`)
)

// templText returns the text a templ block's lines put on the page, line
// by line: what is left once Go expressions ({ … }), component calls
// (@name(…), whose arguments may run over lines), tags (<…>, whose
// attributes may too) and control lines (if, for, switch, case) are taken
// out.
func templText(body string) []string {
	var out []string
	inTag, depth := false, 0
	for _, line := range strings.Split(body, "\n") {
		if !strings.Contains(line, "<") && controlLine.MatchString(line) && !inTag && depth == 0 {
			out = append(out, "")
			continue
		}
		for prev := ""; prev != line; {
			prev, line = line, goExpr.ReplaceAllString(line, " ")
		}
		var b strings.Builder
		for i := 0; i < len(line); i++ {
			ch := line[i]
			switch {
			case depth > 0:
				// inside a call's arguments: Go, not text
				if ch == '(' {
					depth++
				} else if ch == ')' {
					depth--
				}
			case inTag:
				inTag = ch != '>'
			case ch == '<':
				inTag = true
			case ch == '@':
				name := call.FindString(line[i:])
				i += len(name) - 1
				if i+1 < len(line) && line[i+1] == '(' {
					depth, i = 1, i+1
				}
			default:
				b.WriteByte(ch)
			}
		}
		out = append(out, allowedInText.ReplaceAllString(b.String(), " "))
	}
	return out
}

// TestTemplatesHoldNoEnglish: no template holds text a person sees that
// is not from the catalogs: no letters in text nodes, nor in the
// attributes people read (aria-label, title, alt, placeholder).
func TestTemplatesHoldNoEnglish(t *testing.T) {
	for path, src := range sources(t) {
		if !strings.HasSuffix(path, ".templ") {
			continue
		}
		for _, block := range templBlock.FindAllStringSubmatch(src, -1) {
			body := block[1]
			for _, a := range visibleAttr.FindAllStringSubmatch(body, -1) {
				if letters.MatchString(a[2]) {
					t.Errorf("%s: %s=%q is text outside the catalogs", path, a[1], a[2])
				}
			}
			for i, text := range templText(body) {
				if w := letters.FindString(text); w != "" {
					t.Errorf("%s: %q is text outside the catalogs (in %q)", path, w, strings.TrimSpace(strings.Split(body, "\n")[i]))
				}
			}
		}
	}
}

// TestTheTemplateScannerFindsText keeps the scanner above honest: it finds
// English where there is some, and none in Go, tags and calls.
func TestTheTemplateScannerFindsText(t *testing.T) {
	body := strings.Join([]string{
		`<p class="lead">{ v.T.S("x.y") } @when(p, k.Created,`,
		`	v.Now) ·</p>`,
		`<input`,
		`	name="email"`,
		`	required`,
		`/>`,
		`if v.SignedIn {`,
		`	<a href="/account">Your account</a>`,
		`}`,
		`@textLines(`,
		`	e.Subject(),`,
		`)`,
		`Sign in to Latchkey`,
	}, "\n")
	var found []string
	for _, text := range templText(body) {
		found = append(found, letters.FindAllString(text, -1)...)
	}
	if want := []string{"Your", "account", "Sign", "in", "to"}; !slices.Equal(found, want) {
		t.Errorf("found %q, want %q", found, want)
	}
}

// TestPluralsDatesAndFallback checks a few messages people see in each
// language: plurals ("1 passkey", "2 passkeys"), dates and relative times,
// and that an unsupported language speaks English.
func TestPluralsDatesAndFallback(t *testing.T) {
	c := MustLoad()
	day := time.Date(2026, time.March, 5, 14, 7, 0, 0, time.UTC)
	for _, tc := range []struct {
		lang, one, two, date, ago string
	}{
		{"en", "its passkey,", "its 2 passkeys,", "5 March 2026, 14:07 UTC", "3 minutes ago"},
		{"de", "", "", "5. März 2026, 14:07 UTC", "3 Minuten"},
		{"fr", "", "", "5 mars 2026, 14:07 UTC", "3 minutes"},
		{"es", "", "", "5 de marzo de 2026, 14:07 UTC", "3 minutos"},
	} {
		tr := c.T(tc.lang)
		if tr.Lang() != tc.lang {
			t.Errorf("T(%s) speaks %s", tc.lang, tr.Lang())
		}
		one, two := tr.N("delete.passkeys", 1), tr.N("delete.passkeys", 2)
		if one == two || (tc.one != "" && (one != tc.one || two != tc.two)) || strings.Contains(one, "2") || !strings.Contains(two, "2") {
			t.Errorf("%s: plural %q / %q", tc.lang, one, two)
		}
		if got := tr.Date(day); got != tc.date {
			t.Errorf("%s: date %q, want %q", tc.lang, got, tc.date)
		}
		if got := tr.Ago(day, day.Add(3*time.Minute)); !strings.Contains(got, tc.ago) {
			t.Errorf("%s: 3 minutes ago is %q", tc.lang, got)
		}
		if got := tr.Duration(24 * time.Hour); !strings.Contains(got, "24") {
			t.Errorf("%s: 24 hours is %q", tc.lang, got)
		}
	}
	for header, want := range map[string]string{
		"de-AT,de;q=0.9,en;q=0.5": "de", "fr-CA": "fr", "es-419,es;q=0.9": "es", "ja,zh;q=0.8": "en",
		"": "en", "garbage;;;q=x": "en", "en-GB": "en", "*": "en",
	} {
		if got := c.Pick(header); got != want {
			t.Errorf("Accept-Language %q picks %s, want %s", header, got, want)
		}
	}
	if got := c.Pick("de", "xx", "fr"); got != "fr" {
		t.Errorf("an explicit choice should win over Accept-Language: got %s", got)
	}
	if got := c.T("en").H("link.signin.lead", "Email", "<b>x</b>"); strings.Contains(string(got), "<b>") {
		t.Errorf("H does not escape plain data: %s", got)
	}
}

// TestMessagesTakeTheirData: placeholders take the data given by name, in
// any order, whatever its type; missing data shows plainly (the page
// tests look for it); an unknown message is its id.
func TestMessagesTakeTheirData(t *testing.T) {
	en := MustLoad().T("en")
	if got := en.S("email.signin.intro", "Host", "example.com", "Site", "Latchkey"); got !=
		"Someone, hopefully you, asked to sign in to Latchkey at example.com with this email address." {
		t.Errorf("got %q", got)
	}
	if got := en.S("email.signin.subject"); !strings.Contains(got, "<no value>") {
		t.Errorf("a message without its data reads %q", got)
	}
	if got := en.N("time.minutes", 7); got != "7 minutes" {
		t.Errorf("N(7) = %q", got)
	}
	if got := en.S("error.status", "Status", 404); got != "Error 404" {
		t.Errorf("an int reads %q", got)
	}
	if got := en.S("no.such.message"); got != "no.such.message" {
		t.Errorf("an unknown message reads %q", got)
	}
	if got := (T{}).S("email.signin.subject", "Site", "x"); got != "email.signin.subject" {
		t.Errorf("the zero T reads %q", got)
	}
	if got := en.H("account.signed_in_as", "Email", HTML(`<span>a@b</span>`)); got != `Signed in as <span>a@b</span>` {
		t.Errorf("HTML data reads %q", got)
	}
}
