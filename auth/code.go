package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"strings"
	"time"
)

// CodeAlphabet is what a one-time code is made of: capital letters and
// digits without those people confuse when they copy a code from one
// screen to another (0 and O, 1, I and L) and U (which reads as V in some
// fonts). 30 characters.
const CodeAlphabet = "ABCDEFGHJKMNPQRSTVWXYZ23456789"

// CodeLength is how many characters a one-time code has: 30^8, about
// 6.6 × 10^11 codes (39 bits).
const CodeLength = 8

// maxTypedCode bounds what NormalizeCode reads: a code with a space or
// dash between every character, and then some.
const maxTypedCode = 32

// NewCode returns a random one-time code of CodeLength characters from
// CodeAlphabet, each equally likely.
func NewCode() string {
	const limit = 256 - 256%len(CodeAlphabet) // bytes at or above it would favour the first characters
	out := make([]byte, 0, CodeLength)
	buf := make([]byte, 16)
	for len(out) < CodeLength {
		rand.Read(buf)
		for _, c := range buf {
			if int(c) < limit && len(out) < CodeLength {
				out = append(out, CodeAlphabet[int(c)%len(CodeAlphabet)])
			}
		}
	}
	return string(out)
}

// FormatCode shows a code as people read it: "ABCD-EFGH".
func FormatCode(code string) string {
	if len(code) != CodeLength {
		return code
	}
	return code[:4] + "-" + code[4:]
}

// NormalizeCode reads a code as a person typed it: case, spaces and
// dashes do not matter. ok is false for anything that cannot be a code
// (another length, a character not in CodeAlphabet).
func NormalizeCode(typed string) (code string, ok bool) {
	if len(typed) > maxTypedCode {
		return "", false
	}
	var b strings.Builder
	for _, r := range typed {
		switch {
		case r == ' ' || r == '-' || r == '\t' || r == '\u00a0' || r == '\u2010' || r == '\u2011' || r == '\u2013':
			continue
		case 'a' <= r && r <= 'z':
			r -= 'a' - 'A'
		}
		if r > 0x7f || !strings.ContainsRune(CodeAlphabet, r) {
			return "", false
		}
		b.WriteRune(r)
	}
	if b.Len() != CodeLength {
		return "", false
	}
	return b.String(), true
}

// CodeMAC returns the MAC of a link's code, with the newest key: what the
// link-request cookie keeps instead of the code. It binds the code to the
// link (its request, issue time and address), so a MAC copied from one
// request says nothing about another's code.
func (k *Keys) CodeMAC(l *Link, code string) []byte { return codeMAC(k.codeMACs[0], l, code) }

// CheckCode reports whether code is the code of the link whose MAC is
// mac, under any current key, in constant time.
func (k *Keys) CheckCode(l *Link, mac []byte, code string) bool {
	ok := 0
	for _, key := range k.codeMACs {
		ok |= subtle.ConstantTimeCompare(codeMAC(key, l, code), mac)
	}
	return ok == 1
}

func codeMAC(key []byte, l *Link, code string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(l.RequestID)
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(l.IssuedAt.UnixMicro())))
	m.Write([]byte{byte(l.Kind), byte(len(l.Email))})
	m.Write([]byte(l.Email))
	m.Write([]byte(code))
	return m.Sum(nil)
}

// LinkRequest is what a browser's link-request cookie carries, sealed:
// the browser's request id, and the last link emailed at its request,
// with the MAC of that link's code (never the code) and how many wrong
// codes this browser has typed for it. A code works only with it: only in
// the browser that asked.
type LinkRequest struct {
	ID []byte // RequestIDLength random bytes, kept across requests
	// Link is the last link emailed at this browser's request (nil when
	// none): what the right code uses, exactly as the link would.
	Link *Link
	// CodeMAC is the MAC of the link's code (see CodeMAC). When the
	// email carried no code (a notice, or none was sent), it is random,
	// and no code matches it.
	CodeMAC []byte
	// Tries counts the wrong codes typed in this browser for Link.
	Tries int
}

// RequestIDLength is the length of a link-request id.
const RequestIDLength = 12

// linkRequestVersion marks the cookie's layout (a cookie of exactly
// RequestIDLength bytes is the layout before it: the id alone).
const linkRequestVersion = 2

// handleRoom is the room a link-request cookie keeps for an account's
// handle (see appendLink): its length is the same whether or not the
// address has an account.
const handleRoom = 32

var errLinkRequestDamaged = errors.New("link-request cookie damaged")

// SealLinkRequest seals r into a cookie value valid until expires.
func (k *Keys) SealLinkRequest(r *LinkRequest, expires time.Time) string {
	b := make([]byte, 0, 128)
	b = append(b, linkRequestVersion)
	b = append(b, r.ID...)
	if r.Link == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendLink(b, r.Link, handleRoom)
		b = append(b, r.CodeMAC...)
		b = append(b, byte(min(r.Tries, 255)))
	}
	return k.Seal(PurposeLinkRequest, b, expires)
}

// OpenLinkRequest opens a link-request cookie (ErrSealExpired once it
// has expired).
func (k *Keys) OpenLinkRequest(sealed string, now time.Time) (*LinkRequest, error) {
	b, err := k.Open(PurposeLinkRequest, sealed, now)
	if err != nil {
		return nil, err
	}
	if len(b) == RequestIDLength {
		return &LinkRequest{ID: b}, nil // the id alone, as cookies had it before codes
	}
	r := reader{b: b}
	if r.byte() != linkRequestVersion {
		return nil, errLinkRequestDamaged
	}
	req := &LinkRequest{ID: r.bytes(RequestIDLength)}
	if r.byte() == 1 {
		req.Link = readLink(&r, handleRoom)
		req.CodeMAC = r.bytes(sha256.Size)
		req.Tries = int(r.byte())
	}
	if r.bad || len(r.b) != 0 {
		return nil, errLinkRequestDamaged
	}
	return req, nil
}
