package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/views"
)

// statusOf maps the error vocabulary to HTTP statuses: the only place that
// does.
var statusOf = map[string]int{
	errs.Invalid:         http.StatusBadRequest,
	errs.Unauthorized:    http.StatusUnauthorized,
	errs.Forbidden:       http.StatusForbidden,
	errs.ReauthRequired:  http.StatusForbidden,
	errs.NotFound:        http.StatusNotFound,
	errs.Conflict:        http.StatusConflict,
	errs.Gone:            http.StatusGone,
	errs.TooLarge:        http.StatusRequestEntityTooLarge,
	errs.Unsupported:     http.StatusUnsupportedMediaType,
	errs.TooManyRequests: http.StatusTooManyRequests,
	errs.Unavailable:     http.StatusServiceUnavailable,
	errs.Internal:        http.StatusInternalServerError,
}

// codeOfStatus maps Echo's own errors (404 from the router, 405, …) back
// into the vocabulary.
var codeOfStatus = map[int]string{
	http.StatusBadRequest:            errs.Invalid,
	http.StatusUnauthorized:          errs.Unauthorized,
	http.StatusForbidden:             errs.Forbidden,
	http.StatusNotFound:              errs.NotFound,
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusRequestEntityTooLarge: errs.TooLarge,
	http.StatusUnsupportedMediaType:  errs.Unsupported,
	http.StatusTooManyRequests:       errs.TooManyRequests,
}

// Public messages (ids) for errors that carry none of their own.
var defaultMessages = map[string]string{
	errs.Invalid:         "error.default.invalid",
	errs.Unauthorized:    "error.default.unauthorized",
	errs.Forbidden:       "error.default.forbidden",
	errs.NotFound:        "error.default.not_found",
	"method_not_allowed": "error.default.method",
	errs.TooLarge:        "error.default.too_large",
	errs.Unsupported:     "error.default.unsupported",
	errs.TooManyRequests: "error.default.too_many",
}

// titles are the error pages' titles (ids).
var titles = map[string]string{
	errs.Invalid:         "error.title.invalid",
	errs.Unauthorized:    "error.title.unauthorized",
	errs.Forbidden:       "error.title.forbidden",
	errs.ReauthRequired:  "error.title.reauth",
	errs.NotFound:        "error.title.not_found",
	errs.Conflict:        "error.title.conflict",
	errs.Gone:            "error.title.gone",
	errs.TooLarge:        "error.title.too_large",
	errs.Unsupported:     "error.title.unsupported",
	errs.TooManyRequests: "error.title.too_many",
	errs.Unavailable:     "error.title.unavailable",
	errs.Internal:        "error.title.internal",
	"method_not_allowed": "error.title.method",
}

// HTTPErrorHandler turns every error a handler returns, or Echo raises, into
// a response: a page with the right status on page routes, JSON
// {"error": code, "message": …} on the JSON endpoints. Internal errors are
// logged and shown only as a generic message.
func (h *Handler) HTTPErrorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
		// The client went away mid-request: nobody is left to answer.
		h.log.Debug("request cancelled by the client", "method", c.Request().Method, "path", c.Request().URL.Path)
		return
	}
	if so, ok := errors.AsType[*signedOutError](err); ok {
		to := signInRedirect(c)
		if !isJSONEndpoint(c) {
			if err := c.Redirect(http.StatusSeeOther, to); err != nil {
				h.log.Error("redirecting to sign in", "err", err)
			}
			return
		}
		err = &redirectError{err: errs.E(errs.Unauthorized, so.message), to: to}
	}
	if re, ok := errors.AsType[*reauthError](err); ok {
		if !isJSONEndpoint(c) {
			if err := c.Redirect(http.StatusSeeOther, re.to); err != nil {
				h.log.Error("redirecting to step-up", "err", err)
			}
			return
		}
		err = &redirectError{err: errReauthRequired, to: re.to}
	}
	code, messageID, status := h.classify(err)
	t := h.t(c)
	message := t.S(messageID, append(errs.Data(err), "KB", MaxBodyBytes>>10)...)
	if status >= 500 {
		h.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path,
			"status", status, "client", c.RealIP(), "err", err)
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	if code == errs.TooManyRequests {
		if e, ok := errors.AsType[*retryError](err); ok {
			c.Response().Header().Set("Retry-After", strconv.Itoa(e.seconds))
		}
	}
	if isJSONEndpoint(c) {
		body := map[string]string{"error": code, "message": message}
		if e, ok := errors.AsType[*redirectError](err); ok {
			body["redirect"] = e.to
		}
		if e, ok := errors.AsType[*forgetCredentialError](err); ok {
			body["credential"] = e.id
		}
		if err := c.JSON(status, body); err != nil {
			h.log.Error("writing error response", "err", err)
		}
		return
	}
	if _, loaded := c.(*sessionContext); !loaded {
		// Requests that matched no route skipped loadSession; the page
		// header should still know who is signed in (no refresh here).
		if claims, err := h.tokens.VerifyAccess(cookieValue(c, cookieAccess)); err == nil {
			setSession(c, claims)
		}
	}
	p := h.page(c, titles[code])
	v := views.ErrorView{Status: status, Title: p.Title, Message: message}
	href, label := errorAction(c, code)
	v.ActionHref, v.ActionLabel = href, t.S(label)
	if err := h.render(c, status, views.Error(p, v)); err != nil {
		if c.Request().Context().Err() != nil {
			// The client went away (say, in the middle of its body) while
			// its error page was made: nobody is left to read it.
			h.log.Debug("client gone before its error page", "method", c.Request().Method, "path", c.Request().URL.Path)
			return
		}
		h.log.Error("rendering error page", "err", err)
		c.Response().WriteHeader(status)
	}
}

func (h *Handler) classify(err error) (code, message string, status int) {
	if he, ok := errors.AsType[*echo.HTTPError](err); ok {
		code = codeOfStatus[he.Code]
		if code == "" {
			code = errs.Internal
		}
		status = he.Code
		if status < 400 || status > 599 {
			status = http.StatusInternalServerError
		}
		if code == errs.Internal {
			return code, errs.Message(err), http.StatusInternalServerError
		}
		return code, defaultMessages[code], status
	}
	code = errs.Code(err)
	message = errs.Message(err)
	if e, ok := errors.AsType[*errs.Error](err); ok && e.Message == "" && defaultMessages[code] != "" {
		message = defaultMessages[code]
	}
	return code, message, statusOf[code]
}

// errorAction is the one thing an error page offers to do next (its
// label a message id).
func errorAction(c echo.Context, code string) (href, label string) {
	path := c.Request().URL.Path
	switch {
	case code == errs.Gone || (code == errs.Invalid && (strings.HasPrefix(path, "/signin") || strings.HasPrefix(path, "/account/email/confirm"))):
		return "/signin", "action.new_link"
	case code == errs.Unauthorized:
		return "/signin", "action.signin"
	case code == errs.Unavailable:
		return path, "action.try_again"
	case strings.HasPrefix(path, "/account") && sessionOf(c) != nil:
		return "/account", "action.back_to_account"
	}
	return "/", "action.home"
}

// jsonEndpoints speak JSON, errors included.
var jsonEndpoints = map[string]bool{
	"/signin/passkey/begin":    true,
	"/signin/passkey/finish":   true,
	"/account/passkeys/begin":  true,
	"/account/passkeys/finish": true,
	"/oauth2/token":            true,
	"/oauth2/userinfo":         true,
}

func isJSONEndpoint(c echo.Context) bool { return jsonEndpoints[c.Request().URL.Path] }

// retryError is a 429 that says when to retry.
type retryError struct {
	err     *errs.Error
	seconds int
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// redirectError tells a JSON client where a person should go next (the
// step-up page, or sign-in).
type redirectError struct {
	err *errs.Error
	to  string
}

func (e *redirectError) Error() string { return e.err.Error() }
func (e *redirectError) Unwrap() error { return e.err }
