package auth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
)

// CeremonyTimeout is how long a passkey ceremony may take, from begin to
// finish: what the browser is told, the life of the ceremony cookie, and
// what go-webauthn enforces.
const CeremonyTimeout = 3 * time.Minute

// MaxCredentialIDBytes is the longest credential id WebAuthn allows.
const MaxCredentialIDBytes = 1023

// MaxPublicKeyBytes bounds a new passkey's COSE public key. The largest
// real ones (RSA-4096) take about 540 bytes; anything far past that is
// padding, stored and read on every sign-in for nothing.
const MaxPublicKeyBytes = 2048

// CeremonyKind is what a ceremony is for; a ceremony cookie of one kind is
// refused by the other kinds' finish.
type CeremonyKind byte

// Ceremony kinds.
const (
	CeremonyRegister CeremonyKind = 1 // add a passkey to the signed-in account
	CeremonySignIn   CeremonyKind = 2 // usernameless sign-in
	CeremonyReauth   CeremonyKind = 3 // step-up of the signed-in account
)

// Ceremony is the state between begin and finish. It lives only in a
// sealed, short-lived cookie: no challenge table.
type Ceremony struct {
	Kind CeremonyKind
	// Started (microsecond precision) is compared with the credential's
	// last use, which makes each ceremony single use: two ceremonies of one
	// person never start in the same microsecond.
	Started   time.Time
	Challenge []byte
	// UserHandle binds a registration or step-up to the signed-in user.
	UserHandle  []byte
	Next        string
	Conditional bool
}

// Passkeys runs WebAuthn ceremonies with go-webauthn, keeping their state
// in sealed cookies and filling the gaps the library leaves to us.
type Passkeys struct {
	wa    *webauthn.WebAuthn
	keys  *Keys
	clock Clock
	log   *slog.Logger
}

// NewPasskeys configures WebAuthn for the origin base: the RP ID is its
// host, the only accepted origin is base itself, user verification and
// resident keys are required.
func NewPasskeys(base *url.URL, keys *Keys, clock Clock, log *slog.Logger) (*Passkeys, error) {
	requireResident := true
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  base.Hostname(),
		RPDisplayName:         "Latchkey",
		RPOrigins:             []string{base.Scheme + "://" + base.Host},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: &requireResident,
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.VerificationRequired,
		},
		// go-webauthn only expires ceremonies when Enforce is set.
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTimeout, TimeoutUVD: CeremonyTimeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTimeout, TimeoutUVD: CeremonyTimeout},
		},
	})
	if err != nil {
		return nil, err
	}
	return &Passkeys{wa: wa, keys: keys, clock: clock, log: log}, nil
}

// PasskeyUser adapts an account and (some of) its passkeys to go-webauthn.
type PasskeyUser struct {
	User        *db.User
	Credentials []*db.Credential
}

// WebAuthnID implements webauthn.User: the random handle, never the email.
func (u PasskeyUser) WebAuthnID() []byte { return u.User.Handle }

// WebAuthnName implements webauthn.User.
func (u PasskeyUser) WebAuthnName() string { return u.User.Email }

// WebAuthnDisplayName implements webauthn.User.
func (u PasskeyUser) WebAuthnDisplayName() string { return u.User.Email }

// WebAuthnCredentials implements webauthn.User.
func (u PasskeyUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, len(u.Credentials))
	for i, c := range u.Credentials {
		out[i] = toWebAuthn(c)
	}
	return out
}

func toWebAuthn(c *db.Credential) webauthn.Credential {
	transports := make([]protocol.AuthenticatorTransport, len(c.Transports))
	for i, t := range c.Transports {
		transports[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID:                c.CredentialID,
		PublicKey:         c.PublicKey,
		AttestationType:   c.AttestationType,
		AttestationFormat: c.AttestationFormat,
		Transport:         transports,
		Flags: webauthn.CredentialFlags{
			UserPresent:    c.UserPresent,
			UserVerified:   c.UserVerified,
			BackupEligible: c.BackupEligible,
			BackupState:    c.BackupState,
		},
		Authenticator: webauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount,
			Attachment: protocol.AuthenticatorAttachment(c.Attachment)},
	}
}

var credentialParameters = webauthn.CredentialParametersRecommendedL3() // EdDSA, ES256, RS256

// BeginRegistration starts adding a passkey to u's account. It returns the
// options for navigator.credentials.create and the sealed ceremony cookie.
func (p *Passkeys) BeginRegistration(u PasskeyUser) (*protocol.CredentialCreation, string, error) {
	exclude := make([]protocol.CredentialDescriptor, len(u.Credentials))
	for i, c := range u.Credentials {
		wc := toWebAuthn(c)
		exclude[i] = wc.Descriptor()
	}
	creation, session, err := p.wa.BeginRegistration(u,
		webauthn.WithCredentialParameters(credentialParameters),
		webauthn.WithExclusions(exclude),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
	)
	if err != nil {
		return nil, "", err
	}
	cookie, err := p.seal(CeremonyRegister, session.Challenge, u.User.Handle, "", false)
	return creation, cookie, err
}

// BeginSignIn starts a usernameless sign-in: no allowCredentials, so the
// browser offers every passkey it holds for this site. conditional is the
// autofill variant.
func (p *Passkeys) BeginSignIn(conditional bool, next string) (*protocol.CredentialAssertion, string, error) {
	mediation := protocol.MediationDefault
	if conditional {
		mediation = protocol.MediationConditional
	}
	assertion, session, err := p.wa.BeginDiscoverableMediatedLogin(mediation,
		webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, "", err
	}
	cookie, err := p.seal(CeremonySignIn, session.Challenge, nil, next, conditional)
	return assertion, cookie, err
}

// BeginReauth starts a step-up for the signed-in user: only their passkeys
// are allowed.
func (p *Passkeys) BeginReauth(u PasskeyUser, next string) (*protocol.CredentialAssertion, string, error) {
	assertion, session, err := p.wa.BeginLogin(u, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, "", err
	}
	cookie, err := p.seal(CeremonyReauth, session.Challenge, u.User.Handle, next, false)
	return assertion, cookie, err
}

const ceremonyVersion = 1

func (p *Passkeys) seal(kind CeremonyKind, challenge string, handle []byte, next string, conditional bool) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(challenge)
	if err != nil || len(raw) < 16 {
		return "", errors.New("go-webauthn returned a bad challenge")
	}
	if len(next) > 2048 || len(handle) > 255 || len(raw) > 255 {
		return "", errors.New("ceremony field too long")
	}
	now := p.clock.Now()
	flags := byte(0)
	if conditional {
		flags = 1
	}
	b := []byte{ceremonyVersion, byte(kind), flags}
	b = binary.BigEndian.AppendUint64(b, uint64(now.UnixMicro()))
	b = appendShort(b, raw)
	b = appendShort(b, handle)
	b = binary.BigEndian.AppendUint16(b, uint16(len(next)))
	b = append(b, next...)
	return p.keys.Seal(PurposeCeremony, b, now.Add(CeremonyTimeout)), nil
}

// Errors a ceremony cookie can produce.
var (
	ErrNoCeremony = errs.E(errs.Invalid, "error.no_ceremony")
)

// OpenCeremony opens a ceremony cookie of one of the given kinds.
func (p *Passkeys) OpenCeremony(cookie string, kinds ...CeremonyKind) (*Ceremony, error) {
	if cookie == "" {
		return nil, ErrNoCeremony
	}
	b, err := p.keys.Open(PurposeCeremony, cookie, p.clock.Now())
	if err != nil {
		return nil, ErrNoCeremony
	}
	r := reader{b: b}
	if r.byte() != ceremonyVersion {
		return nil, ErrNoCeremony
	}
	c := &Ceremony{Kind: CeremonyKind(r.byte()), Conditional: r.byte() == 1}
	c.Started = time.UnixMicro(int64(r.uint64()))
	c.Challenge = r.short()
	c.UserHandle = r.short()
	c.Next = string(r.bytes(int(r.uint16())))
	if r.bad || len(r.b) != 0 || !slices.Contains(kinds, c.Kind) || len(c.Challenge) < 16 {
		return nil, ErrNoCeremony
	}
	return c, nil
}

// session rebuilds go-webauthn's SessionData from a ceremony.
func (p *Passkeys) session(c *Ceremony, userID []byte) webauthn.SessionData {
	s := webauthn.SessionData{
		Challenge:        base64.RawURLEncoding.EncodeToString(c.Challenge),
		RelyingPartyID:   p.wa.Config.RPID,
		UserID:           userID,
		UserVerification: protocol.VerificationRequired,
		Expires:          c.Started.Add(CeremonyTimeout),
	}
	if c.Kind == CeremonyRegister {
		s.CredParams = credentialParameters
	}
	if c.Conditional {
		s.Mediation = protocol.MediationConditional
	}
	return s
}

// invalid turns a go-webauthn error into a 400 a person can act on,
// logging the library's developer details.
func (p *Passkeys) invalid(what string, err error) error {
	msg := "error.passkey_unverified"
	if pe, ok := errors.AsType[*protocol.Error](err); ok {
		p.log.Info("passkey "+what+" refused", "type", pe.Type, "details", pe.Details, "debug", pe.DevInfo)
	} else {
		p.log.Info("passkey "+what+" refused", "err", err)
	}
	return errs.Wrap(err, errs.Invalid, msg)
}

// ParseRegistration parses a PublicKeyCredential.toJSON() from create().
func (p *Passkeys) ParseRegistration(body []byte) (*protocol.ParsedCredentialCreationData, error) {
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		return nil, p.invalid("registration", err)
	}
	if len(parsed.RawID) > MaxCredentialIDBytes ||
		len(parsed.Response.AttestationObject.AuthData.AttData.CredentialID) > MaxCredentialIDBytes {
		return nil, errs.E(errs.Invalid, "error.credential_id_too_long")
	}
	return parsed, nil
}

// FinishRegistration verifies a parsed registration against its ceremony
// for user u and returns the new credential, ready to store.
func (p *Passkeys) FinishRegistration(u PasskeyUser, c *Ceremony, parsed *protocol.ParsedCredentialCreationData) (*db.Credential, error) {
	cred, err := p.wa.CreateCredential(u, p.session(c, c.UserHandle), parsed)
	if err != nil {
		return nil, p.invalid("registration", err)
	}
	if len(cred.PublicKey) > MaxPublicKeyBytes {
		return nil, errs.E(errs.Invalid, "error.public_key_too_large")
	}
	transports := make([]string, len(cred.Transport))
	for i, t := range cred.Transport {
		transports[i] = string(t)
	}
	return &db.Credential{
		UserID:            u.User.ID,
		CredentialID:      cred.ID,
		PublicKey:         cred.PublicKey,
		AttestationType:   cred.AttestationType,
		AttestationFormat: cred.AttestationFormat,
		AAGUID:            cred.Authenticator.AAGUID,
		Transports:        transports,
		Attachment:        string(cred.Authenticator.Attachment),
		SignCount:         cred.Authenticator.SignCount,
		UserPresent:       cred.Flags.UserPresent,
		UserVerified:      cred.Flags.UserVerified,
		BackupEligible:    cred.Flags.BackupEligible,
		BackupState:       cred.Flags.BackupState,
		CreatedAt:         p.clock.Now(),
	}, nil
}

// ParseAssertion parses a PublicKeyCredential.toJSON() from get().
func (p *Passkeys) ParseAssertion(body []byte) (*protocol.ParsedCredentialAssertionData, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return nil, p.invalid("assertion", err)
	}
	if len(parsed.RawID) > MaxCredentialIDBytes {
		return nil, errs.E(errs.Invalid, "error.credential_id_too_long")
	}
	return parsed, nil
}

// FinishAssertion verifies an assertion by the credential cred of the user
// with this handle against its ceremony: challenge, origin, RP ID hash,
// type, user presence and verification, signature, user handle, and the
// counter. It returns what the credential row must be updated with.
//
// A change of the backup flags is accepted and reported (flagsChanged):
// real authenticators flip backup eligibility after a sync (iCloud
// Keychain, some password managers), and go-webauthn would refuse the
// sign-in, locking the person out of that passkey. The new flags are
// recorded; the impossible combination (backed up but not eligible) is
// still refused.
func (p *Passkeys) FinishAssertion(handle []byte, cred *db.Credential, c *Ceremony, parsed *protocol.ParsedCredentialAssertionData) (used db.UsedCredential, flagsChanged bool, err error) {
	if h := parsed.Response.UserHandle; c.Kind == CeremonySignIn && len(h) == 0 {
		// A discoverable credential always returns its user handle.
		return db.UsedCredential{}, false, errs.E(errs.Invalid, "error.no_user_handle")
	}
	flags := parsed.Response.AuthenticatorData.Flags
	flagsChanged = flags.HasBackupEligible() != cred.BackupEligible || flags.HasBackupState() != cred.BackupState
	asNow := *cred
	asNow.BackupEligible = flags.HasBackupEligible()
	u := PasskeyUser{User: &db.User{Handle: handle}, Credentials: []*db.Credential{&asNow}}
	wc, err := p.wa.ValidateLogin(u, p.session(c, handle), parsed)
	if err != nil {
		return db.UsedCredential{}, false, p.invalid("assertion", err)
	}
	if wc.Authenticator.CloneWarning {
		return db.UsedCredential{}, false, db.ErrCounterWentBack // logged by the caller
	}
	return db.UsedCredential{
		ID:            cred.ID,
		CredentialID:  cred.CredentialID,
		PublicKey:     cred.PublicKey,
		Owner:         handle,
		Eligible:      cred.BackupEligible,
		SignCount:     wc.Authenticator.SignCount,
		UserVerified:  wc.Flags.UserVerified,
		NowEligible:   flags.HasBackupEligible(),
		BackupState:   flags.HasBackupState(),
		CeremonyStart: c.Started.UnixMicro(),
	}, flagsChanged, nil
}

// NewUserHandle returns a random WebAuthn user handle (and token subject).
func NewUserHandle() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

// String describes a ceremony kind, for logs.
func (k CeremonyKind) String() string {
	switch k {
	case CeremonyRegister:
		return "registration"
	case CeremonySignIn:
		return "sign-in"
	case CeremonyReauth:
		return "step-up"
	}
	return fmt.Sprintf("kind %d", byte(k))
}
