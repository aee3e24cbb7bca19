package auth

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/latchkey/latchkey/errs"
)

// Token types (the JWT "typ" header), RFC 9068 style.
const (
	TypeAccess  = "at+jwt"
	TypeRefresh = "rt+jwt"
)

// Authentication methods (the "amr" claim).
var (
	AMRPasskey = []string{"hwk", "user"}
	AMREmail   = []string{"email"}
)

// Errors from verification. None says more than "not valid" to a visitor.
var (
	ErrTokenInvalid = errs.E(errs.Unauthorized, "error.token_invalid")
	ErrTokenRevoked = errs.E(errs.Unauthorized, "error.signed_out_again")
)

// Claims are the claims of both token types.
type Claims struct {
	Issuer   string    `json:"iss,omitempty"` // access tokens only
	Audience string    `json:"aud"`
	Subject  string    `json:"sub"`
	IssuedAt MilliTime `json:"iat"`
	Expires  int64     `json:"exp"`
	AuthTime int64     `json:"auth_time"`
	AMR      []string  `json:"amr"`
	SID      string    `json:"sid"`
	JTI      string    `json:"jti,omitempty"` // access tokens only
	// Gen is a refresh token's generation within its session (refresh
	// tokens only; the first, 0, is left out): presenting one older than
	// the session's current generation ends the session.
	Gen int64 `json:"gen,omitempty"`
}

// GetExpirationTime implements jwt.Claims.
func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) {
	if c.Expires == 0 {
		return nil, nil
	}
	return jwt.NewNumericDate(time.Unix(c.Expires, 0)), nil
}

// GetIssuedAt implements jwt.Claims.
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error) {
	if c.IssuedAt == 0 {
		return nil, nil
	}
	return &jwt.NumericDate{Time: c.IssuedAt.Time()}, nil
}

// GetNotBefore implements jwt.Claims; we never issue nbf.
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error) { return nil, nil }

// GetIssuer implements jwt.Claims.
func (c *Claims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims.
func (c *Claims) GetSubject() (string, error) { return c.Subject, nil }

// GetAudience implements jwt.Claims.
func (c *Claims) GetAudience() (jwt.ClaimStrings, error) { return jwt.ClaimStrings{c.Audience}, nil }

// Passkey reports whether the session was signed in with a passkey.
func (c *Claims) Passkey() bool { return slices.Equal(c.AMR, AMRPasskey) }

// Subject returns the token subject of a user handle; Claims.Handle is its
// inverse.
func Subject(handle []byte) string { return base64.RawURLEncoding.EncodeToString(handle) }

// Handle returns the user handle the subject encodes.
func (c *Claims) Handle() []byte {
	h, _ := base64.RawURLEncoding.DecodeString(c.Subject)
	return h
}

// Issued is a freshly issued pair of tokens.
type Issued struct {
	Access, Refresh               string
	AccessExpires, RefreshExpires time.Time
	Claims                        *Claims // the access token's claims
}

// TokenConfig configures a Tokens.
type TokenConfig struct {
	BaseURL    string // issuer and audience
	AccessTTL  time.Duration
	IdleTTL    time.Duration // a refresh token lives this long unused
	MaxTTL     time.Duration // and never past sign-in + MaxTTL
	CacheLimit int           // verified access tokens kept; 0 means 8192
}

// Tokens issues and verifies access and refresh tokens.
type Tokens struct {
	cfg             TokenConfig
	keys            *Keys
	clock           Clock
	revoked         *Revocations
	accessParser    *jwt.Parser
	refreshParser   *jwt.Parser
	refreshAudience string

	// cache holds access tokens whose signature has been verified, keyed
	// by the token itself: looking up the exact bytes costs less than
	// hashing them, and can never confuse two tokens. Bounded by
	// CacheLimit (about 4 MB at the default).
	cacheMu sync.RWMutex
	cache   map[string]*Claims
}

// NewTokens returns a token service.
func NewTokens(cfg TokenConfig, keys *Keys, clock Clock, revoked *Revocations) *Tokens {
	if cfg.CacheLimit == 0 {
		cfg.CacheLimit = 8192
	}
	t := &Tokens{cfg: cfg, keys: keys, clock: clock, revoked: revoked,
		refreshAudience: cfg.BaseURL + "/refresh",
		cache:           make(map[string]*Claims)}
	t.accessParser = t.parser(jwt.SigningMethodEdDSA, cfg.BaseURL, jwt.WithIssuer(cfg.BaseURL))
	t.refreshParser = t.parser(jwt.SigningMethodHS256, t.refreshAudience)
	return t
}

// parser pins everything golang-jwt would otherwise leave open: the
// algorithm (EdDSA for access tokens, HS256 for refresh tokens, never
// either for the other), a required exp, issuer, audience, strict base64,
// and at most one second of leeway.
func (t *Tokens) parser(method jwt.SigningMethod, audience string, extra ...jwt.ParserOption) *jwt.Parser {
	return jwt.NewParser(append([]jwt.ParserOption{
		jwt.WithValidMethods([]string{method.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithAudience(audience),
		jwt.WithStrictDecoding(),
		jwt.WithLeeway(time.Second),
		jwt.WithTimeFunc(t.clock.Now),
	}, extra...)...)
}

// AccessTTL is how long an access token lives.
func (t *Tokens) AccessTTL() time.Duration { return t.cfg.AccessTTL }

// NewSessionID returns a random session id.
func NewSessionID() string { return randomID(9) }

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Issue signs a new access and refresh token for a session, issued now:
// subject is the user handle, authTime when the person last proved who
// they are, sid the session id (kept across refreshes).
func (t *Tokens) Issue(handle []byte, amr []string, authTime time.Time, sid string) (*Issued, error) {
	return t.IssueAt(t.clock.Now(), handle, amr, authTime, sid, 0)
}

// IssueAt is Issue with the issue time the database gave the write that
// recorded the sign-in or refresh (which orders it with every revocation
// of the account), and the refresh token's generation: 0 for the one a
// sign-in issues, then as db.RotateRefresh says.
func (t *Tokens) IssueAt(now time.Time, handle []byte, amr []string, authTime time.Time, sid string, gen int64) (*Issued, error) {
	accessExp := now.Add(t.cfg.AccessTTL)
	refreshExp := now.Add(t.cfg.IdleTTL)
	if limit := authTime.Add(t.cfg.MaxTTL); refreshExp.After(limit) {
		refreshExp = limit
	}
	if !refreshExp.After(now) {
		return nil, ErrTokenInvalid
	}
	if accessExp.After(refreshExp) {
		accessExp = refreshExp
	}
	c := Claims{
		Issuer:   t.cfg.BaseURL,
		Audience: t.cfg.BaseURL,
		Subject:  Subject(handle),
		IssuedAt: NewMilliTime(now),
		Expires:  accessExp.Unix(),
		AuthTime: authTime.Unix(),
		AMR:      amr,
		SID:      sid,
		JTI:      randomID(9),
	}
	access := t.sign(TypeAccess, &c)
	rc := c
	rc.Audience = t.refreshAudience
	rc.Expires = refreshExp.Unix()
	// A refresh token travels with every request but is only ever read by
	// Latchkey itself: its audience says what it is for, and nothing looks
	// it up by id, so it carries neither iss nor jti.
	rc.Issuer = ""
	rc.JTI = ""
	rc.Gen = gen
	refresh := t.sign(TypeRefresh, &rc)
	return &Issued{Access: access, Refresh: refresh, Claims: &c,
		AccessExpires: time.Unix(c.Expires, 0), RefreshExpires: time.Unix(rc.Expires, 0)}, nil
}

// sign encodes and signs a token: access tokens with the newest Ed25519
// key, refresh tokens with the newest secret's HMAC key. It writes the
// JOSE header and claims itself (the header is fixed per key and type; the
// claims are a flat object of our own strings and numbers) instead of
// through reflection, which was a tenth of a sign-in. Verification still
// goes through golang-jwt's strict parser.
func (t *Tokens) sign(typ string, c *Claims) string {
	key := t.keys.Signer()
	alg := jwt.SigningMethodEdDSA.Alg()
	if typ == TypeRefresh {
		alg = jwt.SigningMethodHS256.Alg()
	}
	b := make([]byte, 0, 640)
	b = base64.RawURLEncoding.AppendEncode(b, appendHeader(make([]byte, 0, 64), alg, key.KID, typ))
	b = append(b, '.')
	b = base64.RawURLEncoding.AppendEncode(b, c.appendJSON(make([]byte, 0, 320)))
	var sig []byte
	if typ == TypeRefresh {
		mac, _ := t.keys.RefreshMAC(key.KID)
		h := hmac.New(sha256.New, mac)
		h.Write(b)
		sig = h.Sum(nil)
	} else {
		sig = ed25519.Sign(key.Private, b)
	}
	b = append(b, '.')
	return string(base64.RawURLEncoding.AppendEncode(b, sig))
}

func appendHeader(b []byte, alg, kid, typ string) []byte {
	b = append(b, `{"alg":`...)
	b = appendJSONString(b, alg)
	b = append(b, `,"kid":`...)
	b = appendJSONString(b, kid)
	b = append(b, `,"typ":`...)
	b = appendJSONString(b, typ)
	return append(b, '}')
}

// appendJSON writes the claims as a JSON object, with the same names and
// forms as its struct tags.
func (c *Claims) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if c.Issuer != "" {
		b = append(b, `"iss":`...)
		b = appendJSONString(b, c.Issuer)
		b = append(b, ',')
	}
	b = append(b, `"aud":`...)
	b = appendJSONString(b, c.Audience)
	b = append(b, `,"sub":`...)
	b = appendJSONString(b, c.Subject)
	b = append(b, `,"iat":`...)
	iat, _ := c.IssuedAt.MarshalJSON()
	b = append(b, iat...)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, c.Expires, 10)
	b = append(b, `,"auth_time":`...)
	b = strconv.AppendInt(b, c.AuthTime, 10)
	b = append(b, `,"amr":[`...)
	for i, m := range c.AMR {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, m)
	}
	b = append(b, `],"sid":`...)
	b = appendJSONString(b, c.SID)
	if c.JTI != "" {
		b = append(b, `,"jti":`...)
		b = appendJSONString(b, c.JTI)
	}
	if c.Gen != 0 {
		b = append(b, `,"gen":`...)
		b = strconv.AppendInt(b, c.Gen, 10)
	}
	return append(b, '}')
}

// appendJSONString writes s as a JSON string: quotes, backslashes and
// control characters escaped, everything else (valid UTF-8 included) as is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// maxTokenBytes bounds what verification will look at.
const maxTokenBytes = 2048

// VerifyAccess checks an access token: signature (algorithm pinned, key by
// kid), typ, issuer, audience, expiry, and the revocation set. A token whose
// exact bytes were verified before skips only the signature check; every
// claim and the revocation set are checked again on every call.
func (t *Tokens) VerifyAccess(raw string) (*Claims, error) {
	if len(raw) == 0 || len(raw) > maxTokenBytes {
		return nil, ErrTokenInvalid
	}
	now := t.clock.Now()
	t.cacheMu.RLock()
	c, hit := t.cache[raw]
	t.cacheMu.RUnlock()
	if hit {
		if !t.claimsValid(c, now) {
			if !now.Before(time.Unix(c.Expires, 0).Add(time.Second)) {
				t.cacheMu.Lock()
				delete(t.cache, raw)
				t.cacheMu.Unlock()
			}
			return nil, ErrTokenInvalid
		}
	} else {
		var err error
		if c, err = t.parse(t.accessParser, TypeAccess, raw); err != nil {
			return nil, err
		}
		// The raw token may be a slice of a larger header string; keep a
		// copy of its own.
		t.remember(strings.Clone(raw), c, now)
	}
	if t.revoked.Revoked(c.Subject, c.SID, int64(c.IssuedAt)) {
		return nil, ErrTokenRevoked
	}
	return c, nil
}

// claimsValid re-checks a cached token's claims, with exactly the one
// second of leeway the parser allows (golang-jwt: now before exp + 1 s,
// iat no later than now + 1 s). Comparing whole seconds had let a cached
// token live almost two seconds past exp.
func (t *Tokens) claimsValid(c *Claims, now time.Time) bool {
	return c.Issuer == t.cfg.BaseURL && c.Audience == t.cfg.BaseURL &&
		now.Before(time.Unix(c.Expires, 0).Add(time.Second)) && !c.IssuedAt.Time().After(now.Add(time.Second))
}

// VerifyRefresh checks a refresh token's signature and claims. Whether its
// session was revoked needs the user row; the caller checks that.
func (t *Tokens) VerifyRefresh(raw string) (*Claims, error) {
	if len(raw) == 0 || len(raw) > maxTokenBytes {
		return nil, ErrTokenInvalid
	}
	return t.parse(t.refreshParser, TypeRefresh, raw)
}

func (t *Tokens) parse(p *jwt.Parser, typ, raw string) (*Claims, error) {
	var c Claims
	_, err := p.ParseWithClaims(raw, &c, func(tok *jwt.Token) (any, error) {
		if h, _ := tok.Header["typ"].(string); h != typ {
			return nil, errors.New("wrong token type")
		}
		kid, _ := tok.Header["kid"].(string)
		if typ == TypeRefresh {
			mac, ok := t.keys.RefreshMAC(kid)
			if !ok {
				return nil, errors.New("unknown key id")
			}
			return mac, nil
		}
		pub, ok := t.keys.VerificationKey(kid)
		if !ok {
			return nil, errors.New("unknown key id")
		}
		return ed25519.PublicKey(pub), nil
	})
	if err != nil || c.Subject == "" || c.SID == "" || c.AuthTime == 0 || len(c.AMR) == 0 {
		return nil, ErrTokenInvalid
	}
	return &c, nil
}

// remember caches a verified token until it expires. When the cache is
// full, expired entries go first, then arbitrary ones (map order is random),
// so the cache stays bounded even under a flood of distinct valid tokens.
func (t *Tokens) remember(key string, c *Claims, now time.Time) {
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	if len(t.cache) >= t.cfg.CacheLimit {
		for k, v := range t.cache {
			if now.Unix() > v.Expires+1 {
				delete(t.cache, k)
			}
		}
		for k := range t.cache {
			if len(t.cache) < t.cfg.CacheLimit*7/8 {
				break
			}
			delete(t.cache, k)
		}
	}
	t.cache[key] = c
}
