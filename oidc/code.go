package oidc

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/latchkey/latchkey/auth"
)

// codeTTL is how long an authorization code can be redeemed.
const codeTTL = time.Minute

// authCode is an authorization code's contents: everything redeeming it
// needs, sealed (readable and forgeable by nobody), so there is no code
// table. The database numbered it when it was issued (db.IssueCode), in
// order with the account's revocations; it redeems once, by that number
// (db.RedeemCode), and only while the session that authorized it is
// still signed in.
type authCode struct {
	Seq       int64     `json:"q"`
	Issued    int64     `json:"t"` // Unix ms, in database order
	Handle    []byte    `json:"u"`
	SID       string    `json:"i"` // the Latchkey session that authorized it
	Client    string    `json:"c"`
	Redirect  string    `json:"r"`
	Challenge string    `json:"p,omitempty"` // PKCE S256 challenge
	Nonce     string    `json:"n,omitempty"`
	Scopes    []string  `json:"s"`
	AuthTime  int64     `json:"a"` // Unix s
	AMR       []string  `json:"m"`
	Expires   time.Time `json:"-"`
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sealCode seals a code, valid for codeTTL from now.
func sealCode(keys *auth.Keys, c *authCode, now time.Time) string {
	b, _ := json.Marshal(c)
	return keys.Seal(auth.PurposeOIDCCode, b, now.Add(codeTTL))
}

// openCode opens a code; any failure is the same invalid_grant.
func openCode(keys *auth.Keys, s string, now time.Time) (*authCode, error) {
	if len(s) > 2048 {
		return nil, oauthErr(errInvalidGrant, "The authorization code is not valid.")
	}
	b, err := keys.Open(auth.PurposeOIDCCode, s, now)
	if err != nil {
		return nil, oauthErr(errInvalidGrant, "The authorization code is not valid, or has expired.")
	}
	var c authCode
	if err := json.Unmarshal(b, &c); err != nil || len(c.Handle) == 0 || c.Seq == 0 || c.SID == "" {
		return nil, oauthErr(errInvalidGrant, "The authorization code is not valid.")
	}
	c.Expires = time.UnixMilli(c.Issued).Add(codeTTL)
	return &c, nil
}
