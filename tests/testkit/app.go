package testkit

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/app"
	"github.com/latchkey/latchkey/db/dbtest"
)

// Clock is the real time plus whatever a test has added with Advance:
// time still flows (two ceremonies never share a millisecond by accident),
// and a test can jump past a TTL without waiting.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// NewClock returns a clock at the real time.
func NewClock() *Clock { return &Clock{} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Store is where instances keep their data: an SQLite file, or a
// PostgreSQL schema of the test's own (instances on it share nothing
// else, not even a folder).
type Store struct {
	Engine string // "sqlite" or "postgres"
	Path   string // SQLite
	URL    string // PostgreSQL
}

// SQLiteStore returns a new SQLite file in a temporary folder.
func SQLiteStore(tb testing.TB) Store {
	return Store{Engine: "sqlite", Path: filepath.Join(tb.TempDir(), "latchkey.db")}
}

// PostgresStore returns a new, empty schema on the TEST_DATABASE_URL
// server (skipping the test without one, failing it under CI).
func PostgresStore(tb testing.TB) Store {
	tb.Helper()
	return Store{Engine: "postgres", URL: dbtest.PostgresURL(tb)}
}

// Through returns the store reached through proxy instead of directly
// (PostgreSQL only).
func (s Store) Through(tb testing.TB, proxy *Proxy) Store {
	tb.Helper()
	u, err := url.Parse(s.URL)
	if err != nil || s.Engine != "postgres" {
		tb.Fatalf("only a postgres:// store can go through a proxy")
	}
	u.Host = proxy.Addr
	s.URL = u.String()
	return s
}

// Target returns the host:port a PostgreSQL store connects to.
func (s Store) Target(tb testing.TB) string {
	tb.Helper()
	u, err := url.Parse(s.URL)
	if err != nil || u.Hostname() == "" {
		tb.Fatalf("%s must be a postgres://host:port/… URL for this test", dbtest.EnvURL)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5432")
	}
	return u.Host
}

// EachEngine runs test once on SQLite and once on PostgreSQL, as subtests,
// each with a store of its own.
func EachEngine(t *testing.T, test func(t *testing.T, store Store)) {
	t.Run("sqlite", func(t *testing.T) { test(t, SQLiteStore(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, PostgresStore(t)) })
}

// Production, as AppOptions.PollInterval, keeps the app's own poll
// interval (500 ms, or 1 s when the database pushes revocations).
const Production time.Duration = -1

// AppOptions configure StartApp.
type AppOptions struct {
	// Env overrides environment variables (LINK_TTL, …).
	Env map[string]string
	// Store lets instances share one database (default: a new SQLite file).
	Store Store
	// SecretKeys lets instances share (or rotate) keys; default: a fresh one.
	SecretKeys string
	// Clock, if set, replaces the system clock.
	Clock *Clock
	// Mail receives the app's email; default: a new server.
	Mail *MailServer
	// MailLog, if set, replaces SMTP: the development sender writes every
	// email here (benchmarks use io.Discard to leave SMTP out).
	MailLog io.Writer
	// PollInterval for revocations; default 100ms in tests; Production
	// for the app's own default.
	PollInterval time.Duration
	// Listener, if set, is where the app serves (so a test can restart an
	// instance on the same port).
	Listener net.Listener
	// Log, if set, also receives the app's warnings and errors (each line
	// written at once; it must be safe for concurrent use).
	Log io.Writer
}

// App is the real Latchkey running on httptest.
type App struct {
	URL    string // http://localhost:PORT (BASE_URL)
	Addr   string // 127.0.0.1:PORT
	Mail   *MailServer
	Clock  *Clock
	App    *app.App
	Config app.Config
	// Env is the environment the app was configured from (the operator's
	// commands read the same).
	Env    map[string]string
	Server *httptest.Server

	stop sync.Once
}

// NewSecret returns a fresh base64 secret for SECRET_KEYS.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// StartApp starts Latchkey on loopback, reachable as http://localhost:PORT
// (WebAuthn refuses IP addresses as RP IDs), with its mail going to an
// in-process SMTP server. It stops when the test ends.
func StartApp(tb testing.TB, o AppOptions) *App {
	tb.Helper()
	ln := o.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if o.Mail == nil && o.MailLog == nil {
		o.Mail = StartMailServer(tb, false)
	}
	if o.Store == (Store{}) {
		o.Store = SQLiteStore(tb)
	}
	if o.SecretKeys == "" {
		o.SecretKeys = NewSecret()
	}
	switch o.PollInterval {
	case 0:
		o.PollInterval = 100 * time.Millisecond
	case Production:
		o.PollInterval = 0 // the app decides
	}
	base := "http://localhost:" + strconv.Itoa(port)
	env := map[string]string{
		"BASE_URL":     base,
		"LISTEN_ADDR":  ln.Addr().String(),
		"SECRET_KEYS":  o.SecretKeys,
		"SMTP_TIMEOUT": "3s",
	}
	if o.Store.URL != "" {
		env["DATABASE_URL"] = o.Store.URL
	} else {
		env["DATABASE_PATH"] = o.Store.Path
	}
	if o.Mail != nil {
		env["SMTP_URL"] = o.Mail.URL()
	}
	for k, v := range o.Env {
		env[k] = v
	}
	cfg, err := app.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		tb.Fatal(err)
	}
	// Warnings and errors only, unless the test asks for a level or format.
	logger := slog.New(slog.NewTextHandler(testLogWriter{tb, o.Log}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if o.Env["LOG_LEVEL"] != "" || o.Env["LOG_FORMAT"] != "" {
		logger = app.NewLogger(cfg, testLogWriter{tb, o.Log})
	}
	opts := app.Options{
		Logger:       logger,
		PollInterval: o.PollInterval,
		MailLog:      o.MailLog,
	}
	if o.Mail != nil {
		opts.SMTPTLSConfig = o.Mail.TLSConfig
	}
	if o.Clock != nil {
		opts.Clock = o.Clock
	}
	a, err := app.New(context.Background(), cfg, opts)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a.Handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ErrorLog = nil
	srv.Start()
	ta := &App{URL: base, Addr: ln.Addr().String(), Mail: o.Mail, Clock: o.Clock, App: a, Config: cfg, Env: env, Server: srv}
	tb.Cleanup(ta.Stop)
	return ta
}

// Stop stops serving and closes the app (idempotent).
func (a *App) Stop() {
	a.stop.Do(func() {
		a.Server.Close()
		a.App.Close()
	})
}

// Browser returns a new browser for this app.
func (a *App) Browser(tb testing.TB) *Browser { return NewBrowser(tb, a.URL) }

// testLogWriter sends the app's warnings and errors to the test log, while
// the test runs, and to also if set.
type testLogWriter struct {
	tb   testing.TB
	also io.Writer
}

func (w testLogWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	if w.also != nil {
		w.also.Write(p)
	}
	defer func() { recover() }() // a log line after the test ended is dropped
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
