package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
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
		return errs.E(errs.Invalid, "error.email_signin_choice")
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
		h.event(c, events.EmailSignInOn, u.Handle)
		h.sendNotice(c, u.Email, h.tFor(c, u.Lang), "notice.email_signin_on.subject", []string{"notice.email_signin_on"})
		return h.renderAccount(c, http.StatusOK, u, views.EmailChangeForm{}, h.t(c).S("account.notice.email_signin_on"))
	}
	h.event(c, events.EmailSignInOff, u.Handle)
	h.sendNotice(c, u.Email, h.tFor(c, u.Lang), "notice.email_signin_off.subject", []string{"notice.email_signin_off"})
	return h.renderAccount(c, http.StatusOK, u, views.EmailChangeForm{}, h.t(c).S("account.notice.email_signin_off"))
}
