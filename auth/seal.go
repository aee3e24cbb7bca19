package auth

import (
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/latchkey/latchkey/errs"
)

// Purposes bind a sealed value to one use: a value sealed for one purpose
// never opens for another, because the purpose is the associated data.
const (
	PurposeLink        = "link"
	PurposeLinkRequest = "link-request"
	PurposeCeremony    = "webauthn-ceremony"
	PurposeOIDCCode    = "oidc-authorization-code"
	PurposeOIDCConsent = "oidc-consent-request"
	PurposeOIDCResume  = "oidc-resume-after-sign-in"
)

// Errors from Open. Expired is authentic but too old.
var (
	ErrSealInvalid = errs.E(errs.Invalid, "error.seal_invalid")
	ErrSealExpired = errs.E(errs.Gone, "error.seal_expired")
)

// maxSealed bounds what Open will even try to decode.
const maxSealed = 4096

// Seal encrypts and authenticates plaintext for purpose with the newest key;
// it opens until expires. The result is URL- and cookie-safe.
func (k *Keys) Seal(purpose string, plaintext []byte, expires time.Time) string {
	msg := make([]byte, 8, 8+len(plaintext))
	binary.BigEndian.PutUint64(msg, uint64(expires.UnixMilli()))
	msg = append(msg, plaintext...)
	sealed := k.sealers[0].Seal(nil, nil, msg, associatedData(purpose))
	return base64.RawURLEncoding.EncodeToString(sealed)
}

// Open returns the plaintext of a value sealed for purpose by any current
// key, or ErrSealInvalid (tampered, truncated, another purpose, an unknown
// key) or ErrSealExpired.
func (k *Keys) Open(purpose, sealed string, now time.Time) ([]byte, error) {
	if len(sealed) == 0 || len(sealed) > maxSealed {
		return nil, ErrSealInvalid
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(sealed)
	if err != nil {
		return nil, ErrSealInvalid
	}
	ad := associatedData(purpose)
	for _, aead := range k.sealers {
		msg, err := aead.Open(nil, nil, raw, ad)
		if err != nil {
			continue
		}
		if len(msg) < 8 {
			return nil, ErrSealInvalid
		}
		expires := int64(binary.BigEndian.Uint64(msg))
		if now.UnixMilli() >= expires {
			return nil, ErrSealExpired
		}
		return msg[8:], nil
	}
	return nil, ErrSealInvalid
}

func associatedData(purpose string) []byte { return []byte("latchkey/v1/" + purpose) }
