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
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/golang-jwt/jwt/v5"

	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
)

// Token is POST /oauth2/token: it redeems an authorization code (once,
// with its PKCE verifier) or a refresh token, for the client that
// authenticates (client_secret_basic, client_secret_post, or none for a
// public client). It is never limited per address: one application server
// speaks for all its users. Failed client authentications are limited per
// client id instead (see clientFailures).
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
	client, basic, oe := p.authenticateClient(c, form)
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

// grantErrors describe, for the application's developers, why a code or
// refresh token is refused (error_description carries text, never one of
// the pages' message ids).
var grantErrors = []struct {
	err         error
	description string
}{
	{db.ErrCodeUsed, "the authorization code was used already, or is older than the account's newest codes"},
	{db.ErrCodeSessionEnded, "the person signed out, or their sessions were ended, after the code was issued"},
	{db.ErrSessionEnded, "the refresh token has ended: the person signed out, was signed out everywhere, was inactive too long, or their account was disabled or deleted"},
	{db.ErrGrantGone, "the person no longer lets this application sign them in"},
	{db.ErrNotAdmitted, "the person is not in a group this application admits"},
	{db.ErrAccountDisabled, "the grant is no longer valid"},
}

// tokenError answers a failed token request: an OAuth error as it is; a
// refused grant as invalid_grant, saying why; an unreachable database as
// temporarily_unavailable; anything else as server_error (logged, not
// shown).
func (p *Provider) tokenError(c echo.Context, err error, basic bool) error {
	if oe, ok := errors.AsType[*oauthError](err); ok {
		return writeError(c, oe, basic)
	}
	for _, g := range grantErrors {
		if errors.Is(err, g.err) {
			return writeError(c, oauthErr(errInvalidGrant, g.description), basic)
		}
	}
	switch errs.Code(err) {
	case errs.Gone, errs.Forbidden, errs.Unauthorized, errs.NotFound:
		return writeError(c, oauthErr(errInvalidGrant, "the grant is no longer valid"), basic)
	case errs.Unavailable:
		return writeError(c, oauthErr(errTemporarilyUnavailable, "the database is not answering; try again"), basic)
	}
	c.Echo().Logger.Error(err)
	return writeError(c, oauthErr(errServerError, "something went wrong on our side"), basic)
}

// authenticateClient finds and authenticates the client: HTTP Basic
// (client_secret_basic) or client_id and client_secret in the body
// (client_secret_post), never both; a public client sends its client_id
// and no secret. basic reports whether Basic was used. A confidential
// client whose authentications failed too often from an address is
// refused there before its secret is even compared (slow_down, 429).
func (p *Provider) authenticateClient(c echo.Context, form url.Values) (client *Client, basic bool, oe *oauthError) {
	r := c.Request()
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
	}
	now, addr := p.clock.Now(), c.RealIP()
	if wait, limited := p.failures.limited(client.ID, addr, now); limited {
		secs := int((wait + time.Second - 1) / time.Second)
		c.Response().Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		return nil, basic, oauthErr(errSlowDown, "too many failed client authentications for this client; try again in "+
			strconv.Itoa(max(secs, 1))+" seconds")
	}
	if secret == "" || !client.SecretMatches(secret) {
		p.failures.failed(client.ID, addr, now)
		p.web.Event(c, events.ApplicationClientFailed, nil, slog.String("app", client.ID))
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
// redeemed once (db.RedeemCode) while the session that authorized it is
// still signed in, by a live account that still grants it.
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
	refresh := contains(code.Scopes, "offline_access")
	redeemed, err := p.db.RedeemCode(c.Request().Context(), db.Code{Handle: code.Handle, Client: client.ID,
		IssuedCode: db.IssuedCode{Seq: code.Seq, IssuedAt: code.Issued}, SID: code.SID, AuthTime: code.AuthTime,
		Refresh: refresh, RefreshExpires: p.refreshExpiry(code.AuthTime, now),
		SessionEnds: time.Unix(code.AuthTime, 0).Add(p.cfg.MaxTTL).UnixMilli(), Admits: client.Admits}, now)
	if replay, ok := errors.AsType[*db.CodeReplayError](err); ok {
		// RFC 6749 4.1.2: what the code's first redemption gave ends too.
		p.web.EventAt(c, slog.LevelWarn, events.ApplicationCodeReplayed, code.Handle, slog.String("app", client.ID))
		p.Notify(code.Handle, replay.Ended)
	}
	if errors.Is(err, db.ErrNotAdmitted) {
		p.web.Event(c, events.ApplicationRefused, code.Handle, slog.String("app", client.ID), slog.String("reason", "left_allowed_groups"))
	}
	if err != nil {
		return nil, err
	}
	if len(redeemed.Evicted) > 0 {
		p.Notify(code.Handle, db.Ended{Sessions: redeemed.Evicted})
	}
	u := redeemed.User
	grant, _ := u.GrantTo(client.ID)
	p.web.Event(c, events.ApplicationToken, u.Handle, slog.String("app", client.ID), slog.String("grant", "authorization_code"))
	return p.issue(session{client: client, user: u, scopes: code.Scopes, authTime: code.AuthTime, amr: code.AMR,
		sid: code.SID, nonce: code.Nonce, issuedAt: time.UnixMilli(redeemed.IssuedAt), grantedAt: grant.GrantedAt, app: redeemed.Session})
}

// pkceMatches reports whether verifier hashes to challenge (S256).
func pkceMatches(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// refresh exchanges an application's refresh token for new tokens and a
// new refresh token: every use rotates it, for every client (RFC 9700
// 4.14.2), through the user's row (db.RotateAppRefresh). A rotated-out
// token presented again outside the grace period ends every refresh token
// of the application for the person. It is refused once the session that
// authorized it signed out, the person signed out everywhere, it went
// unused for SESSION_IDLE_TTL, the account was deleted or disabled, or
// the grant it was issued under was revoked.
func (p *Provider) refresh(c echo.Context, client *Client, form url.Values) (*tokenResponse, error) {
	var rc refreshClaims
	if err := p.verify(form.Get("refresh_token"), typRefresh, []string{"HS256"}, &rc,
		jwt.WithAudience(p.cfg.Issuer+"/oauth2/token")); err != nil || rc.ClientID == "" || rc.AppSession == "" {
		return nil, oauthErr(errInvalidGrant, "the refresh token is not valid, or has expired")
	}
	if rc.ClientID != client.ID {
		return nil, oauthErr(errInvalidGrant, "the refresh token was issued to another client")
	}
	granted := strings.Fields(rc.Scope)
	scopes := granted
	if s := form.Get("scope"); s != "" {
		for _, want := range strings.Fields(s) {
			if !contains(granted, want) {
				return nil, oauthErr(errInvalidScope, "a refresh cannot add scope "+want)
			}
		}
		scopes = strings.Fields(s)
	}
	handle, _ := base64.RawURLEncoding.DecodeString(rc.Subject)
	now := p.clock.Now()
	u, app, iat, err := p.db.RotateAppRefresh(c.Request().Context(), db.AppRefresh{Handle: handle, Client: client.ID,
		ID: rc.AppSession, Gen: rc.Gen, GrantedAt: rc.GrantedAt, Expires: p.refreshExpiry(rc.AuthTime, now), Admits: client.Admits}, now)
	if refused, ok := errors.AsType[*db.ErrAppNotAdmitted](err); ok {
		p.web.Event(c, events.ApplicationRefused, handle, slog.String("app", client.ID), slog.String("reason", "left_allowed_groups"))
		p.Notify(handle, refused.Ended)
	}
	if replayed, ok := errors.AsType[*db.ErrAppRefreshReplayed](err); ok {
		p.web.EventAt(c, slog.LevelWarn, events.ApplicationRefreshReplay, handle, slog.String("app", client.ID))
		p.Notify(handle, replayed.Ended)
		return nil, oauthErr(errInvalidGrant, "the refresh token was used already: every refresh token of this application for the person has ended")
	}
	if err != nil {
		return nil, err
	}
	p.web.Event(c, events.ApplicationToken, u.Handle, slog.String("app", client.ID), slog.String("grant", "refresh_token"))
	return p.issue(session{client: client, user: u, scopes: scopes, authTime: rc.AuthTime, amr: rc.AMR,
		sid: app.SID, issuedAt: time.UnixMilli(iat), grantedAt: rc.GrantedAt, app: app, refreshScope: granted})
}
