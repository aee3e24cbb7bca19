package tests

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/tests/testkit"
)

// forge builds a JWT from a header and claims, signed by sign (or
// unsigned when sign is nil).
func forge(header, claims map[string]any, sign func([]byte) []byte) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	if sign == nil {
		return input + "."
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

func TestAttacksOnTheAccessCookie(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock})
	victim := a.Browser(t)
	signIn(t, a, victim, "walt@example.com")
	other := a.Browser(t)
	signIn(t, a, other, "xena@example.com")

	good := victim.Cookie("__Host-at")
	parts := strings.Split(good, ".")
	header, claims := tokenHeader(t, good), tokenClaims(t, good)
	kid := header["kid"].(string)

	var jwks struct {
		Keys []struct{ Kid, X string }
	}
	if err := json.Unmarshal([]byte(a.Browser(t).Get("/.well-known/jwks.json").Body), &jwks); err != nil {
		t.Fatal(err)
	}
	pub, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].X)
	_, foreign, _ := ed25519.GenerateKey(rand.Reader)
	ours := func(in []byte) []byte { return ed25519.Sign(a.App.Keys.Signer().Private, in) }

	with := func(m map[string]any, k string, v any) map[string]any {
		out := map[string]any{}
		for kk, vv := range m {
			out[kk] = vv
		}
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	editedPayload := func(k string, v any) string {
		b, _ := json.Marshal(with(claims, k, v))
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}

	attacks := map[string]string{
		"alg none":     forge(with(header, "alg", "none"), claims, nil),
		"alg none sig": forge(with(header, "alg", "none"), claims, func([]byte) []byte { return []byte("x") }),
		"HS256 with public key": forge(with(header, "alg", "HS256"), claims, func(in []byte) []byte {
			m := hmac.New(sha256.New, pub)
			m.Write(in)
			return m.Sum(nil)
		}),
		"foreign EdDSA key, our kid": forge(header, claims, func(in []byte) []byte { return ed25519.Sign(foreign, in) }),
		"edited sub":                 editedPayload("sub", tokenClaims(t, other.Cookie("__Host-at"))["sub"]),
		"edited exp":                 editedPayload("exp", time.Now().Add(24*time.Hour).Unix()),
		"edited amr":                 editedPayload("amr", []string{"hwk", "user"}),
		"stripped signature":         parts[0] + "." + parts[1] + ".",
		"no signature part":          parts[0] + "." + parts[1],
		"padded base64":              parts[0] + "." + parts[1] + "." + parts[2] + "==",
		"standard base64 alphabet":   strings.NewReplacer("-", "+", "_", "/").Replace(good) + "+",
		"refresh token as access":    victim.Cookie("__Host-rt"),
		"garbage":                    "x.y.z",
		"empty parts":                "..",
		"huge":                       strings.Repeat("A", 4000),
	}
	for name, kidValue := range map[string]any{
		"kid path traversal": "../../../../etc/passwd",
		"kid empty":          "",
		"kid huge":           strings.Repeat("k", 10000),
		"kid number":         12345,
		"kid object":         map[string]any{"kid": kid},
		"kid array":          []string{kid},
		"kid null":           nil,
		"kid sql":            "' OR 1=1 --",
	} {
		h := with(header, "kid", kidValue) // nil removes it
		attacks[name] = forge(h, claims, ours)
	}
	// Signed with our own key, so the header is the only thing wrong.
	attacks["typ missing"] = forge(with(header, "typ", nil), claims, ours)
	attacks["typ JWT"] = forge(with(header, "typ", "JWT"), claims, ours)
	attacks["typ of a refresh token"] = forge(with(header, "typ", "rt+jwt"), claims, ours)
	// Claims that only the claim checks can refuse, also signed with our key
	// (as a bug elsewhere might sign them): another issuer or audience, no
	// expiry, expired, or a session the token cannot be tied to.
	for name, edit := range map[string][2]any{
		"iss elsewhere": {"iss", "https://evil.example"},
		"aud elsewhere": {"aud", "https://evil.example"},
		"aud refresh":   {"aud", a.URL + "/refresh"},
		"no exp":        {"exp", nil},
		"expired":       {"exp", time.Now().Add(-time.Minute).Unix()},
		"no sid":        {"sid", nil},
		"empty sid":     {"sid", ""},
		"no amr":        {"amr", nil},
		"no sub":        {"sub", nil},
	} {
		attacks["signed, "+name] = forge(header, with(claims, edit[0].(string), edit[1]), ours)
	}

	// The forger itself is right: with nothing changed, its token works.
	control := a.Browser(t)
	control.SetCookie("__Host-at", forge(header, claims, ours))
	if !signedIn(t, control) {
		t.Fatal("a token forged with our own key and nothing changed is refused; the attacks below prove nothing")
	}

	for name, tok := range attacks {
		t.Run(name, func(t *testing.T) {
			b := a.Browser(t)
			b.SetCookie("__Host-at", tok)
			r := b.Get("/account")
			if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/signin") {
				t.Fatalf("GET /account with a forged token = %d %q, want 303 to /signin", r.StatusCode, r.Header.Get("Location"))
			}
			if signedIn(t, b) {
				t.Fatal("home page shows signed in")
			}
		})
	}

	// The real token works (so the attacks failed on their merits)...
	if !signedIn(t, victim) {
		t.Fatal("the genuine token does not work")
	}
	// ...until it expires; without a refresh token, that is the end.
	expired := a.Browser(t)
	expired.SetCookie("__Host-at", good)
	clock.Advance(10*time.Minute + 2*time.Second)
	if signedIn(t, expired) {
		t.Error("an expired access token without a refresh token still signs in")
	}
}
