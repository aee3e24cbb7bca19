package auth

import (
	"strings"
	"testing"
	"time"
)

// FuzzVerifyAccess feeds arbitrary bytes to token verification: it must
// never panic, and nothing but the genuine token may verify.
func FuzzVerifyAccess(f *testing.F) {
	clock := &fakeClock{now: time.Now()}
	tokens := newTokens(f, mustKeys(f, newSecret(f)), clock)
	good := mustIssueF(f, tokens)
	f.Add(good)
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := tokens.VerifyAccess(tok)
		if err == nil && tok != good {
			t.Fatalf("a token other than the one issued verified: %q (%+v)", tok, c)
		}
		_, _ = tokens.VerifyRefresh(tok)
	})
}

func mustIssueF(f *testing.F, tokens *Tokens) string {
	i, err := tokens.Issue([]byte("0123456789abcdef"), AMRPasskey, time.Now(), "sid")
	if err != nil {
		f.Fatal(err)
	}
	return i.Access
}

// FuzzOpenLink feeds arbitrary strings to the sealed-link opener: no
// panic, and only errors of the two public kinds.
func FuzzOpenLink(f *testing.F) {
	keys := mustKeys(f, newSecret(f))
	now := time.Now()
	good, _ := keys.SealLink(&Link{Kind: LinkSignUp, IssuedAt: now, Email: "a@example.com"}, time.Hour)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		l, err := keys.OpenLink(tok, now)
		if err == nil && (l.Email == "" || l.Kind < LinkSignIn || l.Kind > LinkEmailChange) {
			t.Fatalf("opened an invalid link: %+v", l)
		}
		if err != nil && err != errLinkDamaged && err != errLinkExpired {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
