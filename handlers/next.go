package handlers

import (
	"net/url"
	"strings"
)

// maxNextLength bounds the next= parameter (an OpenID Connect
// authorization request, carried through a sign-in, is the longest).
const maxNextLength = 2048

// safeNext returns next if it is a path on this site, and "" otherwise:
// exactly one leading slash, no scheme or host however spelled (//host,
// /\host, /%2F/host, https:host), no control characters. Anything else is
// dropped silently, and the caller falls back to /account.
func safeNext(next string) string {
	if next == "" || len(next) > maxNextLength || next[0] != '/' {
		return ""
	}
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return ""
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return ""
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return ""
	}
	// Browsers and proxies may decode %2F or %5C before acting on a path,
	// so a path that decodes to //host is refused too.
	if strings.HasPrefix(u.Path, "//") || strings.Contains(u.Path, "\\") {
		return ""
	}
	return next
}

// nextOr returns next if it is safe, else fallback.
func nextOr(next, fallback string) string {
	if s := safeNext(next); s != "" {
		return s
	}
	return fallback
}
