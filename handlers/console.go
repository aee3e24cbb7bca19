package handlers

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
	"github.com/latchkey/latchkey/views"
)

// The operator's console (/admin): ordinary pages for members of
// ADMIN_GROUP, one handler file per page (console_accounts.go,
// console_account.go, console_invite.go, console_applications.go). The
// group is checked once, where the routes are registered (requireAdmin);
// changes are POSTs behind the same cross-origin protection as every
// form, and need a recent sign-in like every sensitive action.

const operatorContextKey = "latchkey.operator"

// requireAdmin lets members of ADMIN_GROUP through, with their row; for
// everyone else, signed in or not, the console does not exist (404, the
// same page as any unknown address).
func (h *Handler) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if sessionOf(c) == nil {
			return echo.ErrNotFound
		}
		u, err := h.currentUser(c)
		if _, signedOut := errors.AsType[*signedOutError](err); signedOut || errors.Is(err, db.ErrAccountDisabled) {
			return echo.ErrNotFound
		}
		if err != nil {
			return err
		}
		if !u.InGroup(h.cfg.AdminGroup) {
			return echo.ErrNotFound
		}
		c.Set(operatorContextKey, u)
		return next(c)
	}
}

// operator returns the console's signed-in operator (see requireAdmin).
func operator(c echo.Context) *db.User { return c.Get(operatorContextKey).(*db.User) }

// freshOperator returns the operator if their session may make a change
// now (a sign-in within REAUTH_TTL, a passkey for a passkey account), and
// otherwise the step-up, coming back to back.
func (h *Handler) freshOperator(c echo.Context, back string) (*db.User, error) {
	op := operator(c)
	if err := h.requireFresh(c, op, back); err != nil {
		return nil, err
	}
	return op, nil
}

// consoleEvent logs a console action as the security event name about
// the account handle, naming the operator.
func (h *Handler) consoleEvent(c echo.Context, name events.Name, handle []byte, attrs ...slog.Attr) {
	h.event(c, name, handle, append([]slog.Attr{slog.String("operator", auth.Subject(operator(c).Handle)),
		slog.String("via", "console")}, attrs...)...)
}

// consolePage describes a console page: wide, with the console's
// navigation marking where it is.
func (h *Handler) consolePage(c echo.Context, title, section string, kv ...any) views.ConsolePage {
	p := h.page(c, title, kv...)
	p.Wide = true
	return views.ConsolePage{Page: p, Section: section, Operator: operator(c).Email}
}

// consoleDone redirects, after a change, to target with the notice key
// that says what was done.
func consoleDone(c echo.Context, target, notice string) error {
	u, _ := url.Parse(target)
	q := u.Query()
	q.Set("done", notice)
	u.RawQuery = q.Encode()
	return c.Redirect(http.StatusSeeOther, u.String())
}

// consoleNotice turns the done= key of a console page into its message,
// in the operator's language ("" for none, or one it does not know).
func consoleNotice(p views.Page, key string) string {
	if id, ok := consoleNotices[key]; ok {
		return p.T.S(id)
	}
	return ""
}

// consoleNotices are the notices a console page can show after a change,
// by their done= key.
var consoleNotices = map[string]string{
	"passkey_deleted": "console.done.passkey_deleted",
	"groups_changed":  "console.done.groups_changed",
	"disabled":        "console.done.disabled",
	"enabled":         "console.done.enabled",
	"signed_out":      "console.done.signed_out",
	"recovery_sent":   "console.done.recovery_sent",
	"deleted":         "console.done.deleted",
	"invited":         "console.done.invited",
}

// errConsoleSelf refuses an operator's change that would lock them out of
// the console (disabling, deleting, or taking out of ADMIN_GROUP their
// own account): that is what `latchkey admin` is for.
var errConsoleSelf = errs.E(errs.Conflict, "error.console_self")
