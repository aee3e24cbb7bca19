package oidc

import (
	"net/http"
	"net/url"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/views"
)

// Logout is GET (and, from its confirmation page, POST) /oauth2/logout:
// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). It ends
// this browser's Latchkey session and sends it back to a registered
// post_logout_redirect_uri, with state. Without an id_token_hint of the
// signed-in person it asks first (a page on another site must not sign
// people out by linking here).
func (p *Provider) Logout(c echo.Context) error {
	r := c.Request()
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			return pageError("error.bad_form")
		}
		params = r.PostForm
	}
	var (
		client *Client
		hint   idClaims
	)
	if raw := params.Get("id_token_hint"); raw != "" {
		// An expired ID token is a fine hint: it only names the client
		// and the person.
		err := p.verify(raw, typID, []string{"RS256", "EdDSA"}, &hint, jwt.WithoutClaimsValidation())
		if err != nil || hint.Issuer != p.cfg.Issuer {
			return pageError("error.oidc.bad_hint")
		}
		var ok bool
		if client, ok = p.clients.Get(hint.Audience); !ok {
			return pageError("error.oidc.hint_unknown_client")
		}
	}
	if id := params.Get("client_id"); id != "" {
		c2, ok := p.clients.Get(id)
		if !ok || (client != nil && c2 != client) {
			return pageError("error.oidc.logout_client")
		}
		client = c2
	}
	back := params.Get("post_logout_redirect_uri")
	if back != "" && (client == nil || !contains(client.PostLogoutRedirectURIs, back)) {
		return pageError("error.oidc.logout_redirect")
	}
	s, _, err := p.web.LiveSession(c)
	if err != nil {
		return err
	}
	if s != nil && r.Method != http.MethodPost && hint.Subject != s.Subject {
		// Ask: nothing proves this request comes from an application the
		// person just used.
		name := ""
		if client != nil {
			name = client.Name
		}
		return p.web.Render(c, http.StatusOK, views.SignOutConfirm(p.web.Page(c, "title.signout"), views.SignOutConfirmView{
			Application: name, Hint: params.Get("id_token_hint"), ClientID: params.Get("client_id"),
			PostLogoutRedirectURI: back, State: params.Get("state"),
		}))
	}
	if s != nil {
		if err := p.web.EndSession(c); err != nil && errs.Code(err) != errs.NotFound {
			return err
		}
	}
	if back != "" {
		u, _ := url.Parse(back)
		q := u.Query()
		if st := params.Get("state"); st != "" {
			q.Set("state", st)
		}
		u.RawQuery = q.Encode()
		return c.Redirect(http.StatusSeeOther, u.String())
	}
	page := p.web.Page(c, "title.signed_out")
	return p.web.Render(c, http.StatusOK, views.Message(page, views.MessageView{
		Title: page.T.S("signed_out.title"), Body: page.T.S("signed_out.body", "Site", views.SiteName),
		ActionHref: "/", ActionLabel: page.T.S("action.home"),
	}))
}
