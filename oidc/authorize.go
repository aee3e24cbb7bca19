package oidc

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/views"
)

// maxRequestLength bounds an authorization request's query: it travels,
// whole, as the "next" of the sign-in page when the person must sign in.
const maxRequestLength = 2000

// afterParam carries, through a sign-in, the moment the person must have
// signed in after (prompt=login). It only ever asks for more: a client that
// sends it itself gains nothing.
const afterParam = "lk_after"

// authRequest is an authorization request, checked.
type authRequest struct {
	ClientID    string   `json:"c"`
	RedirectURI string   `json:"r"`
	Scopes      []string `json:"s"`
	State       string   `json:"t,omitempty"`
	Nonce       string   `json:"n,omitempty"`
	Challenge   string   `json:"p,omitempty"`
	Prompt      []string `json:"-"`
	MaxAge      int64    `json:"-"`           // -1: none
	After       int64    `json:"-"`           // Unix s; 0: none
	Handle      []byte   `json:"u,omitempty"` // the consenting account (consent form)
}

var (
	challengePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)       // S256: base64url of 32 bytes
	verifierPattern  = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`) // RFC 7636 4.1
)

// pageError is an authorization error that cannot be sent back to the
// client (no client, or no registered redirect URI): a 400 page here.
func pageError(message string) error { return errs.E(errs.Invalid, message) }

// parseAuthorize checks an authorization request. An error it returns is
// a page error until the client and redirect URI are known, and an
// *oauthError (to redirect back) after.
func (p *Provider) parseAuthorize(q url.Values) (*authRequest, *Client, error) {
	for k, v := range q {
		if len(v) > 1 {
			if k == "client_id" || k == "redirect_uri" {
				return nil, nil, pageError("error.oidc.repeated")
			}
		}
	}
	client, ok := p.clients.Get(q.Get("client_id"))
	if !ok {
		return nil, nil, pageError("error.oidc.unknown_client")
	}
	req := &authRequest{ClientID: client.ID, RedirectURI: q.Get("redirect_uri"), State: q.Get("state"), Nonce: q.Get("nonce"), MaxAge: -1}
	if !client.HasRedirectURI(req.RedirectURI) {
		return nil, nil, pageError("error.oidc.redirect_uri")
	}
	for k, v := range q {
		if len(v) > 1 {
			return req, client, oauthErr(errInvalidRequest, k+" is given more than once")
		}
	}
	switch {
	case q.Has("request"):
		return req, client, oauthErr(errRequestNotSupported, "request objects are not supported")
	case q.Has("request_uri"):
		return req, client, oauthErr(errRequestURINotSupported, "request_uri is not supported")
	case q.Get("response_type") != "code":
		return req, client, oauthErr(errUnsupportedResponseType, "only response_type=code (the authorization code flow) is supported")
	case q.Has("response_mode") && q.Get("response_mode") != "query":
		return req, client, oauthErr(errInvalidRequest, "only response_mode=query is supported")
	case len(req.Nonce) > 512:
		return req, client, oauthErr(errInvalidRequest, "nonce is longer than 512 characters")
	}
	for _, s := range strings.Fields(q.Get("scope")) {
		switch {
		case !contains(knownScopes, s) || contains(req.Scopes, s):
			// Unknown scopes are ignored (OpenID Connect Core 3.1.2.1).
		case !contains(client.Scopes, s):
			return req, client, oauthErr(errInvalidScope, "scope "+s+" is not allowed for this client")
		default:
			req.Scopes = append(req.Scopes, s)
		}
	}
	if !contains(req.Scopes, "openid") {
		return req, client, oauthErr(errInvalidScope, "the openid scope is required")
	}
	switch method := q.Get("code_challenge_method"); {
	case q.Get("code_challenge") == "" && client.Public:
		return req, client, oauthErr(errInvalidRequest, "a public client must use PKCE (code_challenge with code_challenge_method=S256)")
	case q.Get("code_challenge") == "":
	case method != "S256":
		return req, client, oauthErr(errInvalidRequest, "code_challenge_method must be S256")
	case !challengePattern.MatchString(q.Get("code_challenge")):
		return req, client, oauthErr(errInvalidRequest, "code_challenge is not the base64url of a SHA-256")
	default:
		req.Challenge = q.Get("code_challenge")
	}
	req.Prompt = strings.Fields(q.Get("prompt"))
	for _, v := range req.Prompt {
		if v != "none" && v != "login" && v != "consent" && v != "select_account" {
			return req, client, oauthErr(errInvalidRequest, "unknown prompt value "+v)
		}
	}
	if contains(req.Prompt, "none") && len(req.Prompt) > 1 {
		return req, client, oauthErr(errInvalidRequest, "prompt=none cannot be combined with other values")
	}
	if s := q.Get("max_age"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return req, client, oauthErr(errInvalidRequest, "max_age must be a whole number of seconds")
		}
		req.MaxAge = n
	}
	if s := q.Get(afterParam); s != "" {
		req.After, _ = strconv.ParseInt(s, 10, 64)
	}
	return req, client, nil
}

// Authorize is GET /oauth2/authorize: the authorization code flow's front
// door. It uses the person's Latchkey session (signing in first when there
// is none, or when the client asks for a fresh sign-in), asks for consent
// unless the client is trusted or was granted before, and sends the
// browser back with a code.
func (p *Provider) Authorize(c echo.Context) error {
	if len(c.Request().URL.RawQuery) > maxRequestLength {
		return pageError("error.oidc.too_long")
	}
	q := c.QueryParams()
	req, client, err := p.parseAuthorize(q)
	if oe, ok := err.(*oauthError); ok {
		return p.redirectError(c, req, oe)
	}
	if err != nil {
		return err
	}
	now := p.clock.Now()
	s := p.web.Session(c)
	login := s == nil || (req.After > 0 && s.AuthTime < req.After) ||
		(contains(req.Prompt, "login") && req.After == 0) ||
		(req.MaxAge >= 0 && now.Unix()-s.AuthTime > req.MaxAge)
	if login {
		if contains(req.Prompt, "none") {
			return p.redirectError(c, req, oauthErr(errLoginRequired, "the person must sign in"))
		}
		next := url.Values{}
		for k, v := range q {
			if k != "prompt" && k != afterParam {
				next[k] = v
			}
		}
		if contains(req.Prompt, "login") {
			next.Set(afterParam, strconv.FormatInt(now.Unix(), 10))
		} else if req.After > 0 {
			next.Set(afterParam, strconv.FormatInt(req.After, 10))
		}
		return c.Redirect(http.StatusSeeOther, "/signin?next="+url.QueryEscape("/oauth2/authorize?"+next.Encode()))
	}
	u, err := p.web.CurrentUser(c)
	if err != nil {
		return err
	}
	grant, granted := u.GrantTo(client.ID)
	if !client.Trusted && (!granted || !grant.Covers(req.Scopes) || contains(req.Prompt, "consent")) {
		if contains(req.Prompt, "none") {
			return p.redirectError(c, req, oauthErr(errConsentRequired, "the person has not let this application sign them in"))
		}
		req.Handle = u.Handle
		b, _ := json.Marshal(req)
		return p.web.Render(c, http.StatusOK, views.Consent(p.web.Page(c, "title.consent", "Application", client.Name), views.ConsentView{
			Application:  client.Name,
			Email:        u.Email,
			Scopes:       req.Scopes,
			Request:      p.keys.Seal(auth.PurposeOIDCConsent, b, now.Add(10*time.Minute)),
			RedirectHost: hostOf(req.RedirectURI),
		}))
	}
	if !granted || !grant.Covers(req.Scopes) {
		// A trusted client: no consent page, but the grant is recorded,
		// so the account page lists the application and can revoke it.
		if _, err := p.db.GrantApplication(c.Request().Context(), u.ID, client.ID, req.Scopes, now); err != nil {
			return err
		}
	}
	return p.sendCode(c, req, client, u, s)
}

// Consent is POST /oauth2/authorize: the consent page's answer.
func (p *Provider) Consent(c echo.Context) error {
	if err := c.Request().ParseForm(); err != nil {
		return pageError("error.bad_form")
	}
	b, err := p.keys.Open(auth.PurposeOIDCConsent, c.Request().PostForm.Get("request"), p.clock.Now())
	var req authRequest
	if err != nil || json.Unmarshal(b, &req) != nil {
		return errs.E(errs.Gone, "error.oidc.consent_expired")
	}
	client, ok := p.clients.Get(req.ClientID)
	if !ok || !client.HasRedirectURI(req.RedirectURI) {
		return pageError("error.oidc.client_gone")
	}
	req.MaxAge = -1
	u, err := p.web.CurrentUser(c)
	if err != nil {
		return err
	}
	if string(u.Handle) != string(req.Handle) {
		return errs.E(errs.Forbidden, "error.oidc.consent_other_account")
	}
	if c.Request().PostForm.Get("decision") != "allow" {
		p.web.Event(c, "application_denied", u.Handle, slog.String("client", client.ID))
		return p.redirectError(c, &req, oauthErr(errAccessDenied, "the person did not let the application sign them in"))
	}
	if _, err := p.db.GrantApplication(c.Request().Context(), u.ID, client.ID, req.Scopes, p.clock.Now()); err != nil {
		return err
	}
	p.web.Event(c, "application_granted", u.Handle, slog.String("client", client.ID), slog.String("scope", strings.Join(req.Scopes, " ")))
	return p.sendCode(c, &req, client, u, p.web.Session(c))
}

// sendCode sends the browser back to the client with a new code.
func (p *Provider) sendCode(c echo.Context, req *authRequest, client *Client, u *db.User, s *auth.Claims) error {
	code := sealCode(p.keys, &authCode{Handle: u.Handle, Client: client.ID, Redirect: req.RedirectURI, Challenge: req.Challenge,
		Nonce: req.Nonce, Scopes: req.Scopes, AuthTime: s.AuthTime, AMR: s.AMR}, p.clock.Now())
	p.web.Event(c, "application_signin", u.Handle, slog.String("client", client.ID))
	return c.Redirect(http.StatusSeeOther, p.redirectTo(req.RedirectURI, url.Values{"code": {code}, "state": {req.State}}))
}

// redirectError sends an authorization error back to the client's
// registered redirect URI.
func (p *Provider) redirectError(c echo.Context, req *authRequest, e *oauthError) error {
	return c.Redirect(http.StatusSeeOther, p.redirectTo(req.RedirectURI, url.Values{
		"error": {e.Code}, "error_description": {e.Description}, "state": {req.State}}))
}

func hostOf(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	return u.Host
}
