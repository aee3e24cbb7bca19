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
	"github.com/latchkey/latchkey/events"
	"github.com/latchkey/latchkey/ratelimit"
	"github.com/latchkey/latchkey/views"
)

// Web is what the provider needs of Latchkey's web layer (the handlers
// package): the person's session and account, its pages, and signing a
// browser out.
type Web interface {
	// LiveSession returns the request's session and its account, checked
	// against the account's row (which it reads): a session that signed
	// out, or that a revocation ended, on any instance, is no session
	// (its cookies are cleared), even where this instance's revocation
	// set has not caught up yet. Both are nil when nobody is signed in.
	LiveSession(c echo.Context) (*auth.Claims, *db.User, error)
	// CheckCrossOrigin refuses a cross-origin request (a form posted
	// from another site).
	CheckCrossOrigin(c echo.Context) error
	// ParseForm reads a posted form as every page does (413 past the
	// body limit, 400 for one that cannot be read).
	ParseForm(c echo.Context) error
	// Page describes the page about to be rendered; title is a message
	// id, with template data as name, value pairs.
	Page(c echo.Context, title string, kv ...any) views.Page
	// Render writes a page with a status.
	Render(c echo.Context, status int, page templ.Component) error
	// EndSession signs this browser out, as "Sign out" does.
	EndSession(c echo.Context) error
	// ForgetSession clears this browser's cookies of a session that has
	// ended already.
	ForgetSession(c echo.Context)
	// Event logs a security event about the account handle.
	Event(c echo.Context, name events.Name, handle []byte, attrs ...slog.Attr)
	// EventAt is Event at a level (warn: what may be an attack).
	EventAt(c echo.Context, level slog.Level, name events.Name, handle []byte, attrs ...slog.Attr)
}

// Config configures the provider.
type Config struct {
	Issuer    string        // BASE_URL
	AccessTTL time.Duration // access and ID tokens
	IdleTTL   time.Duration // refresh tokens end this long unused
	MaxTTL    time.Duration // refresh tokens live this long after sign-in
	// ClientFailures limits failed client authentications per client id
	// at the token endpoint.
	ClientFailures ratelimit.Rate
	// Logger receives back-channel logout failures (security events).
	Logger *slog.Logger
	// Locales are the languages of the pages (ui_locales_supported).
	Locales []string
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
	failures    *clientFailures
	backChannel *BackChannel
}

// New returns a provider for clients.
func New(cfg Config, clients *Clients, keys *auth.Keys, store *db.DB, revocations *auth.Revocations, clock auth.Clock, web Web) *Provider {
	p := &Provider{cfg: cfg, clients: clients, keys: keys, db: store, revocations: revocations, clock: clock, web: web,
		failures: newClientFailures(cfg.ClientFailures)}
	p.backChannel = newBackChannel(p, cfg.Logger)
	return p
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
// in, through which Latchkey session, and what the client may know.
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
	// app is the application's session in the user's row: a refresh
	// token is issued when it has a generation (offline_access).
	app db.AppSession
	// refreshScope is the scope of the refresh token, which a refresh
	// that narrows the access token's scope leaves as it was (RFC 6749 6).
	refreshScope []string
}

// issue signs an access token, an ID token and, when the application's
// session has a generation, a refresh token of that generation.
func (p *Provider) issue(s session) (*tokenResponse, error) {
	iat := s.issuedAt.Unix()
	base := baseClaims{Issuer: p.cfg.Issuer, Subject: auth.Subject(s.user.Handle), Audience: s.client.ID,
		Expires: iat + int64(p.cfg.AccessTTL/time.Second), IssuedAt: iat, AuthTime: s.authTime, AMR: s.amr, SID: s.sid}
	scope := strings.Join(s.scopes, " ")
	access, err := p.sign(typAccess, "RS256", &accessClaims{baseClaims: base, ClientID: s.client.ID, Scope: scope, JTI: randomID(),
		IssuedMs: s.issuedAt.UnixMilli(), AppSession: s.app.ID})
	if err != nil {
		return nil, err
	}
	id := idClaims{baseClaims: base, Nonce: s.nonce, AtHash: atHash(access, s.client.IDTokenAlg)}
	if contains(s.scopes, "email") {
		verified := true // every address here was confirmed by a link sent to it
		id.Email, id.EmailVerified = s.user.Email, &verified
	}
	if contains(s.scopes, "groups") {
		groups := groupsClaim(s.user)
		id.Groups = &groups
	}
	idToken, err := p.sign(typID, s.client.IDTokenAlg, &id)
	if err != nil {
		return nil, err
	}
	refresh := ""
	if s.app.Refreshes() {
		if s.refreshScope == nil {
			s.refreshScope = s.scopes
		}
		rc := refreshClaims{baseClaims: base, ClientID: s.client.ID, Scope: strings.Join(s.refreshScope, " "), GrantedAt: s.grantedAt,
			AppSession: s.app.ID, Gen: s.app.Gen}
		rc.Audience = p.cfg.Issuer + "/oauth2/token"
		rc.Expires = time.Unix(s.authTime, 0).Add(p.cfg.MaxTTL).Unix()
		if refresh, err = p.sign(typRefresh, "HS256", &rc); err != nil {
			return nil, err
		}
	}
	return &tokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int(p.cfg.AccessTTL.Seconds()),
		IDToken: idToken, RefreshToken: refresh, Scope: scope}, nil
}

// refreshExpiry is when an application session signed in at authTime
// (Unix s) ends unless it is refreshed again: the idle period from now,
// and never past its absolute limit (Unix ms).
func (p *Provider) refreshExpiry(authTime int64, now time.Time) int64 {
	return min(time.Unix(authTime, 0).Add(p.cfg.MaxTTL).UnixMilli(), now.Add(p.cfg.IdleTTL).UnixMilli())
}
