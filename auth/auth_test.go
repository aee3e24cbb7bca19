package auth

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/errs"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newSecret(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

func mustKeys(t testing.TB, secrets ...[]byte) *Keys {
	t.Helper()
	k, err := NewKeys(secrets)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const testBase = "https://login.example.com"

func newTokens(t testing.TB, keys *Keys, clock Clock) *Tokens {
	t.Helper()
	return NewTokens(TokenConfig{BaseURL: testBase, AccessTTL: 10 * time.Minute, IdleTTL: 168 * time.Hour, MaxTTL: 720 * time.Hour},
		keys, clock, NewRevocations(10*time.Minute, clock))
}

func TestIssueAndVerify(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_795_000_000_123)}
	tokens := newTokens(t, mustKeys(t, newSecret(t)), clock)
	handle := []byte("0123456789abcdef")
	issued, err := tokens.Issue(handle, AMRPasskey, clock.Now(), "sid1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tokens.VerifyAccess(issued.Access)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Handle()) != string(handle) || c.SID != "sid1" || !c.Passkey() || c.Issuer != testBase || c.Audience != testBase {
		t.Errorf("claims %+v", c)
	}
	// iat carries milliseconds, in the JSON itself.
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(issued.Access, ".")[1])
	if !strings.Contains(string(payload), `"iat":1795000000.123`) {
		t.Errorf("payload %s lacks a millisecond iat", payload)
	}
	if _, err := tokens.VerifyRefresh(issued.Refresh); err != nil {
		t.Errorf("refresh token: %v", err)
	}
	// Each type verifies only as itself.
	if _, err := tokens.VerifyAccess(issued.Refresh); err == nil {
		t.Error("a refresh token verified as an access token")
	}
	if _, err := tokens.VerifyRefresh(issued.Access); err == nil {
		t.Error("an access token verified as a refresh token")
	}
	// Expiry, with at most one second of leeway; the cached path too.
	clock.Advance(10*time.Minute + 500*time.Millisecond)
	if _, err := tokens.VerifyAccess(issued.Access); err != nil {
		t.Errorf("within the one-second leeway: %v", err)
	}
	clock.Advance(2 * time.Second)
	if _, err := tokens.VerifyAccess(issued.Access); err == nil {
		t.Error("expired token verified (cached)")
	}
	if _, err := newTokens(t, tokens.keys, clock).VerifyAccess(issued.Access); err == nil {
		t.Error("expired token verified (uncached)")
	}
}

func TestVerifyRefusesForgeries(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	keys := mustKeys(t, newSecret(t))
	tokens := newTokens(t, keys, clock)
	issued, _ := tokens.Issue([]byte("0123456789abcdef"), AMREmail, clock.Now(), "s")
	parts := strings.Split(issued.Access, ".")
	var header map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	json.Unmarshal(hb, &header)
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	withHeader := func(k string, v any) string {
		h := map[string]any{}
		for kk, vv := range header {
			h[kk] = vv
		}
		h[k] = v
		return enc(h)
	}
	_, foreign, _ := ed25519.GenerateKey(rand.Reader)
	signWith := func(key ed25519.PrivateKey, h string) string {
		in := h + "." + parts[1]
		return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(in)))
	}
	ours := keys.Signer().Private
	if _, err := tokens.VerifyAccess(signWith(ours, parts[0])); err != nil {
		t.Fatalf("re-signing the token unchanged with our key: %v", err)
	}
	hs := func() string {
		h := withHeader("alg", "HS256")
		m := hmac.New(sha256.New, keys.Signer().Public)
		m.Write([]byte(h + "." + parts[1]))
		return h + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}()
	for name, tok := range map[string]string{
		"alg none":          withHeader("alg", "none") + "." + parts[1] + ".",
		"HS256 public key":  hs,
		"foreign key":       signWith(foreign, parts[0]),
		"unknown kid":       signWith(ours, withHeader("kid", "nope")),
		"typ JWT":           signWith(ours, withHeader("typ", "JWT")),
		"typ refresh":       signWith(ours, withHeader("typ", TypeRefresh)),
		"no signature":      parts[0] + "." + parts[1] + ".",
		"trailing padding":  issued.Access + "=",
		"too long":          issued.Access + strings.Repeat("A", 3000),
		"wrong issuer keys": mustIssue(t, NewTokens(TokenConfig{BaseURL: "https://evil.example", AccessTTL: time.Minute, IdleTTL: time.Hour, MaxTTL: time.Hour}, keys, clock, NewRevocations(time.Minute, clock))),
	} {
		if _, err := tokens.VerifyAccess(tok); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

func mustIssue(t *testing.T, tokens *Tokens) string {
	t.Helper()
	i, err := tokens.Issue([]byte("0123456789abcdef"), AMREmail, time.Now(), "s")
	if err != nil {
		t.Fatal(err)
	}
	return i.Access
}

func TestRevocationBeatsTheCache(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	tokens := newTokens(t, mustKeys(t, newSecret(t)), clock)
	i1, _ := tokens.Issue([]byte("0123456789abcdef"), AMREmail, clock.Now(), "one")
	i2, _ := tokens.Issue([]byte("0123456789abcdef"), AMREmail, clock.Now(), "two")
	for _, tok := range []string{i1.Access, i2.Access} {
		if _, err := tokens.VerifyAccess(tok); err != nil { // now cached
			t.Fatal(err)
		}
	}
	tokens.revoked.RevokeSession(i1.Claims.Subject, "one")
	if _, err := tokens.VerifyAccess(i1.Access); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("revoked session: %v", err)
	}
	if _, err := tokens.VerifyAccess(i2.Access); err != nil {
		t.Errorf("other session: %v", err)
	}
	clock.Advance(time.Millisecond)
	tokens.revoked.RevokeUser(i1.Claims.Subject, clock.Now().UnixMilli())
	if _, err := tokens.VerifyAccess(i2.Access); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("revoked user: %v", err)
	}
	// A token issued after the revocation works.
	clock.Advance(time.Millisecond)
	i3, _ := tokens.Issue([]byte("0123456789abcdef"), AMREmail, clock.Now(), "three")
	if _, err := tokens.VerifyAccess(i3.Access); err != nil {
		t.Errorf("token after revocation: %v", err)
	}
	// Entries are forgotten once no token they void can be valid.
	clock.Advance(11 * time.Minute)
	tokens.revoked.RevokeSession("someone", "else")
	if users, sessions := tokens.revoked.Len(); users != 0 || sessions != 1 {
		t.Errorf("revocation set holds %d users, %d sessions after the TTL", users, sessions)
	}
}

func TestKeyRotation(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	oldSecret, newSecret := newSecret(t), newSecret(t)
	before := newTokens(t, mustKeys(t, oldSecret), clock)
	oldTok := mustIssue(t, before)
	sealed := before.keys.Seal(PurposeLink, []byte("x"), clock.Now().Add(time.Hour))

	rotated := newTokens(t, mustKeys(t, newSecret, oldSecret), clock)
	if _, err := rotated.VerifyAccess(oldTok); err != nil {
		t.Errorf("old token after rotation: %v", err)
	}
	if _, err := rotated.keys.Open(PurposeLink, sealed, clock.Now()); err != nil {
		t.Errorf("old sealed value after rotation: %v", err)
	}
	newTok := mustIssue(t, rotated)
	if h := strings.Split(newTok, ".")[0]; h == strings.Split(oldTok, ".")[0] {
		t.Error("new tokens still carry the old kid")
	}
	var set struct{ Keys []map[string]string }
	jwks, err := rotated.keys.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(jwks, &set)
	// One Ed25519 key per secret, then one RSA key per secret, newest first.
	if len(set.Keys) != 4 || set.Keys[0]["kid"] == set.Keys[1]["kid"] || set.Keys[0]["alg"] != "EdDSA" || set.Keys[0]["use"] != "sig" ||
		set.Keys[2]["alg"] != "RS256" || set.Keys[2]["kty"] != "RSA" || set.Keys[2]["kid"] == set.Keys[3]["kid"] {
		t.Errorf("JWKS %v", set)
	}
	if rsaKey, _ := rotated.keys.RSASigner(); rsaKey.KID != set.Keys[2]["kid"] {
		t.Errorf("the RSA signer is %s, not the newest secret's %s", rsaKey.KID, set.Keys[2]["kid"])
	}
	// Another instance with the same secrets derives the same RSA keys.
	again, _ := mustKeys(t, newSecret, oldSecret).JWKS()
	if string(again) != string(jwks) {
		t.Error("two instances with the same secrets publish different key sets")
	}

	retired := newTokens(t, mustKeys(t, newSecret), clock)
	if _, err := retired.VerifyAccess(oldTok); err == nil {
		t.Error("token of a removed secret still verifies")
	}
	if _, err := retired.keys.Open(PurposeLink, sealed, clock.Now()); err == nil {
		t.Error("sealed value of a removed secret still opens")
	}
}

func TestSealing(t *testing.T) {
	keys := mustKeys(t, newSecret(t))
	now := time.Now()
	s := keys.Seal(PurposeLink, []byte("hello"), now.Add(time.Minute))
	if got, err := keys.Open(PurposeLink, s, now); err != nil || string(got) != "hello" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if strings.Contains(s, "hello") {
		t.Error("sealed value shows its plaintext")
	}
	if _, err := keys.Open(PurposeCeremony, s, now); !errors.Is(err, ErrSealInvalid) {
		t.Errorf("other purpose: %v", err)
	}
	if _, err := keys.Open(PurposeLink, s, now.Add(time.Minute)); !errors.Is(err, ErrSealExpired) {
		t.Errorf("expired: %v", err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(s)
	for i := range raw {
		bad := append([]byte(nil), raw...)
		bad[i] ^= 0x80
		if _, err := keys.Open(PurposeLink, base64.RawURLEncoding.EncodeToString(bad), now); err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	if _, err := mustKeys(t, newSecret(t)).Open(PurposeLink, s, now); err == nil {
		t.Error("opened with another secret")
	}
}

func TestLinkRoundTrip(t *testing.T) {
	keys := mustKeys(t, newSecret(t))
	now := time.UnixMilli(1_795_000_000_456)
	in := &Link{Kind: LinkSignIn, IssuedAt: now, Handle: []byte("0123456789abcdef"), Email: "a@example.com", Next: "/account?x=1", RequestID: []byte("req")}
	tok, err := keys.SealLink(in, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	out, err := keys.OpenLink(tok, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if out.Kind != in.Kind || !out.IssuedAt.Equal(in.IssuedAt) || string(out.Handle) != string(in.Handle) ||
		out.Email != in.Email || out.Next != in.Next || string(out.RequestID) != "req" {
		t.Errorf("round trip: %+v", out)
	}
	if _, err := keys.OpenLink(tok, now.Add(10*time.Minute)); errs.Code(err) != errs.Gone {
		t.Errorf("expired link: %v", err)
	}
	// A value sealed for another purpose is not a link.
	if _, err := keys.OpenLink(keys.Seal(PurposeLinkRequest, []byte{1, 1}, now.Add(time.Hour)), now); err == nil {
		t.Error("a link-request cookie opened as a link")
	}
}

func TestMilliTimeJSON(t *testing.T) {
	for _, c := range []struct {
		ms   int64
		json string
	}{{1_795_000_000_000, "1795000000"}, {1_795_000_000_120, "1795000000.12"}, {1_795_000_000_001, "1795000000.001"}} {
		b, _ := MilliTime(c.ms).MarshalJSON()
		if string(b) != c.json {
			t.Errorf("%d → %s, want %s", c.ms, b, c.json)
		}
		var m MilliTime
		if err := m.UnmarshalJSON([]byte(c.json)); err != nil || int64(m) != c.ms {
			t.Errorf("%s → %d, %v", c.json, m, err)
		}
	}
	for _, bad := range []string{"", "-1", "1e9", `"1"`, "1.", ".5", "1.2.3", "12345678901234"} {
		var m MilliTime
		if err := m.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSecrets(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(newSecret(t))
	if s, err := ParseSecrets(good + ", " + base64.RawURLEncoding.EncodeToString(newSecret(t))); err != nil || len(s) != 2 {
		t.Errorf("two secrets: %v %v", len(s), err)
	}
	for _, bad := range []string{"", "short", base64.StdEncoding.EncodeToString([]byte("sixteen bytes!!!")), "!!!"} {
		if _, err := ParseSecrets(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	s := newSecret(t)
	if _, err := NewKeys([][]byte{s, s}); err == nil {
		t.Error("the same secret twice accepted")
	}
	path := t.TempDir() + "/sub/secret_keys"
	first, created, err := LoadOrCreateSecretFile(path)
	if err != nil || !created {
		t.Fatal(err)
	}
	again, created, err := LoadOrCreateSecretFile(path)
	if err != nil || created || string(again[0]) != string(first[0]) {
		t.Errorf("second load: created=%v err=%v", created, err)
	}
}

func TestRefreshTokensAreMACedAndNeverAccessTokens(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	keys := mustKeys(t, newSecret(t))
	tokens := newTokens(t, keys, clock)
	issued, _ := tokens.Issue([]byte("0123456789abcdef"), AMREmail, clock.Now(), "s")
	var h map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(strings.Split(issued.Refresh, ".")[0])
	json.Unmarshal(hb, &h)
	if h["alg"] != "HS256" || h["typ"] != TypeRefresh {
		t.Fatalf("refresh header %v", h)
	}
	// An access-token payload MACed with the refresh key is not an access
	// token, and a refresh payload signed with the Ed25519 key is not a
	// refresh token: each type has its one algorithm and key.
	parts := strings.Split(issued.Access, ".")
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	mac, _ := keys.RefreshMAC(keys.Signer().KID)
	in := enc(map[string]any{"alg": "HS256", "typ": TypeAccess, "kid": keys.Signer().KID}) + "." + parts[1]
	m := hmac.New(sha256.New, mac)
	m.Write([]byte(in))
	if _, err := tokens.VerifyAccess(in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))); err == nil {
		t.Error("an access token MACed with the refresh key verified")
	}
	rparts := strings.Split(issued.Refresh, ".")
	rin := enc(map[string]any{"alg": "EdDSA", "typ": TypeRefresh, "kid": keys.Signer().KID}) + "." + rparts[1]
	sig := ed25519.Sign(keys.Signer().Private, []byte(rin))
	if _, err := tokens.VerifyRefresh(rin + "." + base64.RawURLEncoding.EncodeToString(sig)); err == nil {
		t.Error("an EdDSA-signed refresh token verified")
	}
}

func TestClaimsEncodeLikeEncodingJSON(t *testing.T) {
	c := Claims{Issuer: "https://ex.ample", Audience: "a\"b\\c\n\x01ü", Subject: "sub", IssuedAt: 1_795_000_000_123,
		Expires: 1_795_000_600, AuthTime: 1_795_000_000, AMR: AMRPasskey, SID: "s", JTI: "j"}
	var ours, std map[string]any
	if err := json.Unmarshal(c.appendJSON(nil), &ours); err != nil {
		t.Fatalf("our encoding is not JSON: %v: %s", err, c.appendJSON(nil))
	}
	b, _ := json.Marshal(&c)
	json.Unmarshal(b, &std)
	if !reflect.DeepEqual(ours, std) {
		t.Errorf("encodings differ:\n%v\n%v", ours, std)
	}
}

// TestCachedAndFreshTokensGetTheSameLeeway: an access token is valid up
// to (not including) one second past exp, as golang-jwt's parser allows, whether it is verified for the first
// time or was verified before (and so skips the signature check).
// Comparing whole seconds had let a cached token live almost two seconds
// past exp.
func TestCachedAndFreshTokensGetTheSameLeeway(t *testing.T) {
	for _, tc := range []struct {
		after time.Duration // past exp
		valid bool
	}{
		{0, true},
		{900 * time.Millisecond, true},
		{999 * time.Millisecond, true},
		{time.Second, false},
		{time.Second + time.Millisecond, false},
		{1500 * time.Millisecond, false},
		{1999 * time.Millisecond, false},
	} {
		// exp is whole seconds: start on a second boundary, so that
		// "after" is measured from exp exactly.
		clock := &fakeClock{now: time.Unix(time.Now().Unix(), 0)}
		tokens := newTokens(t, mustKeys(t, newSecret(t)), clock)
		cachedTok, err := tokens.Issue([]byte("0123456789abcdef"), AMREmail, clock.Now(), "cached")
		if err != nil {
			t.Fatal(err)
		}
		freshTok, _ := tokens.Issue([]byte("0123456789abcdef"), AMREmail, clock.Now(), "fresh")
		if _, err := tokens.VerifyAccess(cachedTok.Access); err != nil { // now remembered
			t.Fatal(err)
		}
		clock.Advance(time.Unix(cachedTok.Claims.Expires, 0).Sub(clock.Now()) + tc.after)
		_, cachedErr := tokens.VerifyAccess(cachedTok.Access)
		_, freshErr := tokens.VerifyAccess(freshTok.Access)
		if (cachedErr == nil) != tc.valid || (freshErr == nil) != tc.valid {
			t.Errorf("%v past exp: cached token %v, first seen %v; want valid=%v for both", tc.after, cachedErr, freshErr, tc.valid)
		}
	}
}
