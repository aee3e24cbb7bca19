// Package app turns a Config into a running Latchkey: it opens the
// database, derives the keys, picks the mail sender, starts the revocation
// poller and builds the HTTP handler. main.go and the black-box tests both
// start Latchkey through it, so the tests run the real thing.
package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/handlers"
	"github.com/latchkey/latchkey/mail"
	"github.com/latchkey/latchkey/oidc"
	"github.com/latchkey/latchkey/ratelimit"
)

// Config is Latchkey's configuration, parsed once from the environment.
type Config struct {
	ListenAddr     string
	BaseURL        *url.URL
	DatabasePath   string
	DatabaseURL    string           // postgres://…: PostgreSQL instead of DatabasePath
	DatabaseNotify bool             // PostgreSQL: revocations pushed with LISTEN/NOTIFY
	MailToLog      bool             // an https deployment may write emails to the log
	SMTP           *mail.SMTPConfig // nil: emails go to the log
	SMTPTimeout    time.Duration
	MailFrom       string
	SecretKeys     [][]byte // nil: read or create the secret file beside the database
	TrustedProxies []netip.Prefix
	AccessTTL      time.Duration
	IdleTTL        time.Duration
	MaxTTL         time.Duration
	LinkTTL        time.Duration
	ReauthTTL      time.Duration
	EmailRate      ratelimit.Rate
	SignInRate     ratelimit.Rate
	LogLevel       slog.Level
	LogJSON        bool // LOG_FORMAT=json
	SignUp         handlers.SignUpPolicy
	RecoveryDelay  time.Duration
	OIDCClients    *oidc.Clients // from OIDC_CLIENTS_FILE; none when empty
	AdminGroup     string        // members may use the console at /admin
}

// Variable documents one environment variable.
type Variable struct {
	Name, Default, Meaning string
}

// Variables lists every environment variable with its default; -h prints
// it and the README's table matches it.
var Variables = []Variable{
	{"LISTEN_ADDR", "localhost:8080", "where to listen"},
	{"BASE_URL", "http://localhost:8080", "the public origin: WebAuthn RP ID and origin, every emailed link, the token issuer; http:// only for localhost"},
	{"DATABASE_PATH", "data/latchkey.db", "SQLite file (created with its folder)"},
	{"DATABASE_URL", "", "postgres://user:pass@host:5432/db: use PostgreSQL instead of DATABASE_PATH (setting both is an error); needs SECRET_KEYS"},
	{"DATABASE_NOTIFY", "on", "PostgreSQL: push revocations to every instance with LISTEN/NOTIFY; off: poll only (for poolers without LISTEN, such as PgBouncer in transaction mode)"},
	{"SMTP_URL", "", "smtp://[user:pass@]host:port (STARTTLS when offered; ?starttls=required to insist) or smtps://…; empty: emails are written to the log"},
	{"SMTP_TIMEOUT", "10s", "how long sending one email may take before the person is told to try again"},
	{"MAIL_FROM", "Latchkey <no-reply@localhost>", "sender address"},
	{"MAIL_TO_LOG", "", "1: with SMTP_URL empty and an https BASE_URL, write emails (and their working sign-in links) to the log anyway; otherwise that is refused"},
	{"SECRET_KEYS", "", "comma-separated base64 secrets (32+ bytes), newest first; empty: generated into secret_keys beside the database on first start"},
	{"TRUSTED_PROXIES", "", "comma-separated CIDRs whose X-Forwarded-For is believed; empty: the peer address is the client"},
	{"ACCESS_TOKEN_TTL", "10m", "access token life"},
	{"SESSION_IDLE_TTL", "168h", "a session ends after this long unused"},
	{"SESSION_MAX_TTL", "720h", "a session ends this long after its sign-in, whatever happens"},
	{"LINK_TTL", "10m", "how long an emailed link works"},
	{"REAUTH_TTL", "10m", "how recent a sign-in must be for sensitive actions"},
	{"RATE_LIMIT_EMAIL", "3/15m", "emails one address can be sent by other people's requests, per window"},
	{"RATE_LIMIT_SIGNIN", "30/10m", "attempts per client on each sign-in endpoint, per window"},
	{"SIGNUP", "open", "who may create an account: open, invite (only people an operator invites), or a comma list of email domains"},
	{"OIDC_CLIENTS_FILE", "", "JSON file of the applications that sign people in through Latchkey (OpenID Connect); empty: none"},
	{"RECOVERY_DELAY", "24h", "how long a self-service recovery waits (and notifies the address) before a link sign-in may add a passkey; 0 allowed"},
	{"ADMIN_GROUP", "admin", "members of this group may use the operator's console at /admin (make the first one with latchkey admin group add EMAIL admin)"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
	{"LOG_FORMAT", "text", "text or json; security events are one line each with an event field"},
}

// ConfigFromEnv parses the configuration; getenv is os.Getenv in main.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, v := range Variables {
			if v.Name == name {
				return v.Default
			}
		}
		return ""
	}
	var (
		c    Config
		errs []error
		fail = func(name string, err error) { errs = append(errs, fmt.Errorf("%s: %w", name, err)) }
	)
	c.ListenAddr = get("LISTEN_ADDR")
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		fail("LISTEN_ADDR", errors.New("want host:port, such as localhost:8080"))
	}
	base, err := ParseBaseURL(get("BASE_URL"))
	if err != nil {
		fail("BASE_URL", err)
	}
	c.BaseURL = base
	c.DatabasePath = get("DATABASE_PATH")
	if s := get("DATABASE_URL"); s != "" {
		if strings.TrimSpace(getenv("DATABASE_PATH")) != "" {
			fail("DATABASE_URL", errors.New("set either DATABASE_URL (PostgreSQL) or DATABASE_PATH (SQLite), not both"))
		}
		if err := db.CheckURL(s); err != nil {
			fail("DATABASE_URL", err)
		}
		c.DatabaseURL = s
	}
	switch get("DATABASE_NOTIFY") {
	case "on":
		c.DatabaseNotify = true
	case "off":
	default:
		fail("DATABASE_NOTIFY", errors.New("want on or off"))
	}
	if s := get("SMTP_URL"); s != "" {
		smtp, err := mail.ParseSMTPURL(s)
		if err != nil {
			fail("SMTP_URL", err)
		}
		c.SMTP = &smtp
	}
	c.MailFrom = get("MAIL_FROM")
	if _, err := netmail.ParseAddress(c.MailFrom); err != nil {
		fail("MAIL_FROM", errors.New(`want an address, such as "Latchkey <no-reply@example.com>"`))
	}
	if s := get("SECRET_KEYS"); s != "" {
		if c.SecretKeys, err = auth.ParseSecrets(s); err != nil {
			fail("SECRET_KEYS", err)
		}
	} else if c.DatabaseURL != "" {
		// A generated secret would be this machine's alone, and the
		// instances sharing the database must share it.
		fail("SECRET_KEYS", errors.New("required with DATABASE_URL: give every instance the same value (make one with: head -c 32 /dev/urandom | base64)"))
	}
	if s := get("TRUSTED_PROXIES"); s != "" {
		for _, p := range strings.Split(s, ",") {
			p = strings.TrimSpace(p)
			prefix, err := netip.ParsePrefix(p)
			if err != nil {
				addr, aerr := netip.ParseAddr(p)
				if aerr != nil {
					fail("TRUSTED_PROXIES", fmt.Errorf("%q is not a CIDR or an address", p))
					continue
				}
				prefix = netip.PrefixFrom(addr, addr.BitLen())
			}
			c.TrustedProxies = append(c.TrustedProxies, prefix.Masked())
		}
	}
	durations := []struct {
		name     string
		dst      *time.Duration
		min, max time.Duration
	}{
		{"SMTP_TIMEOUT", &c.SMTPTimeout, time.Second, 5 * time.Minute},
		{"ACCESS_TOKEN_TTL", &c.AccessTTL, 10 * time.Second, 24 * time.Hour},
		{"SESSION_IDLE_TTL", &c.IdleTTL, time.Minute, 365 * 24 * time.Hour},
		{"SESSION_MAX_TTL", &c.MaxTTL, time.Minute, 365 * 24 * time.Hour},
		{"LINK_TTL", &c.LinkTTL, 30 * time.Second, 24 * time.Hour},
		{"REAUTH_TTL", &c.ReauthTTL, 30 * time.Second, 24 * time.Hour},
	}
	for _, d := range durations {
		v, err := time.ParseDuration(get(d.name))
		switch {
		case err != nil:
			fail(d.name, errors.New("want a Go duration, such as 10m or 168h"))
		case v < d.min || v > d.max:
			fail(d.name, fmt.Errorf("must be between %s and %s", d.min, d.max))
		}
		*d.dst = v
	}
	if c.IdleTTL > c.MaxTTL {
		fail("SESSION_IDLE_TTL", errors.New("must not exceed SESSION_MAX_TTL"))
	}
	if c.AccessTTL > c.IdleTTL {
		fail("ACCESS_TOKEN_TTL", errors.New("must not exceed SESSION_IDLE_TTL"))
	}
	if c.EmailRate, err = ratelimit.ParseRate(get("RATE_LIMIT_EMAIL")); err != nil {
		fail("RATE_LIMIT_EMAIL", err)
	}
	if c.SignInRate, err = ratelimit.ParseRate(get("RATE_LIMIT_SIGNIN")); err != nil {
		fail("RATE_LIMIT_SIGNIN", err)
	}
	switch get("MAIL_TO_LOG") {
	case "", "0", "false":
	case "1", "true":
		c.MailToLog = true
	default:
		fail("MAIL_TO_LOG", errors.New("want 1 or nothing"))
	}
	if c.SMTP == nil && c.BaseURL != nil && c.BaseURL.Scheme == "https" && !c.MailToLog {
		// Working sign-in links in the log of a public deployment: whoever
		// reads the log could sign in as anyone.
		fail("SMTP_URL", errors.New("is empty, so emails (with working sign-in links) would go to the log of this https deployment: set SMTP_URL, or MAIL_TO_LOG=1 if that is really what you want"))
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL"))); err != nil {
		fail("LOG_LEVEL", errors.New("want debug, info, warn or error"))
	}
	switch get("LOG_FORMAT") {
	case "text":
	case "json":
		c.LogJSON = true
	default:
		fail("LOG_FORMAT", errors.New("want text or json"))
	}
	c.OIDCClients = oidc.NoClients()
	if path := get("OIDC_CLIENTS_FILE"); path != "" {
		if c.OIDCClients, err = oidc.LoadClients(path); err != nil {
			fail("OIDC_CLIENTS_FILE", fmt.Errorf("%s: %w", path, err))
		}
	}
	if c.SignUp, err = handlers.ParseSignUp(get("SIGNUP")); err != nil {
		fail("SIGNUP", err)
	}
	if c.RecoveryDelay, err = time.ParseDuration(get("RECOVERY_DELAY")); err != nil || c.RecoveryDelay < 0 || c.RecoveryDelay > 30*24*time.Hour {
		fail("RECOVERY_DELAY", errors.New("want a Go duration from 0 to 720h, such as 24h"))
	}
	if c.AdminGroup = get("ADMIN_GROUP"); !db.ValidGroup(c.AdminGroup) {
		fail("ADMIN_GROUP", errors.New(`want a group name: a lowercase letter or digit, then up to 63 of those, ".", "_" or "-"`))
	}
	return c, errors.Join(errs...)
}

// ParseBaseURL checks BASE_URL: an origin (scheme, host, optional port; no
// path, query or user), https except for localhost.
func ParseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, errors.New("want an origin such as https://login.example.com")
	}
	if u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must be an origin only: no path, query or user")
	}
	host := u.Hostname()
	switch u.Scheme {
	case "https":
	case "http":
		if host != "localhost" {
			return nil, errors.New("http:// is allowed for localhost only; use https://")
		}
	default:
		return nil, errors.New("must start with https://")
	}
	if net.ParseIP(host) != nil {
		return nil, errors.New("must name a host, not an IP address (passkeys need a domain)")
	}
	u.Host = strings.ToLower(u.Host)
	return u, nil
}

// NewLogger returns the logger cfg asks for, writing to w: text or JSON
// lines at LOG_LEVEL.
func NewLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// SecretFile is where generated secrets are kept: beside the database.
func (c Config) SecretFile() string {
	return filepath.Join(filepath.Dir(c.DatabasePath), "secret_keys")
}
