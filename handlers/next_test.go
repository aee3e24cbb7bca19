package handlers

import "testing"

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/account":                        "/account",
		"/account?tab=a&b=c":              "/account?tab=a&b=c",
		"/account/reauth?next=%2Faccount": "/account/reauth?next=%2Faccount",
		"/":                               "/",
		"":                                "",
		"//evil.example":                  "",
		`/\evil.example`:                  "",
		"/%2F%2Fevil.example":             "",
		"/%2f/evil.example":               "",
		"/%5C%5Cevil.example":             "",
		"https:evil.example":              "",
		"https://evil.example":            "",
		"javascript:alert(1)":             "",
		"evil.example":                    "",
		"/\t/evil.example":                "",
		"/\n/evil.example":                "",
		"/a\x7f":                          "",
		"/" + string(make([]byte, 2000)):  "",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
