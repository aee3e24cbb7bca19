package handlers

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/views"
)

// The Handler is the OpenID Connect provider's web layer (oidc.Web).

// Session returns the request's verified session, or nil.
func (h *Handler) Session(c echo.Context) *auth.Claims { return sessionOf(c) }

// CurrentUser returns the signed-in account.
func (h *Handler) CurrentUser(c echo.Context) (*db.User, error) { return h.currentUser(c) }

// Page describes a page about to be rendered (title is a message id).
func (h *Handler) Page(c echo.Context, title string, kv ...any) views.Page {
	return h.page(c, title, kv...)
}

// Render writes a page with a status.
func (h *Handler) Render(c echo.Context, status int, page templ.Component) error {
	return h.render(c, status, page)
}

// Event logs a security event.
func (h *Handler) Event(c echo.Context, name string, handle []byte, attrs ...slog.Attr) {
	h.event(c, name, handle, attrs...)
}

// EndSession signs this browser out: its session is recorded as ended in
// the user's row (until no token of it can be valid) and in this
// instance's revocation set at once; other instances catch up within a
// second. A copy of its tokens replayed from anywhere stops working.
func (h *Handler) EndSession(c echo.Context) error {
	if s := sessionOf(c); s != nil {
		now := h.clock.Now()
		// No refresh token of this session outlives both its absolute
		// limit and an idle period from now.
		expires := h.sessionExpiry(timeUnix(s.AuthTime), now).UnixMilli()
		endedAll, err := h.db.EndSession(c.Request().Context(), s.Handle(), s.SID, expires, now)
		if err != nil {
			return err
		}
		h.revocations.RevokeSession(s.Subject, s.SID)
		h.event(c, eventSignOut, s.Handle(), slog.String("session", s.SID))
		if !endedAll.IsZero() {
			// Too many signed-out sessions to list: every session ended,
			// here at once as on other instances within a second.
			h.revocations.RevokeUser(s.Subject, endedAll.UnixMilli())
		}
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
	revoked, err := h.db.RevokeGrant(c.Request().Context(), u.ID, client)
	if err != nil {
		return err
	}
	if revoked {
		h.event(c, "application_revoked", u.Handle, slog.String("client", client))
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
