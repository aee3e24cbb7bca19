package handlers

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/views"

	"github.com/latchkey/latchkey/events"
)

// deleteAccountPage says exactly what deleting the account removes, and
// asks for the email as confirmation.
func (h *Handler) deleteAccountPage(c echo.Context) error {
	u, err := h.freshUser(c, "/account/delete")
	if err != nil {
		return err
	}
	return h.render(c, http.StatusOK, views.DeleteAccount(h.page(c, "title.delete"), views.DeleteAccountView{
		Email: u.Email, Passkeys: u.Passkeys,
	}))
}

// deleteAccount deletes the account and its passkeys in one transaction,
// signs out every session everywhere, and clears this browser's cookies.
func (h *Handler) deleteAccount(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return err
	}
	u, err := h.freshUser(c, "/account/delete")
	if err != nil {
		return err
	}
	if strings.ToLower(strings.TrimSpace(c.Request().PostForm.Get("confirm"))) != u.Email {
		return h.render(c, http.StatusBadRequest, views.DeleteAccount(h.page(c, "title.delete"), views.DeleteAccountView{
			Email: u.Email, Passkeys: u.Passkeys,
			Error: "delete.mismatch",
		}))
	}
	stamp, ended, err := h.db.DeleteUser(c.Request().Context(), u.Handle, h.clock.Now())
	if err != nil {
		return err
	}
	h.allSessionsEnded(u.Handle, stamp, ended)
	h.event(c, events.AccountDeleted, u.Handle)
	h.sendNotice(c, u.Email, h.tFor(c, u.Lang), "notice.deleted.subject", []string{"notice.deleted"})
	h.clearSessionCookies(c)
	t := h.t(c)
	return h.render(c, http.StatusOK, views.Message(h.page(c, "title.deleted"), views.MessageView{
		Title:       t.S("deleted.title"),
		Body:        t.S("deleted.body"),
		ActionHref:  "/",
		ActionLabel: t.S("action.home"),
	}))
}
