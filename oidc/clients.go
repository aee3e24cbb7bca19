// Package oidc is Latchkey's OpenID Connect provider: the authorization
// code flow with PKCE, on the existing sessions and sealing, with no code
// or token table. One file per endpoint (discovery.go, authorize.go,
// token.go, userinfo.go, logout.go); clients.go reads the client registry,
// code.go the sealed authorization code, jwt.go the tokens, errors.go
// names every OAuth error once.
package oidc

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/db"
)

// Client is an application that signs people in through Latchkey.
type Client struct {
	ID                     string   `json:"id"`
	Name                   string   `json:"name"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	// SecretHash is "sha256:<hex>" of the secret (confidential clients).
	SecretHash string   `json:"secret_hash"`
	Public     bool     `json:"public"`
	Scopes     []string `json:"scopes"`
	// Trusted first-party applications skip the consent page.
	Trusted bool `json:"trusted"`
	// IDTokenAlg is the ID token's algorithm: RS256 (default) or EdDSA.
	IDTokenAlg string `json:"id_token_signed_response_alg"`
	// BackChannelLogoutURI receives logout tokens when a session that
	// signed the person in to the application ends (OpenID Connect
	// Back-Channel Logout 1.0); BackChannelLogoutSessionRequired asks
	// for a session id (sid) in every one.
	BackChannelLogoutURI             string `json:"backchannel_logout_uri"`
	BackChannelLogoutSessionRequired bool   `json:"backchannel_logout_session_required"`
	// AllowedGroups, when set, admits only members of one of these
	// groups: others get no code, and their refresh tokens stop.
	AllowedGroups []string `json:"allowed_groups"`

	secret []byte // the SHA-256 of the secret
}

// Scopes the provider knows: openid (required), email (the address and
// email_verified), profile (nothing more than sub today: Latchkey keeps no
// name), groups (the groups the person is in), offline_access (a refresh
// token).
var knownScopes = []string{"openid", "email", "profile", "groups", "offline_access"}

// Clients is the registry, read once from OIDC_CLIENTS_FILE.
type Clients struct {
	byID    map[string]*Client
	origins map[string]bool // scheme://host of every registered URI (CORS)
}

// NoClients is the registry when OIDC_CLIENTS_FILE is empty.
func NoClients() *Clients { return &Clients{byID: map[string]*Client{}, origins: map[string]bool{}} }

var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,64}$`)

// LoadClients reads and checks the client file. Its errors name the client
// and the field that is wrong; the server refuses to start on one.
func LoadClients(path string) (*Clients, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseClients(data)
}

// ParseClients checks a client file's contents (see LoadClients).
func ParseClients(data []byte) (*Clients, error) {
	var file struct {
		Clients []*Client `json:"clients"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("not the expected JSON ({\"clients\": [{\"id\": …}]}): %w", err)
	}
	cs := NoClients()
	for i, c := range file.Clients {
		if c == nil {
			return nil, fmt.Errorf("client %d: empty entry", i+1)
		}
		fail := func(field, problem string, args ...any) error {
			name := fmt.Sprintf("client %d", i+1)
			if c.ID != "" {
				name = fmt.Sprintf("client %q", c.ID)
			}
			return fmt.Errorf("%s: %s: %s", name, field, fmt.Sprintf(problem, args...))
		}
		if !clientIDPattern.MatchString(c.ID) {
			return nil, fail("id", "want 1 to 64 letters, digits or . _ ~ -")
		}
		if cs.byID[c.ID] != nil {
			return nil, fail("id", "listed twice")
		}
		if strings.TrimSpace(c.Name) == "" || len(c.Name) > 100 {
			return nil, fail("name", "want the name people see on the consent page (1 to 100 characters)")
		}
		if len(c.RedirectURIs) == 0 {
			return nil, fail("redirect_uris", "at least one is needed")
		}
		for _, u := range c.RedirectURIs {
			if err := checkRedirectURI(u); err != nil {
				return nil, fail("redirect_uris", "%q: %v", u, err)
			}
			cs.origins[originOf(u)] = true
		}
		for _, u := range c.PostLogoutRedirectURIs {
			if err := checkRedirectURI(u); err != nil {
				return nil, fail("post_logout_redirect_uris", "%q: %v", u, err)
			}
		}
		for _, g := range c.AllowedGroups {
			if !db.ValidGroup(g) {
				return nil, fail("allowed_groups", "%q is not a group name (a lowercase letter or digit, then up to 63 of those, \".\", \"_\" or \"-\")", g)
			}
		}
		if c.AllowedGroups != nil && len(c.AllowedGroups) == 0 {
			return nil, fail("allowed_groups", "an empty list would admit nobody: leave the field out to admit everyone")
		}
		if c.BackChannelLogoutURI != "" {
			if err := checkRedirectURI(c.BackChannelLogoutURI); err != nil {
				return nil, fail("backchannel_logout_uri", "%q: %v", c.BackChannelLogoutURI, err)
			}
		} else if c.BackChannelLogoutSessionRequired {
			return nil, fail("backchannel_logout_session_required", "needs a backchannel_logout_uri")
		}
		switch {
		case c.Public && c.SecretHash != "":
			return nil, fail("secret_hash", "a public client has no secret (it uses PKCE)")
		case !c.Public:
			hexHash, ok := strings.CutPrefix(c.SecretHash, "sha256:")
			sum, err := hex.DecodeString(hexHash)
			if !ok || err != nil || len(sum) != sha256.Size {
				return nil, fail("secret_hash", `want "sha256:" and the hex SHA-256 of the secret (latchkey admin oidc-client makes one)`)
			}
			c.secret = sum
		}
		if len(c.Scopes) == 0 {
			c.Scopes = []string{"openid", "email", "profile"}
		}
		if !slices.Contains(c.Scopes, "openid") {
			return nil, fail("scopes", `must include "openid"`)
		}
		for _, s := range c.Scopes {
			if !slices.Contains(knownScopes, s) {
				return nil, fail("scopes", "%q is not one of %s", s, strings.Join(knownScopes, ", "))
			}
		}
		switch c.IDTokenAlg {
		case "":
			c.IDTokenAlg = "RS256"
		case "RS256", "EdDSA":
		default:
			return nil, fail("id_token_signed_response_alg", "want RS256 or EdDSA")
		}
		cs.byID[c.ID] = c
	}
	return cs, nil
}

// checkRedirectURI accepts an absolute http(s) URL without a fragment;
// plain http only for loopback hosts (a local app during development).
func checkRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Fragment != "" || u.User != nil {
		return errors.New("want an absolute URL without a fragment or user")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if h := u.Hostname(); h != "localhost" && h != "127.0.0.1" && h != "::1" {
			return errors.New("http:// is allowed for localhost only")
		}
	default:
		return errors.New("want https://")
	}
	return nil
}

func originOf(s string) string {
	u, _ := url.Parse(s)
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// Get returns the client with this id.
func (cs *Clients) Get(id string) (*Client, bool) {
	c, ok := cs.byID[id]
	return c, ok
}

// Len is how many clients there are.
func (cs *Clients) Len() int {
	if cs == nil {
		return 0
	}
	return len(cs.byID)
}

// AllowsOrigin reports whether a browser page at origin may call the
// token, userinfo, discovery and JWKS endpoints (CORS): the origin of one
// of a client's registered URIs.
func (cs *Clients) AllowsOrigin(origin string) bool { return cs.origins[strings.ToLower(origin)] }

// RedirectOrigins returns the origins of every registered redirect URI
// (after sign-in and after sign-out), sorted.
func (cs *Clients) RedirectOrigins() []string {
	set := map[string]bool{}
	for _, c := range cs.byID {
		for _, u := range append(slices.Clone(c.RedirectURIs), c.PostLogoutRedirectURIs...) {
			set[originOf(u)] = true
		}
	}
	out := make([]string, 0, len(set))
	for o := range set {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

// Admits reports whether the account may sign in to the client: it has no
// allowed groups, or the account is in one of them.
func (c *Client) Admits(u *db.User) bool {
	if len(c.AllowedGroups) == 0 {
		return true
	}
	for _, g := range c.AllowedGroups {
		if u.InGroup(g) {
			return true
		}
	}
	return false
}

// Refusing returns the ids of the clients that do not admit an account
// in groups (see Admits): db.ChangeGroups ends its sessions of those.
func (cs *Clients) Refusing(groups []string) []string {
	u := &db.User{Groups: groups}
	var out []string
	for _, c := range cs.byID {
		if !c.Admits(u) {
			out = append(out, c.ID)
		}
	}
	return out
}

// All returns every client, by id.
func (cs *Clients) All() []*Client {
	out := make([]*Client, 0, len(cs.byID))
	for _, c := range cs.byID {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Client) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// HasRedirectURI reports whether uri is registered for the client, by
// exact comparison.
func (c *Client) HasRedirectURI(uri string) bool { return slices.Contains(c.RedirectURIs, uri) }

// SecretMatches reports, in constant time, whether secret is the client's.
func (c *Client) SecretMatches(secret string) bool {
	sum := sha256.Sum256([]byte(secret))
	return c.secret != nil && subtle.ConstantTimeCompare(sum[:], c.secret) == 1
}

// HashSecret returns the secret_hash form of a secret.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}
