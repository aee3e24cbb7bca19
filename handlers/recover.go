package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/views"
)

// cancelRecovery ends the signed-in account's pending recovery. It needs
// no step-up: it only takes a way in away.
func (h *Handler) cancelRecovery(c echo.Context) error {
	u, err := h.currentUser(c)
	if err != nil {
		return err
	}
	cancelled, err := h.db.CancelRecovery(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	if !cancelled {
		return h.renderAccount(c, http.StatusOK, u, views.EmailChangeForm{}, "There is no recovery to cancel.")
	}
	u.RecoveryDue = 0
	h.event(c, eventRecoveryCancelled, u.Handle)
	h.recoveryCancelledNotice(c, u.Handle, "from your account page")
	return h.renderAccount(c, http.StatusOK, u, views.EmailChangeForm{}, "The recovery was cancelled.")
}
