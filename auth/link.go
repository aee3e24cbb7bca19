package auth

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/latchkey/latchkey/errs"
)

// LinkKind says what an emailed link does.
type LinkKind byte

// Link kinds.
const (
	LinkSignIn      LinkKind = 1 // sign in to an existing account
	LinkSignUp      LinkKind = 2 // create the account on first use
	LinkEmailChange LinkKind = 3 // move an account to a new address
	LinkRecovery    LinkKind = 4 // sign in and start a self-service recovery
	LinkOperator    LinkKind = 5 // an operator's recovery link: sign in, fresh enough to add a passkey
	LinkInvite      LinkKind = 6 // a sign-up link an operator sent, whatever SIGNUP says
)

// Link is what an emailed link's token carries, sealed: nobody can read or
// forge it, and it opens only as a link.
type Link struct {
	Kind     LinkKind
	IssuedAt time.Time // microsecond precision; compared with users.link_used_at
	Handle   []byte    // the account (sign-in, email change); empty for sign-up
	Email    string    // the address the link was sent to
	Next     string    // where to go after signing in
	// RequestID identifies the browser that asked for the link (its
	// link-request cookie), so the confirmation page can say whether this is
	// that browser. It grants nothing.
	RequestID []byte
}

const linkVersion = 1

var (
	errLinkDamaged = errs.E(errs.Invalid, "error.link_damaged")
	errLinkExpired = errs.E(errs.Gone, "error.link_expired")
)

// SealLink seals l into a URL-safe token valid for ttl.
func (k *Keys) SealLink(l *Link, ttl time.Duration) (string, error) {
	if len(l.Email) > 255 || len(l.Next) > 2048 || len(l.Handle) > 255 || len(l.RequestID) > 255 {
		return "", errors.New("link field too long")
	}
	b := make([]byte, 0, 64+len(l.Email)+len(l.Next))
	b = append(b, linkVersion)
	return k.Seal(PurposeLink, appendLink(b, l, 0), l.IssuedAt.Add(ttl)), nil
}

// appendLink appends l's fields to b. A handle shorter than handleRoom is
// padded to it, so that the length of what holds it does not tell a
// link for an account from one for a new address.
func appendLink(b []byte, l *Link, handleRoom int) []byte {
	b = append(b, byte(l.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(l.IssuedAt.UnixMicro()))
	b = appendShort(b, l.Handle)
	b = append(b, make([]byte, max(0, handleRoom-len(l.Handle)))...)
	b = appendShort(b, []byte(l.Email))
	b = appendShort(b, l.RequestID)
	b = binary.BigEndian.AppendUint16(b, uint16(len(l.Next)))
	return append(b, l.Next...)
}

// readLink reads what appendLink appended (r is bad if it cannot).
func readLink(r *reader, handleRoom int) *Link {
	l := &Link{Kind: LinkKind(r.byte())}
	l.IssuedAt = time.UnixMicro(int64(r.uint64()))
	l.Handle = r.short()
	r.bytes(max(0, handleRoom-len(l.Handle)))
	l.Email = string(r.short())
	l.RequestID = r.short()
	l.Next = string(r.bytes(int(r.uint16())))
	return l
}

// OpenLink opens a link token: errs.Invalid if it is damaged or forged,
// errs.Gone if it has expired.
func (k *Keys) OpenLink(token string, now time.Time) (*Link, error) {
	b, err := k.Open(PurposeLink, token, now)
	if errors.Is(err, ErrSealExpired) {
		return nil, errLinkExpired
	}
	if err != nil {
		return nil, errLinkDamaged
	}
	r := reader{b: b}
	if r.byte() != linkVersion {
		return nil, errLinkDamaged
	}
	l := readLink(&r, 0)
	if r.bad || len(r.b) != 0 || l.Kind < LinkSignIn || l.Kind > LinkInvite || l.Email == "" {
		return nil, errLinkDamaged
	}
	return l, nil
}

func appendShort(b, v []byte) []byte {
	b = append(b, byte(len(v)))
	return append(b, v...)
}

// reader decodes the fixed binary layouts we seal; any overrun marks it bad.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) bytes(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	v := r.bytes(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) short() []byte { return r.bytes(int(r.byte())) }

func (r *reader) uint16() uint16 {
	v := r.bytes(2)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (r *reader) uint64() uint64 {
	v := r.bytes(8)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}
