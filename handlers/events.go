package handlers

import (
	"context"
	"errors"
	"log/slog"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
)

// Security events an operator can follow: one log line each, with an
// event name, the account's opaque id (the token subject; `latchkey admin
// show` prints it), the client address and the browser family. Never a
// token, a link or a code.
const (
	eventSignIn            = "signin"
	eventSignUp            = "signup"
	eventSignInFailed      = "signin_failed"
	eventSignOut           = "signout"
	eventSignOutEverywhere = "signout_everywhere"
	eventRefreshRefused    = "refresh_refused"
	eventRefreshReplayed   = "refresh_replayed"
	eventPasskeyAdded      = "passkey_added"
	eventPasskeyRenamed    = "passkey_renamed"
	eventPasskeyRemoved    = "passkey_removed"
	eventPasskeyFlags      = "passkey_flags_changed"
	eventEmailSignInOff    = "email_signin_off"
	eventEmailSignInOn     = "email_signin_on"
	eventEmailChangeStart  = "email_change_started"
	eventEmailChanged      = "email_change_confirmed"
	eventRecoveryStarted   = "recovery_started"
	eventRecoveryCancelled = "recovery_cancelled"
	eventRecoveryCompleted = "recovery_completed"
	eventAccountDeleted    = "account_deleted"
)

// event logs a security event about the account handle (nil: unknown)
// from this request.
func (h *Handler) event(c echo.Context, name string, handle []byte, attrs ...slog.Attr) {
	h.eventAt(c, slog.LevelInfo, name, handle, attrs...)
}

// warnEvent is event at warn level, for what may be an attack or a broken
// authenticator (a replayed refresh token, changed backup flags).
func (h *Handler) warnEvent(c echo.Context, name string, handle []byte, attrs ...slog.Attr) {
	h.eventAt(c, slog.LevelWarn, name, handle, attrs...)
}

func (h *Handler) eventAt(c echo.Context, level slog.Level, name string, handle []byte, attrs ...slog.Attr) {
	user := ""
	if len(handle) > 0 {
		user = auth.Subject(handle)
	}
	logEvent(c.Request().Context(), h.log, level, name, user,
		append([]slog.Attr{slog.String("client", c.RealIP()), slog.String("browser", describeBrowser(c.Request().UserAgent()))}, attrs...)...)
}

// LogEvent writes one security event line: event, user (an opaque id,
// "" when unknown), then attrs. The admin command logs its own through it.
func LogEvent(ctx context.Context, log *slog.Logger, name, user string, attrs ...slog.Attr) {
	logEvent(ctx, log, slog.LevelInfo, name, user, attrs...)
}

func logEvent(ctx context.Context, log *slog.Logger, level slog.Level, name, user string, attrs ...slog.Attr) {
	log.LogAttrs(ctx, level, "security event",
		append([]slog.Attr{slog.String("event", name), slog.String("user", user)}, attrs...)...)
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
