package handlers

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/ratelimit"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 64 << 10

const contentSecurityPolicy = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; " +
	"frame-ancestors 'none'; form-action 'self'"

// securityHeaders sets the security baseline on every response. The
// form-action directive also names the origins of the registered OpenID
// Connect clients' redirect URIs: a form that signs in, consents or signs
// out can end in a redirect back to the application, and browsers apply
// form-action to every redirect of a form's submission.
func (h *Handler) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	hsts := h.cfg.BaseURL.Scheme == "https"
	csp := contentSecurityPolicy
	if origins := h.oidc.Clients().RedirectOrigins(); len(origins) > 0 {
		csp += " " + strings.Join(origins, " ")
	}
	return func(c echo.Context) error {
		hdr := c.Response().Header()
		hdr.Set("Content-Security-Policy", csp)
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Referrer-Policy", "same-origin")
		hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
		hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
		if hsts {
			hdr.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		return next(c)
	}
}

// noStore marks dynamic responses uncacheable: they are personal, or
// depend on cookies.
func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
		return next(c)
	}
}

// noReferrer keeps a link page's address (it carries the token) out of the
// Referer header of anything the page loads or links to.
func noReferrer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Referrer-Policy", "no-referrer")
		return next(c)
	}
}

// refuseTrace answers TRACE (and CONNECT) with 405 on every path, before
// routing.
func refuseTrace(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Request().Method {
		case http.MethodTrace, http.MethodConnect:
			return echo.NewHTTPError(http.StatusMethodNotAllowed)
		}
		return next(c)
	}
}

// crossOriginProtection refuses state-changing requests from other sites
// (403), using Go's own Sec-Fetch-Site / Origin check.
func (h *Handler) crossOriginProtection(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := h.crossOrigin.Check(c.Request()); err != nil {
			return errs.E(errs.Forbidden, "error.cross_origin")
		}
		return next(c)
	}
}

// limitBody refuses bodies over MaxBodyBytes: at once when Content-Length
// says so, otherwise when reading passes the limit (parseForm and
// readJSON turn that into 413).
func limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > MaxBodyBytes {
			return errs.E(errs.TooLarge, "")
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(c.Response(), r.Body, MaxBodyBytes)
		}
		return next(c)
	}
}

// parseForm parses a form body, mapping an oversized body to 413 and a
// malformed one to 400.
func parseForm(c echo.Context) error {
	err := c.Request().ParseForm()
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return errs.E(errs.TooLarge, "")
	}
	return errs.Wrap(err, errs.Invalid, "error.bad_form")
}

// limitClient counts POSTs per client and route, and answers 429 with
// Retry-After past the limit.
func (h *Handler) limitClient(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := c.Path() + " " + ratelimit.ClientKey(c.RealIP())
		if ok, wait := h.clientLimiter.Allow(key, h.clock.Now()); !ok {
			secs := int((wait + time.Second - 1) / time.Second)
			return &retryError{err: errs.E(errs.TooManyRequests, "error.too_many_attempts"), seconds: max(secs, 1)}
		}
		return next(c)
	}
}

// logRequests logs one line per request: method, path (never the query,
// which may hold a token), status, client and duration.
func (h *Handler) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		if h.log.Enabled(c.Request().Context(), slog.LevelInfo) {
			h.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
				slog.String("method", c.Request().Method),
				slog.String("path", c.Request().URL.Path),
				slog.Int("status", c.Response().Status),
				slog.String("client", c.RealIP()),
				slog.Duration("duration", time.Since(start)))
		}
		return nil
	}
}

// recoverPanics turns a panic in a handler into the generic 500 page, and
// logs it with its stack for the operator (never for the visitor).
func (h *Handler) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				h.log.Error("panic while handling a request", "method", c.Request().Method,
					"path", c.Request().URL.Path, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = errs.E(errs.Internal, "")
			}
		}()
		return next(c)
	}
}
