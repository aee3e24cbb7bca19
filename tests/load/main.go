//go:build load

// Command load builds Latchkey, starts it on loopback, and measures it
// under load and faults, bounded in time:
//
//   - pages: GET / signed in against signed out, in interleaved rounds,
//     printing the throughput ratio (median of the rounds);
//   - mixed: a mixed load of every kind of request from many clients,
//     printing requests per second, p50/p99 latency and errors per kind;
//   - fault: the same load while the app is killed with SIGKILL and
//     restarted on the same database, then integrity checks;
//   - smtp: the mail server stops answering, then comes back;
//   - pg-mixed: the mixed load on one instance on PostgreSQL (beside the
//     SQLite run, on the same machine, in the same run);
//   - pg-cluster: the mixed load spread over three instances that share
//     one PostgreSQL database and nothing else;
//   - pg-fault: three instances under load; one is killed with SIGKILL
//     and PostgreSQL itself is restarted mid-load; then the same checks
//     as the fault run.
//
// The PostgreSQL runs need a server: -pg postgres://… (default
// $TEST_DATABASE_URL); each run gets a schema of its own, dropped after.
// pg-fault restarts the server with -pg-restart (default: pg_ctlcluster
// of the local cluster), so it needs a local server it may restart.
//
// It prints the peak resident memory of the app across all of it, and ends
// with a graceful shutdown (SIGTERM). Run it from the repository root:
//
//	go run -tags load ./tests/load
//	TEST_DATABASE_URL=postgres://localhost/test go run -tags load ./tests/load -phases pg-mixed,pg-cluster,pg-fault
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/latchkey/latchkey/tests/testkit"
)

var (
	duration  = flag.Duration("duration", 60*time.Second, "length of the mixed load")
	clients   = flag.Int("clients", 64, "concurrent clients in the mixed load")
	rounds    = flag.Int("rounds", 15, "rounds of the signed-in/signed-out page comparison")
	roundTime = flag.Duration("round", 2*time.Second, "length of each side of a page round")
	faultTime = flag.Duration("fault-duration", 30*time.Second, "length of the load during the fault run")
	phases    = flag.String("phases", "pages,mixed,fault,smtp,pg-mixed,pg-cluster,pg-fault", "which runs to do")
	pgURL     = flag.String("pg", os.Getenv("TEST_DATABASE_URL"), "PostgreSQL server for the pg-* runs (a schema of its own each)")
	pgRestart = flag.String("pg-restart", "", "command that restarts PostgreSQL in pg-fault (default: pg_ctlcluster … restart of the local cluster)")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// app is one Latchkey process under test.
type app struct {
	name                                 string
	bin, dir, addr, base, secret, dbPath string
	dbURL                                string // PostgreSQL instead of dbPath
	mail                                 *testkit.MailServer
	cmd                                  *exec.Cmd
	log                                  *os.File
	peakRSS                              atomic.Int64 // kB
}

// freeAddr returns a free loopback address.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func run() error {
	dir, err := os.MkdirTemp("", "latchkey-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "latchkey")
	fmt.Println("building the app…")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	mail, err := testkit.NewMailServer(false)
	if err != nil {
		return err
	}
	defer mail.Close()
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	a := &app{name: "sqlite", bin: bin, dir: dir, addr: addr, base: "http://localhost:" + strings.Split(addr, ":")[1],
		secret: testkit.NewSecret(), dbPath: filepath.Join(dir, "latchkey.db"), mail: mail}
	started := false
	failed := false
	for _, phase := range strings.Split(*phases, ",") {
		if !strings.HasPrefix(phase, "pg-") && !started {
			if err := a.start(); err != nil {
				return err
			}
			stopSampling := a.sampleRSS()
			defer stopSampling()
			started = true
		}
		var err error
		switch phase {
		case "pages":
			err = pages(a)
		case "mixed":
			err = mixed([]*app{a})
		case "fault":
			err = fault(a)
		case "smtp":
			err = smtpOutage(a)
		case "pg-mixed", "pg-cluster", "pg-fault":
			err = postgresRun(a, phase)
		default:
			err = fmt.Errorf("unknown phase %q", phase)
		}
		if err != nil {
			fmt.Printf("FAIL %s: %v\n", phase, err)
			failed = true
		}
	}
	if started {
		if err := a.shutdown(false); err != nil {
			fmt.Println("FAIL shutdown:", err)
			failed = true
		}
	}
	fmt.Printf("\npeak resident memory of the app: %.1f MB (limit 64 MB)\n", float64(a.peakRSS.Load())/1024)
	if a.peakRSS.Load() >= 64*1024 {
		failed = true
		fmt.Println("FAIL memory")
	}
	if failed {
		return errors.New("some checks failed")
	}
	fmt.Println("all checks passed")
	return nil
}

// start runs the app and waits until it answers.
func (a *app) start() error {
	log, err := os.OpenFile(filepath.Join(a.dir, a.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	a.log = log
	a.cmd = exec.Command(a.bin)
	database := "DATABASE_PATH=" + a.dbPath
	if a.dbURL != "" {
		database = "DATABASE_URL=" + a.dbURL
	}
	a.cmd.Env = append(os.Environ(),
		"LISTEN_ADDR="+a.addr,
		"BASE_URL="+a.base,
		database,
		"SECRET_KEYS="+a.secret,
		"SMTP_URL="+a.mail.URL(),
		"SMTP_TIMEOUT=3s",
		// The load measures capacity, not the limits, which would (rightly)
		// stop one machine's many clients.
		"RATE_LIMIT_SIGNIN=1000000/1s",
		"RATE_LIMIT_EMAIL=1000000/1s",
		"LOG_LEVEL=warn",
	)
	a.cmd.Stdout, a.cmd.Stderr = log, log
	if err := a.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + a.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the app did not become healthy")
}

// sampleRSS records the app's peak resident set size (VmHWM, the kernel's
// high-water mark, survives between samples).
func (a *app) sampleRSS() func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if a.cmd == nil || a.cmd.Process == nil {
				continue
			}
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
			if err != nil {
				continue
			}
			if m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b); m != nil {
				kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
				for {
					old := a.peakRSS.Load()
					if kb <= old || a.peakRSS.CompareAndSwap(old, kb) {
						break
					}
				}
			}
		}
	}()
	return func() { close(done) }
}

// kill ends the app abruptly, as a crash or an OOM kill would.
func (a *app) kill() error {
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	a.cmd.Wait()
	a.log.Close()
	return nil
}

// shutdown asks the app to stop (SIGTERM) and checks that it finished
// cleanly and reported no SQLITE_BUSY, nor (unless outages were part of
// its run) any other error.
func (a *app) shutdown(outages bool) error {
	fmt.Printf("\n== graceful shutdown of %s (SIGTERM)\n", a.name)
	start := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("exit: %w", err)
		}
	case <-time.After(20 * time.Second):
		a.cmd.Process.Kill()
		return errors.New("did not stop within 20 s")
	}
	a.log.Close()
	log, _ := os.ReadFile(filepath.Join(a.dir, a.name+".log"))
	// Every SQLITE_BUSY that reaches the app becomes an internal error,
	// logged with SQLite's message.
	busy := len(regexp.MustCompile(`SQLITE_BUSY|database is locked`).FindAll(log, -1))
	fmt.Printf("stopped cleanly (exit status 0) in %v; SQLITE_BUSY errors over all runs: %d\n", time.Since(start).Round(time.Millisecond), busy)
	if busy != 0 {
		return errors.New("SQLITE_BUSY errors")
	}
	// The SMTP outage logs its failed sends; anything else at ERROR is a
	// finding.
	var unexpected []string
	for _, line := range regexp.MustCompile(`level=ERROR.*`).FindAll(log, -1) {
		if !strings.Contains(string(line), `msg="sending email failed"`) {
			unexpected = append(unexpected, string(line))
		}
	}
	if outages {
		fmt.Printf("%d errors logged, during the outage it was put through\n", len(unexpected))
		return nil
	}
	if len(unexpected) > 0 {
		return fmt.Errorf("errors in the app log: %q", unexpected[:min(5, len(unexpected))])
	}
	return nil
}

// --- a client: one person with a browser -------------------------------

type client struct {
	a       *app
	http    *http.Client
	jar     *cookiejar.Jar
	email   string
	passkey *testkit.Passkey
	// signedUp is set once the account exists; signedIn while the client
	// holds a session.
	signedUp, signedIn bool
}

var transport = &http.Transport{
	MaxIdleConns:        1024,
	MaxIdleConnsPerHost: 1024,
	IdleConnTimeout:     time.Minute,
}

var clientSeq atomic.Int64

func newClient(a *app) *client {
	jar, _ := cookiejar.New(nil)
	// BASE_URL names localhost; dial the app's IPv4 address directly.
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := transport.Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, "tcp", a.addr)
	}
	return &client{
		a:     a,
		jar:   jar,
		email: fmt.Sprintf("load%d-%d@example.com", clientSeq.Add(1), rand.Int64N(1e9)),
		http: &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// do sends a request the way a browser on the site would.
func (c *client) do(method, path, ctype, body string) (int, string, error) {
	req, err := http.NewRequest(method, c.a.base+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if method == http.MethodPost {
		req.Header.Set("Origin", c.a.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("User-Agent", testkit.ChromeUA)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (c *client) form(path string, v url.Values) (int, string, error) {
	return c.do(http.MethodPost, path, "application/x-www-form-urlencoded", v.Encode())
}

func (c *client) json(path, body string) (int, string, error) {
	return c.do(http.MethodPost, path, "application/json", body)
}

type unexpected struct {
	what string
	code int
	body string
}

func (e *unexpected) Error() string {
	if len(e.body) > 200 {
		e.body = e.body[:200]
	}
	return fmt.Sprintf("%s: status %d: %s", e.what, e.code, e.body)
}

func expect(what string, want, code int, body string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if code != want {
		return &unexpected{what, code, body}
	}
	return nil
}

var tokenRE = regexp.MustCompile(`token=([A-Za-z0-9_-]+)`)

// requestLink asks for a link and returns its token once the email has
// arrived. Only the HTTP request is timed, not the wait for the email.
func (c *client) requestLink(m *metrics) (string, error) {
	before := len(c.a.mail.MailsTo(c.email))
	start := time.Now()
	code, body, err := c.form("/signin/email", url.Values{"email": {c.email}})
	m.record("link request", start, expect("link request", http.StatusSeeOther, code, body, err))
	if err := expect("link request", http.StatusSeeOther, code, body, err); err != nil {
		return "", err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if mails := c.a.mail.MailsTo(c.email); len(mails) > before {
			for _, mail := range mails[before:] {
				if t := tokenRE.FindStringSubmatch(mail.Text); t != nil {
					return t[1], nil
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "", errors.New("no email arrived")
}

// linkSignIn signs in (or up) by email link.
func (c *client) linkSignIn(m *metrics) error {
	tok, err := c.requestLink(m)
	if err != nil {
		return err
	}
	kind := "link sign-in"
	if !c.signedUp {
		kind = "link sign-up"
	}
	start := time.Now()
	code, body, err := c.form("/signin/link", url.Values{"token": {tok}})
	err = expect(kind, http.StatusSeeOther, code, body, err)
	m.record(kind, start, err)
	if err == nil {
		c.signedUp, c.signedIn = true, true
	}
	return err
}

func (c *client) registerPasskey(m *metrics) error {
	start := time.Now()
	code, body, err := c.json("/account/passkeys/begin", "{}")
	if err := expect("passkey registration", http.StatusOK, code, body, err); err != nil {
		m.record("passkey registration", start, err)
		return err
	}
	pk, err := testkit.MakePasskey(c.a.base)
	if err != nil {
		return err
	}
	resp, err := pk.Attestation(body)
	if err != nil {
		return err
	}
	code, body, err = c.json("/account/passkeys/finish", resp)
	err = expect("passkey registration", http.StatusOK, code, body, err)
	m.record("passkey registration", start, err)
	if err == nil {
		c.passkey = pk
	}
	return err
}

func (c *client) passkeySignIn(m *metrics) error {
	start := time.Now()
	code, body, err := c.json("/signin/passkey/begin", "{}")
	if err := expect("passkey sign-in", http.StatusOK, code, body, err); err != nil {
		m.record("passkey sign-in", start, err)
		return err
	}
	resp, err := c.passkey.Assertion(body)
	if err != nil {
		return err
	}
	code, body, err = c.json("/signin/passkey/finish", resp)
	err = expect("passkey sign-in", http.StatusOK, code, body, err)
	m.record("passkey sign-in", start, err)
	if err == nil {
		c.signedIn = true
	}
	return err
}

func (c *client) pageView(m *metrics) error {
	start := time.Now()
	path := "/"
	if rand.IntN(3) == 0 {
		path = "/account"
	}
	code, body, err := c.do(http.MethodGet, path, "", "")
	err = expect("page view", http.StatusOK, code, body, err)
	// (Signed in, every page's header has the sign-out button, in any
	// language.)
	if err == nil && path == "/" && !strings.Contains(body, `action="/signout"`) {
		err = errors.New("page view: signed out unexpectedly")
	}
	m.record("page view", start, err)
	return err
}

// refresh drops the access cookie (as a browser does when it expires), so
// the next request must be refreshed silently.
func (c *client) refresh(m *metrics) error {
	u, _ := url.Parse(c.a.base)
	c.jar.SetCookies(u, []*http.Cookie{{Name: "__Host-at", Value: "", Path: "/", MaxAge: -1}})
	start := time.Now()
	code, body, err := c.do(http.MethodGet, "/account", "", "")
	err = expect("refresh", http.StatusOK, code, body, err)
	if err == nil && !strings.Contains(body, c.email) {
		err = errors.New("refresh: not signed in")
	}
	m.record("refresh", start, err)
	return err
}

func (c *client) signOut(m *metrics) error {
	start := time.Now()
	code, body, err := c.form("/signout", nil)
	err = expect("sign-out", http.StatusSeeOther, code, body, err)
	m.record("sign-out", start, err)
	if err == nil {
		c.signedIn = false
	}
	return err
}

// step does one thing a person would do next.
func (c *client) step(m *metrics) error {
	if !c.signedIn {
		if c.passkey != nil && rand.IntN(2) == 0 {
			return c.passkeySignIn(m)
		}
		return c.linkSignIn(m)
	}
	switch r := rand.IntN(100); {
	case r < 60:
		return c.pageView(m)
	case r < 72:
		return c.refresh(m)
	case r < 80:
		if c.passkey == nil {
			return c.registerPasskey(m)
		}
		return c.passkeySignIn(m)
	case r < 88:
		// A magic-link request for someone else's new address.
		other := &client{a: c.a, http: c.http, email: fmt.Sprintf("visitor%d@example.com", rand.Int64N(1e12))}
		start := time.Now()
		code, body, err := other.form("/signin/email", url.Values{"email": {other.email}})
		err = expect("link request", http.StatusSeeOther, code, body, err)
		m.record("link request", start, err)
		return err
	default:
		return c.signOut(m)
	}
}

// --- metrics -------------------------------------------------------------

type metrics struct {
	mu        sync.Mutex
	latencies map[string][]time.Duration
	errors    map[string]int
	samples   []string
}

func newMetrics() *metrics {
	return &metrics{latencies: map[string][]time.Duration{}, errors: map[string]int{}}
}

func (m *metrics) record(kind string, start time.Time, err error) {
	d := time.Since(start)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.errors[kind]++
		if len(m.samples) < 5 {
			m.samples = append(m.samples, err.Error())
		}
		return
	}
	m.latencies[kind] = append(m.latencies[kind], d)
}

func (m *metrics) print(elapsed time.Duration) (errs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var kinds []string
	for k := range m.latencies {
		kinds = append(kinds, k)
	}
	for k := range m.errors {
		if _, ok := m.latencies[k]; !ok {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	fmt.Printf("%-22s %9s %9s %9s %7s\n", "kind", "req/s", "p50", "p99", "errors")
	total := 0
	for _, k := range kinds {
		l := m.latencies[k]
		slices.Sort(l)
		p := func(q float64) time.Duration {
			if len(l) == 0 {
				return 0
			}
			return l[min(len(l)-1, int(q*float64(len(l))))]
		}
		total += len(l)
		errs += m.errors[k]
		fmt.Printf("%-22s %9.1f %9v %9v %7d\n", k, float64(len(l))/elapsed.Seconds(),
			p(0.5).Round(10*time.Microsecond), p(0.99).Round(10*time.Microsecond), m.errors[k])
	}
	fmt.Printf("%-22s %9.1f %29d\n", "all", float64(total)/elapsed.Seconds(), errs)
	for _, s := range m.samples {
		fmt.Println("  e.g.", s)
	}
	return errs
}

// load runs n clients doing steps until the context ends, spread over the
// instances, and returns them (with what they did: signed up, passkey).
func load(ctx context.Context, apps []*app, n int, m *metrics) []*client {
	var wg sync.WaitGroup
	cs := make([]*client, n)
	for i := range cs {
		cs[i] = newClient(apps[i%len(apps)])
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := cs[i].step(m); err != nil && ctx.Err() == nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	return cs
}

// --- the runs ------------------------------------------------------------

// pages compares GET / signed in and signed out, in interleaved rounds.
func pages(a *app) error {
	fmt.Println("\n== signed-in vs signed-out GET /")
	c := newClient(a)
	if err := c.linkSignIn(newMetrics()); err != nil {
		return err
	}
	u, _ := url.Parse(a.base)
	var cookie []string
	for _, ck := range c.jar.Cookies(u) {
		cookie = append(cookie, ck.Name+"="+ck.Value)
	}
	signedIn := strings.Join(cookie, "; ")
	measure := wrkMeasure
	tool := "wrk (2 threads, 32 connections)"
	if _, err := exec.LookPath("wrk"); err != nil {
		measure = goMeasure
		tool = "a Go client (32 connections); install wrk for a leaner load generator"
	}
	fmt.Printf("load generator: %s, %d rounds of %v per side, order alternating\n", tool, *rounds, *roundTime)
	// The control is a signed-out request carrying as many cookie bytes
	// (of a cookie the app ignores) as the signed-in one: it separates
	// what the app does for a session from what the bytes cost on the way.
	control := "x=" + strings.Repeat("a", len(signedIn)-2)
	var ratios, controls, bytesOnly, cpuRatios, cpuControls []float64
	for r := range *rounds {
		order := []string{"", signedIn, control}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		rps := map[string]float64{}
		cpu := map[string]float64{}
		for _, cookie := range order {
			before := a.cpuTime()
			v, n, err := measure(a, cookie)
			if err != nil {
				return err
			}
			rps[cookie] = v
			cpu[cookie] = float64(a.cpuTime()-before) / float64(n)
		}
		out, in, ctl := rps[""], rps[signedIn], rps[control]
		ratios = append(ratios, in/out)
		controls = append(controls, in/ctl)
		bytesOnly = append(bytesOnly, ctl/out)
		cpuRatios = append(cpuRatios, cpu[""]/cpu[signedIn])
		cpuControls = append(cpuControls, cpu[control]/cpu[signedIn])
		fmt.Printf("round %2d: signed out %6.0f req/s, signed in %6.0f req/s (ratio %.3f; app CPU per request %.1f/%.1f µs, ratio %.3f); with %d junk cookie bytes %6.0f req/s (signed in / that %.3f)\n",
			r+1, out, in, in/out, cpu[""], cpu[signedIn], cpu[""]/cpu[signedIn], len(signedIn), ctl, in/ctl)
	}
	slices.Sort(controls)
	slices.Sort(bytesOnly)
	slices.Sort(cpuRatios)
	fmt.Printf("median signed-in / signed-out-with-as-many-cookie-bytes throughput: %.3f (what Latchkey does for a session)\n", controls[len(controls)/2])
	fmt.Printf("median signed-out-with-%d-junk-cookie-bytes / signed-out throughput: %.3f (what the bytes alone cost)\n", len(signedIn), bytesOnly[len(bytesOnly)/2])
	slices.Sort(cpuControls)
	fmt.Printf("median app CPU per request, signed-out / signed-in: %.3f; signed-out with as many cookie bytes / signed-in: %.3f\n",
		cpuRatios[len(cpuRatios)/2], cpuControls[len(cpuControls)/2])
	slices.Sort(ratios)
	median := ratios[len(ratios)/2]
	fmt.Printf("median ratio signed-in/signed-out: %.3f (target ≥ 0.95)\n", median)
	if median < 0.95 {
		return fmt.Errorf("ratio %.3f below 0.95", median)
	}
	return nil
}

var (
	wrkRPS   = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTotal = regexp.MustCompile(`(\d+) requests in`)
)

func wrkMeasure(a *app, cookie string) (float64, int, error) {
	args := []string{"-t2", "-c32", "-d" + strconv.Itoa(int(roundTime.Seconds())) + "s", "http://" + a.addr + "/"}
	if cookie != "" {
		args = append([]string{"-H", "Cookie: " + cookie}, args...)
	}
	out, err := exec.Command("wrk", args...).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %w: %s", err, out)
	}
	if strings.Contains(string(out), "Non-2xx") {
		return 0, 0, fmt.Errorf("wrk saw errors: %s", out)
	}
	m, t := wrkRPS.FindSubmatch(out), wrkTotal.FindSubmatch(out)
	if m == nil || t == nil {
		return 0, 0, fmt.Errorf("wrk: no rate in %s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	n, _ := strconv.Atoi(string(t[1]))
	return rps, n, nil
}

// cpuTime returns the app's user+system CPU time so far, in microseconds.
func (a *app) cpuTime() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return (utime + stime) * 1e6 / 100 // clock ticks of 10 ms
}

func goMeasure(a *app, cookie string) (float64, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), *roundTime)
	defer cancel()
	var n, bad atomic.Int64
	var wg sync.WaitGroup
	tr := transport.Clone()
	client := &http.Client{Transport: tr}
	for range 32 {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequest(http.MethodGet, "http://"+a.addr+"/", nil)
				if cookie != "" {
					req.Header.Set("Cookie", cookie)
				}
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad.Add(1)
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if bad.Load() > 0 {
		return 0, 0, fmt.Errorf("%d failed page views", bad.Load())
	}
	return float64(n.Load()) / roundTime.Seconds(), int(n.Load()), nil
}

// mixed runs the mixed load on the instances; no request may fail.
func mixed(apps []*app) error {
	fmt.Printf("\n== mixed load on %s: %d clients for %v\n", describe(apps), *clients, *duration)
	m := newMetrics()
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	start := time.Now()
	load(ctx, apps, *clients, m)
	if errs := m.print(time.Since(start)); errs > 0 {
		return fmt.Errorf("%d failed requests", errs)
	}
	return nil
}

// fault kills the app with SIGKILL in the middle of the load, restarts it
// on the same database, and checks that nothing is broken or half-made.
func fault(a *app) error {
	fmt.Printf("\n== fault run: %d clients for %v, SIGKILL at a third of it, restart\n", *clients/2, *faultTime)
	m := newMetrics()
	ctx, cancel := context.WithTimeout(context.Background(), *faultTime)
	defer cancel()
	var restartErr error
	var down time.Duration
	go func() {
		time.Sleep(*faultTime / 3)
		t := time.Now()
		if restartErr = a.kill(); restartErr != nil {
			return
		}
		restartErr = a.start()
		down = time.Since(t)
	}()
	start := time.Now()
	cs := load(ctx, []*app{a}, *clients/2, m)
	errs := m.print(time.Since(start))
	if restartErr != nil {
		return fmt.Errorf("restart: %w", restartErr)
	}
	fmt.Printf("the app was down %v; %d requests failed meanwhile (expected: the server was gone)\n", down.Round(time.Millisecond), errs)

	db, err := sql.Open("sqlite", "file:"+a.dbPath+"?_pragma=busy_timeout(5000)&mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var integrity string
	var noEmail, orphans, users int
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil {
		return err
	}
	db.QueryRow("SELECT count(*) FROM users WHERE email IS NULL AND deleted_at IS NULL").Scan(&noEmail)
	db.QueryRow(`SELECT count(*) FROM credentials LEFT JOIN users ON users.id = credentials.user_id
		WHERE users.id IS NULL OR users.deleted_at IS NOT NULL`).Scan(&orphans)
	db.QueryRow("SELECT count(*) FROM users WHERE deleted_at IS NULL").Scan(&users)
	fmt.Printf("integrity_check: %s; users without an email: %d; passkeys without a user: %d; users: %d\n", integrity, noEmail, orphans, users)
	if integrity != "ok" || noEmail != 0 || orphans != 0 {
		return errors.New("the database is damaged or holds half-made records")
	}
	return signInAgain([]*app{a}, cs)
}

// signInAgain checks that every account that completed sign-up can still
// sign in by link, and every passkey that was registered still signs in.
func signInAgain(apps []*app, cs []*client) error {
	var signedUp []*client
	for _, c := range cs {
		if c.signedUp {
			signedUp = append(signedUp, c)
		}
	}
	var failed, passkeys atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, c := range signedUp {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			fresh := newClient(apps[rand.IntN(len(apps))])
			fresh.email, fresh.signedUp, fresh.passkey = c.email, true, c.passkey
			if err := fresh.linkSignIn(newMetrics()); err != nil {
				failed.Add(1)
				fmt.Println("  cannot sign in:", c.email, err)
			}
			if fresh.passkey != nil {
				if err := fresh.passkeySignIn(newMetrics()); err != nil {
					failed.Add(1)
					fmt.Println("  passkey cannot sign in:", c.email, err)
				}
				passkeys.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("%d of %d accounts that completed sign-up signed in again (%d of them with their passkey too); failures: %d\n",
		len(signedUp)-int(failed.Load()), len(signedUp), passkeys.Load(), failed.Load())
	if failed.Load() > 0 {
		return errors.New("accounts lost")
	}
	return nil
}

// smtpOutage stops the mail server answering: link requests must fail
// with the clear error page within SMTP_TIMEOUT and create nothing; then
// they must work again.
func smtpOutage(a *app) error {
	fmt.Println("\n== SMTP outage")
	a.mail.SetMode(testkit.MailSilent)
	var wg sync.WaitGroup
	type result struct {
		code int
		body string
		took time.Duration
		err  error
	}
	results := make([]result, 8)
	emails := make([]string, len(results))
	for i := range results {
		emails[i] = fmt.Sprintf("outage%d-%d@example.com", i, rand.Int64N(1e9))
		wg.Go(func() {
			c := newClient(a)
			start := time.Now()
			code, body, err := c.form("/signin/email", url.Values{"email": {emails[i]}})
			results[i] = result{code, body, time.Since(start), err}
		})
	}
	wg.Wait()
	var worst time.Duration
	for _, r := range results {
		worst = max(worst, r.took)
		if r.err != nil || r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "couldn&#39;t send the email") {
			return fmt.Errorf("during the outage a link request got %d %v", r.code, r.err)
		}
	}
	fmt.Printf("%d link requests during the outage: all 503 with the \"couldn't send the email\" page, slowest %v (SMTP_TIMEOUT 3s)\n",
		len(results), worst.Round(time.Millisecond))
	if worst > 4*time.Second {
		return errors.New("the error page came later than the timeout")
	}

	db, err := sql.Open("sqlite", "file:"+a.dbPath+"?_pragma=busy_timeout(5000)&mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var made int
	if err := db.QueryRow(`SELECT count(*) FROM users WHERE email IN (?, ?, ?, ?, ?, ?, ?, ?)`,
		emails[0], emails[1], emails[2], emails[3], emails[4], emails[5], emails[6], emails[7]).Scan(&made); err != nil {
		return err
	}
	if made != 0 {
		return fmt.Errorf("%d accounts were created during the outage", made)
	}
	a.mail.SetMode(testkit.MailOK)
	for _, email := range emails {
		c := newClient(a)
		c.email = email
		if err := c.linkSignIn(newMetrics()); err != nil {
			return fmt.Errorf("after the outage: %w", err)
		}
	}
	fmt.Printf("after the outage the same %d addresses signed up normally (nothing was left half-made in between)\n", len(emails))
	return nil
}

// describe names the instances of a run.
func describe(apps []*app) string {
	if len(apps) == 1 {
		return apps[0].name
	}
	return fmt.Sprintf("%d instances of %s", len(apps), strings.TrimSuffix(apps[0].name, "-1"))
}

// --- PostgreSQL ------------------------------------------------------------

// postgresRun runs one of the pg-* phases on a schema of its own, with
// the same binary, mail server and secret as the SQLite runs.
func postgresRun(base *app, phase string) error {
	if *pgURL == "" {
		return errors.New("no PostgreSQL server: give -pg postgres://… or set TEST_DATABASE_URL")
	}
	url, drop, err := freshSchema(*pgURL, "latchkey_load_"+strings.ReplaceAll(phase, "-", "_"))
	if err != nil {
		return err
	}
	defer drop()
	n := 3
	if phase == "pg-mixed" {
		n = 1
	}
	apps := make([]*app, n)
	for i := range apps {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		apps[i] = &app{name: fmt.Sprintf("%s-%d", phase, i+1), bin: base.bin, dir: base.dir, addr: addr,
			base: "http://localhost:" + strings.Split(addr, ":")[1], secret: base.secret, dbURL: url, mail: base.mail}
		if i > 0 {
			apps[i].base = apps[0].base // one public origin, a load balancer in front
		}
		if err := apps[i].start(); err != nil {
			return fmt.Errorf("%s: %w", apps[i].name, err)
		}
		stop := apps[i].sampleRSS()
		defer stop()
	}
	if phase == "pg-mixed" {
		apps[0].name = "postgres"
	}
	switch phase {
	case "pg-fault":
		err = postgresFault(apps, url)
	default:
		err = mixed(apps)
	}
	for _, a := range apps {
		if serr := a.shutdown(phase == "pg-fault"); serr != nil {
			err = errors.Join(err, fmt.Errorf("%s: %w", a.name, serr))
		}
		fmt.Printf("peak resident memory of %s: %.1f MB\n", a.name, float64(a.peakRSS.Load())/1024)
	}
	return err
}

// freshSchema creates an empty schema on the server and returns a URL
// whose search_path names it, and a function that drops it.
func freshSchema(server, name string) (string, func(), error) {
	conn, err := sql.Open("pgx", server)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("%s_%d", name, rand.Int64N(1e9))
	quoted := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec("CREATE SCHEMA " + quoted); err != nil {
		conn.Close()
		return "", nil, fmt.Errorf("creating a schema: %w", err)
	}
	u, err := url.Parse(server)
	if err != nil {
		conn.Close()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		conn.Exec("DROP SCHEMA " + quoted + " CASCADE")
		conn.Close()
	}, nil
}

// restartPostgres restarts the PostgreSQL server and returns how long it
// took.
func restartPostgres() (time.Duration, error) {
	command := *pgRestart
	if command == "" {
		versions, err := filepath.Glob("/etc/postgresql/*/main")
		if err != nil || len(versions) == 0 {
			return 0, errors.New("no local PostgreSQL cluster to restart; give -pg-restart")
		}
		slices.Sort(versions)
		version := filepath.Base(filepath.Dir(versions[len(versions)-1]))
		command = "pg_ctlcluster --skip-systemctl-redirect " + version + " main restart"
	}
	start := time.Now()
	out, err := exec.Command("sh", "-c", command).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s: %v: %s", command, err, out)
	}
	return time.Since(start), nil
}

// postgresFault runs the load on three instances, kills the third with
// SIGKILL at a third of it, restarts PostgreSQL at half of it, starts the
// third again, and then checks that nothing is half-made and every account
// signs in again.
func postgresFault(apps []*app, url string) error {
	fmt.Printf("\n== PostgreSQL fault run: %d clients on %s for %v; at a third, SIGKILL of %s; at a half, PostgreSQL restarts; then %s restarts\n",
		*clients/2, describe(apps), *faultTime, apps[2].name, apps[2].name)
	m := newMetrics()
	ctx, cancel := context.WithTimeout(context.Background(), *faultTime)
	defer cancel()
	var faultErr error
	var down, pgDown time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(*faultTime / 3)
		t := time.Now()
		if faultErr = apps[2].kill(); faultErr != nil {
			return
		}
		time.Sleep(*faultTime/2 - *faultTime/3)
		if pgDown, faultErr = restartPostgres(); faultErr != nil {
			return
		}
		faultErr = apps[2].start()
		down = time.Since(t)
	}()
	start := time.Now()
	cs := load(ctx, apps, *clients/2, m)
	<-done
	errs := m.print(time.Since(start))
	if faultErr != nil {
		return fmt.Errorf("fault: %w", faultErr)
	}
	fmt.Printf("%s was down %v; PostgreSQL restarted in %v; %d requests failed meanwhile (expected: the server or the database was gone)\n",
		apps[2].name, down.Round(time.Millisecond), pgDown.Round(time.Millisecond), errs)

	db, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer db.Close()
	var noEmail, orphans, users, passkeys int
	for _, q := range []struct {
		sql string
		dst *int
	}{
		{"SELECT count(*) FROM users WHERE email IS NULL AND deleted_at IS NULL", &noEmail},
		{`SELECT count(*) FROM credentials LEFT JOIN users ON users.id = credentials.user_id
			WHERE users.id IS NULL OR users.deleted_at IS NOT NULL`, &orphans},
		{"SELECT count(*) FROM users WHERE deleted_at IS NULL", &users},
		{"SELECT count(*) FROM credentials", &passkeys},
	} {
		if err := db.QueryRow(q.sql).Scan(q.dst); err != nil {
			return err
		}
	}
	fmt.Printf("users without an email: %d; passkeys without a user: %d; users: %d; passkeys: %d\n", noEmail, orphans, users, passkeys)
	if noEmail != 0 || orphans != 0 {
		return errors.New("the database holds half-made records")
	}
	// The instances catch up on their own: wait until every one answers.
	for _, a := range apps {
		if err := a.healthy(15 * time.Second); err != nil {
			return fmt.Errorf("%s after the restart: %w", a.name, err)
		}
	}
	return signInAgain(apps, cs)
}

// healthy waits until the app's /healthz answers 200.
func (a *app) healthy(limit time.Duration) error {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + a.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("not healthy")
}
