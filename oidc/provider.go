package oidc

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/views"
)

// Web is what the provider needs of Latchkey's web layer (the handlers
// package): the person's session and account, its pages, and signing a
// browser out.
type Web interface {
	// Session returns the request's verified session, or nil.
	Session(c echo.Context) *auth.Claims
	// CurrentUser returns the signed-in account (an error that signs the
	// browser out if it no longer may be).
	CurrentUser(c echo.Context) (*db.User, error)
	// Page describes the page about to be rendered; title is a message
	// id, with template data as name, value pairs.
	Page(c echo.Context, title string, kv ...any) views.Page
	// Render writes a page with a status.
	Render(c echo.Context, status int, page templ.Component) error
	// EndSession signs this browser out, as "Sign out" does.
	EndSession(c echo.Context) error
	// Event logs a security event about the account handle.
	Event(c echo.Context, name string, handle []byte, attrs ...slog.Attr)
}

// Config configures the provider.
type Config struct {
	Issuer    string        // BASE_URL
	AccessTTL time.Duration // access and ID tokens
	MaxTTL    time.Duration // refresh tokens live this long after sign-in
}

// Provider is the OpenID Connect provider.
type Provider struct {
	cfg         Config
	clients     *Clients
	keys        *auth.Keys
	db          *db.DB
	revocations *auth.Revocations
	clock       auth.Clock
	web         Web
}

// New returns a provider for clients.
func New(cfg Config, clients *Clients, keys *auth.Keys, store *db.DB, revocations *auth.Revocations, clock auth.Clock, web Web) *Provider {
	return &Provider{cfg: cfg, clients: clients, keys: keys, db: store, revocations: revocations, clock: clock, web: web}
}

// Clients returns the client registry.
func (p *Provider) Clients() *Clients { return p.clients }

// CORS lets the registered clients' origins call an endpoint from a
// browser (the token, userinfo, discovery and JWKS endpoints), and
// answers their preflight requests. Other origins get no CORS headers.
func (p *Provider) CORS(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		origin := c.Request().Header.Get("Origin")
		hdr := c.Response().Header()
		hdr.Add("Vary", "Origin")
		if origin == "" || !p.clients.AllowsOrigin(origin) {
			if c.Request().Method == http.MethodOptions {
				return c.NoContent(http.StatusForbidden)
			}
			return next(c)
		}
		hdr.Set("Access-Control-Allow-Origin", origin)
		if c.Request().Method == http.MethodOptions {
			hdr.Set("Access-Control-Allow-Methods", "GET, POST")
			hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			hdr.Set("Access-Control-Max-Age", "600")
			return c.NoContent(http.StatusNoContent)
		}
		return next(c)
	}
}

// redirectTo builds the redirect back to the client: params added to the
// registered URI's own query, plus the issuer (RFC 9207).
func (p *Provider) redirectTo(redirectURI string, params url.Values) string {
	u, _ := url.Parse(redirectURI)
	q := u.Query()
	for k, v := range params {
		if len(v) > 0 && v[0] != "" {
			q.Set(k, v[0])
		}
	}
	q.Set("iss", p.cfg.Issuer)
	u.RawQuery = q.Encode()
	return u.String()
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
}

// session is what tokens are issued for: who, how and when they signed
// in, and what the client may know.
type session struct {
	client    *Client
	user      *db.User
	scopes    []string
	authTime  int64
	amr       []string
	sid       string
	nonce     string
	issuedAt  time.Time // from the database write that recorded it
	grantedAt int64
}

// issue signs an access token, an ID token and, with offline_access, a
// refresh token (refresh, when given, is returned as it is: it is not
// rotated; see the README).
func (p *Provider) issue(s session, refresh string) (*tokenResponse, error) {
	exp := s.issuedAt.Add(p.cfg.AccessTTL).Unix()
	base := baseClaims{Issuer: p.cfg.Issuer, Subject: auth.Subject(s.user.Handle), Audience: s.client.ID, Expires: exp,
		IssuedAt: auth.NewMilliTime(s.issuedAt), AuthTime: s.authTime, AMR: s.amr, SID: s.sid}
	scope := strings.Join(s.scopes, " ")
	access, err := p.sign(typAccess, "RS256", &accessClaims{baseClaims: base, ClientID: s.client.ID, Scope: scope, JTI: randomID()})
	if err != nil {
		return nil, err
	}
	id := idClaims{baseClaims: base, Nonce: s.nonce, AtHash: atHash(access, s.client.IDTokenAlg)}
	if contains(s.scopes, "email") {
		verified := true // every address here was confirmed by a link sent to it
		id.Email, id.EmailVerified = s.user.Email, &verified
	}
	idToken, err := p.sign(typID, s.client.IDTokenAlg, &id)
	if err != nil {
		return nil, err
	}
	if refresh == "" && contains(s.scopes, "offline_access") {
		rc := refreshClaims{baseClaims: base, ClientID: s.client.ID, Scope: scope, GrantedAt: s.grantedAt}
		rc.Audience = p.cfg.Issuer + "/oauth2/token"
		rc.Expires = time.Unix(s.authTime, 0).Add(p.cfg.MaxTTL).Unix()
		if refresh, err = p.sign(typRefresh, "HS256", &rc); err != nil {
			return nil, err
		}
	}
	return &tokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int(p.cfg.AccessTTL.Seconds()),
		IDToken: idToken, RefreshToken: refresh, Scope: scope}, nil
}
