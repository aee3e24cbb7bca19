package handlers

import (
	"bytes"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/static"
)

var getHead = []string{http.MethodGet, http.MethodHead}

// Register registers every route and the middleware around them.
func (h *Handler) Register(e *echo.Echo) {
	e.HTTPErrorHandler = h.HTTPErrorHandler
	e.Pre(refuseTrace)
	e.Use(h.logRequests, h.securityHeaders)

	// Assets and machine endpoints: no session, cacheable.
	e.Match(getHead, "/static/:file", serveStatic)
	e.Match(getHead, "/.well-known/jwks.json", h.jwks)
	e.Match(getHead, "/healthz", h.healthz, noStore)

	// Pages and actions: cross-origin protection, a body limit, and the
	// session from the cookies.
	g := e.Group("", noStore, h.crossOriginProtection, limitBody, h.loadSession)
	g.Match(getHead, "/", h.homePage)
	g.Match(getHead, "/signin", h.signInPage)
	g.POST("/signin/email", h.requestLink, h.limitClient)
	g.Match(getHead, "/signin/sent", h.sentPage)
	g.Match(getHead, "/signin/link", h.linkPage, noReferrer)
	g.POST("/signin/link", h.consumeLink, noReferrer, h.limitClient)
	g.POST("/signout", h.signOut)

	signedIn := g.Group("", h.requireSession)
	signedIn.Match(getHead, "/account", h.accountPage)
	signedIn.POST("/signout/everywhere", h.signOutEverywhere)

	// Unknown paths get the 404 page, with the session loaded so the
	// header shows the right links.
	g.RouteNotFound("/*", func(c echo.Context) error { return echo.ErrNotFound })
}

// serveStatic serves the embedded assets. Pages reference them with a
// content hash in the query, so they may be cached for a year.
func serveStatic(c echo.Context) error {
	name := c.Param("file")
	data, err := fs.ReadFile(static.FS, name)
	if err != nil || strings.Contains(name, "/") {
		return echo.ErrNotFound
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=31536000, immutable")
	http.ServeContent(c.Response(), c.Request(), name, time.Time{}, bytes.NewReader(data))
	return nil
}
