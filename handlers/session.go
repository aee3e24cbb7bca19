package handlers

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
)

const sessionContextKey = "latchkey.session"

// sessionContext carries the request's verified session from loadSession
// to the handler. (Echo's c.Set would do, but it allocates a map for every
// request that uses it, and this is every signed-in request.)
type sessionContext struct {
	echo.Context
	claims *auth.Claims
}

// sessionOf returns the verified access-token claims of the request, or nil
// when nobody is signed in.
func sessionOf(c echo.Context) *auth.Claims {
	if sc, ok := c.(*sessionContext); ok {
		return sc.claims
	}
	s, _ := c.Get(sessionContextKey).(*auth.Claims)
	return s
}

// setSession records who is signed in for the rest of the request (after
// a sign-in, a sign-out, or a silent refresh).
func setSession(c echo.Context, claims *auth.Claims) {
	if sc, ok := c.(*sessionContext); ok {
		sc.claims = claims
		return
	}
	c.Set(sessionContextKey, claims)
}

// loadSession authenticates the request from its cookies and hands the
// session down with the request. Errors from everything after it are
// answered here, so that error pages know who is signed in too.
func (h *Handler) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		claims, err := h.authenticate(c)
		if err != nil {
			return err
		}
		sc := &sessionContext{Context: c, claims: claims}
		if err := next(sc); err != nil {
			sc.Echo().HTTPErrorHandler(err, sc)
		}
		return nil
	}
}

// authenticate returns the session the request's cookies prove, or nil. A
// valid access token is all it takes: no database read. When the access
// token is missing or expired (browsers drop expired cookies) and the
// refresh token is valid, it refreshes silently: one read of the user row,
// new cookies, and the request goes on as signed in.
func (h *Handler) authenticate(c echo.Context) (*auth.Claims, error) {
	if access := cookieValue(c, cookieAccess); access != "" {
		claims, err := h.tokens.VerifyAccess(access)
		if err == nil {
			return claims, nil
		}
		if errors.Is(err, auth.ErrTokenRevoked) {
			// The session or the user was revoked: a refresh would be
			// refused too, so don't spend a database read on it.
			h.clearSessionCookies(c)
			return nil, nil
		}
	}
	if refresh := cookieValue(c, cookieRefresh); refresh != "" {
		claims, err := h.refresh(c, refresh)
		switch {
		case err == nil:
			return claims, nil
		case errs.Code(err) == errs.Internal || errs.Code(err) == errs.Unavailable:
			// Not a verdict on the session (the database did not
			// answer): keep its cookies, so it works again afterwards.
			return nil, err
		}
		h.clearSessionCookies(c)
	}
	return nil, nil
}

// refresh rotates a refresh token: it reads and writes the user row once,
// locked (does the account exist, was the session or every session
// revoked since, is this the session's current generation), and issues a
// new pair with the session's original auth_time and sid and the next
// generation, at an issue time ordered with every revocation of the
// account (see db.RotateRefresh): a refresh racing "Sign out everywhere"
// can never outlive it, and a replayed old refresh token ends the session.
func (h *Handler) refresh(c echo.Context, raw string) (*auth.Claims, error) {
	rc, err := h.tokens.VerifyRefresh(raw)
	if err != nil {
		return nil, err
	}
	if h.revocations.Revoked(rc.Subject, rc.SID, int64(rc.IssuedAt)) {
		return nil, auth.ErrTokenRevoked // known here already: no read
	}
	now := h.clock.Now()
	authTime := timeUnix(rc.AuthTime)
	browser, system := browserAndSystem(c.Request().UserAgent())
	u, gen, issuedAt, err := h.db.RotateRefresh(c.Request().Context(), db.Refresh{
		Handle: rc.Handle(), SID: rc.SID, Gen: rc.Gen, IssuedAt: int64(rc.IssuedAt), AuthTime: rc.AuthTime,
		Expires: h.sessionExpiry(authTime, now).UnixMilli(),
		Method:  methodOf(rc), Browser: browser, System: system,
	}, now)
	switch {
	case errors.Is(err, db.ErrRefreshReplayed):
		h.revocations.RevokeSession(rc.Subject, rc.SID)
		if replay, ok := errors.AsType[*db.RefreshReplayError](err); ok {
			h.oidc.Notify(rc.Handle(), replay.Ended)
		}
		h.warnEvent(c, events.RefreshReplayed, rc.Handle(), slog.String("session", rc.SID))
		return nil, auth.ErrTokenRevoked
	case errs.Code(err) == errs.Unauthorized:
		h.event(c, events.RefreshRefused, rc.Handle(), slog.String("reason", refusalReason(err)))
		return nil, auth.ErrTokenRevoked
	case err != nil:
		return nil, err
	}
	issued, err := h.tokens.IssueAt(issuedAt, u.Handle, rc.AMR, authTime, rc.SID, gen)
	if err != nil {
		return nil, err
	}
	h.setSessionCookies(c, issued)
	return issued.Claims, nil
}

// refusalReason names why a refresh was refused, for the event log.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, db.ErrSessionForgotten):
		return "session_fell_out_of_the_list"
	case errors.Is(err, db.ErrSessionEnded):
		return "signed_out_revoked_or_disabled"
	}
	return errs.Code(err)
}

// sessionExpiry is when a session signed in at authTime ends unless it is
// refreshed again: an idle period from now, and never past its absolute
// limit.
func (h *Handler) sessionExpiry(authTime, now time.Time) time.Time {
	return minTime(authTime.Add(h.cfg.MaxTTL), now.Add(h.cfg.IdleTTL))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// newSession describes the session a sign-in by method starts at now,
// before the write that records the sign-in lists it: a new session id,
// the kind of browser and system it comes from, when it ends unless
// refreshed, and the session this browser holds, if any, which it
// replaces (a step-up, or signing in again: that one no longer has a
// browser, so it leaves the list).
func (h *Handler) newSession(c echo.Context, method string, now time.Time) db.SessionStart {
	browser, system := browserAndSystem(c.Request().UserAgent())
	s := db.SessionStart{SID: auth.NewSessionID(), Method: method, Browser: browser, System: system,
		Expires: h.sessionExpiry(now, now).UnixMilli()}
	if old := sessionOf(c); old != nil {
		s.Replaces = old.SID
	}
	return s
}

// methodOf says how a session signed in, as far as its token tells (a
// code sign-in carries the email's amr, like a link's).
func methodOf(claims *auth.Claims) string {
	if claims.Passkey() {
		return db.MethodPasskey
	}
	return db.MethodLink
}

// startSession signs the user in on this browser with the session s
// (see newSession), authenticated at authTime: fresh cookies, with the
// issue time the database gave the sign-in's write.
func (h *Handler) startSession(c echo.Context, handle []byte, amr []string, issuedAt time.Time, s db.SessionStart, authTime time.Time) error {
	issued, err := h.tokens.IssueAt(issuedAt, handle, amr, authTime, s.SID, 0)
	if err != nil {
		return err
	}
	h.setSessionCookies(c, issued)
	setSession(c, issued.Claims)
	return nil
}

func (h *Handler) setSessionCookies(c echo.Context, issued *auth.Issued) {
	now := h.clock.Now()
	setCookie(c, cookieAccess, issued.Access, issued.AccessExpires.Sub(now))
	setCookie(c, cookieRefresh, issued.Refresh, issued.RefreshExpires.Sub(now))
}

func (h *Handler) clearSessionCookies(c echo.Context) {
	clearCookie(c, cookieAccess)
	clearCookie(c, cookieRefresh)
	setSession(c, nil)
}

// requireSession sends signed-out visitors to the sign-in page (303, with
// next= the page they wanted); JSON endpoints get 401 and the same address.
func (h *Handler) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if sessionOf(c) != nil {
			return next(c)
		}
		return errSignedOut
	}
}

// signedOutError is a request that needs a session and has none (or whose
// account no longer exists): pages redirect to sign in, JSON endpoints say
// 401 and where to go.
type signedOutError struct{ message string }

func (e *signedOutError) Error() string { return "signed out" }

var errSignedOut = &signedOutError{message: "error.signed_out"}

// signInRedirect is where a signed-out request is sent: the sign-in page,
// coming back to the page asked for (or to the account page, for a form).
func signInRedirect(c echo.Context) string {
	target := "/account"
	if r := c.Request(); r.Method == http.MethodGet || r.Method == http.MethodHead {
		target = r.URL.RequestURI()
	}
	return "/signin?next=" + url.QueryEscape(target)
}
