package oidc

import (
	"encoding/base64"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
)

// UserInfo is GET or POST /oauth2/userinfo: the claims about the person
// an access token may see. The token is checked like Latchkey's own
// (signature, issuer, expiry, the revocation set), then the account: it
// must be live and enabled, its session not signed out, no revocation
// since the token, and the client still granted.
func (p *Provider) UserInfo(c echo.Context) error {
	raw, oe := bearerToken(c.Request())
	if oe != nil {
		return writeError(c, oe, false)
	}
	var ac accessClaims
	if err := p.verify(raw, typAccess, []string{"RS256"}, &ac); err != nil {
		return writeError(c, oauthErr(errInvalidToken, "the access token is not valid, or has expired"), false)
	}
	client, ok := p.clients.Get(ac.Audience)
	if !ok || ac.ClientID != client.ID {
		return writeError(c, oauthErr(errInvalidToken, "the access token is for no known client"), false)
	}
	if p.revocations.Revoked(ac.Subject, ac.SID, ac.issuedMs()) {
		return writeError(c, oauthErr(errInvalidToken, "the person signed out"), false)
	}
	handle, _ := base64.RawURLEncoding.DecodeString(ac.Subject)
	u, live, err := p.db.AppSessionLive(c.Request().Context(), handle, ac.AppSession, p.clock.Now())
	switch {
	case errs.Code(err) == errs.Unavailable:
		return writeError(c, oauthErr(errTemporarilyUnavailable, "the database is not answering; try again"), false)
	case err != nil || !live || ac.issuedMs() <= u.TokensValidAfter || u.SessionRevoked(ac.SID):
		return writeError(c, oauthErr(errInvalidToken, "the person's session with this application has ended, or their account no longer accepts this token"), false)
	}
	if _, granted := u.GrantTo(client.ID); !granted {
		return writeError(c, oauthErr(errInvalidToken, "the person no longer lets this application sign them in"), false)
	}
	if !client.Admits(u) {
		p.web.Event(c, events.ApplicationRefused, u.Handle, slog.String("app", client.ID), slog.String("reason", "left_allowed_groups"))
		return writeError(c, oauthErr(errInvalidToken, "the person is not in a group this application admits"), false)
	}
	claims := map[string]any{"sub": ac.Subject}
	scopes := strings.Fields(ac.Scope)
	if contains(scopes, "email") {
		claims["email"], claims["email_verified"] = u.Email, true
	}
	if contains(scopes, "groups") {
		claims["groups"] = groupsClaim(u)
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, claims)
}

// bearerToken finds the access token (RFC 6750): in the Authorization
// header, or in a form-encoded POST body, not both.
func bearerToken(r *http.Request) (string, *oauthError) {
	header := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return "", oauthErr(errInvalidToken, "send the access token as Authorization: Bearer")
		}
		header = strings.TrimSpace(token)
	}
	body := ""
	if r.Method == http.MethodPost {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
			if err := r.ParseForm(); err != nil {
				return "", oauthErr(errInvalidRequest, "the request body could not be read")
			}
			body = r.PostForm.Get("access_token")
		}
	}
	switch {
	case header != "" && body != "":
		return "", oauthErr(errInvalidRequest, "send the access token one way, not two")
	case header == "" && body == "":
		return "", oauthErr(errInvalidToken, "no access token")
	case header != "":
		return header, nil
	}
	return body, nil
}
