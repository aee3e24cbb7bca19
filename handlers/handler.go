// Package handlers is Latchkey's HTTP layer: Echo handlers, their
// middleware, and routes.go, where every route is registered.
package handlers

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/i18n"
	"github.com/latchkey/latchkey/mail"
	"github.com/latchkey/latchkey/oidc"
	"github.com/latchkey/latchkey/ratelimit"
)

// Config is what the handlers need to know from the configuration.
type Config struct {
	// BaseURL is the public origin. Links, WebAuthn's RP ID and origin, and
	// the token issuer come from it, never from request headers.
	BaseURL   *url.URL
	LinkTTL   time.Duration
	ReauthTTL time.Duration
	IdleTTL   time.Duration
	MaxTTL    time.Duration
	// EmailRate limits emails per address; SignInRate limits attempts per
	// client on each sign-in endpoint.
	EmailRate  ratelimit.Rate
	SignInRate ratelimit.Rate
	// SignUp says which new addresses may create an account.
	SignUp SignUpPolicy
	// RecoveryDelay is how long a self-service recovery waits before a
	// link sign-in may add a passkey.
	RecoveryDelay time.Duration
	// AdminGroup names the group whose members may use the console.
	AdminGroup string
}

// Handler holds every dependency of the HTTP layer.
type Handler struct {
	cfg         Config
	db          *db.DB
	keys        *auth.Keys
	tokens      *auth.Tokens
	revocations *auth.Revocations
	passkeys    *auth.Passkeys
	mailer      mail.Sender
	clock       auth.Clock
	log         *slog.Logger

	oidc    *oidc.Provider
	catalog *i18n.Catalog

	emailLimiter  *ratelimit.Limiter
	clientLimiter *ratelimit.Limiter
	crossOrigin   *http.CrossOriginProtection
	// codeTries counts wrong one-time codes of addresses without an
	// account (an account's are counted in its row).
	codeTries codeTries

	buffers    sync.Pool      // *bytes.Buffer for rendering pages
	background sync.WaitGroup // notices being sent
}

// Deps are the Handler's dependencies, built in the app package.
type Deps struct {
	DB          *db.DB
	Keys        *auth.Keys
	Tokens      *auth.Tokens
	Revocations *auth.Revocations
	Passkeys    *auth.Passkeys
	Mailer      mail.Sender
	Clock       auth.Clock
	Logger      *slog.Logger
	// OIDCClients are the applications that sign people in through
	// Latchkey (OpenID Connect); none when nil.
	OIDCClients *oidc.Clients
	// Catalog holds the messages of every language.
	Catalog *i18n.Catalog
}

// maxLimiterKeys bounds each rate limiter's memory (see ratelimit.Limiter).
const maxLimiterKeys = 100_000

// New returns a Handler.
func New(cfg Config, d Deps) (*Handler, error) {
	cop := http.NewCrossOriginProtection()
	// Behind a proxy that rewrites Host, the Origin header still names
	// BASE_URL; trust exactly that origin.
	if err := cop.AddTrustedOrigin(origin(cfg.BaseURL)); err != nil {
		return nil, err
	}
	h := &Handler{
		cfg: cfg, db: d.DB, keys: d.Keys, tokens: d.Tokens, revocations: d.Revocations,
		passkeys: d.Passkeys, mailer: d.Mailer, clock: d.Clock, log: d.Logger, catalog: d.Catalog,
		emailLimiter:  ratelimit.New(cfg.EmailRate, maxLimiterKeys),
		clientLimiter: ratelimit.New(cfg.SignInRate, maxLimiterKeys),
		crossOrigin:   cop,
	}
	h.buffers.New = func() any { return new(bytes.Buffer) }
	clients := d.OIDCClients
	if clients == nil {
		clients = oidc.NoClients()
	}
	var locales []string
	for _, l := range d.Catalog.Languages() {
		locales = append(locales, l.Tag)
	}
	h.oidc = oidc.New(oidc.Config{Issuer: origin(cfg.BaseURL), AccessTTL: d.Tokens.AccessTTL(), IdleTTL: cfg.IdleTTL, MaxTTL: cfg.MaxTTL,
		ClientFailures: cfg.SignInRate, Logger: d.Logger, Locales: locales},
		clients, d.Keys, d.DB, d.Revocations, d.Clock, h)
	return h, nil
}

func origin(u *url.URL) string { return u.Scheme + "://" + u.Host }

// absoluteURL returns BASE_URL joined with path (which may carry a query).
func (h *Handler) absoluteURL(pathAndQuery string) string {
	return origin(h.cfg.BaseURL) + pathAndQuery
}
