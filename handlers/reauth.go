package handlers

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/views"
)

// reauthError sends a person to the step-up page: forms get a 303, JSON
// endpoints a 403 {"error":"reauth_required","redirect":…}.
type reauthError struct{ to string }

func (e *reauthError) Error() string { return "reauthentication required" }

// freshSession reports whether the signed-in session proved who it is
// recently enough for a sensitive action: a sign-in within REAUTH_TTL,
// with a passkey if the account has one. (A link sign-in is the weaker
// factor: it does not unlock sensitive actions on an account with
// passkeys, unless its recovery is due and it signed in since.)
func (h *Handler) freshSession(c echo.Context, u *db.User) bool {
	s := sessionOf(c)
	now := h.clock.Now()
	return s != nil && now.Sub(timeUnix(s.AuthTime)) <= h.cfg.ReauthTTL &&
		(s.Passkey() || u.Passkeys == 0 || u.RecoveryReady(s.AuthTime, now))
}

// requireFresh returns a reauthError unless the session is fresh; next is
// where the step-up page returns to.
func (h *Handler) requireFresh(c echo.Context, u *db.User, next string) error {
	if h.freshSession(c, u) {
		return nil
	}
	return &reauthError{to: "/account/reauth?next=" + url.QueryEscape(next)}
}

// freshUser returns the signed-in user if the session may do a sensitive
// action, and a reauthError (back to next) if it must step up first.
func (h *Handler) freshUser(c echo.Context, next string) (*db.User, error) {
	u, err := h.currentUser(c)
	if err != nil {
		return nil, err
	}
	if err := h.requireFresh(c, u, next); err != nil {
		return nil, err
	}
	return u, nil
}

// reauthPage asks the person to confirm it's them: with a passkey, or, for
// an account without one, with an emailed link.
func (h *Handler) reauthPage(c echo.Context) error {
	u, err := h.currentUser(c)
	if err != nil {
		return err
	}
	next := nextOr(c.QueryParam("next"), "/account")
	if h.freshSession(c, u) {
		return c.Redirect(http.StatusSeeOther, next)
	}
	now := h.clock.Now()
	return h.render(c, http.StatusOK, views.Reauth(h.page(c, "title.reauth"), views.ReauthView{
		Email:      u.Email,
		Next:       next,
		HasPasskey: u.Passkeys > 0,
		// With its recovery due, a new link sign-in is fresh enough.
		LinkWorks:   u.Passkeys == 0 || (u.RecoveryDue != 0 && now.UnixMilli() >= u.RecoveryDue),
		EmailSignIn: u.EmailSignIn,
	}))
}

var errReauthRequired = errs.E(errs.ReauthRequired, "error.reauth_required")
