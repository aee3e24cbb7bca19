package handlers

import (
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
	"github.com/latchkey/latchkey/views"
)

// consoleAccountPath is the console page of the account with this
// opaque id.
func consoleAccountPath(id string) string { return "/admin/accounts/" + id }

// errNoSuchAccount is the console's answer for an id that is no live
// account's.
var errNoSuchAccount = errs.E(errs.NotFound, "error.account_gone")

// consoleTarget returns the account the console page is about (:id, its
// opaque id, the token subject).
func (h *Handler) consoleTarget(c echo.Context) (*db.User, error) {
	handle, err := base64.RawURLEncoding.Strict().DecodeString(c.Param("id"))
	if err != nil || len(handle) != 16 {
		return nil, errNoSuchAccount
	}
	u, err := h.db.UserByHandle(c.Request().Context(), handle)
	if errs.Code(err) == errs.NotFound {
		return nil, errNoSuchAccount
	}
	return u, err
}

// consoleAccount is GET /admin/accounts/:id: one account, its passkeys
// and groups, and what the operator can do to it.
func (h *Handler) consoleAccount(c echo.Context) error {
	u, err := h.consoleTarget(c)
	if err != nil {
		return err
	}
	return h.renderConsoleAccount(c, http.StatusOK, u, "", "")
}

// renderConsoleAccount renders an account's console page, with a form
// error (a message id) for the group or delete form when there is one.
func (h *Handler) renderConsoleAccount(c echo.Context, status int, u *db.User, groupError, deleteError string) error {
	creds, err := h.db.CredentialsOf(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	p := h.consolePage(c, "title.console.account", "accounts", "Email", u.Email)
	v := views.ConsoleAccountView{
		ID: auth.Subject(u.Handle), Email: u.Email, Created: u.CreatedAt, SignedIn: u.SignedIn, Now: h.clock.Now(),
		Groups: u.Groups, MaxGroups: db.MaxGroups, Disabled: u.Disabled, EmailSignIn: u.EmailSignIn,
		Fresh: h.freshSession(c, operator(c)), Self: u.ID == operator(c).ID, AdminGroup: h.cfg.AdminGroup,
		Notice: consoleNotice(p.Page, c.QueryParam("done")), GroupError: groupError, DeleteError: deleteError,
	}
	if u.RecoveryDue != 0 {
		v.RecoveryDue = time.UnixMilli(u.RecoveryDue)
	}
	for _, k := range creds {
		v.Passkeys = append(v.Passkeys, views.PasskeyView{ID: k.ID, Name: k.Name, Provider: auth.ProviderName(k.AAGUID),
			Created: k.CreatedAt, LastUsed: k.LastUsedAt, BackupEligible: k.BackupEligible, BackedUp: k.BackupState})
	}
	return h.render(c, status, views.ConsoleAccount(p, v))
}

// consoleChange is what every change to an account does first: read the
// form, check the operator may change things now (else the step-up,
// coming back to the account's page), and find the account.
func (h *Handler) consoleChange(c echo.Context) (*db.User, error) {
	if err := parseForm(c); err != nil {
		return nil, err
	}
	if _, err := h.freshOperator(c, consoleAccountPath(c.Param("id"))); err != nil {
		return nil, err
	}
	return h.consoleTarget(c)
}

// consoleDeletePasskey is POST /admin/accounts/:id/passkeys/:passkey/delete.
// The last passkey of an account that signs in only with passkeys stays,
// as on the account page: turn email sign-in back on first (the person,
// or a recovery link).
func (h *Handler) consoleDeletePasskey(c echo.Context) error {
	u, err := h.consoleChange(c)
	if err != nil {
		return err
	}
	id, err := passkeyIDParam(c, "passkey")
	if err != nil {
		return err
	}
	removed, err := h.removePasskey(c, u, id)
	if err != nil {
		return err
	}
	h.consoleEvent(c, events.AdminPasskeyDelete, u.Handle, removed...)
	return consoleDone(c, consoleAccountPath(c.Param("id")), "passkey_deleted")
}

// consoleGroups is POST /admin/accounts/:id/groups: form "add" (group
// names, separated by spaces) or "remove" (one name).
func (h *Handler) consoleGroups(c echo.Context) error {
	u, err := h.consoleChange(c)
	if err != nil {
		return err
	}
	form := c.Request().PostForm
	add, remove := strings.Fields(form.Get("add")), strings.Fields(form.Get("remove"))
	if len(add)+len(remove) == 0 || len(add) > db.MaxGroups {
		return h.renderConsoleAccount(c, http.StatusBadRequest, u, "error.group_name", "")
	}
	for _, g := range append(slices.Clone(add), remove...) {
		if !db.ValidGroup(g) {
			return h.renderConsoleAccount(c, http.StatusBadRequest, u, "error.group_name", "")
		}
	}
	if u.ID == operator(c).ID && slices.Contains(remove, h.cfg.AdminGroup) {
		return errConsoleSelf
	}
	ch, err := h.db.ChangeGroups(c.Request().Context(), u.ID, add, remove, h.oidc.Clients().Refusing)
	if errors.Is(err, db.ErrTooManyGroups) {
		return h.renderConsoleAccount(c, http.StatusConflict, u, "error.too_many_groups", "")
	}
	if err != nil {
		return err
	}
	if len(ch.Added) > 0 {
		h.consoleEvent(c, events.AdminGroupAdd, u.Handle, slog.String("groups", strings.Join(ch.Added, " ")))
	}
	if len(ch.Removed) > 0 {
		h.consoleEvent(c, events.AdminGroupRemove, u.Handle, slog.String("groups", strings.Join(ch.Removed, " ")))
	}
	h.oidc.Notify(u.Handle, ch.Ended)
	return consoleDone(c, consoleAccountPath(c.Param("id")), "groups_changed")
}

// consoleDisable is POST /admin/accounts/:id/disable (form "disabled" =
// true or false): as `latchkey admin disable` and `enable` do.
func (h *Handler) consoleDisable(c echo.Context) error {
	u, err := h.consoleChange(c)
	if err != nil {
		return err
	}
	var disable bool
	switch c.Request().PostForm.Get("disabled") {
	case "true":
		disable = true
	case "false":
	default:
		return errs.E(errs.Invalid, "error.bad_form")
	}
	if disable && u.ID == operator(c).ID {
		return errConsoleSelf
	}
	stamp, ended, changed, err := h.db.SetDisabled(c.Request().Context(), u.Handle, disable, h.clock.Now())
	if err != nil {
		return err
	}
	name, done := events.AdminEnable, "enabled"
	if disable {
		name, done = events.AdminDisable, "disabled"
	}
	if changed {
		if disable {
			h.allSessionsEnded(u.Handle, stamp, ended)
		}
		h.consoleEvent(c, name, u.Handle)
	}
	return consoleDone(c, consoleAccountPath(c.Param("id")), done)
}

// consoleSignOut is POST /admin/accounts/:id/signout: "Sign out
// everywhere" for the account.
func (h *Handler) consoleSignOut(c echo.Context) error {
	u, err := h.consoleChange(c)
	if err != nil {
		return err
	}
	stamp, ended, err := h.db.EndAllSessions(c.Request().Context(), u.Handle, h.clock.Now())
	if err != nil {
		return err
	}
	h.allSessionsEnded(u.Handle, stamp, ended)
	h.consoleEvent(c, events.AdminSignOut, u.Handle)
	if u.ID == operator(c).ID {
		h.clearSessionCookies(c)
		return c.Redirect(http.StatusSeeOther, "/")
	}
	return consoleDone(c, consoleAccountPath(c.Param("id")), "signed_out")
}

// consoleRecovery is POST /admin/accounts/:id/recovery: emails the
// account the operator's recovery link (one sign-in, fresh enough to add
// a passkey at once, even on a passkey-only account). It goes to the
// account's address, never on screen.
func (h *Handler) consoleRecovery(c echo.Context) error {
	u, err := h.consoleChange(c)
	if err != nil {
		return err
	}
	if u.Disabled {
		return db.ErrAccountDisabled
	}
	if err := h.sendLink(c, &auth.Link{Kind: auth.LinkOperator, Handle: u.Handle, Email: u.Email}, "operator", "", h.tFor(c, u.Lang)); err != nil {
		return err
	}
	h.consoleEvent(c, events.AdminRecoveryLink, u.Handle)
	return consoleDone(c, consoleAccountPath(c.Param("id")), "recovery_sent")
}

// consoleDelete is POST /admin/accounts/:id/delete: form "confirm" must
// be the account's address.
func (h *Handler) consoleDelete(c echo.Context) error {
	u, err := h.consoleChange(c)
	if err != nil {
		return err
	}
	if u.ID == operator(c).ID {
		return errConsoleSelf
	}
	if strings.ToLower(strings.TrimSpace(c.Request().PostForm.Get("confirm"))) != u.Email {
		return h.renderConsoleAccount(c, http.StatusBadRequest, u, "", "console.delete.mismatch")
	}
	stamp, ended, err := h.db.DeleteUser(c.Request().Context(), u.Handle, h.clock.Now())
	if err != nil {
		return err
	}
	h.allSessionsEnded(u.Handle, stamp, ended)
	h.consoleEvent(c, events.AdminDelete, u.Handle)
	h.sendNotice(c, u.Email, h.tFor(c, u.Lang), "notice.deleted.subject", []string{"notice.operator_deleted"})
	return consoleDone(c, "/admin", "deleted")
}
