package tests

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncose"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"

	"github.com/latchkey/latchkey/tests/testkit"
)

// benchEnv lifts the rate limits, which would otherwise (rightly) stop a
// benchmark after 30 requests.
var benchEnv = map[string]string{"RATE_LIMIT_SIGNIN": "1000000/1s", "RATE_LIMIT_EMAIL": "1000000/1s", "LOG_LEVEL": "error"}

// BenchmarkRequestSignUpLink measures POST /signin/email for a new address
// through the whole handler stack, with the email rendered but written to
// io.Discard instead of an SMTP conversation.
func BenchmarkRequestSignUpLink(b *testing.B) {
	a := testkit.StartApp(b, testkit.AppOptions{Env: benchEnv, MailLog: io.Discard})
	i := 0
	for b.Loop() {
		i++
		req := formRequest("/signin/email", url.Values{"email": {"bench" + strconv.Itoa(i) + "@example.com"}})
		w := httptest.NewRecorder()
		a.App.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusSeeOther {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// passkeyBenchUsers is how many accounts the sign-in benchmark cycles
// through: a credential is reused only once per round, so each ceremony
// starts after that credential's last use.
const passkeyBenchUsers = 300

// BenchmarkPasskeySignIn measures a passkey sign-in finish through the
// whole handler stack (ceremony cookie, JSON parsing, lookup, verification,
// the conditional update of the credential row, two tokens and their
// cookies) side by side with its two unavoidable parts, one ES256
// verification of a stored key and one SQLite update of a credential row.
// Each round runs the three in turn, as many times each, so they share the
// machine's state; it reports each one's time and the ratio
// finish / (verify + update).
//
// "remembered" is a passkey this instance has signed in with before (its
// row is in the sign-in cache); "first" makes every finish read the row,
// as a passkey's first sign-in on an instance does.
func BenchmarkPasskeySignIn(b *testing.B) {
	b.Run("remembered", func(b *testing.B) { benchmarkPasskeySignIn(b, false) })
	b.Run("first", func(b *testing.B) { benchmarkPasskeySignIn(b, true) })
}

func benchmarkPasskeySignIn(b *testing.B, firstRead bool) {
	a := testkit.StartApp(b, testkit.AppOptions{Env: benchEnv})
	keys := make([]*testkit.Passkey, passkeyBenchUsers)
	for i := range keys {
		br := a.Browser(b)
		signIn(b, a, br, "bench"+strconv.Itoa(i)+"@example.com")
		keys[i] = addPasskey(b, a, br)
	}
	verify := newES256Fixture()
	update := benchCredentialUpdate(b)
	_, signKey, _ := ed25519.GenerateKey(rand.Reader)
	var finishTime, verifyTime, updateTime, signTime time.Duration
	updates := int64(0)
	requests := make([]*http.Request, 0, len(keys))

	b.ResetTimer()
	for done := 0; done < b.N; {
		// Ceremonies are begun (one per account) with the timer stopped.
		b.StopTimer()
		requests = requests[:0]
		for i := 0; i < len(keys) && done+i < b.N; i++ {
			requests = append(requests, preparedFinish(b, a, keys[i]))
			if firstRead {
				a.App.DB.ForgetSignInCredential(keys[i].Cred.ID)
			}
		}
		// Collect the preparation's garbage now, so that the collector
		// does not charge it to the finishes.
		runtime.GC()
		b.StartTimer()

		start := time.Now()
		for _, req := range requests {
			w := httptest.NewRecorder()
			a.App.Handler.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("finish: %d %s", w.Code, w.Body)
			}
		}
		finishTime += time.Since(start)

		start = time.Now()
		for range requests {
			verify.run(b)
		}
		verifyTime += time.Since(start)

		start = time.Now()
		for range requests {
			updates++
			update(updates)
		}
		updateTime += time.Since(start)

		// Not one of the two parts the target names, but no sign-in can do
		// without it either: signing the access token.
		start = time.Now()
		for range requests {
			ed25519.Sign(signKey, verify.data[:64])
		}
		signTime += time.Since(start)
		done += len(requests)
	}
	n := float64(b.N)
	b.ReportMetric(float64(finishTime.Nanoseconds())/n, "finish-ns")
	b.ReportMetric(float64(verifyTime.Nanoseconds())/n, "es256-ns")
	b.ReportMetric(float64(updateTime.Nanoseconds())/n, "update-ns")
	b.ReportMetric(float64(signTime.Nanoseconds())/n, "ed25519-ns")
	b.ReportMetric(float64(finishTime)/float64(verifyTime+updateTime), "ratio")
	b.ReportMetric(float64(finishTime)/float64(verifyTime+updateTime+signTime), "ratio-with-token")
}

// preparedFinish begins a usernameless sign-in and returns the finish
// request that pk's assertion makes.
func preparedFinish(b *testing.B, a *testkit.App, pk *testkit.Passkey) *http.Request {
	begin := httptest.NewRecorder()
	a.App.Handler.ServeHTTP(begin, jsonRequest("/signin/passkey/begin", "", ""))
	var ceremony string
	for _, c := range begin.Result().Cookies() {
		if c.Name == "__Host-ceremony" {
			ceremony = c.Value
		}
	}
	return jsonRequest("/signin/passkey/finish", pk.Assert(b, begin.Body.String()), ceremony)
}

// es256Fixture is one ES256 verification as it must happen for a stored
// passkey: the COSE public key from the credential row is decoded, then the
// signature over authenticator data and the client-data hash is checked.
type es256Fixture struct {
	cose, data, sig []byte
}

func newES256Fixture() *es256Fixture {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := &es256Fixture{cose: coseES256(key), data: make([]byte, 37+32)}
	rand.Read(f.data)
	digest := sha256.Sum256(f.data)
	f.sig, _ = ecdsa.SignASN1(rand.Reader, key, digest[:])
	return f
}

func (f *es256Fixture) run(b *testing.B) {
	pub, err := webauthncose.ParsePublicKey(f.cose)
	if err != nil {
		b.Fatal(err)
	}
	if ok, err := webauthncose.VerifySignature(pub, f.data, f.sig); !ok || err != nil {
		b.Fatal("verification failed", err)
	}
}

// benchCredentialUpdate opens a fresh SQLite database with Latchkey's
// schema, one user and one passkey, and returns one prepared UPDATE of
// that passkey's row as a sign-in makes it (its counter, flags and last
// use, conditionally): the "one SQLite update" the sign-in is compared
// with, on a connection with the app's pragmas.
func benchCredentialUpdate(b *testing.B) func(n int64) {
	path := filepath.Join(b.TempDir(), "bench.db")
	d, err := db.Open(context.Background(), db.Config{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	u, _, _, err := d.ConsumeSignUpLink(context.Background(), "bench@example.com", 1, []byte("0123456789abcdef"), time.Now(), db.SessionStart{})
	if err != nil {
		b.Fatal(err)
	}
	c := &db.Credential{UserID: u.ID, CredentialID: []byte("credential-id"), PublicKey: []byte("key"), Name: "Passkey", CreatedAt: time.Now()}
	if _, err := d.AddCredential(context.Background(), c); err != nil {
		b.Fatal(err)
	}
	d.Close()
	conn, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)")
	if err != nil {
		b.Fatal(err)
	}
	conn.SetMaxOpenConns(1)
	b.Cleanup(func() { conn.Close() })
	stmt, err := conn.Prepare(`UPDATE credentials SET sign_count = $1, user_verified = 1, backup_state = 0, last_used_at = $2
		WHERE id = $3 AND credential_id = $4 AND last_used_at < $2 AND sign_count < $1`)
	if err != nil {
		b.Fatal(err)
	}
	return func(n int64) {
		if res, err := stmt.Exec(n, n, c.ID, c.CredentialID); err != nil {
			b.Fatal(err)
		} else if rows, _ := res.RowsAffected(); rows != 1 {
			b.Fatal("the update changed no row")
		}
	}
}

func jsonRequest(path, body, ceremony string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if ceremony != "" {
		req.AddCookie(&http.Cookie{Name: "__Host-ceremony", Value: ceremony})
	}
	return req
}

// coseES256 encodes an ES256 public key as a COSE_Key, as authenticators
// send it and the credentials table stores it.
func coseES256(key *ecdsa.PrivateKey) []byte {
	x, y := key.X.FillBytes(make([]byte, 32)), key.Y.FillBytes(make([]byte, 32))
	out := []byte{0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20}
	out = append(out, x...)
	out = append(out, 0x22, 0x58, 0x20)
	return append(out, y...)
}

// BenchmarkHomePage measures GET / signed out and signed in (a verified,
// cached access token) through the whole handler stack, interleaved in
// rounds, and reports the throughput ratio signed-in / signed-out.
func BenchmarkHomePage(b *testing.B) {
	a := testkit.StartApp(b, testkit.AppOptions{Env: benchEnv})
	br := a.Browser(b)
	signIn(b, a, br, "home@example.com")
	cookie := "__Host-at=" + br.Cookie("__Host-at") + "; __Host-rt=" + br.Cookie("__Host-rt")
	get := func(cookie string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		w := httptest.NewRecorder()
		a.App.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("GET /: %d", w.Code)
		}
	}
	const round = 2000
	var out, in time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		start := time.Now()
		for range round {
			get("")
		}
		out += time.Since(start)
		start = time.Now()
		for range round {
			get(cookie)
		}
		in += time.Since(start)
	}
	b.ReportMetric(float64(out)/float64(in), "signed-in/out-throughput")
}

// BenchmarkLinkRequest measures POST /signin/email for a new address
// through the whole handler stack (with the email rendered and handed to
// the development sender, writing to io.Discard, so that the SMTP
// conversation is left out) side by side with its two unavoidable parts:
// sealing one link token and reading one user row by email.
//
// It also measures the same POST for an address past its per-address
// limit (floor-ns): everything the request does except the read, the link
// token and the email — the form, validation, limits, the link-request
// cookie, the redirect and the handler stack around them.
//
// Requests are built before each timed round, so building them (and
// encoding their forms) is not counted.
func BenchmarkLinkRequest(b *testing.B) {
	a := testkit.StartApp(b, testkit.AppOptions{Env: benchEnv, MailLog: io.Discard})
	limited := testkit.StartApp(b, testkit.AppOptions{MailLog: io.Discard,
		Env: map[string]string{"RATE_LIMIT_SIGNIN": "1000000/1s", "RATE_LIMIT_EMAIL": "1/1h", "LOG_LEVEL": "error"}})
	keys := a.App.Keys
	store := a.App.DB
	const round = 500
	reqs := make([]*http.Request, round)
	recs := make([]*httptest.ResponseRecorder, round)
	build := func(email func(i int) string) {
		for i := range round {
			reqs[i] = formRequest("/signin/email", url.Values{"email": {email(i)}})
			recs[i] = httptest.NewRecorder()
		}
	}
	serve := func(h http.Handler) time.Duration {
		start := time.Now()
		for i, req := range reqs {
			h.ServeHTTP(recs[i], req)
		}
		elapsed := time.Since(start)
		for _, w := range recs {
			if w.Code != http.StatusSeeOther {
				b.Fatalf("status %d", w.Code)
			}
		}
		return elapsed
	}
	build(func(int) string { return "limited@example.com" })
	serve(limited.App.Handler) // the first one uses the address's only email
	var requestTime, floorTime, sealTime, readTime time.Duration
	n := 0
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		b.StopTimer()
		build(func(int) string { n++; return "bench" + strconv.Itoa(n) + "@example.com" })
		b.StartTimer()
		requestTime += serve(a.App.Handler)

		b.StopTimer()
		build(func(int) string { return "limited@example.com" })
		b.StartTimer()
		floorTime += serve(limited.App.Handler)

		start := time.Now()
		for i := range round {
			if _, err := keys.SealLink(&auth.Link{Kind: auth.LinkSignUp, IssuedAt: time.Now(), Email: "bench" + strconv.Itoa(i) + "@example.com",
				RequestID: []byte("0123456789ab")}, 10*time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		sealTime += time.Since(start)

		start = time.Now()
		for i := range round {
			if _, err := store.LinkTarget(context.Background(), "nobody"+strconv.Itoa(i)+"@example.com"); err == nil {
				b.Fatal("found a user")
			}
		}
		readTime += time.Since(start)
	}
	total := float64((b.N + round - 1) / round * round)
	b.ReportMetric(float64(requestTime.Nanoseconds())/total, "request-ns")
	b.ReportMetric(float64(floorTime.Nanoseconds())/total, "floor-ns")
	b.ReportMetric(float64(sealTime.Nanoseconds())/total, "seal-ns")
	b.ReportMetric(float64(readTime.Nanoseconds())/total, "read-ns")
	b.ReportMetric(float64(requestTime)/float64(sealTime+readTime), "ratio")
	b.ReportMetric(float64(floorTime)/float64(sealTime+readTime), "floor-ratio")
}

// BenchmarkSignOutWithAHangingApplication measures POST /signout of a
// session that signed in to an application whose back-channel logout
// endpoint never answers, side by side with the sign-out of a session
// that signed in to an application without one (nobody to tell), on the
// same instance: the application is told in the background, so the two
// take as long. It reports each one's time and the ratio.
//
//	go test -run='^$' -bench=SignOutWithAHangingApplication ./tests
func BenchmarkSignOutWithAHangingApplication(b *testing.B) {
	hang := make(chan struct{})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	b.Cleanup(receiver.Close)
	b.Cleanup(func() { close(hang) })
	clients := filepath.Join(b.TempDir(), "clients.json")
	quiet := `{"id": "quiet", "name": "Quiet", "secret_hash": "` + sha256Hex(chatSecret) + `",
		 "redirect_uris": ["https://quiet.example.com/cb"], "scopes": ["openid", "email", "offline_access"]}`
	if err := writeFile(clients, `{"clients": [`+backChannelClients(receiver.URL, "")+`, `+quiet+`]}`); err != nil {
		b.Fatal(err)
	}
	env := map[string]string{"OIDC_CLIENTS_FILE": clients}
	for k, v := range benchEnv {
		env[k] = v
	}
	// (The clock moves a minute every 30 rounds: an account gets at most
	// 64 codes a minute.)
	clock := testkit.NewClock()
	a := testkit.StartApp(b, testkit.AppOptions{Env: env, Clock: clock})
	apps := [2]string{"quiet", "portal"}
	people := [2]*testkit.Browser{a.Browser(b), a.Browser(b)}
	keys := [2]*testkit.Passkey{}
	for i := range people {
		signIn(b, a, people[i], "bye"+strconv.Itoa(i)+"@example.com")
		keys[i] = addPasskey(b, a, people[i])
	}
	signOut := func(br *testkit.Browser) time.Duration {
		req := httptest.NewRequest(http.MethodPost, "/signout", nil)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Cookie", "__Host-at="+br.Cookie("__Host-at")+"; __Host-rt="+br.Cookie("__Host-rt"))
		w := httptest.NewRecorder()
		start := time.Now()
		a.App.Handler.ServeHTTP(w, req)
		took := time.Since(start)
		if w.Code != http.StatusSeeOther {
			b.Fatalf("sign out: %d", w.Code)
		}
		return took
	}
	var took [2]time.Duration
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		if n%30 == 29 {
			clock.Advance(time.Minute)
		}
		for i := range people {
			people[i].Jar, _ = cookiejar.New(nil)
			people[i].Client.Jar = people[i].Jar
			expectStatus(b, passkeySignIn(b, people[i], keys[i]), http.StatusOK)
			signInTo(b, a, people[i], keys[i], apps[i])
		}
		b.StartTimer()
		for j := range 2 {
			i := (n + j) % 2 // (in turn first, so neither gains from going second)
			took[i] += signOut(people[i])
		}
	}
	b.ReportMetric(float64(took[0].Nanoseconds())/float64(b.N), "ns/signout-app-without-backchannel")
	b.ReportMetric(float64(took[1].Nanoseconds())/float64(b.N), "ns/signout-hanging-app")
	b.ReportMetric(float64(took[1])/float64(took[0]), "ratio")
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// consoleAccounts is how many accounts the console's benchmark seeds.
const consoleAccounts = 100_000

// seedAccounts adds n accounts to the app's database in one statement:
// user<i>@example<i%97>.com, one in ten at corp.example, one in seven in
// the group ops, created a second apart.
func seedAccounts(b *testing.B, a *testkit.App, store testkit.Store, n int) {
	b.Helper()
	driver, dsn := "sqlite", store.Path
	if store.Engine == "postgres" {
		driver, dsn = "pgx", store.URL
	}
	conn, err := sql.Open(driver, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	series := `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)`
	handle := `randomblob(16)`
	if store.Engine == "postgres" {
		series = `WITH n(i) AS (SELECT generate_series(1, $1::int))`
		handle = `decode(md5(i::text || random()::text), 'hex')`
	}
	_, err = conn.Exec(series+`
		INSERT INTO users (handle, email, created_at, signed_in_at, group_names)
		SELECT `+handle+`, 'user' || i || '@' || CASE WHEN i % 10 = 0 THEN 'corp.example' ELSE 'example' || (i % 97) || '.com' END,
			1700000000000 + i * 1000, 1700000000000 + i * 2000, CASE WHEN i % 7 = 0 THEN 'ops' ELSE '' END
		FROM n`, n)
	if err != nil {
		b.Fatalf("seeding %d accounts: %v", n, err)
	}
	if store.Engine == "postgres" {
		conn.Exec(`ANALYZE users`)
	} else {
		conn.Exec(`ANALYZE`)
	}
}

// BenchmarkConsoleWith100000Accounts measures the console's list of
// accounts, server-side (GET /admin through the whole handler stack, the
// operator's session included), with 100 000 accounts in the database, on
// each engine: the first page, a page deep in the list (by key, no
// offset), and searches by the start of an address, narrow and broad,
// by domain, and for nothing.
//
//	TEST_DATABASE_URL=… go test -run='^$' -bench=ConsoleWith100000Accounts -benchtime=200x ./tests
func BenchmarkConsoleWith100000Accounts(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			store := testkit.SQLiteStore(b)
			if engine == "postgres" {
				store = testkit.PostgresStore(b)
			}
			env := map[string]string{"LOG_LEVEL": "error"}
			for k, v := range benchEnv {
				env[k] = v
			}
			a := testkit.StartApp(b, testkit.AppOptions{Store: store, Env: env})
			op := a.Browser(b)
			signIn(b, a, op, "operator@example.com")
			if _, errOut, exit := admin(b, a, "", "group", "add", "operator@example.com", "admin"); exit != 0 {
				b.Fatal(errOut)
			}
			seedAccounts(b, a, store, consoleAccounts)
			cookie := "__Host-at=" + op.Cookie("__Host-at") + "; __Host-rt=" + op.Cookie("__Host-rt")
			get := func(b *testing.B, path string) {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req.Header.Set("Cookie", cookie)
				w := httptest.NewRecorder()
				a.App.Handler.ServeHTTP(w, req)
				if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "ul") {
					b.Fatalf("GET %s: %d", path, w.Code)
				}
			}
			for _, tc := range []struct{ name, path string }{
				{"first page", "/admin"},
				{"a page deep in the list", "/admin?before=50000"},
				{"search an address", "/admin?q=user12345"},
				{"search a broad prefix", "/admin?q=user1"},
				{"search a domain", "/admin?q=%40corp"},
				{"search without a match", "/admin?q=nobody"},
			} {
				b.Run(tc.name, func(b *testing.B) {
					for b.Loop() {
						get(b, tc.path)
					}
				})
			}
		})
	}
}
