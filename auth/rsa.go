package auth

import (
	"crypto/hkdf"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	mrand "math/rand/v2"
)

// rsaBits is the size of the RSA keys the OpenID Connect provider signs
// with (RS256, the algorithm every OpenID Connect client can verify).
const rsaBits = 2048

// deriveRSAKey derives an RSA key from secret, the same on every instance
// that shares it, so that instances need not store a key. Go's
// rsa.GenerateKey (and crypto/rand.Prime) ignore the reader they are
// given, so the primes are drawn here, from a ChaCha8 stream keyed by
// HKDF of the secret, and tested with Miller-Rabin and Baillie-PSW
// (big.Int.ProbablyPrime, deterministic for a given number).
func deriveRSAKey(secret []byte) (*rsa.PrivateKey, error) {
	seed, err := hkdf.Key(sha256.New, secret, nil, "latchkey openid connect rsa-2048 v1", 32)
	if err != nil {
		return nil, err
	}
	stream := mrand.NewChaCha8([32]byte(seed))
	e := big.NewInt(65537)
	one := big.NewInt(1)
	for {
		p, err := derivePrime(stream, rsaBits/2)
		if err != nil {
			return nil, err
		}
		q, err := derivePrime(stream, rsaBits/2)
		if err != nil {
			return nil, err
		}
		if p.Cmp(q) == 0 {
			continue
		}
		pm1, qm1 := new(big.Int).Sub(p, one), new(big.Int).Sub(q, one)
		phi := new(big.Int).Mul(pm1, qm1)
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			continue // e shares a factor with p-1 or q-1
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != rsaBits {
			continue
		}
		key := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 65537}, D: d, Primes: []*big.Int{p, q}}
		key.Precompute()
		if err := key.Validate(); err != nil {
			return nil, err
		}
		return key, nil
	}
}

// derivePrime draws odd candidates of exactly bits bits (top two bits set,
// so that two of them multiply to a full-size modulus) from r until one is
// prime.
func derivePrime(r io.Reader, bits int) (*big.Int, error) {
	buf := make([]byte, bits/8)
	p := new(big.Int)
	for range 100_000 {
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		buf[0] |= 0xc0
		buf[len(buf)-1] |= 1
		p.SetBytes(buf)
		if p.ProbablyPrime(20) {
			return p, nil
		}
	}
	return nil, errors.New("no prime found")
}

// rsaKeyID is the first 8 characters of the key's RFC 7638 thumbprint.
func rsaKeyID(pub *rsa.PublicKey) string {
	e := big.NewInt(int64(pub.E)).Bytes()
	thumb := `{"e":"` + base64.RawURLEncoding.EncodeToString(e) + `","kty":"RSA","n":"` +
		base64.RawURLEncoding.EncodeToString(pub.N.Bytes()) + `"}`
	sum := sha256.Sum256([]byte(thumb))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:8]
}
