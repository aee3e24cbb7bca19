package oidc

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/golang-jwt/jwt/v5"

	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
)

// Token is POST /oauth2/token: it redeems an authorization code (once,
// with its PKCE verifier) or a refresh token, for the client that
// authenticates (client_secret_basic, client_secret_post, or none for a
// public client).
func (p *Provider) Token(c echo.Context) error {
	r := c.Request()
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "application/x-www-form-urlencoded" {
		return writeError(c, oauthErr(errInvalidRequest, "send the request as application/x-www-form-urlencoded"), false)
	}
	if err := r.ParseForm(); err != nil {
		return writeError(c, oauthErr(errInvalidRequest, "the request body could not be read"), false)
	}
	form := r.PostForm
	for k, v := range form {
		if len(v) > 1 {
			return writeError(c, oauthErr(errInvalidRequest, k+" is given more than once"), false)
		}
	}
	client, basic, oe := p.authenticateClient(r, form)
	if oe != nil {
		return writeError(c, oe, basic)
	}
	var (
		res *tokenResponse
		err error
	)
	switch form.Get("grant_type") {
	case "authorization_code":
		res, err = p.redeemCode(c, client, form)
	case "refresh_token":
		res, err = p.refresh(c, client, form)
	case "":
		err = oauthErr(errInvalidRequest, "grant_type is missing")
	default:
		err = oauthErr(errUnsupportedGrantType, "only authorization_code and refresh_token are supported")
	}
	if err != nil {
		return p.tokenError(c, err, basic)
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
	return c.JSON(http.StatusOK, res)
}

// tokenError answers a failed token request: an OAuth error as it is;
// an unreachable database as temporarily_unavailable; anything else as
// server_error (logged by the caller's error handler, not shown).
func (p *Provider) tokenError(c echo.Context, err error, basic bool) error {
	if oe, ok := errors.AsType[*oauthError](err); ok {
		return writeError(c, oe, basic)
	}
	switch errs.Code(err) {
	case errs.Gone, errs.Forbidden, errs.Unauthorized, errs.NotFound:
		return writeError(c, oauthErr(errInvalidGrant, "the grant is no longer valid: "+errs.Message(err)), basic)
	case errs.Unavailable:
		return writeError(c, oauthErr(errTemporarilyUnavailable, "the database is not answering; try again"), basic)
	case errs.TooManyRequests:
		return writeError(c, oauthErr(errTemporarilyUnavailable, errs.Message(err)), basic)
	}
	c.Echo().Logger.Error(err)
	return writeError(c, oauthErr(errServerError, "something went wrong on our side"), basic)
}

// authenticateClient finds and authenticates the client: HTTP Basic
// (client_secret_basic) or client_id and client_secret in the body
// (client_secret_post), never both; a public client sends its client_id
// and no secret. basic reports whether Basic was used.
func (p *Provider) authenticateClient(r *http.Request, form url.Values) (client *Client, basic bool, oe *oauthError) {
	id, secret, basic := r.BasicAuth()
	if basic {
		if form.Has("client_secret") || (form.Has("client_id") && form.Get("client_id") != "") {
			// (A client_id in the body may repeat the Basic one.)
			if form.Has("client_secret") || form.Get("client_id") != unescape(id) {
				return nil, true, oauthErr(errInvalidRequest, "use one client authentication method, not two")
			}
		}
		// RFC 6749 2.3.1: both are form-encoded before Basic encoding.
		id, secret = unescape(id), unescape(secret)
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	client, ok := p.clients.Get(id)
	switch {
	case !ok:
		return nil, basic, oauthErr(errInvalidClient, "unknown client")
	case client.Public && secret != "":
		return nil, basic, oauthErr(errInvalidClient, "a public client has no secret")
	case client.Public:
		return client, basic, nil
	case secret == "" || !client.SecretMatches(secret):
		return nil, basic, oauthErr(errInvalidClient, "client authentication failed")
	}
	return client, basic, nil
}

func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// redeemCode exchanges an authorization code: it must be this client's,
// for this redirect URI, with the verifier of its PKCE challenge, and
// redeemed once (db.RedeemCode), by a live account that still grants it.
func (p *Provider) redeemCode(c echo.Context, client *Client, form url.Values) (*tokenResponse, error) {
	now := p.clock.Now()
	code, err := openCode(p.keys, form.Get("code"), now)
	if err != nil {
		return nil, err
	}
	switch {
	case code.Client != client.ID:
		return nil, oauthErr(errInvalidGrant, "the code was issued to another client")
	case form.Get("redirect_uri") != code.Redirect:
		return nil, oauthErr(errInvalidGrant, "redirect_uri does not match the authorization request")
	case code.Challenge != "" && !verifierPattern.MatchString(form.Get("code_verifier")):
		return nil, oauthErr(errInvalidGrant, "code_verifier is missing or malformed")
	case code.Challenge != "" && !pkceMatches(form.Get("code_verifier"), code.Challenge):
		return nil, oauthErr(errInvalidGrant, "code_verifier does not match the code_challenge")
	case code.Challenge == "" && form.Has("code_verifier"):
		return nil, oauthErr(errInvalidGrant, "the authorization request had no code_challenge")
	}
	u, iat, err := p.db.RedeemCode(c.Request().Context(), db.Code{Handle: code.Handle, ID: code.ID, IssuedAt: code.Issued,
		Expires: code.Expires.UnixMilli()}, now)
	if err != nil {
		return nil, err
	}
	grant, ok := u.GrantTo(client.ID)
	if !ok {
		return nil, oauthErr(errInvalidGrant, "the person no longer lets this application sign them in")
	}
	p.web.Event(c, "application_token", u.Handle, slog.String("client", client.ID))
	return p.issue(session{client: client, user: u, scopes: code.Scopes, authTime: code.AuthTime, amr: code.AMR,
		sid: randomID(), nonce: code.Nonce, issuedAt: iat, grantedAt: grant.GrantedAt}, "")
}

// pkceMatches reports whether verifier hashes to challenge (S256).
func pkceMatches(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// refresh exchanges an application's refresh token for new access and ID
// tokens. It is refused once the person signed out everywhere, the
// account was deleted or disabled, or the grant it was issued under was
// revoked.
func (p *Provider) refresh(c echo.Context, client *Client, form url.Values) (*tokenResponse, error) {
	var rc refreshClaims
	if err := p.verify(form.Get("refresh_token"), typRefresh, []string{"HS256"}, &rc,
		jwt.WithAudience(p.cfg.Issuer+"/oauth2/token")); err != nil || rc.ClientID == "" {
		return nil, oauthErr(errInvalidGrant, "the refresh token is not valid, or has expired")
	}
	if rc.ClientID != client.ID {
		return nil, oauthErr(errInvalidGrant, "the refresh token was issued to another client")
	}
	scopes := strings.Fields(rc.Scope)
	if s := form.Get("scope"); s != "" {
		for _, want := range strings.Fields(s) {
			if !contains(scopes, want) {
				return nil, oauthErr(errInvalidScope, "a refresh cannot add scope "+want)
			}
		}
		scopes = strings.Fields(s)
	}
	handle, _ := base64.RawURLEncoding.DecodeString(rc.Subject)
	if p.revocations.Revoked(rc.Subject, rc.SID, int64(rc.IssuedAt)) {
		return nil, oauthErr(errInvalidGrant, "the person signed out")
	}
	u, iat, err := p.db.RefreshApplication(c.Request().Context(), handle, int64(rc.IssuedAt), p.clock.Now())
	if err != nil {
		return nil, err
	}
	if grant, ok := u.GrantTo(client.ID); !ok || grant.GrantedAt != rc.GrantedAt {
		return nil, oauthErr(errInvalidGrant, "the person no longer lets this application sign them in")
	}
	return p.issue(session{client: client, user: u, scopes: scopes, authTime: rc.AuthTime, amr: rc.AMR,
		sid: rc.SID, issuedAt: iat, grantedAt: rc.GrantedAt}, form.Get("refresh_token"))
}
