package testkit

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"

	"github.com/descope/virtualwebauthn"
)

// Passkey is a software passkey: a descope/virtualwebauthn authenticator
// and credential for the app at origin, plus a builder for the hostile
// variants virtualwebauthn cannot make (wrong type, wrong algorithm, …).
type Passkey struct {
	RP         virtualwebauthn.RelyingParty
	Auth       virtualwebauthn.Authenticator
	Cred       virtualwebauthn.Credential
	UserHandle []byte // what the authenticator stored at registration
}

// NewPasskey returns a new ES256 passkey for the site at origin (such as
// http://localhost:1234), backup-eligible and backed up like a synced one.
func NewPasskey(tb testing.TB, origin string) *Passkey {
	tb.Helper()
	p, err := MakePasskey(origin)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// MakePasskey is NewPasskey returning an error instead of failing a test.
func MakePasskey(origin string) (*Passkey, error) {
	u, err := url.Parse(origin)
	if err != nil {
		return nil, err
	}
	return &Passkey{
		RP:   virtualwebauthn.RelyingParty{ID: u.Hostname(), Name: "Latchkey", Origin: origin},
		Auth: virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{BackupEligible: true, BackupState: true}),
		Cred: newCredential(),
	}, nil
}

// newCredential works around virtualwebauthn encoding EC coordinates
// without leading zeros (about 1 key in 100 then fails registration): it
// draws keys until neither coordinate starts with a zero byte.
func newCredential() virtualwebauthn.Credential {
	for {
		c := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		k := privateKey(c)
		if len(k.X.Bytes()) == 32 && len(k.Y.Bytes()) == 32 {
			return c
		}
	}
}

func privateKey(c virtualwebauthn.Credential) *ecdsa.PrivateKey {
	k, err := x509.ParsePKCS8PrivateKey(c.Key.Data)
	if err != nil {
		panic(err)
	}
	return k.(*ecdsa.PrivateKey)
}

// Attest answers creation options (the JSON from a begin endpoint) as
// navigator.credentials.create would, through virtualwebauthn.
func (p *Passkey) Attest(tb testing.TB, optionsJSON string) string {
	tb.Helper()
	resp, err := p.Attestation(optionsJSON)
	if err != nil {
		tb.Fatalf("%v\n%s", err, optionsJSON)
	}
	return resp
}

// Attestation is Attest returning an error instead of failing a test.
func (p *Passkey) Attestation(optionsJSON string) (string, error) {
	opts, err := virtualwebauthn.ParseAttestationOptions(optionsJSON)
	if err != nil {
		return "", fmt.Errorf("creation options: %w", err)
	}
	// virtualwebauthn keeps no user handle; the authenticator must return
	// the one it was given when it signs in later.
	p.UserHandle = []byte(opts.UserID)
	p.Auth.Options.UserHandle = p.UserHandle
	return virtualwebauthn.CreateAttestationResponse(p.RP, p.Auth, p.Cred, *opts), nil
}

// Assert answers request options as navigator.credentials.get would,
// through virtualwebauthn, and then bumps the signature counter (which
// virtualwebauthn never does itself).
func (p *Passkey) Assert(tb testing.TB, optionsJSON string) string {
	tb.Helper()
	resp, err := p.Assertion(optionsJSON)
	if err != nil {
		tb.Fatalf("%v\n%s", err, optionsJSON)
	}
	return resp
}

// Assertion is Assert returning an error instead of failing a test.
func (p *Passkey) Assertion(optionsJSON string) (string, error) {
	opts, err := virtualwebauthn.ParseAssertionOptions(optionsJSON)
	if err != nil {
		return "", fmt.Errorf("request options: %w", err)
	}
	p.Cred.Counter++
	return virtualwebauthn.CreateAssertionResponse(p.RP, p.Auth, p.Cred, *opts), nil
}

// Flags of authenticator data.
const (
	FlagUP = 0x01
	FlagUV = 0x04
	FlagBE = 0x08
	FlagBS = 0x10
	FlagAT = 0x40
)

// Mod changes what a hand-built response says. Zero values mean "as a
// real authenticator would".
type Mod struct {
	Type         string // clientData type
	Origin       string
	RPID         string // whose hash goes into authenticator data
	Flags        *byte
	Counter      *uint32
	UserHandle   []byte // nil: the stored one
	NoUserHandle bool
	CredentialID []byte // nil: the passkey's own
	Algorithm    int    // COSE algorithm claimed at registration (0: ES256)
	KeyPadding   int    // junk bytes added to the COSE key at registration
	WrongKey     bool   // sign with another key
}

func ptr[T any](v T) *T { return &v }

// Byte returns a pointer to b, for Mod.Flags.
func Byte(b byte) *byte { return ptr(b) }

// Uint32 returns a pointer to n, for Mod.Counter.
func Uint32(n uint32) *uint32 { return ptr(n) }

func (p *Passkey) clientData(typ, challenge string, m Mod) []byte {
	if m.Type != "" {
		typ = m.Type
	}
	origin := p.RP.Origin
	if m.Origin != "" {
		origin = m.Origin
	}
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	return b
}

func (p *Passkey) authData(m Mod, flags byte) []byte {
	rpID := p.RP.ID
	if m.RPID != "" {
		rpID = m.RPID
	}
	if m.Flags != nil {
		flags = *m.Flags
	}
	counter := p.Cred.Counter
	if m.Counter != nil {
		counter = *m.Counter
	}
	h := sha256.Sum256([]byte(rpID))
	out := append(h[:], flags)
	return binary.BigEndian.AppendUint32(out, counter)
}

func (p *Passkey) credID(m Mod) []byte {
	if m.CredentialID != nil {
		return m.CredentialID
	}
	return p.Cred.ID
}

var b64 = base64.RawURLEncoding

// AttestWith builds a "none"-format registration response by hand, changed
// by m.
func (p *Passkey) AttestWith(tb testing.TB, optionsJSON string, m Mod) string {
	tb.Helper()
	opts, err := virtualwebauthn.ParseAttestationOptions(optionsJSON)
	if err != nil {
		tb.Fatal(err)
	}
	p.UserHandle = []byte(opts.UserID)
	p.Auth.Options.UserHandle = p.UserHandle
	cd := p.clientData("webauthn.create", b64.EncodeToString(opts.Challenge), m)
	key := privateKey(p.Cred)
	alg := -7
	if m.Algorithm != 0 {
		alg = m.Algorithm
	}
	cose := cborMap{{1, 2}, {3, alg}, {-1, 1}, {-2, key.X.FillBytes(make([]byte, 32))}, {-3, key.Y.FillBytes(make([]byte, 32))}}
	if m.KeyPadding > 0 {
		cose = append(cose, [2]any{99, make([]byte, m.KeyPadding)}) // an unknown parameter
	}
	id := p.credID(m)
	ad := p.authData(m, FlagUP|FlagUV|FlagBE|FlagBS|FlagAT)
	ad = append(ad, p.Auth.Aaguid[:]...)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(id)))
	ad = append(ad, id...)
	ad = append(ad, cose.encode()...)
	att := cborMap{{"fmt", "none"}, {"attStmt", cborMap{}}, {"authData", ad}}
	return mustJSON(map[string]any{
		"id": b64.EncodeToString(id), "rawId": b64.EncodeToString(id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "attestationObject": b64.EncodeToString(att.encode()),
			"transports": []string{"internal", "hybrid"}},
		"clientExtensionResults": map[string]any{},
	})
}

// AssertWith builds a sign-in response by hand, changed by m. It bumps the
// counter like Assert.
func (p *Passkey) AssertWith(tb testing.TB, optionsJSON string, m Mod) string {
	tb.Helper()
	opts, err := virtualwebauthn.ParseAssertionOptions(optionsJSON)
	if err != nil {
		tb.Fatal(err)
	}
	p.Cred.Counter++
	cd := p.clientData("webauthn.get", b64.EncodeToString(opts.Challenge), m)
	ad := p.authData(m, FlagUP|FlagUV|FlagBE|FlagBS)
	sum := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), sum[:]...))
	key := privateKey(p.Cred)
	if m.WrongKey {
		key = privateKey(newCredential())
	}
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	resp := map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
		"signature": b64.EncodeToString(sig)}
	handle := p.UserHandle
	if m.UserHandle != nil {
		handle = m.UserHandle
	}
	if !m.NoUserHandle {
		resp["userHandle"] = b64.EncodeToString(handle)
	}
	id := p.credID(m)
	return mustJSON(map[string]any{"id": b64.EncodeToString(id), "rawId": b64.EncodeToString(id), "type": "public-key",
		"response": resp, "clientExtensionResults": map[string]any{}})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// cborMap is a CBOR map with its entries in order: just enough CBOR to
// build attestation objects and COSE keys by hand.
type cborMap [][2]any

func (m cborMap) encode() []byte {
	out := cborHead(5, uint64(len(m)))
	for _, kv := range m {
		out = append(out, cborValue(kv[0])...)
		out = append(out, cborValue(kv[1])...)
	}
	return out
}

func cborValue(v any) []byte {
	switch x := v.(type) {
	case int:
		if x >= 0 {
			return cborHead(0, uint64(x))
		}
		return cborHead(1, uint64(-1-x))
	case string:
		return append(cborHead(3, uint64(len(x))), x...)
	case []byte:
		return append(cborHead(2, uint64(len(x))), x...)
	case cborMap:
		return x.encode()
	}
	panic("cbor: unsupported type")
}

func cborHead(major byte, n uint64) []byte {
	switch {
	case n < 24:
		return []byte{major<<5 | byte(n)}
	case n < 1<<8:
		return []byte{major<<5 | 24, byte(n)}
	case n < 1<<16:
		return binary.BigEndian.AppendUint16([]byte{major<<5 | 25}, uint16(n))
	}
	return binary.BigEndian.AppendUint32([]byte{major<<5 | 26}, uint32(n))
}
