package handlers

import (
	"net/http"
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
	c.SetCookie(&http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   secs,
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
}

// clearCookie deletes a cookie, if the request carried it.
func clearCookie(c echo.Context, name string) {
	if _, err := c.Cookie(name); err != nil {
		return
	}
	c.SetCookie(&http.Cookie{
		Name:     name,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
}

// cookieValue returns the value of a cookie, or "".
func cookieValue(c echo.Context, name string) string {
	ck, err := c.Cookie(name)
	if err != nil {
		return ""
	}
	return ck.Value
}
