package tests

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncose"

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
// through: a credential is reused only every this many sign-ins, so each
// ceremony starts in a later millisecond than that credential's last use.
const passkeyBenchUsers = 300

// BenchmarkPasskeySignIn measures, in one run, a passkey sign-in finish
// through the whole handler stack (ceremony cookie, JSON parsing, lookup,
// verification, the conditional update of the credential row, two signed
// tokens and their cookies) next to its two unavoidable parts: one ES256
// verification and one SQLite update of a credential row.
func BenchmarkPasskeySignIn(b *testing.B) {
	b.Run("finish", func(b *testing.B) {
		a := testkit.StartApp(b, testkit.AppOptions{Env: benchEnv})
		keys := make([]*testkit.Passkey, passkeyBenchUsers)
		for i := range keys {
			br := a.Browser(b)
			signIn(b, a, br, "bench"+strconv.Itoa(i)+"@example.com")
			keys[i] = addPasskey(b, a, br)
		}
		// Ceremonies are prepared a round at a time (one per account) with
		// the timer stopped, then finished back to back, so the finishes
		// run warm, as the two baselines below do.
		type prepared struct {
			req *http.Request
		}
		round := make([]prepared, 0, len(keys))
		b.ResetTimer()
		for done := 0; done < b.N; {
			b.StopTimer()
			round = round[:0]
			for i := 0; i < len(keys) && done+i < b.N; i++ {
				begin := httptest.NewRecorder()
				a.App.Handler.ServeHTTP(begin, jsonRequest("/signin/passkey/begin", "", ""))
				var ceremony string
				for _, c := range begin.Result().Cookies() {
					if c.Name == "__Host-ceremony" {
						ceremony = c.Value
					}
				}
				round = append(round, prepared{jsonRequest("/signin/passkey/finish", keys[i].Assert(b, begin.Body.String()), ceremony)})
			}
			b.StartTimer()
			for _, p := range round {
				w := httptest.NewRecorder()
				a.App.Handler.ServeHTTP(w, p.req)
				if w.Code != http.StatusOK {
					b.Fatalf("finish: %d %s", w.Code, w.Body)
				}
			}
			done += len(round)
		}
	})
	b.Run("es256-verify", func(b *testing.B) {
		// One ES256 verification as it must happen for a stored passkey:
		// the COSE public key from the credential row is decoded, then the
		// signature over authenticator data and the client-data hash is
		// checked.
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		cose := coseES256(key)
		data := make([]byte, 37+32)
		rand.Read(data)
		digest := sha256.Sum256(data)
		sig, _ := ecdsa.SignASN1(rand.Reader, key, digest[:])
		for b.Loop() {
			pub, err := webauthncose.ParsePublicKey(cose)
			if err != nil {
				b.Fatal(err)
			}
			if ok, err := webauthncose.VerifySignature(pub, data, sig); !ok || err != nil {
				b.Fatal("verification failed", err)
			}
		}
	})
	b.Run("sqlite-update", func(b *testing.B) {
		d, cred := benchCredential(b)
		n := int64(0)
		for b.Loop() {
			n++
			if err := d.RecordCredentialUse(context.Background(), db.UsedCredential{ID: cred, SignCount: uint32(n), CeremonyStart: n}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchCredential opens a fresh database with one user and one passkey.
func benchCredential(b *testing.B) (*db.DB, int64) {
	d, err := db.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	u, _, err := d.ConsumeSignUpLink(context.Background(), "bench@example.com", 1, []byte("0123456789abcdef"), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	c := &db.Credential{UserID: u.ID, CredentialID: []byte("credential-id"), PublicKey: []byte("key"), Name: "Passkey", CreatedAt: time.Now()}
	if err := d.AddCredential(context.Background(), c); err != nil {
		b.Fatal(err)
	}
	return d, c.ID
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
