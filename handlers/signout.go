package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

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
	h.revocations.RevokeUser(s.Subject, stamp.UnixMilli())
	h.oidc.Notify(s.Handle(), ended)
	h.event(c, events.SignOutEverywhere, s.Handle())
	h.clearSessionCookies(c)
	return c.Redirect(http.StatusSeeOther, "/")
}
