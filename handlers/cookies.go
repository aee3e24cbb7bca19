package handlers

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Cookie names. Every cookie is __Host- prefixed: Secure, Path=/, no
// Domain, so no subdomain can set or read it. The access token's cookie
// name is short because it travels with every request.
const (
	cookieAccess      = "__Host-at"
	cookieRefresh     = "__Host-rt"
	cookieLinkRequest = "__Host-linkreq"
	cookieCeremony    = "__Host-ceremony"
)

// setCookie sets a __Host- cookie that lives for maxAge (never longer than
// what it carries) and marks the response uncacheable.
func setCookie(c echo.Context, name, value string, maxAge time.Duration) {
	secs := int(maxAge / time.Second)
	if secs < 1 {
		secs = 1
	}
	addCookie(c, name, value, secs)
}

// addCookie adds the Set-Cookie line of a __Host- cookie (maxAge < 0
// deletes it; 0, which net/http turns into a browser-session cookie, is
// left to net/http). Our values are base64url and dots, which need no quoting
// or checking, so the line is written directly (http.Cookie.String checks
// and copies every byte, three times per sign-in); anything else goes
// through net/http's checks.
func addCookie(c echo.Context, name, value string, maxAge int) {
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderCacheControl, "no-store")
	if maxAge == 0 || !plainCookieValue(value) {
		c.SetCookie(&http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
			Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		return
	}
	if maxAge < 0 {
		maxAge = 0
	}
	b := make([]byte, 0, len(name)+len(value)+64)
	b = append(b, name...)
	b = append(b, '=')
	b = append(b, value...)
	b = append(b, "; Path=/; Max-Age="...)
	b = strconv.AppendInt(b, int64(maxAge), 10)
	b = append(b, "; HttpOnly; Secure; SameSite=Lax"...)
	hdr.Add("Set-Cookie", string(b))
}

// plainCookieValue reports whether v has only base64url characters and
// dots.
func plainCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// clearCookie deletes a cookie: it withdraws any value this response was
// about to set (a silent refresh earlier in the request may have set one),
// and tells the browser to drop the one it holds, if it sent one or was
// about to get one.
func clearCookie(c echo.Context, name string) {
	hdr := c.Response().Header()
	setting := false
	if lines := hdr.Values("Set-Cookie"); len(lines) > 0 {
		kept := lines[:0:0]
		for _, line := range lines {
			if strings.HasPrefix(line, name+"=") {
				setting = true
				continue
			}
			kept = append(kept, line)
		}
		hdr.Del("Set-Cookie")
		for _, line := range kept {
			hdr.Add("Set-Cookie", line)
		}
	}
	if !setting && cookieValue(c, name) == "" {
		return
	}
	addCookie(c, name, "", -1)
}

// cookieValue returns the value of a cookie, or "". It scans the Cookie
// headers for the one name instead of parsing every cookie (which
// http.Request.Cookie does, allocating each): this runs on every request.
// The value is returned as sent; everything that reads it verifies it.
func cookieValue(c echo.Context, name string) string {
	for _, line := range c.Request().Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimLeft(part, " ")
			if k, v, ok := strings.Cut(part, "="); ok && k == name {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}
