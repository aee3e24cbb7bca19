package handlers

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
	"github.com/latchkey/latchkey/views"
)

// consoleInvitePage is GET /admin/invite: an address and a language.
func (h *Handler) consoleInvitePage(c echo.Context) error {
	p := h.consolePage(c, "title.console.invite", "invite")
	return h.render(c, http.StatusOK, views.ConsoleInvite(p, views.ConsoleInviteView{
		Lang: p.T.Lang(), Notice: consoleNotice(p.Page, c.QueryParam("done")),
	}))
}

// consoleInvite is POST /admin/invite: emails the address a sign-up link,
// in the chosen language, that works whatever SIGNUP says (as `latchkey
// admin invite` does). An address that has an account already gets
// nothing, and the form says so.
func (h *Handler) consoleInvite(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return err
	}
	if _, err := h.freshOperator(c, "/admin/invite"); err != nil {
		return err
	}
	form := c.Request().PostForm
	v := views.ConsoleInviteView{Form: views.SignInForm{Email: form.Get("email")}, Lang: form.Get("lang")}
	p := h.consolePage(c, "title.console.invite", "invite")
	if !h.catalog.Supported(v.Lang) {
		return errLanguageUnknown
	}
	if !v.Form.Validate() {
		return h.render(c, http.StatusBadRequest, views.ConsoleInvite(p, v))
	}
	_, err := h.db.UserByEmail(c.Request().Context(), v.Form.Email)
	switch {
	case err == nil:
		v.Form.Error = "console.invite.has_account"
		return h.render(c, http.StatusConflict, views.ConsoleInvite(p, v))
	case errs.Code(err) != errs.NotFound:
		return err
	}
	if err := h.sendLink(c, &auth.Link{Kind: auth.LinkInvite, Email: v.Form.Email}, "invite", "", h.catalog.T(v.Lang)); err != nil {
		return err
	}
	h.consoleEvent(c, events.AdminInvite, nil, slog.String("email_domain", v.Form.Email[strings.LastIndexByte(v.Form.Email, '@')+1:]))
	return consoleDone(c, "/admin/invite", "invited")
}
