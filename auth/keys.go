// Package auth holds Latchkey's cryptography and token logic: keys derived
// from SECRET_KEYS, sealed values, access and refresh tokens, the in-memory
// revocation set, and the WebAuthn ceremonies.
package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// MinSecretBytes is the shortest secret accepted in SECRET_KEYS.
const MinSecretBytes = 32

// Clock tells the time. Tests swap it to move time forward.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }

// SigningKey is one Ed25519 key derived from one secret.
type SigningKey struct {
	KID     string
	Private ed25519.PrivateKey
	Public  ed25519.PublicKey
}

// Keys holds every key derived from SECRET_KEYS. The first secret's keys
// sign and seal; every secret's keys verify and open, so rotation is
// "prepend a new secret, drop the old one once its tokens have expired".
type Keys struct {
	signing []SigningKey
	byKID   map[string]ed25519.PublicKey
	// refreshMACs are HMAC-SHA256 keys for refresh tokens, by the same
	// kid as the secret's signing key. Only Latchkey ever verifies a
	// refresh token, so it needs no public key; a MAC costs a microsecond
	// where an Ed25519 signature costs thirty.
	refreshMACs map[string][]byte
	sealers     []cipher.AEAD
	// codeMACs are HMAC-SHA256 keys for the one-time codes of emailed
	// links (see CodeMAC), newest first.
	codeMACs [][]byte

	// The RSA keys of the OpenID Connect provider, one per secret (newest
	// first), derived on first use: deriving one takes a fraction of a
	// second, and most instances of a test suite never need them.
	secrets  [][]byte
	rsaOnce  sync.Once
	rsaKeys  []RSAKey
	rsaErr   error
	jwksOnce sync.Once
	jwks     []byte
}

// RSAKey is one RSA key of the OpenID Connect provider (RS256).
type RSAKey struct {
	KID     string
	Private *rsa.PrivateKey
}

// NewKeys derives the keys from secrets, newest first.
func NewKeys(secrets [][]byte) (*Keys, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no secret keys")
	}
	k := &Keys{byKID: make(map[string]ed25519.PublicKey, len(secrets)), refreshMACs: make(map[string][]byte, len(secrets))}
	seen := make(map[string]bool)
	for i, secret := range secrets {
		if len(secret) < MinSecretBytes {
			return nil, fmt.Errorf("secret %d is %d bytes; at least %d are needed", i+1, len(secret), MinSecretBytes)
		}
		if seen[string(secret)] {
			return nil, fmt.Errorf("secret %d is listed twice", i+1)
		}
		seen[string(secret)] = true

		seed, err := hkdf.Key(sha256.New, secret, nil, "latchkey token signing ed25519 v1", ed25519.SeedSize)
		if err != nil {
			return nil, err
		}
		priv := ed25519.NewKeyFromSeed(seed)
		pub := priv.Public().(ed25519.PublicKey)
		kid := keyID(pub)
		if _, dup := k.byKID[kid]; dup {
			return nil, fmt.Errorf("secret %d yields a key id already in use; generate a new secret", i+1)
		}
		k.signing = append(k.signing, SigningKey{KID: kid, Private: priv, Public: pub})
		k.byKID[kid] = pub

		mac, err := hkdf.Key(sha256.New, secret, nil, "latchkey refresh token hmac-sha256 v1", 32)
		if err != nil {
			return nil, err
		}
		k.refreshMACs[kid] = mac

		sealKey, err := hkdf.Key(sha256.New, secret, nil, "latchkey sealed values aes-256-gcm v1", 32)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(sealKey)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, err
		}
		k.sealers = append(k.sealers, aead)

		codeMAC, err := hkdf.Key(sha256.New, secret, nil, "latchkey sign-in code hmac-sha256 v1", 32)
		if err != nil {
			return nil, err
		}
		k.codeMACs = append(k.codeMACs, codeMAC)
	}
	k.secrets = secrets
	return k, nil
}

// rsa derives the RSA keys once.
func (k *Keys) rsa() ([]RSAKey, error) {
	k.rsaOnce.Do(func() {
		for i, secret := range k.secrets {
			key, err := deriveRSAKey(secret)
			if err != nil {
				k.rsaErr = fmt.Errorf("RSA key of secret %d: %w", i+1, err)
				return
			}
			k.rsaKeys = append(k.rsaKeys, RSAKey{KID: rsaKeyID(&key.PublicKey), Private: key})
		}
	})
	return k.rsaKeys, k.rsaErr
}

// RSASigner returns the RSA key that signs the OpenID Connect provider's
// new tokens (the newest secret's).
func (k *Keys) RSASigner() (RSAKey, error) {
	keys, err := k.rsa()
	if err != nil {
		return RSAKey{}, err
	}
	return keys[0], nil
}

// RSAVerificationKey returns the RSA public key with this key id.
func (k *Keys) RSAVerificationKey(kid string) (*rsa.PublicKey, bool) {
	keys, err := k.rsa()
	if err != nil {
		return nil, false
	}
	for _, key := range keys {
		if key.KID == kid {
			return &key.Private.PublicKey, true
		}
	}
	return nil, false
}

// keyID is the first 8 characters of the key's RFC 7638 thumbprint: short,
// because it travels in every token, and unique enough for a handful of keys
// (a clash is refused at start-up).
func keyID(pub ed25519.PublicKey) string {
	thumb := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(thumb))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:8]
}

// Signer returns the key that signs new tokens.
func (k *Keys) Signer() SigningKey { return k.signing[0] }

// VerificationKey returns the public key with this key id.
func (k *Keys) VerificationKey(kid string) (ed25519.PublicKey, bool) {
	pub, ok := k.byKID[kid]
	return pub, ok
}

// RefreshMAC returns the refresh-token MAC key with this key id.
func (k *Keys) RefreshMAC(kid string) ([]byte, bool) {
	mac, ok := k.refreshMACs[kid]
	return mac, ok
}

// JWKS returns the JSON Web Key Set of every key that currently verifies:
// one Ed25519 key (EdDSA, Latchkey's own tokens) and one RSA key (RS256,
// the OpenID Connect provider's) per secret.
func (k *Keys) JWKS() ([]byte, error) {
	k.jwksOnce.Do(func() { k.jwks = k.buildJWKS() })
	if k.jwks == nil {
		_, err := k.rsa()
		return nil, err
	}
	return k.jwks, nil
}

func (k *Keys) buildJWKS() []byte {
	type jwk struct {
		KTY string `json:"kty"`
		CRV string `json:"crv,omitempty"`
		X   string `json:"x,omitempty"`
		N   string `json:"n,omitempty"`
		E   string `json:"e,omitempty"`
		KID string `json:"kid"`
		ALG string `json:"alg"`
		USE string `json:"use"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{}
	for _, s := range k.signing {
		set.Keys = append(set.Keys, jwk{KTY: "OKP", CRV: "Ed25519", X: base64.RawURLEncoding.EncodeToString(s.Public),
			KID: s.KID, ALG: "EdDSA", USE: "sig"})
	}
	rsaKeys, err := k.rsa()
	if err != nil {
		return nil
	}
	for _, r := range rsaKeys {
		pub := r.Private.PublicKey
		set.Keys = append(set.Keys, jwk{KTY: "RSA", N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()), KID: r.KID, ALG: "RS256", USE: "sig"})
	}
	out, _ := json.Marshal(set)
	return out
}

// ParseSecrets parses SECRET_KEYS: comma-separated base64 (standard or URL
// alphabet, padded or not), newest first.
func ParseSecrets(s string) ([][]byte, error) {
	var out [][]byte
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		secret, err := decodeBase64(part)
		if err != nil {
			return nil, fmt.Errorf("secret %d is not base64", i+1)
		}
		if len(secret) < MinSecretBytes {
			return nil, fmt.Errorf("secret %d is %d bytes; at least %d are needed (openssl rand -base64 32)", i+1, len(secret), MinSecretBytes)
		}
		out = append(out, secret)
	}
	if len(out) == 0 {
		return nil, errors.New("no secrets given")
	}
	return out, nil
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// ReadSecretFile reads the secrets in path, one per line. A missing file
// is an error wrapping fs.ErrNotExist.
func ReadSecretFile(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secrets, err := ParseSecrets(strings.ReplaceAll(strings.TrimSpace(string(data)), "\n", ","))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return secrets, nil
}

// LoadOrCreateSecretFile reads the secrets in path, creating the file (mode
// 0600) with one new random secret if it does not exist.
func LoadOrCreateSecretFile(path string) ([][]byte, bool, error) {
	secrets, err := ReadSecretFile(path)
	if err == nil {
		return secrets, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	// Write the secret to a temporary file, then link it into place: an
	// instance starting at the same moment either wins (and we read its
	// secret) or sees a complete file, never a half-written one.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret_keys-*")
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(base64.StdEncoding.EncodeToString(secret) + "\n")
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return nil, false, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateSecretFile(path)
		}
		return nil, false, err
	}
	return [][]byte{secret}, true, nil
}
