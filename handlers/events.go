package handlers

import (
	"errors"
	"log/slog"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
)

// event logs a security event (see package events) about the account
// handle (nil: unknown) from this request: with the client address and
// the browser family, never a token, a link or a code.
func (h *Handler) event(c echo.Context, name events.Name, handle []byte, attrs ...slog.Attr) {
	h.eventAt(c, slog.LevelInfo, name, handle, attrs...)
}

// warnEvent is event at warn level, for what may be an attack or a broken
// authenticator (a replayed refresh token, changed backup flags).
func (h *Handler) warnEvent(c echo.Context, name events.Name, handle []byte, attrs ...slog.Attr) {
	h.eventAt(c, slog.LevelWarn, name, handle, attrs...)
}

func (h *Handler) eventAt(c echo.Context, level slog.Level, name events.Name, handle []byte, attrs ...slog.Attr) {
	user := ""
	if len(handle) > 0 {
		user = auth.Subject(handle)
	}
	events.Log(c.Request().Context(), h.log, level, name, user,
		append([]slog.Attr{slog.String("client", c.RealIP()), slog.String("browser", describeBrowser(c.Request().UserAgent()))}, attrs...)...)
}

// failureReason names why a sign-in failed, for the event log: a word an
// operator can search for, never the secret that failed.
func failureReason(err error) string {
	switch {
	case errors.Is(err, db.ErrPasskeyReplay):
		return "ceremony_replayed"
	case errors.Is(err, db.ErrCounterWentBack):
		return "counter_went_back"
	case errors.Is(err, db.ErrAccountDisabled):
		return "account_disabled"
	case errors.Is(err, errUnknownPasskey):
		return "unknown_passkey"
	case errors.Is(err, errPasskeyOfAnotherAccount):
		return "passkey_of_another_account"
	case errors.Is(err, errSignUpClosed):
		return "signup_closed"
	}
	switch errs.Code(err) {
	case errs.Gone:
		return "link_used_expired_or_replaced"
	case errs.Invalid:
		return "invalid"
	case errs.Unavailable:
		return "database_unavailable"
	case errs.TooManyRequests:
		return "rate_limited"
	}
	return errs.Code(err)
}
