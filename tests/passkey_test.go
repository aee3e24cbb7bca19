package tests

import (
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/tests/testkit"
)

// addPasskey registers a new software passkey for the signed-in browser.
func addPasskey(t testing.TB, a *testkit.App, b *testkit.Browser) *testkit.Passkey {
	t.Helper()
	pk := testkit.NewPasskey(t, a.URL)
	registerPasskey(t, b, pk)
	return pk
}

func registerPasskey(t testing.TB, b *testkit.Browser, pk *testkit.Passkey) {
	t.Helper()
	begin := b.PostJSON("/account/passkeys/begin", nil)
	expectStatus(t, begin, http.StatusOK)
	fin := b.PostJSON("/account/passkeys/finish", pk.Attest(t, begin.Body))
	expectStatus(t, fin, http.StatusOK)
	if redirect := jsonField(t, fin, "redirect"); redirect != "/account" {
		t.Fatalf("registration redirect %q", redirect)
	}
}

// passkeySignIn signs b in with pk through the usernameless flow.
func passkeySignIn(t testing.TB, b *testkit.Browser, pk *testkit.Passkey) *testkit.Response {
	t.Helper()
	begin := b.PostJSON("/signin/passkey/begin", nil)
	expectStatus(t, begin, http.StatusOK)
	return b.PostJSON("/signin/passkey/finish", pk.Assert(t, begin.Body))
}

// passkeyIDs returns the ids of the passkeys b's account page lists.
func passkeyIDs(t testing.TB, b *testkit.Browser) []string {
	t.Helper()
	var ids []string
	for _, m := range passkeyIDPattern.FindAllStringSubmatch(b.Get("/account").Body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

var passkeyIDPattern = regexp.MustCompile(`/account/passkeys/(\d+)/delete`)

// firstPasskeyID returns the id of the first passkey b's account page lists.
func firstPasskeyID(t testing.TB, b *testkit.Browser) string {
	t.Helper()
	ids := passkeyIDs(t, b)
	if len(ids) == 0 {
		t.Fatal("the account page lists no passkey")
	}
	return ids[0]
}

// passkeySignInWith is passkeySignIn with an assertion changed by m.
func passkeySignInWith(t testing.TB, b *testkit.Browser, pk *testkit.Passkey, m testkit.Mod) *testkit.Response {
	t.Helper()
	begin := b.PostJSON("/signin/passkey/begin", nil)
	expectStatus(t, begin, http.StatusOK)
	return b.PostJSON("/signin/passkey/finish", pk.AssertWith(t, begin.Body, m))
}

// deleteOnlyPasskey deletes pk, the one passkey of b's account, right
// after signing in with it (deleting is a sensitive action).
func deleteOnlyPasskey(t testing.TB, b *testkit.Browser, pk *testkit.Passkey) {
	t.Helper()
	expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK)
	ids := passkeyIDs(t, b)
	if len(ids) != 1 {
		t.Fatalf("%d passkeys listed, want 1", len(ids))
	}
	expectStatus(t, b.Post("/account/passkeys/"+ids[0]+"/delete", nil), http.StatusSeeOther)
}

func jsonField(t testing.TB, r *testkit.Response, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("%s %s: not JSON: %v\n%s", r.Request.Method, r.Request.URL.Path, err, clip(r.Body))
	}
	s, _ := m[field].(string)
	return s
}

// expectJSONError checks a JSON error response: status, a code, a message.
func expectJSONError(t *testing.T, r *testkit.Response, status int) {
	t.Helper()
	expectStatus(t, r, status)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("error Content-Type %q, want JSON", r.Header.Get("Content-Type"))
	}
	if jsonField(t, r, "error") == "" || jsonField(t, r, "message") == "" {
		t.Errorf("JSON error lacks error/message: %s", r.Body)
	}
}

func TestRegisterThenSignInWithPasskey(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "ada@example.com")
	expectPage(t, b.Get("/account"), http.StatusOK, "Add a passkey to this account", "whoever can read your inbox")

	begin := b.PostJSON("/account/passkeys/begin", nil)
	expectStatus(t, begin, http.StatusOK)
	var opts struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			RP        struct{ ID, Name string }
			User      struct{ ID, Name string }
			Params    []struct {
				Alg int `json:"alg"`
			} `json:"pubKeyCredParams"`
			Selection struct {
				ResidentKey      string `json:"residentKey"`
				UserVerification string `json:"userVerification"`
			} `json:"authenticatorSelection"`
			Exclude []struct{ ID string } `json:"excludeCredentials"`
			Timeout int
		} `json:"publicKey"`
	}
	if err := json.Unmarshal([]byte(begin.Body), &opts); err != nil {
		t.Fatal(err)
	}
	o := opts.PublicKey
	challenge, _ := base64.RawURLEncoding.DecodeString(o.Challenge)
	userID, _ := base64.RawURLEncoding.DecodeString(o.User.ID)
	algs := map[int]bool{}
	for _, p := range o.Params {
		algs[p.Alg] = true
	}
	switch {
	case len(challenge) < 16:
		t.Errorf("challenge of %d bytes", len(challenge))
	case o.RP.ID != "localhost":
		t.Errorf("rp.id %q", o.RP.ID)
	case len(userID) < 16 || strings.Contains(string(userID), "ada"):
		t.Errorf("user.id %q is not a random handle", userID)
	case !algs[-7] || !algs[-8] || !algs[-257]:
		t.Errorf("algorithms %v lack ES256, EdDSA or RS256", algs)
	case o.Selection.ResidentKey != "required" || o.Selection.UserVerification != "required":
		t.Errorf("authenticatorSelection %+v", o.Selection)
	case o.Timeout < 120000 || o.Timeout > 300000:
		t.Errorf("timeout %d ms", o.Timeout)
	}
	ceremony := setCookieHeader(begin, "__Host-ceremony")
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=180"} {
		if !strings.Contains(ceremony, attr) {
			t.Errorf("ceremony cookie lacks %s: %s", attr, ceremony)
		}
	}
	t.Logf("registration ceremony cookie: %d bytes", len(strings.SplitN(ceremony, ";", 2)[0]))

	pk := testkit.NewPasskey(t, a.URL)
	fin := b.PostJSON("/account/passkeys/finish", pk.Attest(t, begin.Body))
	expectStatus(t, fin, http.StatusOK)
	if !strings.Contains(setCookieHeader(fin, "__Host-ceremony"), "Max-Age=0") {
		t.Error("the ceremony cookie was not cleared at finish")
	}
	account := b.Get("/account")
	expectPage(t, account, http.StatusOK, `<span class="passkey-name">Passkey</span>`, "Synced", "Unknown provider", "not used to sign in yet")
	if strings.Contains(account.Body, "Add a passkey to this account") {
		t.Error("still invited to add a passkey")
	}
	// Sign out, then sign in with the passkey, usernameless.
	expectStatus(t, b.Post("/signout", nil), http.StatusSeeOther)
	other := a.Browser(t)
	sbegin := other.PostJSON("/signin/passkey/begin", nil)
	expectStatus(t, sbegin, http.StatusOK)
	if strings.Contains(sbegin.Body, "allowCredentials") {
		t.Errorf("usernameless options name credentials: %s", sbegin.Body)
	}
	t.Logf("sign-in ceremony cookie: %d bytes", len(strings.SplitN(setCookieHeader(sbegin, "__Host-ceremony"), ";", 2)[0]))
	r := other.PostJSON("/signin/passkey/finish", pk.Assert(t, sbegin.Body))
	expectStatus(t, r, http.StatusOK)
	if jsonField(t, r, "redirect") != "/account" {
		t.Errorf("redirect %q", jsonField(t, r, "redirect"))
	}
	access := other.Cookie("__Host-at")
	if amr, _ := tokenClaims(t, access)["amr"].([]any); len(amr) != 2 || amr[0] != "hwk" || amr[1] != "user" {
		t.Errorf("amr %v, want [hwk user]", tokenClaims(t, access)["amr"])
	}
	t.Logf("access cookie after a passkey sign-in: %d bytes", len("__Host-at=")+len(access))
	expectPage(t, other.Get("/account"), http.StatusOK, "ada@example.com", "last used", "with a passkey")
	expectPage(t, other.Get("/"), http.StatusOK, "Signed in with a passkey")

	// Adding a second passkey excludes the first.
	begin = other.PostJSON("/account/passkeys/begin", nil)
	expectStatus(t, begin, http.StatusOK)
	if !strings.Contains(begin.Body, `"excludeCredentials":[{"type":"public-key","id":"`+base64.RawURLEncoding.EncodeToString(pk.Cred.ID)) {
		t.Errorf("excludeCredentials does not list the existing passkey: %s", begin.Body)
	}
}

func TestConditionalSignInAndNext(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "bea@example.com")
	pk := addPasskey(t, a, b)

	c := a.Browser(t)
	begin := c.PostJSON("/signin/passkey/begin?mediation=conditional&next=%2Faccount%3Fx%3D1", nil)
	expectStatus(t, begin, http.StatusOK)
	if jsonField(t, begin, "mediation") != "conditional" {
		t.Errorf("conditional begin: %s", begin.Body)
	}
	r := c.PostJSON("/signin/passkey/finish", pk.Assert(t, begin.Body))
	expectStatus(t, r, http.StatusOK)
	if got := jsonField(t, r, "redirect"); got != "/account?x=1" {
		t.Errorf("redirect %q, want /account?x=1", got)
	}
	// An unsafe next is dropped.
	begin = c.PostJSON("/signin/passkey/begin?next=%2F%2Fevil.example", nil)
	r = c.PostJSON("/signin/passkey/finish", pk.Assert(t, begin.Body))
	if got := jsonField(t, r, "redirect"); got != "/account" {
		t.Errorf("redirect %q for an unsafe next", got)
	}
	// Begin accepts an empty body or {}, and nothing else.
	for body, status := range map[string]int{"": 200, "{}": 200, `{"x":1}`: 200, "[": 400, "null": 400} {
		req, _ := http.NewRequest(http.MethodPost, a.URL+"/signin/passkey/begin", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if got := c.Do(req).StatusCode; got != status {
			t.Errorf("begin with body %q: %d, want %d", body, got, status)
		}
	}
}

func TestPasskeyNamesComeFromTheProvider(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "cleo@example.com")
	for range 2 {
		pk := testkit.NewPasskey(t, a.URL)
		copy(pk.Auth.Aaguid[:], mustHex("fbfc3007154e4ecc8c0b6e020557d7bd")) // iCloud Keychain
		registerPasskey(t, b, pk)
		// With a passkey on the account, adding another needs a passkey
		// sign-in.
		expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK)
	}
	device := testkit.NewPasskey(t, a.URL)
	device.Auth.Options.BackupEligible, device.Auth.Options.BackupState = false, false
	registerPasskey(t, b, device)
	expectPage(t, b.Get("/account"), http.StatusOK,
		`<span class="passkey-name">iCloud Keychain</span>`, `<span class="passkey-name">iCloud Keychain 2</span>`,
		"This device only")
}

func TestPasskeySignInReplayIsRefused(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "dora@example.com")
	pk := addPasskey(t, a, b)

	// Synced passkeys report a zero signature counter, so the counter
	// cannot catch a replay: the credential row's last use must.
	zero := testkit.Mod{Counter: testkit.Uint32(0)}
	attacker := a.Browser(t)
	begin := attacker.PostJSON("/signin/passkey/begin", nil)
	cookie := attacker.Cookie("__Host-ceremony")
	assertion := pk.AssertWith(t, begin.Body, zero)
	expectStatus(t, attacker.PostJSON("/signin/passkey/finish", assertion), http.StatusOK)

	// Replay the same ceremony cookie and assertion, from anywhere: refused
	// without even reading the credential again.
	reads := a.App.DB.Queries()["CredentialForSignIn"]
	for range 2 {
		replay := a.Browser(t)
		replay.SetCookie("__Host-ceremony", cookie)
		r := replay.PostJSON("/signin/passkey/finish", assertion)
		expectJSONError(t, r, http.StatusGone)
		if replay.Cookie("__Host-at") != "" {
			t.Fatal("a replayed assertion signed in")
		}
	}
	if n := a.App.DB.Queries()["CredentialForSignIn"] - reads; n != 0 {
		t.Errorf("two replays read the credential %d times, want 0", n)
	}

	// Ten copies of one ceremony and assertion at once: one signs in.
	begin = attacker.PostJSON("/signin/passkey/begin", nil)
	cookie = attacker.Cookie("__Host-ceremony")
	assertion = pk.AssertWith(t, begin.Body, zero)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
	)
	for range 10 {
		wg.Go(func() {
			c := a.Browser(t)
			c.SetCookie("__Host-ceremony", cookie)
			r := c.PostJSON("/signin/passkey/finish", assertion)
			mu.Lock()
			codes[r.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusOK] != 1 || codes[http.StatusGone] != 9 {
		t.Errorf("concurrent replays: %v, want one 200 and nine 410", codes)
	}
}

func TestHostileAssertionsAreRefused(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock})
	owner := a.Browser(t)
	signIn(t, a, owner, "eve@example.com")
	pk := addPasskey(t, a, owner)
	stranger := a.Browser(t)
	signIn(t, a, stranger, "finn@example.com")
	strangerKey := addPasskey(t, a, stranger)

	try := func(t *testing.T, mod testkit.Mod) *testkit.Response {
		t.Helper()
		b := a.Browser(t)
		r := passkeySignInWith(t, b, pk, mod)
		if b.Cookie("__Host-at") != "" {
			t.Error("signed in")
		}
		return r
	}
	for name, mod := range map[string]testkit.Mod{
		"wrong origin":                  {Origin: "https://evil.example"},
		"origin on another port":        {Origin: "http://localhost:1"},
		"wrong RP ID hash":              {RPID: "evil.example"},
		"wrong type":                    {Type: "webauthn.create"},
		"user not present":              {Flags: testkit.Byte(testkit.FlagUV | testkit.FlagBE | testkit.FlagBS)},
		"user not verified":             {Flags: testkit.Byte(testkit.FlagUP | testkit.FlagBE | testkit.FlagBS)},
		"backed up but not eligible":    {Flags: testkit.Byte(testkit.FlagUP | testkit.FlagUV | testkit.FlagBS)},
		"another user's handle":         {UserHandle: strangerKey.UserHandle},
		"no user handle":                {NoUserHandle: true},
		"signed by another key":         {WrongKey: true},
		"credential id over 1023 bytes": {CredentialID: make([]byte, 1100)},
	} {
		t.Run(name, func(t *testing.T) {
			r := try(t, mod)
			if r.StatusCode < 400 || r.StatusCode >= 500 {
				t.Fatalf("status %d: %s", r.StatusCode, r.Body)
			}
			expectJSONError(t, r, r.StatusCode)
		})
	}
	// An unknown credential: 404 naming it, so the browser can forget it.
	r := try(t, testkit.Mod{CredentialID: []byte("no-such-credential-0123456789")})
	expectJSONError(t, r, http.StatusNotFound)
	if jsonField(t, r, "credential") == "" {
		t.Error("unknown credential not named")
	}

	// The genuine passkey still works after all that, through
	// virtualwebauthn and through the hand-built response unmodified, so
	// each refusal above was about what the case changed.
	expectStatus(t, passkeySignIn(t, a.Browser(t), pk), http.StatusOK)
	clock.Advance(time.Second)
	baseline := a.Browser(t)
	begin := baseline.PostJSON("/signin/passkey/begin", nil)
	expectStatus(t, baseline.PostJSON("/signin/passkey/finish", pk.AssertWith(t, begin.Body, testkit.Mod{})), http.StatusOK)

	// A counter that goes backwards is refused (a cloned authenticator).
	t.Run("counter went backwards", func(t *testing.T) {
		clock.Advance(time.Second) // a new ceremony, after the last use
		r := try(t, testkit.Mod{Counter: testkit.Uint32(1)})
		expectJSONError(t, r, http.StatusForbidden)
		clock.Advance(time.Second)
		r = try(t, testkit.Mod{Counter: testkit.Uint32(0)})
		expectJSONError(t, r, http.StatusForbidden)
	})
	// An expired ceremony.
	t.Run("expired ceremony", func(t *testing.T) {
		b := a.Browser(t)
		begin := b.PostJSON("/signin/passkey/begin", nil)
		clock.Advance(3*time.Minute + time.Second)
		expectJSONError(t, b.PostJSON("/signin/passkey/finish", pk.Assert(t, begin.Body)), http.StatusBadRequest)
	})
}

func TestMalformedPasskeyRequests(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "gus@example.com")
	pk := addPasskey(t, a, b)
	expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK)
	for _, path := range []string{"/signin/passkey/finish", "/account/passkeys/finish"} {
		begin := strings.Replace(path, "finish", "begin", 1)
		for name, body := range map[string]string{
			"malformed JSON": `{"id":`,
			"not an object":  `[1,2,3]`,
			"empty object":   `{}`,
			"wrong shape":    `{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"!!!"}}`,
			"empty":          ``,
		} {
			expectStatus(t, b.PostJSON(begin, nil), http.StatusOK) // a live ceremony, so the body is what is wrong
			r := b.PostJSON(path, body)
			if r.StatusCode != http.StatusBadRequest {
				t.Errorf("%s %s: %d, want 400", path, name, r.StatusCode)
			}
			expectJSONError(t, r, r.StatusCode)
			if msg := jsonField(t, r, "message"); strings.Contains(msg, "expired") {
				t.Errorf("%s %s: refused for its ceremony, not its body: %q", path, name, msg)
			}
			if name == "malformed JSON" && !strings.Contains(jsonField(t, r, "message"), "not valid JSON") {
				t.Errorf("%s %s: message %q does not say the JSON is malformed", path, name, jsonField(t, r, "message"))
			}
		}
		// Not JSON: 415.
		req, _ := http.NewRequest(http.MethodPost, a.URL+path, strings.NewReader("id=1"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		expectJSONError(t, b.Do(req), http.StatusUnsupportedMediaType)
		// Over 64 KB: 413.
		expectJSONError(t, b.PostJSON(path, `{"x":"`+strings.Repeat("a", 70<<10)+`"}`), http.StatusRequestEntityTooLarge)
	}
	// No ceremony cookie at all.
	fresh := a.Browser(t)
	begin := fresh.PostJSON("/signin/passkey/begin", nil)
	assertion := pk.Assert(t, begin.Body)
	fresh.DeleteCookie("__Host-ceremony")
	expectJSONError(t, fresh.PostJSON("/signin/passkey/finish", assertion), http.StatusBadRequest)
	// A forged or garbled ceremony cookie.
	for _, bad := range []string{"garbage", strings.Repeat("A", 200), "%00"} {
		fresh.SetCookie("__Host-ceremony", bad)
		expectJSONError(t, fresh.PostJSON("/signin/passkey/finish", assertion), http.StatusBadRequest)
	}
	// A registration ceremony cookie used to sign in.
	regBegin := b.PostJSON("/account/passkeys/begin", nil)
	expectJSONError(t, b.PostJSON("/signin/passkey/finish", pk.Assert(t, regBegin.Body)), http.StatusBadRequest)
}

func TestHostileRegistrationsAreRefused(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "hana@example.com")
	for name, mod := range map[string]testkit.Mod{
		"wrong origin":          {Origin: "https://evil.example"},
		"wrong RP ID hash":      {RPID: "evil.example"},
		"wrong type":            {Type: "webauthn.get"},
		"user not verified":     {Flags: testkit.Byte(testkit.FlagUP | testkit.FlagAT)},
		"user not present":      {Flags: testkit.Byte(testkit.FlagUV | testkit.FlagAT)},
		"algorithm not offered": {Algorithm: -35}, // ES384
		"id over 1023 bytes":    {CredentialID: make([]byte, 1024)},
		"padded public key":     {KeyPadding: 40000},
	} {
		t.Run(name, func(t *testing.T) {
			begin := b.PostJSON("/account/passkeys/begin", nil)
			expectStatus(t, begin, http.StatusOK)
			pk := testkit.NewPasskey(t, a.URL)
			r := b.PostJSON("/account/passkeys/finish", pk.AttestWith(t, begin.Body, mod))
			expectJSONError(t, r, http.StatusBadRequest)
		})
	}
	// The hand-built response is right when unmodified, so the refusals
	// above are about what was changed.
	begin := b.PostJSON("/account/passkeys/begin", nil)
	pk := testkit.NewPasskey(t, a.URL)
	expectStatus(t, b.PostJSON("/account/passkeys/finish", pk.AttestWith(t, begin.Body, testkit.Mod{})), http.StatusOK)
	if strings.Count(b.Get("/account").Body, `class="passkey-name"`) != 1 {
		t.Error("a refused registration left a passkey behind")
	}
	expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK)

	// A credential id already registered, by this or another user.
	other := a.Browser(t)
	signIn(t, a, other, "ivo@example.com")
	for _, who := range []*testkit.Browser{b, other} {
		begin := who.PostJSON("/account/passkeys/begin", nil)
		dup := testkit.NewPasskey(t, a.URL)
		dup.Cred = pk.Cred
		expectJSONError(t, who.PostJSON("/account/passkeys/finish", dup.Attest(t, begin.Body)), http.StatusConflict)
	}
	// A registration ceremony started by one account, finished by another.
	begin = b.PostJSON("/account/passkeys/begin", nil)
	other.SetCookie("__Host-ceremony", b.Cookie("__Host-ceremony"))
	expectJSONError(t, other.PostJSON("/account/passkeys/finish", testkit.NewPasskey(t, a.URL).Attest(t, begin.Body)), http.StatusForbidden)
	// Signed out: 401 with where to go.
	r := a.Browser(t).PostJSON("/account/passkeys/begin", nil)
	expectJSONError(t, r, http.StatusUnauthorized)
	if !strings.HasPrefix(jsonField(t, r, "redirect"), "/signin") {
		t.Errorf("signed-out begin redirect %q", jsonField(t, r, "redirect"))
	}
}

func TestManagingPasskeysIsForTheOwnerOnly(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	alice, mallory := a.Browser(t), a.Browser(t)
	signIn(t, a, alice, "jo@example.com")
	alicesKey := addPasskey(t, a, alice)
	signIn(t, a, mallory, "mal@example.com")
	expectStatus(t, passkeySignIn(t, mallory, addPasskey(t, a, mallory)), http.StatusOK) // fresh

	id := firstPasskeyID(t, alice)
	for _, action := range []string{"rename", "delete"} {
		r := mallory.Post("/account/passkeys/"+id+"/"+action, url.Values{"name": {"pwned"}})
		expectPage(t, r, http.StatusNotFound, "no such passkey")
	}
	for _, bad := range []string{"0", "-1", "abc", "99999999999999999999", "1e3", "%20" + id, id + "x"} {
		for _, action := range []string{"rename", "delete"} {
			expectPage(t, alice.Post("/account/passkeys/"+bad+"/"+action, url.Values{"name": {"x"}}), http.StatusNotFound, "no such passkey")
		}
	}
	page := alice.Get("/account").Body
	if strings.Contains(page, "pwned") || strings.Count(page, `class="passkey-name"`) != 1 {
		t.Fatal("another user changed this passkey")
	}

	expectStatus(t, alice.Post("/account/passkeys/"+id+"/rename", url.Values{"name": {"  Work laptop  "}}), http.StatusSeeOther)
	expectPage(t, alice.Get("/account"), http.StatusOK, `<span class="passkey-name">Work laptop</span>`, `maxlength="64"`)
	for _, bad := range []string{"", "   ", strings.Repeat("x", 65), "two\nlines", "\xff\xfe", "evil\u202egnp.exe",
		"a\u200bb", "one\u2028two", "bell\a", "\u2066isolate"} {
		expectPage(t, alice.Post("/account/passkeys/"+id+"/rename", url.Values{"name": {bad}}), http.StatusBadRequest, "1 to 64 characters")
		if !strings.Contains(alice.Get("/account").Body, `<span class="passkey-name">Work laptop</span>`) {
			t.Fatalf("the name %q was saved", bad)
		}
	}
	// Any language, and emoji sequences (they need the zero-width joiner).
	for _, good := range []string{"Ноутбук", "ラップトップ", "👩\u200d💻 work", strings.Repeat("é", 64)} {
		expectStatus(t, alice.Post("/account/passkeys/"+id+"/rename", url.Values{"name": {good}}), http.StatusSeeOther)
		if !strings.Contains(alice.Get("/account").Body, html.EscapeString(good)) {
			t.Errorf("the name %q was not saved as given", good)
		}
	}
	// Names are text, never markup.
	expectStatus(t, alice.Post("/account/passkeys/"+id+"/rename", url.Values{"name": {"<script>x</script>"}}), http.StatusSeeOther)
	if strings.Contains(alice.Get("/account").Body, "<script>x") {
		t.Error("a passkey name was rendered as markup")
	}

	// The owner deletes it, right after a passkey sign-in.
	expectStatus(t, passkeySignIn(t, alice, alicesKey), http.StatusOK)
	expectStatus(t, alice.Post("/account/passkeys/"+id+"/delete", nil), http.StatusSeeOther)
	if strings.Contains(alice.Get("/account").Body, `class="passkey-name"`) {
		t.Error("passkey still listed after delete")
	}
}

func TestSensitiveActionsNeedARecentSignIn(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock})
	b := a.Browser(t)
	signIn(t, a, b, "kai@example.com")
	pk := addPasskey(t, a, b) // right after a link sign-in: allowed
	id := firstPasskeyID(t, b)

	clock.Advance(11 * time.Minute) // past REAUTH_TTL
	r := b.Post("/account/passkeys/"+id+"/delete", nil)
	expectStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/account/reauth?next=%2Faccount" {
		t.Fatalf("stale delete → %q", loc)
	}
	rj := b.PostJSON("/account/passkeys/begin", nil)
	expectStatus(t, rj, http.StatusForbidden)
	if jsonField(t, rj, "error") != "reauth_required" || jsonField(t, rj, "redirect") != "/account/reauth?next=%2Faccount" {
		t.Errorf("stale begin: %s", rj.Body)
	}

	// A new link sign-in does not count on an account with passkeys: email
	// is the weaker factor.
	signIn(t, a, b, "kai@example.com")
	expectStatus(t, b.Post("/account/passkeys/"+id+"/delete", nil), http.StatusSeeOther)
	if !strings.Contains(b.Get("/account").Body, "passkey-name") {
		t.Fatal("deleted a passkey after only a link sign-in")
	}

	// The step-up page confirms with this account's passkeys only.
	page := b.Get("/account/reauth?next=%2Faccount")
	expectPage(t, page, http.StatusOK, "Confirm it", "Confirm with a passkey", `data-next="/account"`)
	begin := b.PostJSON("/signin/passkey/begin?for=reauth&next=%2Faccount", nil)
	expectStatus(t, begin, http.StatusOK)
	if !strings.Contains(begin.Body, base64.RawURLEncoding.EncodeToString(pk.Cred.ID)) {
		t.Error("step-up options do not list the account's passkey")
	}
	// Another account's passkey cannot confirm this one.
	intruder := a.Browser(t)
	signIn(t, a, intruder, "lia@example.com")
	foreign := addPasskey(t, a, intruder)
	foreign.UserHandle = pk.UserHandle
	expectJSONError(t, b.PostJSON("/signin/passkey/finish", foreign.Assert(t, begin.Body)), http.StatusForbidden)

	begin = b.PostJSON("/signin/passkey/begin?for=reauth&next=%2Faccount", nil)
	r = b.PostJSON("/signin/passkey/finish", pk.Assert(t, begin.Body))
	expectStatus(t, r, http.StatusOK)
	if jsonField(t, r, "redirect") != "/account" {
		t.Errorf("step-up redirect %q", jsonField(t, r, "redirect"))
	}
	expectStatus(t, b.Post("/account/passkeys/"+id+"/delete", nil), http.StatusSeeOther)
	if strings.Contains(b.Get("/account").Body, "passkey-name") {
		t.Error("passkey not deleted after step-up")
	}
	// Fresh already: the step-up page sends you straight on — to this site
	// only, whatever next says.
	r = b.Get("/account/reauth?next=%2Faccount")
	expectStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/account" {
		t.Errorf("step-up page sent on to %q", loc)
	}
	for _, hostile := range []string{"//evil.example", "/\\evil.example", "https:evil.example", "javascript:alert(1)", "%2F%2Fevil.example"} {
		r := b.Get("/account/reauth?next=" + url.QueryEscape(hostile))
		if loc := r.Header.Get("Location"); loc != "/account" {
			t.Errorf("step-up page with next=%q sent on to %q, want /account", hostile, loc)
		}
	}
}

func TestStepUpWithoutAPasskeyUsesALink(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock})
	b := a.Browser(t)
	signIn(t, a, b, "max@example.com")
	clock.Advance(11 * time.Minute)
	rj := b.PostJSON("/account/passkeys/begin", nil)
	expectStatus(t, rj, http.StatusForbidden)
	page := b.Get(jsonField(t, rj, "redirect"))
	expectPage(t, page, http.StatusOK, "Email me a link", `name="email" value="max@example.com"`, `name="next" value="/account"`)
	// The link it sends signs in again, which renews auth_time.
	tok := requestLink(t, a, b, "max@example.com", "next", "/account")
	expectStatus(t, b.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
	expectStatus(t, b.PostJSON("/account/passkeys/begin", nil), http.StatusOK)
}

func mustHex(s string) []byte {
	out := make([]byte, len(s)/2)
	for i := range out {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		out[i] = v
	}
	return out
}

func TestStepUpBeginNeedsASession(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	r := a.Browser(t).PostJSON("/signin/passkey/begin?for=reauth&next=%2Faccount", nil)
	expectJSONError(t, r, http.StatusUnauthorized)
	if !strings.HasPrefix(jsonField(t, r, "redirect"), "/signin") {
		t.Errorf("redirect %q", jsonField(t, r, "redirect"))
	}
	// Signed in without a passkey, a passkey step-up is refused plainly.
	b := a.Browser(t)
	signIn(t, a, b, "zed@example.com")
	expectJSONError(t, b.PostJSON("/signin/passkey/begin?for=reauth", nil), http.StatusBadRequest)
}

// TestCeremoniesAreBoundToTheirPurposeAndAccount: a step-up ceremony is
// for the account that began it, signed in; a sign-in ceremony cannot
// register a passkey.
func TestCeremoniesAreBoundToTheirPurposeAndAccount(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	alice, bob := a.Browser(t), a.Browser(t)
	signIn(t, a, alice, "ali@example.com")
	pk := addPasskey(t, a, alice)
	signIn(t, a, bob, "bo@example.com")

	// Alice's step-up ceremony, finished with her passkey by someone
	// signed out, or signed in as Bob: refused, and nobody is signed in
	// as Alice by it.
	begin := alice.PostJSON("/signin/passkey/begin?for=reauth", nil)
	expectStatus(t, begin, http.StatusOK)
	for name, tc := range map[string]struct {
		who    *testkit.Browser
		status int
		says   string
	}{
		"signed out":      {a.Browser(t), http.StatusUnauthorized, "signed out"},
		"another account": {bob, http.StatusForbidden, "belongs to another account"},
	} {
		tc.who.SetCookie("__Host-ceremony", alice.Cookie("__Host-ceremony"))
		r := tc.who.PostJSON("/signin/passkey/finish", pk.Assert(t, begin.Body))
		expectJSONError(t, r, tc.status)
		if msg := jsonField(t, r, "message"); !strings.Contains(msg, tc.says) {
			t.Errorf("%s: the step-up says %q, want it to say %q", name, msg, tc.says)
		}
		if c := setCookieHeader(r, "__Host-at"); c != "" {
			t.Errorf("%s: a step-up ceremony of another account set a session: %s", name, c)
		}
	}

	// A sign-in ceremony cookie at registration: refused as expired or
	// of the wrong kind, and no passkey is added.
	signInBegin := alice.PostJSON("/signin/passkey/begin", nil)
	expectStatus(t, signInBegin, http.StatusOK)
	r := alice.PostJSON("/account/passkeys/finish", testkit.NewPasskey(t, a.URL).Attest(t, signInBegin.Body))
	expectJSONError(t, r, http.StatusBadRequest)
	if n := strings.Count(alice.Get("/account").Body, `class="passkey-name"`); n != 1 {
		t.Errorf("%d passkeys listed after a registration with a sign-in ceremony, want 1", n)
	}
}

// TestPasskeysPerAccountAreLimited: an account holds up to 20 passkeys.
// At the limit the account page says so instead of offering to add one,
// and a registration is refused when it begins, before a step-up and
// before the browser would ask the person to make a passkey. Two devices
// finishing a registration for the last place: one gets it, the other is
// refused and told which passkey its browser should forget. Deleting one
// makes room again.
func TestPasskeysPerAccountAreLimited(t *testing.T) {
	testkit.EachEngine(t, testPasskeysPerAccountAreLimited)
}

func testPasskeysPerAccountAreLimited(t *testing.T, store testkit.Store) {
	clock := testkit.NewClock()
	secret, mail := testkit.NewSecret(), testkit.StartMailServer(t, false)
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock, Store: store, SecretKeys: secret, Mail: mail})
	// A second instance, where the account's other device is routed.
	a2 := testkit.StartApp(t, testkit.AppOptions{Clock: clock, Store: store, SecretKeys: secret, Mail: mail,
		Env: map[string]string{"BASE_URL": a.URL}})
	b := a.Browser(t)
	signIn(t, a, b, "many@example.com")
	first := addPasskey(t, a, b)
	expectStatus(t, passkeySignIn(t, b, first), http.StatusOK) // fresh, with a passkey
	for range db.MaxCredentials - 2 {
		addPasskey(t, a, b)
	}

	// Two devices of the account each begin a registration at 19, on two
	// instances…
	other := a2.Browser(t)
	b.CopyCookies(other)
	mine, theirs := testkit.NewPasskey(t, a.URL), testkit.NewPasskey(t, a.URL)
	beginMine, beginTheirs := b.PostJSON("/account/passkeys/begin", nil), other.PostJSON("/account/passkeys/begin", nil)
	expectStatus(t, beginMine, http.StatusOK)
	expectStatus(t, beginTheirs, http.StatusOK)
	// …and both finish: the second is refused, and names its passkey.
	ceremony, attestation := b.Cookie("__Host-ceremony"), mine.Attest(t, beginMine.Body)
	expectStatus(t, b.PostJSON("/account/passkeys/finish", attestation), http.StatusOK)
	late := other.PostJSON("/account/passkeys/finish", theirs.Attest(t, beginTheirs.Body))
	expectJSONError(t, late, http.StatusConflict)
	if msg := jsonField(t, late, "message"); !strings.Contains(msg, "20 passkeys") || !strings.Contains(msg, "Delete one") {
		t.Errorf("the registration that came too late says %q", msg)
	}
	if got, want := jsonField(t, late, "credential"), base64.RawURLEncoding.EncodeToString(theirs.Cred.ID); got != want {
		t.Errorf("the refused registration names credential %q, want %q (the browser should forget it)", got, want)
	}

	// The winning finish sent again (a retried request): refused as
	// already registered, without telling the browser to forget it.
	b.SetCookie("__Host-ceremony", ceremony)
	again := b.PostJSON("/account/passkeys/finish", attestation)
	expectJSONError(t, again, http.StatusConflict)
	if jsonField(t, again, "credential") != "" || !strings.Contains(jsonField(t, again, "message"), "already registered") {
		t.Errorf("a registered passkey sent again at the limit: %s", clip(again.Body))
	}

	page := b.Get("/account").Body
	if n := strings.Count(page, `class="passkey-name"`); n != db.MaxCredentials {
		t.Fatalf("the account page lists %d passkeys, want %d", n, db.MaxCredentials)
	}
	if strings.Contains(page, "data-passkey-register") || !strings.Contains(page, "the most it can have") {
		t.Error("at the limit, the account page still offers to add a passkey, or does not say why not")
	}

	// Begin is refused at once, even when the session would first need a
	// step-up: confirming it's you would be for nothing.
	clock.Advance(11 * time.Minute)
	begin := b.PostJSON("/account/passkeys/begin", nil)
	expectJSONError(t, begin, http.StatusConflict)
	if msg := jsonField(t, begin, "message"); !strings.Contains(msg, "20 passkeys") {
		t.Errorf("over the limit, begin says %q", msg)
	}
	if b.Cookie("__Host-ceremony") != "" {
		t.Error("a refused registration still started a ceremony")
	}

	expectStatus(t, passkeySignIn(t, b, first), http.StatusOK)
	expectStatus(t, b.Post("/account/passkeys/"+firstPasskeyID(t, b)+"/delete", nil), http.StatusSeeOther)
	if !strings.Contains(b.Get("/account").Body, "data-passkey-register") {
		t.Error("after deleting one, the account page does not offer to add a passkey")
	}
	addPasskey(t, a, b)
}

// TestPasskeyBackupFlagsMayChange: real authenticators flip the backup
// flags between registration and sign-in (iCloud Keychain after a sync,
// some password managers). Each change is accepted, recorded on the
// passkey (the account page says how it is stored now) and logged with
// the credential's id; the impossible combination, backed up but not
// eligible, is still refused, and every other check still holds.
// flagsEvent begins the warn-level security event of changed backup flags.
const flagsEvent = `level=WARN msg="security event" event=passkey_flags_changed user=`

func TestPasskeyBackupFlagsMayChange(t *testing.T) {
	clock := testkit.NewClock()
	var log testkit.SyncBuffer
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock, Log: &log})
	b := a.Browser(t)
	signIn(t, a, b, "flags@example.com")
	pk := testkit.NewPasskey(t, a.URL)
	begin := b.PostJSON("/account/passkeys/begin", nil)
	deviceOnly := testkit.Mod{Flags: testkit.Byte(testkit.FlagUP | testkit.FlagUV | testkit.FlagAT)}
	expectStatus(t, b.PostJSON("/account/passkeys/finish", pk.AttestWith(t, begin.Body, deviceOnly)), http.StatusOK)
	expectPage(t, b.Get("/account"), http.StatusOK, "This device only")
	id := base64.RawURLEncoding.EncodeToString(pk.Cred.ID)

	for _, step := range []struct {
		name  string
		flags byte
		shows string
	}{
		{"became eligible and synced", testkit.FlagUP | testkit.FlagUV | testkit.FlagBE | testkit.FlagBS, "Synced"},
		{"eligible, not backed up yet", testkit.FlagUP | testkit.FlagUV | testkit.FlagBE, "Can sync, not backed up yet"},
		{"no longer eligible", testkit.FlagUP | testkit.FlagUV, "This device only"},
	} {
		clock.Advance(time.Second)
		before := strings.Count(log.String(), flagsEvent)
		owner := a.Browser(t)
		expectStatus(t, passkeySignInWith(t, owner, pk, testkit.Mod{Flags: testkit.Byte(step.flags)}), http.StatusOK)
		expectPage(t, owner.Get("/account"), http.StatusOK, step.shows)
		if n := strings.Count(log.String(), flagsEvent); n != before+1 || !strings.Contains(log.String(), "credential="+id) {
			t.Errorf("%s: %d flag-change warnings logged (want one more, naming %s):\n%s", step.name, n-before, id, log.String())
		}
	}
	// Unchanged flags log nothing.
	clock.Advance(time.Second)
	before := strings.Count(log.String(), flagsEvent)
	expectStatus(t, passkeySignInWith(t, a.Browser(t), pk, testkit.Mod{Flags: testkit.Byte(testkit.FlagUP | testkit.FlagUV)}), http.StatusOK)
	if strings.Count(log.String(), flagsEvent) != before {
		t.Error("a sign-in with unchanged flags logged a change")
	}
	// Backed up but not eligible is not a state any authenticator is in.
	clock.Advance(time.Second)
	bad := a.Browser(t)
	expectJSONError(t, passkeySignInWith(t, bad, pk, testkit.Mod{Flags: testkit.Byte(testkit.FlagUP | testkit.FlagUV | testkit.FlagBS)}), http.StatusBadRequest)
	if bad.Cookie("__Host-at") != "" {
		t.Error("backed up but not eligible signed in")
	}
	// A flag change does not excuse anything else: another key is still refused.
	clock.Advance(time.Second)
	expectJSONError(t, passkeySignInWith(t, a.Browser(t), pk, testkit.Mod{Flags: testkit.Byte(testkit.FlagUP | testkit.FlagUV | testkit.FlagBE), WrongKey: true}), http.StatusBadRequest)
}
