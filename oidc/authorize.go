package oidc

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
	"github.com/latchkey/latchkey/views"
)

// maxRequestLength bounds an authorization request's query: it travels,
// whole and with a sealed resume value added, as the "next" of the
// sign-in page when the person must sign in (at most 2048 characters).
const maxRequestLength = 1900

// maxResumedLength is the longest authorization address the sign-in page
// can come back to (its "next").
const maxResumedLength = 2048

// resumeParam carries, through the sign-in detour, the moment the request
// came (a sign-in after it satisfies prompt=login and max_age), sealed
// and bound to the request's other parameters: nobody can set it, move it
// to another request, or make it older.
const resumeParam = "lk_resume"

// resumeTTL is how long the sign-in detour may take (an emailed link
// included) before the person must start it again.
const resumeTTL = time.Hour

// resumeFresh is how recent the sign-in must still be when the resume
// value is what satisfies prompt=login or max_age: the detour comes back
// at once after signing in, so an address replayed later (from the
// history of a browser left signed in) does not count.
const resumeFresh = 2 * time.Minute

// authRequest is an authorization request, checked.
type authRequest struct {
	ClientID    string   `json:"c"`
	RedirectURI string   `json:"r"`
	Scopes      []string `json:"s"`
	State       string   `json:"t,omitempty"`
	Nonce       string   `json:"n,omitempty"`
	Challenge   string   `json:"p,omitempty"`
	Prompt      []string `json:"-"`
	MaxAge      int64    `json:"-"` // -1: none
	IDTokenHint string   `json:"-"`
	// Handle and SID are the consenting account and session (consent
	// form).
	Handle []byte `json:"u,omitempty"`
	SID    string `json:"i,omitempty"`
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
// *oauthError (to redirect back) after. Parameters it does not act on
// (display, claims, acr_values, ui_locales and login_hint, which the
// pages use) are accepted.
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
	req := &authRequest{ClientID: client.ID, RedirectURI: q.Get("redirect_uri"), State: q.Get("state"), Nonce: q.Get("nonce"),
		MaxAge: -1, IDTokenHint: q.Get("id_token_hint")}
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
	return req, client, nil
}

// Authorize is GET /oauth2/authorize: the authorization code flow's front
// door. It uses the person's Latchkey session, checked against their
// account's row (signing in first when there is none, or when the client
// asks for a sign-in after its request), asks for consent unless the
// client is trusted or was granted before, and sends the browser back
// with a code.
func (p *Provider) Authorize(c echo.Context) error {
	if len(c.Request().URL.RawQuery) > maxRequestLength {
		return pageError("error.oidc.too_long")
	}
	q := c.QueryParams()
	req, client, err := p.parseAuthorize(q)
	if oe, ok := errors.AsType[*oauthError](err); ok {
		return p.redirectError(c, req, oe)
	}
	if err != nil {
		return err
	}
	now := p.clock.Now()
	s, u, err := p.web.LiveSession(c)
	if err != nil {
		return err
	}
	if s == nil || p.needsSignIn(q, req, s, now) {
		if contains(req.Prompt, "none") {
			return p.redirectError(c, req, oauthErr(errLoginRequired, "the person must sign in"))
		}
		return p.toSignIn(c, q, now)
	}
	if contains(req.Prompt, "none") && req.IDTokenHint != "" {
		var hint idClaims
		if err := p.verify(req.IDTokenHint, typID, []string{"RS256", "EdDSA"}, &hint, jwt.WithoutClaimsValidation()); err != nil || hint.Issuer != p.cfg.Issuer {
			return p.redirectError(c, req, oauthErr(errInvalidRequest, "id_token_hint is not an ID token this provider issued"))
		}
		if hint.Subject != s.Subject {
			return p.redirectError(c, req, oauthErr(errLoginRequired, "another account is signed in than the one id_token_hint names"))
		}
	}
	if !client.Admits(u) {
		return p.refuse(c, req, client, u)
	}
	grant, granted := u.GrantTo(client.ID)
	if !client.Trusted && (!granted || !grant.Covers(req.Scopes) || contains(req.Prompt, "consent")) {
		if contains(req.Prompt, "none") {
			return p.redirectError(c, req, oauthErr(errConsentRequired, "the person has not let this application sign them in"))
		}
		req.Handle, req.SID = u.Handle, s.SID
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
	return p.sendCode(c, req, client, u, s, q)
}

// needsSignIn reports whether the session s is too old for the request:
// prompt=login asks for a sign-in after the request, max_age for one
// within that many seconds. Only the sealed resume value the sign-in
// detour carries says when the request came; a sign-in at or after that
// second, and no older than resumeFresh, satisfies both.
func (p *Provider) needsSignIn(q url.Values, req *authRequest, s *auth.Claims, now time.Time) bool {
	tooOld := req.MaxAge >= 0 && now.Unix()-s.AuthTime > req.MaxAge
	if !contains(req.Prompt, "login") && !tooOld {
		return false
	}
	after, ok := p.openResume(q, now)
	return !ok || s.AuthTime < after || now.Sub(time.Unix(s.AuthTime, 0)) > resumeFresh
}

// toSignIn sends the browser to sign in, coming back to this request
// with a sealed resume value (see resumeParam), and with the sign-in page
// told the address the client expects (login_hint) and its language
// (ui_locales).
func (p *Provider) toSignIn(c echo.Context, q url.Values, now time.Time) error {
	next := url.Values{}
	for k, v := range q {
		if k != resumeParam {
			next[k] = v
		}
	}
	next.Set(resumeParam, p.sealResume(next, now))
	target := "/oauth2/authorize?" + next.Encode()
	if len(target) > maxResumedLength {
		return pageError("error.oidc.too_long")
	}
	signIn := url.Values{"next": {target}}
	for _, k := range []string{"login_hint", "ui_locales"} {
		if v := q.Get(k); v != "" && len(v) <= 254 {
			signIn.Set(k, v)
		}
	}
	return c.Redirect(http.StatusSeeOther, "/signin?"+signIn.Encode())
}

// sealResume seals the second the request came, bound to its parameters.
func (p *Provider) sealResume(params url.Values, now time.Time) string {
	sum := requestHash(params)
	b := binary.BigEndian.AppendUint64(nil, uint64(now.Unix()))
	return p.keys.Seal(auth.PurposeOIDCResume, append(b, sum[:16]...), now.Add(resumeTTL))
}

// openResume returns the second the request in q came, from its resume
// value, if that is one this provider sealed for these very parameters.
func (p *Provider) openResume(q url.Values, now time.Time) (int64, bool) {
	sealed := q.Get(resumeParam)
	if sealed == "" {
		return 0, false
	}
	b, err := p.keys.Open(auth.PurposeOIDCResume, sealed, now)
	if err != nil || len(b) != 24 {
		return 0, false
	}
	params := url.Values{}
	for k, v := range q {
		if k != resumeParam {
			params[k] = v
		}
	}
	sum := requestHash(params)
	if subtle.ConstantTimeCompare(b[8:], sum[:16]) != 1 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), true
}

// requestHash is the SHA-256 of the parameters in their canonical form
// (sorted by name, as url.Values encodes them).
func requestHash(params url.Values) [32]byte { return sha256.Sum256([]byte(params.Encode())) }

// AuthorizePost is POST /oauth2/authorize: either an authorization
// request sent as a form, which OpenID Connect Core (3.1.2.1) allows, or
// the consent page's answer. A relying party's form may come from its
// own site: the request goes on as the same request by GET (whose
// cookies a cross-site top-level navigation carries, SameSite=Lax). The
// consent page's answer is a change, and must come from this site.
func (p *Provider) AuthorizePost(c echo.Context) error {
	if err := p.web.ParseForm(c); err != nil {
		return err
	}
	form := c.Request().PostForm
	if form.Has("client_id") || form.Has("response_type") {
		query := form.Encode()
		if len(query) > maxRequestLength {
			return pageError("error.oidc.too_long")
		}
		return c.Redirect(http.StatusSeeOther, "/oauth2/authorize?"+query)
	}
	if err := p.web.CheckCrossOrigin(c); err != nil {
		return err
	}
	return p.consent(c, form)
}

// consent is the consent page's answer.
func (p *Provider) consent(c echo.Context, form url.Values) error {
	now := p.clock.Now()
	b, err := p.keys.Open(auth.PurposeOIDCConsent, form.Get("request"), now)
	var req authRequest
	if err != nil || json.Unmarshal(b, &req) != nil {
		return errs.E(errs.Gone, "error.oidc.consent_expired")
	}
	client, ok := p.clients.Get(req.ClientID)
	if !ok || !client.HasRedirectURI(req.RedirectURI) {
		return pageError("error.oidc.client_gone")
	}
	req.MaxAge = -1
	s, u, err := p.web.LiveSession(c)
	if err != nil {
		return err
	}
	if s == nil {
		return errs.E(errs.Unauthorized, "error.signed_out")
	}
	if string(u.Handle) != string(req.Handle) || s.SID != req.SID {
		return errs.E(errs.Forbidden, "error.oidc.consent_other_account")
	}
	if !client.Admits(u) {
		return p.refuse(c, &req, client, u)
	}
	if form.Get("decision") != "allow" {
		p.web.Event(c, events.ApplicationDenied, u.Handle, slog.String("app", client.ID))
		return p.redirectError(c, &req, oauthErr(errAccessDenied, "the person did not let the application sign them in"))
	}
	if _, err := p.db.GrantApplication(c.Request().Context(), u.ID, client.ID, req.Scopes, now); err != nil {
		return err
	}
	p.web.Event(c, events.ApplicationGranted, u.Handle, slog.String("app", client.ID), slog.String("scope", strings.Join(req.Scopes, " ")))
	return p.sendCode(c, &req, client, u, s, nil)
}

// sendCode sends the browser back to the client with a new code, which
// the database numbers and orders with the account's revocations. A
// session that ended meanwhile signs in again (q, the request, to come
// back to; nil from the consent page, which then says so).
func (p *Provider) sendCode(c echo.Context, req *authRequest, client *Client, u *db.User, s *auth.Claims, q url.Values) error {
	now := p.clock.Now()
	issued, err := p.db.IssueCode(c.Request().Context(), u.Handle, s.SID, int64(s.IssuedAt), now)
	switch {
	case errors.Is(err, db.ErrTooManyCodes):
		return p.redirectError(c, req, oauthErr(errTemporarilyUnavailable,
			"this account was sent to applications more than "+strconv.Itoa(db.MaxCodesPerMinute)+" times in a minute; try again in a minute"))
	case errors.Is(err, db.ErrCodeSessionEnded):
		p.web.ForgetSession(c)
		if q == nil || contains(req.Prompt, "none") {
			return p.redirectError(c, req, oauthErr(errLoginRequired, "the person's session ended"))
		}
		return p.toSignIn(c, q, now)
	case err != nil:
		return err
	}
	code := sealCode(p.keys, &authCode{Seq: issued.Seq, Issued: issued.IssuedAt, Handle: u.Handle, SID: s.SID, Client: client.ID,
		Redirect: req.RedirectURI, Challenge: req.Challenge, Nonce: req.Nonce, Scopes: req.Scopes, AuthTime: s.AuthTime, AMR: s.AMR}, now)
	p.web.Event(c, events.ApplicationSignIn, u.Handle, slog.String("app", client.ID))
	return c.Redirect(http.StatusSeeOther, p.redirectTo(req.RedirectURI, url.Values{"code": {code}, "state": {req.State}}))
}

// refuse answers a person the application does not admit (in none of
// its allowed groups): a 403 page here naming the application, or, with
// prompt=none, access_denied at its redirect URI. Either way a security
// event.
func (p *Provider) refuse(c echo.Context, req *authRequest, client *Client, u *db.User) error {
	p.web.Event(c, events.ApplicationRefused, u.Handle, slog.String("app", client.ID), slog.String("reason", "not_in_allowed_groups"))
	if contains(req.Prompt, "none") {
		return p.redirectError(c, req, oauthErr(errAccessDenied, "the person is not in a group this application admits"))
	}
	back, _ := url.Parse(req.RedirectURI)
	return p.web.Render(c, http.StatusForbidden, views.NoAccess(p.web.Page(c, "title.no_access", "Application", client.Name), views.NoAccessView{
		Application: client.Name, Email: u.Email, Back: back.Scheme + "://" + back.Host, BackHost: back.Host,
	}))
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
