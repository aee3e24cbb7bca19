package handlers

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
	"github.com/latchkey/latchkey/views"
)

// The Handler is the OpenID Connect provider's web layer (oidc.Web).

// LiveSession returns the request's session and account, checked against
// the account's row (see currentUser); nil, nil when nobody is signed in
// or the session has ended.
func (h *Handler) LiveSession(c echo.Context) (*auth.Claims, *db.User, error) {
	if sessionOf(c) == nil {
		return nil, nil, nil
	}
	u, err := h.currentUser(c)
	if _, signedOut := errors.AsType[*signedOutError](err); signedOut || errors.Is(err, db.ErrAccountDisabled) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return sessionOf(c), u, nil
}

// CheckCrossOrigin refuses a request from another site (403), as every
// form of the site is checked.
func (h *Handler) CheckCrossOrigin(c echo.Context) error {
	if err := h.crossOrigin.Check(c.Request()); err != nil {
		return errs.E(errs.Forbidden, "error.cross_origin")
	}
	return nil
}

// ParseForm reads a posted form (see parseForm).
func (h *Handler) ParseForm(c echo.Context) error { return parseForm(c) }

// ForgetSession clears this browser's cookies.
func (h *Handler) ForgetSession(c echo.Context) { h.clearSessionCookies(c) }

// Page describes a page about to be rendered (title is a message id).
func (h *Handler) Page(c echo.Context, title string, kv ...any) views.Page {
	return h.page(c, title, kv...)
}

// Render writes a page with a status.
func (h *Handler) Render(c echo.Context, status int, page templ.Component) error {
	return h.render(c, status, page)
}

// Event logs a security event.
func (h *Handler) Event(c echo.Context, name events.Name, handle []byte, attrs ...slog.Attr) {
	h.event(c, name, handle, attrs...)
}

// EventAt logs a security event at a level.
func (h *Handler) EventAt(c echo.Context, level slog.Level, name events.Name, handle []byte, attrs ...slog.Attr) {
	h.eventAt(c, level, name, handle, attrs...)
}

// EndSession signs this browser out: its session is recorded as ended in
// the user's row (until no token of it can be valid) and in this
// instance's revocation set at once; other instances catch up within a
// second. A copy of its tokens replayed from anywhere stops working.
func (h *Handler) EndSession(c echo.Context) error {
	if s := sessionOf(c); s != nil {
		if _, err := h.endSessionOf(c, s.Handle(), s.SID, s.AuthTime); err != nil {
			return err
		}
		h.event(c, events.SignOut, s.Handle(), slog.String("session", s.SID))
	}
	h.clearSessionCookies(c)
	return nil
}

// revokeApplication removes an application's access to the signed-in
// account: its refresh tokens stop working, its access tokens are refused
// at userinfo, and it asks for consent again next time.
func (h *Handler) revokeApplication(c echo.Context) error {
	u, err := h.currentUser(c)
	if err != nil {
		return err
	}
	client := c.Param("client")
	revoked, ended, err := h.db.RevokeGrant(c.Request().Context(), u.ID, client)
	if err != nil {
		return err
	}
	if revoked {
		h.event(c, events.ApplicationRevoked, u.Handle, slog.String("app", client))
		h.oidc.Notify(u.Handle, ended)
	}
	return c.Redirect(http.StatusSeeOther, "/account")
}

// applications lists the user's grants for the account page, by the
// names the client registry gives them.
func (h *Handler) applications(u *db.User) []views.ApplicationView {
	var out []views.ApplicationView
	for _, g := range u.Grants {
		name := g.Client
		if client, ok := h.oidc.Clients().Get(g.Client); ok {
			name = client.Name
		}
		out = append(out, views.ApplicationView{ClientID: g.Client, Name: name, Scopes: g.Scopes, Granted: time.UnixMilli(g.GrantedAt)})
	}
	return out
}
