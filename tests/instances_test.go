package tests

import (
	"encoding/base64"
	"encoding/json"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/tests/downstream"
	"github.com/latchkey/latchkey/tests/testkit"
)

// requestPathQueries counts the statements an instance ran other than its
// background revocation poll and tombstone purge.
func requestPathQueries(a *testkit.App) int64 {
	var n int64
	for name, c := range a.App.DB.Queries() {
		if name != "RevocationsAfter" && name != "PurgeTombstones" {
			n += c
		}
	}
	return n
}

// TestInstancesShareOneSecret runs three instances behind one public
// origin on one database (on PostgreSQL sharing nothing else), with the
// production poll interval, and measures how long "Sign out everywhere" on
// A takes to be felt on both B and C, over 20 trials: on PostgreSQL the
// revocation is pushed (LISTEN/NOTIFY), on SQLite polled; on PostgreSQL
// with DATABASE_NOTIFY=off, polled too. Signed-in requests on B and C read
// nothing from the database.
func TestInstancesShareOneSecret(t *testing.T) {
	for _, tc := range []struct {
		name string
		push bool
		env  map[string]string
	}{
		{"sqlite", false, nil},
		{"postgres", true, nil},
		{"postgres, poll only", false, map[string]string{"DATABASE_NOTIFY": "off"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := testkit.SQLiteStore(t)
			if strings.HasPrefix(tc.name, "postgres") {
				store = testkit.PostgresStore(t)
			}
			apps := instances(t, store, 3, testkit.Production, tc.env)
			median, worst, queries, requests := revocationDelay(t, apps[0], apps[1:], 20)
			t.Logf("%s: revocation delay A→B,C over 20 trials: median %v, worst %v; %d signed-in requests on B and C ran %d database queries",
				tc.name, median.Round(time.Millisecond), worst.Round(time.Millisecond), requests, queries)
			if worst > 2*time.Second {
				t.Errorf("worst revocation delay %v, want ≤ 2 s", worst)
			}
			if tc.push && median > 250*time.Millisecond {
				// Polling alone (every second with push on) would take
				// about 500 ms at the median.
				t.Errorf("median revocation delay %v with LISTEN/NOTIFY: the revocation was not pushed", median)
			}
			if queries != 0 {
				t.Errorf("the request path of B and C ran %d database queries, want 0", queries)
			}
		})
	}
}

// revocationDelay signs a person in on a, copies the session to every
// instance of others, signs out everywhere on a at a random moment, and
// measures until every other instance refuses the session, over trials.
// It returns the median and worst delays, and how many database queries
// the others' request paths ran for how many requests.
func revocationDelay(t *testing.T, a *testkit.App, others []*testkit.App, trials int) (median, worst time.Duration, queries int64, requests int) {
	t.Helper()
	var delays []time.Duration
	before := int64(0)
	for _, o := range others {
		before += requestPathQueries(o)
	}
	for i := range trials {
		onA := a.Browser(t)
		signIn(t, a, onA, "trial"+strconv.Itoa(i)+"@example.com")
		var elsewhere []*testkit.Browser
		for _, o := range others {
			b := o.Browser(t) // the same person, routed to another instance
			onA.CopyCookies(b)
			requests++
			if !signedIn(t, b) {
				t.Fatal("another instance does not accept a session from instance A")
			}
			elsewhere = append(elsewhere, b)
		}
		// Sign out at a random moment of the others' poll cycles;
		// otherwise every trial starts right after the poll that ended the
		// previous one.
		time.Sleep(time.Duration(mrand.Int64N(int64(500 * time.Millisecond))))
		expectStatus(t, onA.Post("/signout/everywhere", nil), http.StatusSeeOther)
		start := time.Now()
		for len(elsewhere) > 0 {
			still := elsewhere[:0]
			for _, b := range elsewhere {
				requests++
				if signedIn(t, b) {
					still = append(still, b)
				}
			}
			elsewhere = still
			if time.Since(start) > 5*time.Second {
				t.Fatal("another instance still accepts the session 5 s after sign-out everywhere on A")
			}
			if len(elsewhere) > 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		delays = append(delays, time.Since(start))
	}
	for _, o := range others {
		queries += requestPathQueries(o)
	}
	slices.Sort(delays)
	return delays[len(delays)/2], delays[len(delays)-1], queries - before, requests
}

// reserveAddr returns a free loopback address.
func reserveAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// restart starts an instance on addr (so its URL stays the same) with the
// given secrets, on the shared store.
func restart(t *testing.T, addr, secrets string, store testkit.Store, mail *testkit.MailServer) *testkit.App {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the previous instance's port may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	return testkit.StartApp(t, testkit.AppOptions{SecretKeys: secrets, Store: store, Mail: mail, Listener: ln})
}

func jwksKids(t *testing.T, a *testkit.App) []string {
	t.Helper()
	var set struct {
		Keys []struct{ Kid, Alg, Use string }
	}
	r := a.Browser(t).Get("/.well-known/jwks.json")
	expectStatus(t, r, http.StatusOK)
	if err := json.Unmarshal([]byte(r.Body), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	// The Ed25519 keys that verify Latchkey's own tokens come first, one
	// per secret; then the OpenID Connect provider's RSA keys, as many.
	rsa := 0
	for _, k := range set.Keys {
		switch {
		case k.Alg == "EdDSA" && k.Use == "sig":
			kids = append(kids, k.Kid)
		case k.Alg == "RS256" && k.Use == "sig":
			rsa++
		default:
			t.Errorf("JWKS key %+v", k)
		}
	}
	if rsa != len(kids) {
		t.Errorf("JWKS has %d Ed25519 keys and %d RSA keys, want one of each per secret", len(kids), rsa)
	}
	return kids
}

func TestKeyRotation(t *testing.T) {
	oldSecret, newSecret := testkit.NewSecret(), testkit.NewSecret()
	dbPath := testkit.SQLiteStore(t)
	mail := testkit.StartMailServer(t, false)
	addr := reserveAddr(t)

	one := restart(t, addr, oldSecret, dbPath, mail)
	old := one.Browser(t)
	signIn(t, one, old, "val@example.com")
	oldKid := tokenHeader(t, old.Cookie("__Host-at"))["kid"]
	if kids := jwksKids(t, one); len(kids) != 1 || kids[0] != oldKid {
		t.Fatalf("JWKS %v, token kid %v", kids, oldKid)
	}
	one.Stop()

	// Prepend a new secret: new tokens use the new key, old ones still work.
	two := restart(t, addr, newSecret+","+oldSecret, dbPath, mail)
	if !signedIn(t, old) {
		t.Error("a token of the old key stopped working while the old secret is still listed")
	}
	fresh := two.Browser(t)
	signIn(t, two, fresh, "wes@example.com")
	newKid := tokenHeader(t, fresh.Cookie("__Host-at"))["kid"]
	if newKid == oldKid {
		t.Error("new tokens still use the old key")
	}
	if kids := jwksKids(t, two); len(kids) != 2 || kids[0] != newKid || kids[1] != oldKid {
		t.Errorf("JWKS %v, want [%v %v]", kids, newKid, oldKid)
	}
	two.Stop()

	// Remove the old secret: its tokens end.
	three := restart(t, addr, newSecret, dbPath, mail)
	if signedIn(t, old) {
		t.Error("a token of a removed secret still works")
	}
	if !signedIn(t, fresh) {
		t.Error("a token of the remaining secret stopped working")
	}
	if kids := jwksKids(t, three); len(kids) != 1 || kids[0] != newKid {
		t.Errorf("JWKS %v, want [%v]", kids, newKid)
	}
}

func TestDownstreamServiceVerifiesTokensWithTheKeySetOnly(t *testing.T) {
	oldSecret, newSecret := testkit.NewSecret(), testkit.NewSecret()
	dbPath := testkit.SQLiteStore(t)
	mail := testkit.StartMailServer(t, false)
	addr := reserveAddr(t)
	one := restart(t, addr, oldSecret, dbPath, mail)

	now := time.Now()
	svc := &downstream.Service{Issuer: one.URL, Client: http.DefaultClient, MinRefetch: time.Second, Now: func() time.Time { return now }}
	ds := httptest.NewServer(svc)
	t.Cleanup(ds.Close)
	call := func(token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, ds.URL, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}

	b := one.Browser(t)
	signIn(t, one, b, "xia@example.com")
	access := b.Cookie("__Host-at")
	code, body := call(access)
	if code != http.StatusOK || body["sub"] != tokenClaims(t, access)["sub"] {
		t.Fatalf("downstream: %d %v", code, body)
	}
	// Tampered, the refresh token, garbage: refused.
	parts := strings.Split(access, ".")
	for name, bad := range map[string]string{
		"tampered":      parts[0] + "." + parts[1] + "x." + parts[2],
		"refresh token": b.Cookie("__Host-rt"),
		"garbage":       "x",
		"unsigned":      parts[0] + "." + parts[1] + ".",
	} {
		if code, _ := call(bad); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	// Expired: refused.
	now = now.Add(11 * time.Minute)
	if code, _ := call(access); code != http.StatusUnauthorized {
		t.Errorf("expired token: %d, want 401", code)
	}
	now = time.Now()
	fetches := svc.Fetches

	// Keys rotate: a token with a new kid makes the service fetch the key
	// set again, once.
	one.Stop()
	two := restart(t, addr, newSecret+","+oldSecret, dbPath, mail)
	c := two.Browser(t)
	signIn(t, two, c, "yan@example.com")
	now = now.Add(2 * time.Second) // past MinRefetch
	if code, _ := call(c.Cookie("__Host-at")); code != http.StatusOK {
		t.Errorf("token of the new key: %d", code)
	}
	if code, _ := call(access); code != http.StatusOK {
		t.Errorf("token of the old key, still listed: %d", code)
	}
	if svc.Fetches != fetches+1 {
		t.Errorf("key set fetched %d times after rotation, want once", svc.Fetches-fetches)
	}
}

// TestPasskeyChangesOnOneInstanceHoldOnAnother: an instance remembers the
// passkeys it signed in with, so repeat sign-ins skip reading the row. What
// happens to a passkey on another instance still counts at once: a counter
// that moved on there, and a deletion there.
func TestPasskeyChangesOnOneInstanceHoldOnAnother(t *testing.T) {
	testkit.EachEngine(t, testPasskeyChangesOnOneInstanceHoldOnAnother)
}

func testPasskeyChangesOnOneInstanceHoldOnAnother(t *testing.T, store testkit.Store) {
	a, b := twoInstances(t, store, 0)
	onA := a.Browser(t)
	signIn(t, a, onA, "pia@example.com")
	pk := addPasskey(t, a, onA)

	// Two sign-ins on B: the second reads nothing about the passkey.
	expectStatus(t, passkeySignIn(t, b.Browser(t), pk), http.StatusOK)
	reads := b.App.DB.Queries()["CredentialForSignIn"]
	expectStatus(t, passkeySignIn(t, b.Browser(t), pk), http.StatusOK)
	if n := b.App.DB.Queries()["CredentialForSignIn"]; n != reads {
		t.Errorf("a repeat sign-in on B read the credential again (%d reads, want %d)", n, reads)
	}

	// The authenticator signs in on A with counter 100; an assertion that
	// B's memory would accept (counter 50, above what B last saw) is a
	// counter going back, and B refuses it.
	signInWith := func(app *testkit.App, counter uint32) *testkit.Response {
		return passkeySignInWith(t, app.Browser(t), pk, testkit.Mod{Counter: testkit.Uint32(counter)})
	}
	expectStatus(t, signInWith(a, 100), http.StatusOK)
	behind := signInWith(b, 50)
	expectJSONError(t, behind, http.StatusForbidden)
	if setCookieHeader(behind, "__Host-at") != "" {
		t.Fatal("B signed in with a counter that went back on A")
	}
	expectStatus(t, signInWith(b, 101), http.StatusOK)
	pk.Cred.Counter = 101 // the authenticator's own count goes on from there

	// The owner deletes the passkey on A (right after using it there); B
	// refuses it from then on, and tells the browser to forget it.
	deleteOnlyPasskey(t, onA, pk)
	gone := b.Browser(t)
	r := passkeySignIn(t, gone, pk)
	expectJSONError(t, r, http.StatusNotFound)
	if gone.Cookie("__Host-at") != "" {
		t.Fatal("B signed in with a passkey deleted on A")
	}
	if !strings.Contains(r.Body, base64.RawURLEncoding.EncodeToString(pk.Cred.ID)) {
		t.Errorf("B's refusal does not name the deleted credential, so the browser cannot forget it: %s", r.Body)
	}
}

// TestDeletedPasskeyStaysDeletedOnEveryInstance: a stolen device holds a
// passkey its owner then deletes (on instance A). The thief's accomplice
// registers the same credential id on their own account, where the
// database may hand it the deleted passkey's row. Instance B, which
// remembered the passkey from an earlier sign-in, must not sign the thief
// in to the owner's account — now or on a second try.
func TestDeletedPasskeyStaysDeletedOnEveryInstance(t *testing.T) {
	testkit.EachEngine(t, testDeletedPasskeyStaysDeletedOnEveryInstance)
}

func testDeletedPasskeyStaysDeletedOnEveryInstance(t *testing.T, store testkit.Store) {
	a, b := twoInstances(t, store, 0)
	mallory := a.Browser(t)
	signIn(t, a, mallory, "mallory@example.com")
	victim := a.Browser(t)
	signIn(t, a, victim, "victim@example.com")
	stolen := addPasskey(t, a, victim)
	expectStatus(t, passkeySignIn(t, b.Browser(t), stolen), http.StatusOK) // B remembers it

	expectStatus(t, passkeySignIn(t, victim, stolen), http.StatusOK) // fresh, to delete
	id := firstPasskeyID(t, victim)
	expectStatus(t, victim.Post("/account/passkeys/"+id+"/delete", nil), http.StatusSeeOther)

	begin := mallory.PostJSON("/account/passkeys/begin", nil)
	expectStatus(t, begin, http.StatusOK)
	own := testkit.NewPasskey(t, a.URL)
	own.Cred.ID = stolen.Cred.ID
	expectStatus(t, mallory.PostJSON("/account/passkeys/finish", own.Attest(t, begin.Body)), http.StatusOK)
	if reused := firstPasskeyID(t, mallory); store.Engine == "sqlite" && reused != id {
		// (PostgreSQL never reuses a row id; SQLite does, the harder case.)
		t.Fatalf("the new passkey got row %s, not the deleted one's %s; the test needs the reuse", reused, id)
	}

	for range 2 {
		thief := b.Browser(t)
		r := passkeySignIn(t, thief, stolen)
		if r.StatusCode == http.StatusOK || thief.Cookie("__Host-at") != "" {
			t.Fatalf("B signed the thief in with the deleted passkey: %d; account page: %.300s", r.StatusCode, thief.Get("/account").Body)
		}
		// Refused as a fresh read would refuse it: the signature does not
		// fit the registered key. The id is registered, so the browser is
		// not told to forget it.
		expectJSONError(t, r, http.StatusBadRequest)
		if jsonField(t, r, "credential") != "" {
			t.Errorf("B told the browser to forget a registered credential id: %s", clip(r.Body))
		}
	}
	expectStatus(t, passkeySignIn(t, b.Browser(t), own), http.StatusOK) // the new passkey works for its owner
}

// TestAPasskeyRegisteredAgainIsJudgedByItsNewRow: when a passkey is
// deleted and the same credential is registered again on instance A,
// instance B — which remembered the old row — answers exactly as a fresh
// read would: the passkey works at once (B never tells the browser to
// forget it), and an assertion whose backup flags changed since is
// accepted on both, and recorded.
func TestAPasskeyRegisteredAgainIsJudgedByItsNewRow(t *testing.T) {
	testkit.EachEngine(t, testAPasskeyRegisteredAgainIsJudgedByItsNewRow)
}

func testAPasskeyRegisteredAgainIsJudgedByItsNewRow(t *testing.T, store testkit.Store) {
	a, b := twoInstances(t, store, 0)
	signInWith := func(app *testkit.App, pk *testkit.Passkey, m testkit.Mod) *testkit.Response {
		return passkeySignInWith(t, app.Browser(t), pk, m)
	}

	// Registered again with the same id and key, on a new row (another
	// passkey took the old one): B signs in with it at the first try.
	owner := a.Browser(t)
	signIn(t, a, owner, "rae@example.com")
	pk := addPasskey(t, a, owner)
	expectStatus(t, passkeySignIn(t, b.Browser(t), pk), http.StatusOK) // B remembers it
	deleteOnlyPasskey(t, owner, pk)
	addPasskey(t, a, owner)
	registerPasskey(t, owner, pk)
	expectStatus(t, passkeySignIn(t, b.Browser(t), pk), http.StatusOK)

	// Registered again as backup-eligible, where it was not: an assertion
	// without that flag is refused on B as on A.
	owner = a.Browser(t)
	signIn(t, a, owner, "sam@example.com")
	pk = testkit.NewPasskey(t, a.URL)
	begin := owner.PostJSON("/account/passkeys/begin", nil)
	notEligible := testkit.Mod{Flags: testkit.Byte(testkit.FlagUP | testkit.FlagUV | testkit.FlagAT)}
	expectStatus(t, owner.PostJSON("/account/passkeys/finish", pk.AttestWith(t, begin.Body, notEligible)), http.StatusOK)
	withoutBE := testkit.Mod{Flags: testkit.Byte(testkit.FlagUP | testkit.FlagUV)}
	expectStatus(t, signInWith(b, pk, withoutBE), http.StatusOK) // B remembers it without BE
	expectStatus(t, signInWith(a, pk, withoutBE), http.StatusOK)
	ids := passkeyIDs(t, owner)
	if len(ids) != 1 {
		t.Fatalf("%d passkeys listed, want 1", len(ids))
	}
	// Step up with the passkey (a link sign-in is not fresh enough for an
	// account that has one), delete it and register it again.
	rb := owner.PostJSON("/signin/passkey/begin?for=reauth", nil)
	expectStatus(t, owner.PostJSON("/signin/passkey/finish", pk.AssertWith(t, rb.Body, withoutBE)), http.StatusOK)
	expectStatus(t, owner.Post("/account/passkeys/"+ids[0]+"/delete", nil), http.StatusSeeOther)
	registerPasskey(t, owner, pk) // the testkit's authenticator reports BE
	onB, onA := signInWith(b, pk, withoutBE), signInWith(a, pk, withoutBE)
	if onB.StatusCode != onA.StatusCode || onA.StatusCode != http.StatusOK {
		t.Errorf("an assertion that lost its backup-eligible flag: B %d, A %d; want 200 on both (the change is recorded)", onB.StatusCode, onA.StatusCode)
	}
	expectPage(t, owner.Get("/account"), http.StatusOK, "This device only")
}
