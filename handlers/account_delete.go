package handlers

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/views"
)

// deleteAccountPage says exactly what deleting the account removes, and
// asks for the email as confirmation.
func (h *Handler) deleteAccountPage(c echo.Context) error {
	u, err := h.freshUser(c, "/account/delete")
	if err != nil {
		return err
	}
	return h.render(c, http.StatusOK, views.DeleteAccount(h.page(c, "Delete your account"), views.DeleteAccountView{
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
		return h.render(c, http.StatusBadRequest, views.DeleteAccount(h.page(c, "Delete your account"), views.DeleteAccountView{
			Email: u.Email, Passkeys: u.Passkeys,
			Error: "Type your email address exactly as shown to confirm.",
		}))
	}
	stamp, err := h.db.DeleteUser(c.Request().Context(), u.Handle, h.clock.Now())
	if err != nil {
		return err
	}
	h.revocations.RevokeUser(auth.Subject(u.Handle), stamp.UnixMilli())
	h.event(c, eventAccountDeleted, u.Handle)
	h.sendNotice(c, u.Email, "Your "+views.SiteName+" account was deleted",
		"Your account and its passkeys were deleted, and every device was signed out. This can't be undone; you can sign up again with this address at any time.")
	h.clearSessionCookies(c)
	return h.render(c, http.StatusOK, views.Message(h.page(c, "Account deleted"), views.MessageView{
		Title:       "Your account has been deleted",
		Body:        "Your account, its passkeys and every session are gone. Remove the passkeys from your password manager or device too; they no longer work here.",
		ActionHref:  "/",
		ActionLabel: "Go to the home page",
	}))
}
