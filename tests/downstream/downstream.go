// Package downstream is an example of another service that trusts
// Latchkey's access tokens without asking Latchkey anything per request:
// it knows only Latchkey's public origin, fetches its JSON Web Key Set
// (cached; fetched again when a token names a key it has not seen), and
// checks every token itself. It shares no code with Latchkey on purpose.
package downstream

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Service answers GET / with the caller's subject if the request carries a
// valid Latchkey access token (the __Host-at cookie, or Authorization:
// Bearer), and 401 otherwise.
type Service struct {
	// Issuer is Latchkey's BASE_URL: the expected iss and aud.
	Issuer string
	// Client fetches the key set.
	Client *http.Client
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// MinRefetch stops a flood of unknown kids from hammering Latchkey.
	MinRefetch time.Duration

	mu        sync.Mutex
	keys      map[string]ed25519.PublicKey
	fetchedAt time.Time
	// Fetches counts key-set fetches.
	Fetches int
}

// Claims are the claims the service reads.
type Claims struct {
	jwt.RegisteredClaims
	AMR []string `json:"amr"`
	SID string   `json:"sid"`
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Verify checks a token the way any service must: the algorithm pinned to
// EdDSA, the key found by kid in Latchkey's key set, the "typ" header
// at+jwt, issuer and audience equal to Latchkey's origin, an expiry that is
// required and not past, and strict base64.
func (s *Service) Verify(token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != "at+jwt" {
			return nil, errors.New("not an access token")
		}
		kid, _ := t.Header["kid"].(string)
		return s.key(kid)
	},
		jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithIssuer(s.Issuer),
		jwt.WithAudience(s.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
		jwt.WithLeeway(time.Second),
		jwt.WithTimeFunc(s.now),
	)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// key returns the public key with this kid, fetching the key set when the
// kid is unknown (keys rotate) but at most once per MinRefetch.
func (s *Service) key(kid string) (ed25519.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	if !s.fetchedAt.IsZero() && s.now().Sub(s.fetchedAt) < s.MinRefetch {
		return nil, fmt.Errorf("unknown key %q", kid)
	}
	if err := s.fetch(); err != nil {
		return nil, err
	}
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown key %q", kid)
}

func (s *Service) fetch() error {
	s.fetchedAt = s.now()
	s.Fetches++
	resp, err := s.Client.Get(s.Issuer + "/.well-known/jwks.json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("key set: %s", resp.Status)
	}
	var set struct {
		Keys []struct {
			KTY, CRV, X, KID, ALG, USE string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return err
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if k.KTY != "OKP" || k.CRV != "Ed25519" || k.ALG != "EdDSA" || k.USE != "sig" || err != nil || len(x) != ed25519.PublicKeySize {
			continue
		}
		keys[k.KID] = ed25519.PublicKey(x)
	}
	s.keys = keys
	return nil
}

// ServeHTTP implements the example's one endpoint.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token := ""
	if c, err := r.Cookie("__Host-at"); err == nil {
		token = c.Value
	} else if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		token = strings.TrimPrefix(h, "Bearer ")
	}
	claims, err := s.Verify(token)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid or missing token", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"sub": claims.Subject, "amr": claims.AMR})
}
