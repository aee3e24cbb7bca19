package oidc

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"hash"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/latchkey/latchkey/db"
)

// Token types (the JWT "typ" header): RFC 9068 access tokens, Latchkey's
// refresh tokens, ID tokens (plain "JWT") and back-channel logout tokens.
const (
	typAccess  = "at+jwt"
	typRefresh = "rt+jwt"
	typID      = "JWT"
	typLogout  = "logout+jwt"
)

// baseClaims are the claims every token here has. Every time is in whole
// seconds (strict clients refuse fractions); access tokens carry their
// issue time in milliseconds too, in a claim of their own, to be compared
// with revocation stamps.
type baseClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience string   `json:"aud"`
	Expires  int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	AuthTime int64    `json:"auth_time"`
	AMR      []string `json:"amr,omitempty"`
	// SID is the Latchkey session the application signed in through (as
	// back-channel logout tokens name it).
	SID string `json:"sid"`
}

func (c *baseClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.Expires, 0)), nil
}
func (c *baseClaims) GetIssuedAt() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.IssuedAt, 0)), nil
}
func (c *baseClaims) GetNotBefore() (*jwt.NumericDate, error) { return nil, nil }
func (c *baseClaims) GetIssuer() (string, error)              { return c.Issuer, nil }
func (c *baseClaims) GetSubject() (string, error)             { return c.Subject, nil }
func (c *baseClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// idClaims are an ID token's (OpenID Connect Core 2).
type idClaims struct {
	baseClaims
	Nonce         string `json:"nonce,omitempty"`
	AtHash        string `json:"at_hash,omitempty"`
	Email         string `json:"email,omitempty"`
	EmailVerified *bool  `json:"email_verified,omitempty"`
	// Groups are the person's groups, with the groups scope (an empty
	// list when they are in none).
	Groups *[]string `json:"groups,omitempty"`
}

// groupsClaim is the groups claim of an account: never null.
func groupsClaim(u *db.User) []string {
	if u.Groups != nil {
		return u.Groups
	}
	return []string{}
}

// accessClaims are an access token's (RFC 9068): aud is the client.
type accessClaims struct {
	baseClaims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	JTI      string `json:"jti"`
	// IssuedMs is the issue time in milliseconds, in database order: a
	// revocation in the same second as the token is told apart by it.
	IssuedMs int64 `json:"iat_ms"`
	// AppSession is the application session (db.AppSession) the token
	// was issued in: userinfo refuses it once that has ended.
	AppSession string `json:"asid"`
}

// issuedMs is the access token's issue time in milliseconds.
func (a *accessClaims) issuedMs() int64 {
	if a.IssuedMs > 0 {
		return a.IssuedMs
	}
	return a.IssuedAt * 1000
}

// refreshClaims are an application's refresh token: only Latchkey reads
// it (HMAC, like Latchkey's own refresh tokens). It names its application
// session (db.AppSession) and generation, which the user's row checks and
// rotates; GrantedAt ties it to the grant it was issued under: revoking
// the grant ends it.
type refreshClaims struct {
	baseClaims
	ClientID   string `json:"client_id"`
	Scope      string `json:"scope"`
	GrantedAt  int64  `json:"granted_at"`
	AppSession string `json:"asid"`
	Gen        int64  `json:"gen"`
}

// logoutClaims are a back-channel logout token's (OpenID Connect
// Back-Channel Logout 1.0, 2.4): no nonce, ever.
type logoutClaims struct {
	Issuer   string         `json:"iss"`
	Audience string         `json:"aud"`
	IssuedAt int64          `json:"iat"`
	Expires  int64          `json:"exp"`
	JTI      string         `json:"jti"`
	Events   map[string]any `json:"events"`
	Subject  string         `json:"sub,omitempty"`
	SID      string         `json:"sid,omitempty"`
}

// backChannelLogoutEvent is the member of a logout token's events.
const backChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

func (c *logoutClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.Expires, 0)), nil
}
func (c *logoutClaims) GetIssuedAt() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.IssuedAt, 0)), nil
}
func (c *logoutClaims) GetNotBefore() (*jwt.NumericDate, error) { return nil, nil }
func (c *logoutClaims) GetIssuer() (string, error)              { return c.Issuer, nil }
func (c *logoutClaims) GetSubject() (string, error)             { return c.Subject, nil }
func (c *logoutClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// sign signs claims as a token of typ with alg (RS256 or EdDSA; HS256
// for refresh tokens).
func (p *Provider) sign(typ, alg string, claims jwt.Claims) (string, error) {
	var (
		method jwt.SigningMethod
		key    any
		kid    string
	)
	switch alg {
	case "RS256":
		rk, err := p.keys.RSASigner()
		if err != nil {
			return "", err
		}
		method, key, kid = jwt.SigningMethodRS256, rk.Private, rk.KID
	case "EdDSA":
		s := p.keys.Signer()
		method, key, kid = jwt.SigningMethodEdDSA, s.Private, s.KID
	case "HS256":
		s := p.keys.Signer()
		mac, _ := p.keys.RefreshMAC(s.KID)
		method, key, kid = jwt.SigningMethodHS256, mac, s.KID
	default:
		return "", errors.New("unknown algorithm " + alg)
	}
	t := jwt.NewWithClaims(method, claims)
	t.Header["kid"] = kid
	t.Header["typ"] = typ
	return t.SignedString(key)
}

// verify parses a token of typ signed with one of algs by a current key,
// checking the issuer, expiry (required, one second of leeway) and strict
// encoding; the caller checks the audience.
func (p *Provider) verify(raw, typ string, algs []string, claims jwt.Claims, opts ...jwt.ParserOption) error {
	if len(raw) == 0 || len(raw) > 8192 {
		return errors.New("no token, or too long")
	}
	parser := jwt.NewParser(append([]jwt.ParserOption{
		jwt.WithValidMethods(algs), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithIssuer(p.cfg.Issuer),
		jwt.WithStrictDecoding(), jwt.WithLeeway(time.Second), jwt.WithTimeFunc(p.clock.Now),
	}, opts...)...)
	_, err := parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if h, _ := t.Header["typ"].(string); h != typ {
			return nil, errors.New("wrong token type")
		}
		kid, _ := t.Header["kid"].(string)
		switch t.Method.Alg() {
		case "RS256":
			if key, ok := p.keys.RSAVerificationKey(kid); ok {
				return key, nil
			}
		case "EdDSA":
			if key, ok := p.keys.VerificationKey(kid); ok {
				return ed25519.PublicKey(key), nil
			}
		case "HS256":
			if mac, ok := p.keys.RefreshMAC(kid); ok {
				return mac, nil
			}
		}
		return nil, errors.New("unknown key id")
	})
	return err
}

// atHash is the ID token's at_hash: the left half of the hash of the
// access token, the hash being the one of the ID token's algorithm
// (SHA-256 for RS256, SHA-512 for EdDSA with Ed25519).
func atHash(accessToken, alg string) string {
	var h hash.Hash = sha256.New()
	if alg == "EdDSA" {
		h = sha512.New()
	}
	h.Write([]byte(accessToken))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
