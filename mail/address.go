package mail

import (
	"strings"

	"github.com/latchkey/latchkey/errs"
)

// MaxAddressLength is the longest address accepted (RFC 5321's path limit
// less the angle brackets).
const MaxAddressLength = 254

// Messages for a bad address, shown beside the email field.
const (
	msgAddressEmpty   = "error.address_empty"
	msgAddressLong    = "error.address_long"
	msgAddressOne     = "error.address_one"
	msgAddressInvalid = "error.address_invalid"
)

// NormalizeAddress returns the one form of an email address that Latchkey
// stores, compares and sends to: trimmed and lowercased, one plain
// addr-spec (no display name, no quoting, no comments), an ASCII dot-atom
// local part of at most 64 characters and a domain with at least two labels
// (internationalised domains in their xn-- form). Anything else is an
// errs.Invalid error whose message says what to fix.
//
// The rules are stricter than RFC 5322 on purpose: every address accepted
// here is one that every SMTP server and mail client handles the same way,
// and nothing in it can break out of a header.
func NormalizeAddress(s string) (string, error) {
	s = asciiLower(strings.TrimSpace(s))
	switch {
	case s == "":
		return "", errs.E(errs.Invalid, msgAddressEmpty)
	case len(s) > MaxAddressLength:
		return "", errs.E(errs.Invalid, msgAddressLong)
	case strings.ContainsAny(s, ",;<>\"()\r\n\t ") || strings.Count(s, "@") > 1:
		return "", errs.E(errs.Invalid, msgAddressOne)
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || !validLocalPart(local) || !validDomain(domain) {
		return "", errs.E(errs.Invalid, msgAddressInvalid)
	}
	return s, nil
}

// asciiLower lowercases A to Z only. strings.ToLower would also fold some
// non-ASCII letters into ASCII ones ("İ" to "i", the Kelvin sign to "k"),
// turning an address that should be refused into someone else's.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

func validLocalPart(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && !strings.ContainsRune(".!#$%&'*+/=?^_`{|}~-", rune(c)) {
			return false
		}
	}
	return true
}

func validDomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if !isAlnum(l[i]) && l[i] != '-' {
				return false
			}
		}
	}
	// A top-level domain is never all digits; this also refuses bare IPs.
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}
