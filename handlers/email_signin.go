package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/views"
)

// setEmailSignIn turns email sign-in off (passkey-only) or back on, a
// sensitive action: it needs a recent passkey sign-in either way. Turning
// it off voids every link already sent.
func (h *Handler) setEmailSignIn(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return err
	}
	var enable bool
	switch c.Request().PostForm.Get("enabled") {
	case "true":
		enable = true
	case "false":
	default:
		return errs.E(errs.Invalid, "Choose whether email sign-in should be on or off.")
	}
	u, err := h.freshUser(c, "/account")
	if err != nil {
		return err
	}
	if enable == u.EmailSignIn {
		return c.Redirect(http.StatusSeeOther, "/account")
	}
	if err := h.db.SetEmailSignIn(c.Request().Context(), u.ID, enable, h.clock.Now()); err != nil {
		return err
	}
	u.EmailSignIn = enable
	if enable {
		h.event(c, eventEmailSignInOn, u.Handle)
		h.sendNotice(c, u.Email, "Email sign-in was turned on for your "+views.SiteName+" account",
			"Sign-in links sent to this address can sign in to your account again, as well as your passkeys.")
		return h.renderAccount(c, http.StatusOK, u, views.EmailChangeForm{}, "Email sign-in is on: you can sign in with a passkey or a link.")
	}
	h.event(c, eventEmailSignInOff, u.Handle)
	h.sendNotice(c, u.Email, "Email sign-in was turned off for your "+views.SiteName+" account",
		"Your account now signs in with passkeys only. Links already sent no longer work, and asking for a new one sends a notice instead of a link.")
	return h.renderAccount(c, http.StatusOK, u, views.EmailChangeForm{}, "Email sign-in is off: only your passkeys can sign in now.")
}
