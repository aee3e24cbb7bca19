package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/admin"
	"github.com/latchkey/latchkey/tests/testkit"
)

// TestFirstRunNeedsNoConfiguration starts Latchkey the way `go run .` does
// on a fresh checkout, with nothing configured but a free port: it creates
// its database and secret, prints the emailed link to the log, and shuts
// down cleanly on request.
func TestFirstRunNeedsNoConfiguration(t *testing.T) {
	t.Chdir(t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{"LISTEN_ADDR": addr}

	ctx, cancel := context.WithCancel(context.Background())
	var stderr testkit.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, &stderr) }()

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app did not start: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	var healthOut testkit.SyncBuffer
	if err := run(ctx, []string{"healthcheck"}, func(k string) string { return env[k] }, &healthOut, &healthOut); err != nil {
		t.Errorf("latchkey healthcheck on the running app: %v\n%s", err, healthOut.String())
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/signin/email", strings.NewReader(url.Values{"email": {"first@example.com"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /signin/email = %d", resp.StatusCode)
	}

	log := stderr.String()
	if !strings.Contains(log, "DEVELOPMENT MAIL SENDER") ||
		!regexp.MustCompile(`http://localhost:8080/signin/link\?token=[A-Za-z0-9_-]+`).MatchString(log) {
		t.Errorf("the log does not show the emailed link:\n%s", log)
	}
	for path, mode := range map[string]os.FileMode{"data/latchkey.db": 0o600, "data/secret_keys": 0o600} {
		info, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", path, info.Mode().Perm(), mode)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after shutdown", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the app did not shut down")
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Error("no clean-shutdown message")
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	var out, errOut testkit.SyncBuffer
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, name := range []string{"LISTEN_ADDR", "BASE_URL", "DATABASE_PATH", "SMTP_URL", "MAIL_FROM", "SECRET_KEYS",
		"TRUSTED_PROXIES", "ACCESS_TOKEN_TTL", "SESSION_IDLE_TTL", "SESSION_MAX_TTL", "LINK_TTL", "REAUTH_TTL"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("-h does not mention %s", name)
		}
	}
	if errOut.String() != "" {
		t.Errorf("-h wrote to stderr: %q", errOut.String())
	}
}

// TestUsage: -h prints to stdout and exits 0, for every command; an
// argument or flag Latchkey does not know is bad usage (exit 2, usage on
// stderr), and never starts the server.
func TestUsage(t *testing.T) {
	t.Chdir(t.TempDir())
	// Were the server started, it would listen here, on a free port.
	env := map[string]string{"LISTEN_ADDR": freeAddr(t)}
	getenv := func(k string) string { return env[k] }
	run := func(args ...string) (stdout, stderr string, exit int) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out, errOut testkit.SyncBuffer
		done := make(chan error, 1)
		go func() { done <- run(ctx, args, getenv, &out, &errOut) }()
		select {
		case err := <-done:
			return out.String(), errOut.String(), admin.ExitCode(err)
		case <-time.After(5 * time.Second):
			cancel()
			<-done
			t.Fatalf("latchkey %q did not return: it started the server\n%s", args, errOut.String())
			return
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"admin", "-h"}, {"admin", "users", "-h"}, {"admin", "delete", "a@example.com", "-h"},
		{"admin", "oidc-client", "-h"}, {"migrate-db", "-h"}, {"healthcheck", "-h"}} {
		out, stderr, exit := run(args...)
		if exit != 0 || !strings.HasPrefix(out, "Usage: latchkey") || stderr != "" {
			t.Errorf("latchkey %q: exit %d, stderr %q, stdout:\n%s\nwant exit 0 and the usage on stdout alone", args, exit, stderr, out)
		}
	}
	for _, args := range [][]string{{"bogus"}, {"serve"}, {"--bogus"}, {"admin"}, {"admin", "bogus"}, {"admin", "users", "--bogus"},
		{"migrate-db", "--bogus"}, {"migrate-db", "--to", "postgres://localhost/db", "extra"}, {"healthcheck", "extra"}, {"healthcheck", "--bogus"}} {
		out, stderr, exit := run(args...)
		if exit != 2 || !strings.Contains(stderr, "Usage: latchkey") || out != "" {
			t.Errorf("latchkey %q: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and the usage on stderr", args, exit, out, stderr)
		}
	}
	if entries, _ := os.ReadDir("."); len(entries) != 0 {
		t.Errorf("usage mistakes left %v behind", entries)
	}
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestHealthcheck: `latchkey healthcheck` exits 0 when /healthz on its
// LISTEN_ADDR answers 200 within 2 seconds, and 1 when it answers
// anything else, too slowly, or nothing listens there. A LISTEN_ADDR on
// every address (":PORT", "0.0.0.0:PORT") is checked on loopback.
func TestHealthcheck(t *testing.T) {
	var status atomic.Int32
	var delay atomic.Int64
	var paths testkit.SyncBuffer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(&paths, r.Method, r.URL.Path)
		select {
		case <-time.After(time.Duration(delay.Load())):
		case <-r.Context().Done():
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	check := func(listen string) (exit int, took time.Duration, stderr string) {
		t.Helper()
		var out, errOut testkit.SyncBuffer
		start := time.Now()
		err := run(context.Background(), []string{"healthcheck"}, func(k string) string {
			return map[string]string{"LISTEN_ADDR": listen}[k]
		}, &out, &errOut)
		if err != nil {
			fmt.Fprint(&errOut, err)
		}
		return admin.ExitCode(err), time.Since(start), errOut.String()
	}
	for _, tc := range []struct {
		name   string
		listen string
		status int
		delay  time.Duration
		want   int
	}{
		{"healthy", "127.0.0.1:" + port, http.StatusOK, 0, 0},
		{"every address", ":" + port, http.StatusOK, 0, 0},
		{"every IPv4 address", "0.0.0.0:" + port, http.StatusOK, 0, 0},
		{"healthy within 2 s", "127.0.0.1:" + port, http.StatusOK, time.Second, 0},
		{"database away", "127.0.0.1:" + port, http.StatusServiceUnavailable, 0, 1},
		{"a redirect", "127.0.0.1:" + port, http.StatusFound, 0, 1},
		{"too slow", "127.0.0.1:" + port, http.StatusOK, 5 * time.Second, 1},
		{"nothing listening", freeAddr(t), http.StatusOK, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status.Store(int32(tc.status))
			delay.Store(int64(tc.delay))
			exit, took, stderr := check(tc.listen)
			if exit != tc.want {
				t.Errorf("exit %d, want %d (%s)", exit, tc.want, stderr)
			}
			if took > 3*time.Second {
				t.Errorf("took %v, want at most about 2 s", took)
			}
		})
	}
	if got := paths.String(); !strings.HasPrefix(got, "GET /healthz\n") || strings.Count(got, "GET /healthz\n") != strings.Count(got, "\n") {
		t.Errorf("the checks asked for:\n%s", got)
	}
}

func TestBadConfigurationIsExplained(t *testing.T) {
	var out testkit.SyncBuffer
	env := map[string]string{"BASE_URL": "http://example.com", "LINK_TTL": "soon", "SECRET_KEYS": "c2hvcnQ=", "MAIL_FROM": "not an address"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, &out)
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{"BASE_URL", "localhost only", "LINK_TTL", "SECRET_KEYS", "at least 32", "MAIL_FROM"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

// TestDatabaseAndMailSettingsAreChecked: PostgreSQL and SQLite are not
// both configured; PostgreSQL needs shared secrets; a password in
// DATABASE_URL appears in no message, whether the URL is malformed or the
// server unreachable; and an https deployment without SMTP refuses to
// write working sign-in links to its log unless told to.
func TestDatabaseAndMailSettingsAreChecked(t *testing.T) {
	t.Chdir(t.TempDir())
	secret := testkit.NewSecret()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"both databases", map[string]string{"DATABASE_PATH": "x.db", "DATABASE_URL": "postgres://u:s3cretpw@localhost/db", "SECRET_KEYS": secret},
			[]string{"DATABASE_URL", "not both"}},
		{"no shared secret", map[string]string{"DATABASE_URL": "postgres://u:s3cretpw@localhost/db"},
			[]string{"SECRET_KEYS", "required with DATABASE_URL"}},
		{"not a postgres URL", map[string]string{"DATABASE_URL": "mysql://u:s3cretpw@localhost/db", "SECRET_KEYS": secret},
			[]string{"DATABASE_URL", "postgres://"}},
		{"malformed", map[string]string{"DATABASE_URL": "postgres://u:s3cretpw@localhost:notaport/db", "SECRET_KEYS": secret},
			[]string{"DATABASE_URL", "not a valid"}},
		{"unreachable", map[string]string{"DATABASE_URL": "postgres://u:s3cretpw@127.0.0.1:1/db?connect_timeout=2", "SECRET_KEYS": secret},
			[]string{"PostgreSQL"}},
		{"https without SMTP", map[string]string{"BASE_URL": "https://login.example.com"},
			[]string{"SMTP_URL", "MAIL_TO_LOG=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out testkit.SyncBuffer
			err := run(context.Background(), nil, func(k string) string { return tc.env[k] }, io.Discard, &out)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q: %v", want, err)
				}
			}
			if strings.Contains(err.Error()+out.String(), "s3cretpw") {
				t.Errorf("the database password appears in the output: %v\n%s", err, out.String())
			}
		})
	}
	// With the opt-in, an https deployment writes emails to its log.
	env := map[string]string{"BASE_URL": "https://login.example.com", "MAIL_TO_LOG": "1", "LISTEN_ADDR": "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	var out testkit.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, &out) }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "listening"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("MAIL_TO_LOG=1 did not start:\n%s", out.String())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("with MAIL_TO_LOG=1: %v", err)
	}
}
