package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/handlers"
	"github.com/latchkey/latchkey/i18n"
	"github.com/latchkey/latchkey/mail"
)

// Options change how an App is built; the zero value is production.
type Options struct {
	Clock  auth.Clock   // default: the system clock
	Logger *slog.Logger // default: text to stderr at cfg.LogLevel
	// MailLog is where the development mail sender writes (default stderr).
	MailLog io.Writer
	// SMTPTLSConfig overrides TLS settings for SMTP (tests trust their own
	// certificate with it).
	SMTPTLSConfig *tls.Config
	// PollInterval is how often revocations are polled (default 500ms;
	// 1s when the database pushes them).
	PollInterval time.Duration
	// ExistingDatabase makes OpenBase create nothing, for the operator's
	// commands: the database must be one Latchkey made (otherwise an error
	// wrapping db.ErrNoDatabase), and without SECRET_KEYS the secret file
	// beside it must exist.
	ExistingDatabase bool
}

// App is a running Latchkey, minus the listener.
type App struct {
	Handler     http.Handler
	DB          *db.DB
	Revocations *auth.Revocations
	Keys        *auth.Keys

	handlers *handlers.Handler
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// Base is what the server and the operator's commands both need: the
// database, the keys derived from SECRET_KEYS, and the mail sender.
type Base struct {
	DB     *db.DB
	Keys   *auth.Keys
	Mailer mail.Sender
}

// OpenBase opens the database, derives the keys (reading or creating the
// secret file when SECRET_KEYS is empty) and picks the mail sender, as
// cfg says. With opts.ExistingDatabase it creates nothing. Close the DB
// when done.
func OpenBase(ctx context.Context, cfg Config, opts Options) (*Base, error) {
	log := opts.Logger
	if log == nil {
		log = NewLogger(cfg, os.Stderr)
	}
	if opts.MailLog == nil {
		opts.MailLog = os.Stderr
	}
	// The database first: a wrong DATABASE_PATH is reported before a
	// secret file is made beside it.
	database, err := db.Open(ctx, db.Config{Path: cfg.DatabasePath, URL: cfg.DatabaseURL, Existing: opts.ExistingDatabase})
	if err != nil {
		switch {
		case errors.Is(err, db.ErrNoDatabase):
			return nil, err // it names the place, and never the URL
		case cfg.DatabaseURL != "":
			return nil, fmt.Errorf("database (PostgreSQL): %w", err) // never the URL: it may hold a password
		}
		return nil, fmt.Errorf("database %s: %w", cfg.DatabasePath, err)
	}
	keys, err := openKeys(cfg, opts, log)
	if err != nil {
		database.Close()
		return nil, err
	}

	var sender mail.Sender
	if cfg.SMTP != nil {
		smtp := *cfg.SMTP
		if opts.SMTPTLSConfig != nil {
			smtp.TLSConfig = opts.SMTPTLSConfig
		}
		sender = &mail.SMTPSender{Config: smtp, From: cfg.MailFrom, Timeout: cfg.SMTPTimeout}
	} else {
		sender = &mail.LogSender{W: opts.MailLog}
	}
	return &Base{DB: database, Keys: keys, Mailer: sender}, nil
}

// openKeys derives the keys from SECRET_KEYS or, when it is empty, from
// the secret file beside the database, which is created on first start
// (but never with opts.ExistingDatabase).
func openKeys(cfg Config, opts Options, log *slog.Logger) (*auth.Keys, error) {
	secrets := cfg.SecretKeys
	if secrets == nil {
		var (
			created bool
			err     error
		)
		if opts.ExistingDatabase {
			secrets, err = auth.ReadSecretFile(cfg.SecretFile())
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("SECRET_KEYS is empty and there is no %s beside the database: give this command the SECRET_KEYS the server has", cfg.SecretFile())
			}
		} else {
			secrets, created, err = auth.LoadOrCreateSecretFile(cfg.SecretFile())
		}
		if err != nil {
			return nil, fmt.Errorf("secret keys: %w", err)
		}
		if created {
			log.Info("generated a new secret key; keep this file private, and share SECRET_KEYS between instances", "file", cfg.SecretFile())
		}
	}
	keys, err := auth.NewKeys(secrets)
	if err != nil {
		return nil, fmt.Errorf("SECRET_KEYS: %w", err)
	}
	return keys, nil
}

// New builds the app from cfg. Close stops it.
func New(ctx context.Context, cfg Config, opts Options) (*App, error) {
	if opts.Clock == nil {
		opts.Clock = auth.SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = NewLogger(cfg, os.Stderr)
	}
	if opts.MailLog == nil {
		opts.MailLog = os.Stderr
	}
	log := opts.Logger

	base, err := OpenBase(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	if cfg.SMTP == nil {
		log.Warn("SMTP_URL is empty: emails are written to this log instead of being sent (development mode)")
	}
	database, keys, sender := base.DB, base.Keys, base.Mailer

	catalog, err := i18n.Load()
	if err != nil {
		database.Close()
		return nil, fmt.Errorf("message catalogs: %w", err)
	}
	push := cfg.DatabaseNotify && database.Pushes()
	if opts.PollInterval == 0 {
		// Pushed revocations arrive at once; the poll is a safety net.
		opts.PollInterval = 500 * time.Millisecond
		if push {
			opts.PollInterval = time.Second
		}
	}
	revocations := auth.NewRevocations(cfg.AccessTTL, opts.Clock)
	poller := &auth.Poller{DB: database, Revocations: revocations, Clock: opts.Clock, Push: push,
		AccessTTL: cfg.AccessTTL, LinkTTL: cfg.LinkTTL, Interval: opts.PollInterval, Logger: log}
	if err := poller.Load(ctx); err != nil {
		database.Close()
		return nil, fmt.Errorf("loading revocations: %w", err)
	}
	tokens := auth.NewTokens(auth.TokenConfig{
		BaseURL:   cfg.BaseURL.String(),
		AccessTTL: cfg.AccessTTL,
		IdleTTL:   cfg.IdleTTL,
		MaxTTL:    cfg.MaxTTL,
	}, keys, opts.Clock, revocations)

	passkeys, err := auth.NewPasskeys(cfg.BaseURL, keys, opts.Clock, log)
	if err != nil {
		database.Close()
		return nil, fmt.Errorf("WebAuthn: %w", err)
	}
	h, err := handlers.New(handlers.Config{
		BaseURL:       cfg.BaseURL,
		LinkTTL:       cfg.LinkTTL,
		ReauthTTL:     cfg.ReauthTTL,
		IdleTTL:       cfg.IdleTTL,
		MaxTTL:        cfg.MaxTTL,
		EmailRate:     cfg.EmailRate,
		SignInRate:    cfg.SignInRate,
		SignUp:        cfg.SignUp,
		RecoveryDelay: cfg.RecoveryDelay,
		AdminGroup:    cfg.AdminGroup,
	}, handlers.Deps{
		DB: database, Keys: keys, Tokens: tokens, Revocations: revocations,
		Passkeys: passkeys, Mailer: sender, Clock: opts.Clock, Logger: log, OIDCClients: cfg.OIDCClients,
		Catalog: catalog,
	})
	if err != nil {
		database.Close()
		return nil, err
	}

	if cfg.OIDCClients.Len() > 0 {
		// Derive the RSA keys now, not on an application's first request.
		go keys.RSASigner()
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.IPExtractor = ipExtractor(cfg)
	h.Register(e)

	pollCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a := &App{Handler: e, DB: database, Revocations: revocations, Keys: keys, handlers: h, stop: stop}
	a.wg.Go(func() { poller.Run(pollCtx) })
	return a, nil
}

// ipExtractor believes X-Forwarded-For only from TRUSTED_PROXIES. Echo's
// default trusts loopback and private networks; we trust nothing unless
// told to.
func ipExtractor(cfg Config) echo.IPExtractor {
	if len(cfg.TrustedProxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range cfg.TrustedProxies {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{
			IP:   net.IP(p.Addr().AsSlice()),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// Close stops the poller, waits for emails still being sent, and closes
// the database.
func (a *App) Close() error {
	a.stop()
	a.wg.Wait()
	a.handlers.Wait()
	return a.DB.Close()
}
