package handlers

import (
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// signOut ends this browser's session: its cookies go, and its session id
// is recorded in the user's row (until no token of it can be valid) and in
// this instance's revocation set at once; other instances pick it up from
// their next poll. A copy of its tokens replayed from anywhere stops working.
func (h *Handler) signOut(c echo.Context) error {
	if s := sessionOf(c); s != nil {
		now := h.clock.Now()
		// No refresh token of this session outlives both its absolute
		// limit and an idle period from now.
		expires := h.sessionExpiry(timeUnix(s.AuthTime), now).UnixMilli()
		endedAll, err := h.db.EndSession(c.Request().Context(), s.Handle(), s.SID, expires, now)
		if err != nil {
			return err
		}
		h.revocations.RevokeSession(s.Subject, s.SID)
		h.event(c, eventSignOut, s.Handle(), slog.String("session", s.SID))
		if !endedAll.IsZero() {
			// Too many signed-out sessions to list: every session ended,
			// here at once as on other instances within a poll.
			h.revocations.RevokeUser(s.Subject, endedAll.UnixMilli())
		}
	}
	h.clearSessionCookies(c)
	return c.Redirect(http.StatusSeeOther, "/")
}

// signOutEverywhere ends every session of the user, on every device: the
// "tokens valid after" stamp moves, here at once and on other instances
// within a poll.
func (h *Handler) signOutEverywhere(c echo.Context) error {
	s := sessionOf(c)
	stamp, err := h.db.EndAllSessions(c.Request().Context(), s.Handle(), h.clock.Now())
	if err != nil {
		return err
	}
	h.revocations.RevokeUser(s.Subject, stamp.UnixMilli())
	h.event(c, eventSignOutEverywhere, s.Handle())
	h.clearSessionCookies(c)
	return c.Redirect(http.StatusSeeOther, "/")
}
