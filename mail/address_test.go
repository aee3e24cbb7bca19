package mail

import (
	"strings"
	"testing"
)

func TestNormalizeAddress(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.com":         "alice@example.com",
		"  Alice@Example.COM \n":    "alice@example.com",
		"a.b+tag@sub.example.co.uk": "a.b+tag@sub.example.co.uk",
		"o'brien@example.ie":        "o'brien@example.ie",
		"x@xn--bcher-kva.example":   "x@xn--bcher-kva.example",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 60) + ".com": strings.Repeat("a", 64) + "@" + strings.Repeat("b", 60) + ".com",
	} {
		got, err := NormalizeAddress(in)
		if err != nil || got != want {
			t.Errorf("%q → %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{
		"", " ", "alice", "alice@", "@example.com", "alice@localhost", "alice@example",
		"alice@example.com\r\nBcc: x@y.z", "alice@example.com\nx", "a@b.com,c@d.com", "a@b.com;c@d.com",
		"Alice <alice@example.com>", `"alice"@example.com`, "alice@@example.com", "al ice@example.com",
		".alice@example.com", "alice.@example.com", "al..ice@example.com", "alice@-example.com",
		"alice@example-.com", "alice@exa_mple.com", "alice@127.0.0.1", "alice@[127.0.0.1]",
		"ålice@example.com", "alice@exämple.com", strings.Repeat("a", 65) + "@example.com",
		"\u0130x@example.com", "\u212ate@example.com", "x@example.\u212aom", // would fold into ASCII: İ, the Kelvin sign
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + ".com",
	} {
		if got, err := NormalizeAddress(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
}

func TestParseSMTPURL(t *testing.T) {
	c, err := ParseSMTPURL("smtp://user:p%40ss@mail.example.com:2525?starttls=required")
	if err != nil || c.Host != "mail.example.com" || c.Port != 2525 || c.Username != "user" || c.Password != "p@ss" || !c.RequireSTARTTLS || c.ImplicitTLS {
		t.Errorf("%+v %v", c, err)
	}
	c, err = ParseSMTPURL("smtps://mail.example.com")
	if err != nil || c.Port != 465 || !c.ImplicitTLS {
		t.Errorf("%+v %v", c, err)
	}
	for _, bad := range []string{"http://x", "smtp://", "smtp://x:99999", "smtp://x?tls=yes", "smtps://x?starttls=required"} {
		if _, err := ParseSMTPURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
