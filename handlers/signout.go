package handlers

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"

	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
)

// signOut ends this browser's session: its cookies go, and its session id
// is recorded in the user's row (until no token of it can be valid) and in
// this instance's revocation set at once; other instances pick it up from
// their next poll. A copy of its tokens replayed from anywhere stops working.
func (h *Handler) signOut(c echo.Context) error {
	if err := h.EndSession(c); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/")
}

// signOutEverywhere ends every session of the user, on every device: the
// "tokens valid after" stamp moves, here at once and on other instances
// within a poll.
func (h *Handler) signOutEverywhere(c echo.Context) error {
	s := sessionOf(c)
	stamp, ended, err := h.db.EndAllSessions(c.Request().Context(), s.Handle(), h.clock.Now())
	if err != nil {
		return err
	}
	h.allSessionsEnded(s.Handle(), stamp, ended)
	h.event(c, events.SignOutEverywhere, s.Handle())
	h.clearSessionCookies(c)
	return c.Redirect(http.StatusSeeOther, "/")
}

var (
	errNoSuchSession = errs.E(errs.NotFound, "error.no_such_session")
	errThisSession   = errs.E(errs.Invalid, "error.this_session")
)

// signOutSession ends one other session of the signed-in account, listed
// on the account page, exactly as its own "Sign out" would: recorded as
// ended in the row (until no token of it can be valid), at once in this
// instance's revocation set and within a second on every other, its
// refresh token dead, and the applications it signed in told. A session
// the row does not list (ended already, another account's, or no
// session at all) is 404; this browser's own is 400 (that is "Sign
// out").
func (h *Handler) signOutSession(c echo.Context) error {
	sid := c.Param("sid")
	if len(sid) > 32 || !plainCookieValue(sid) || sid == "" {
		return errNoSuchSession
	}
	u, err := h.currentUser(c)
	if err != nil {
		return err
	}
	s, now := sessionOf(c), h.clock.Now()
	if sid == s.SID {
		return errThisSession
	}
	var authTime int64
	for _, listed := range u.LiveSessions(now) {
		if listed.SID == sid {
			authTime = listed.AuthTime
		}
	}
	if authTime == 0 {
		return errNoSuchSession
	}
	endedAll, err := h.endSessionOf(c, u.Handle, sid, authTime)
	if err != nil {
		return err
	}
	h.event(c, events.SignOutSession, u.Handle, slog.String("session", sid))
	if endedAll {
		// (this one too)
		h.clearSessionCookies(c)
		return c.Redirect(http.StatusSeeOther, "/")
	}
	return c.Redirect(http.StatusSeeOther, "/account")
}

// endSessionOf ends the session sid of the account handle, signed in at
// authTime (Unix s), wherever its tokens are: recorded as ended in the
// row until no token of it can be valid (its absolute limit, or an idle
// period from now), in this instance's revocation set at once (other
// instances catch up within a second), and the applications it signed in
// told. endedAll reports that there were too many signed-out sessions to
// list, so every session of the account ended instead.
func (h *Handler) endSessionOf(c echo.Context, handle []byte, sid string, authTime int64) (endedAll bool, err error) {
	now := h.clock.Now()
	expires := h.sessionExpiry(timeUnix(authTime), now).UnixMilli()
	stamp, ended, err := h.db.EndSession(c.Request().Context(), handle, sid, expires, now)
	if err != nil {
		return false, err
	}
	sub := auth.Subject(handle)
	h.revocations.RevokeSession(sub, sid)
	h.oidc.Notify(handle, ended)
	if !stamp.IsZero() {
		h.revocations.RevokeUser(sub, stamp.UnixMilli())
	}
	return !stamp.IsZero(), nil
}

// allSessionsEnded is what follows a write that ended every session of
// the account handle at stamp (sign out everywhere, an email change,
// disabling, deleting): this instance refuses its tokens at once (others
// within a second), and the applications it ended are told.
func (h *Handler) allSessionsEnded(handle []byte, stamp time.Time, ended db.Ended) {
	h.revocations.RevokeUser(auth.Subject(handle), stamp.UnixMilli())
	h.oidc.Notify(handle, ended)
}
