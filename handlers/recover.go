package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/views"

	"github.com/latchkey/latchkey/events"
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
		return h.renderAccount(c, http.StatusOK, u, views.EmailChangeForm{}, h.t(c).S("account.notice.no_recovery"))
	}
	u.RecoveryDue = 0
	h.event(c, events.RecoveryCancelled, u.Handle)
	h.recoveryCancelledNotice(c, u.Handle, "notice.recovery_cancelled.by_owner")
	return h.renderAccount(c, http.StatusOK, u, views.EmailChangeForm{}, h.t(c).S("account.notice.recovery_cancelled"))
}
