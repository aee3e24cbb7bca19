package handlers

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
	"github.com/latchkey/latchkey/i18n"
	"github.com/latchkey/latchkey/views"
)

// beginPasskeySignIn returns options for a usernameless assertion
// (?mediation=conditional for autofill), or, with ?for=reauth, for a
// step-up of the signed-in user with their own passkeys.
func (h *Handler) beginPasskeySignIn(c echo.Context) error {
	if err := readBeginBody(c); err != nil {
		return err
	}
	next := safeNext(c.QueryParam("next"))
	var (
		options any
		cookie  string
		err     error
	)
	if c.QueryParam("for") == "reauth" {
		u, uerr := h.currentUser(c)
		if uerr != nil {
			return uerr
		}
		creds, cerr := h.db.CredentialsOf(c.Request().Context(), u.ID)
		if cerr != nil {
			return cerr
		}
		if len(creds) == 0 {
			return errs.E(errs.Invalid, "error.no_passkey_yet")
		}
		options, cookie, err = h.passkeys.BeginReauth(auth.PasskeyUser{User: u, Credentials: creds}, next)
	} else {
		options, cookie, err = h.passkeys.BeginSignIn(c.QueryParam("mediation") == "conditional", next)
	}
	if err != nil {
		return err
	}
	setCookie(c, cookieCeremony, cookie, auth.CeremonyTimeout)
	return c.JSON(http.StatusOK, options)
}

// errUnknownPasskey is what a deleted or foreign passkey gets. The script
// then tells the browser (signalUnknownCredential) so it can forget it.
var errUnknownPasskey = errs.E(errs.NotFound, "error.unknown_passkey")

// finishPasskeySignIn verifies an assertion, records the credential's use
// (refusing a replayed ceremony), and signs in: 200 {"redirect": …}.
func (h *Handler) finishPasskeySignIn(c echo.Context) (err error) {
	var owner []byte
	defer func() {
		if err != nil {
			h.event(c, events.SignInFailed, owner, slog.String("method", "passkey"), slog.String("reason", failureReason(err)))
		}
	}()
	body, err := readJSON(c)
	if err != nil {
		return err
	}
	parsed, err := h.passkeys.ParseAssertion(body)
	if err != nil {
		return notJSONOr(body, err)
	}
	cer, err := h.passkeys.OpenCeremony(cookieValue(c, cookieCeremony), auth.CeremonySignIn, auth.CeremonyReauth)
	clearCookie(c, cookieCeremony)
	if err != nil {
		return err
	}
	if cer.Kind == auth.CeremonyReauth {
		// A step-up is for the signed-in account that began it.
		s := sessionOf(c)
		if s == nil {
			// Its session ended meanwhile (signed out in another tab): say
			// so, and where to sign in again.
			return errSignedOut
		}
		if !bytes.Equal(s.Handle(), cer.UserHandle) {
			return errPasskeyOfAnotherAccount
		}
	}
	ctx, now := c.Request().Context(), h.clock.Now()
	start := h.newSession(c, db.MethodPasskey, now)
	signIn, remembered, err := h.verifyPasskeySignIn(ctx, cer, parsed, start, now)
	if err != nil && remembered && !errors.Is(err, db.ErrPasskeyReplay) {
		// What this instance remembered of the passkey may be out of date
		// (changed on another instance). The failure made it forget: try
		// once more against the row as it is now, so that a stale memory
		// never decides the answer. (A replay is the exception: the
		// remembered last use is never newer than the row's — unless the
		// passkey was registered again during this very ceremony, and then
		// the next attempt starts a newer one — so it is right when it says
		// so, and a replay costs no database read.)
		if errors.Is(err, db.ErrCounterWentBack) {
			h.warnCounter(parsed.RawID, "remembered")
		}
		signIn, _, err = h.verifyPasskeySignIn(ctx, cer, parsed, start, now)
	}
	if errors.Is(err, db.ErrCounterWentBack) {
		h.warnCounter(parsed.RawID, "stored")
	}
	if err != nil {
		return err
	}
	owner = signIn.owner
	if err := h.startSession(c, owner, auth.AMRPasskey, signIn.iat, start, now); err != nil {
		return err
	}
	h.adoptLanguage(c, signIn.lang)
	credential := slog.String("credential", base64.RawURLEncoding.EncodeToString(parsed.RawID))
	if signIn.flagsChanged {
		// Accepted and recorded (see Passkeys.FinishAssertion), and worth
		// knowing about.
		h.warnEvent(c, events.PasskeyFlags, owner, credential,
			slog.Bool("backup_eligible", parsed.Response.AuthenticatorData.Flags.HasBackupEligible()),
			slog.Bool("backed_up", parsed.Response.AuthenticatorData.Flags.HasBackupState()))
	}
	h.event(c, events.SignIn, owner, slog.String("method", "passkey"), slog.String("purpose", cer.Kind.String()), credential)
	if signIn.cancelledRecovery {
		h.event(c, events.RecoveryCancelled, owner, slog.String("by", "passkey sign-in"))
		h.recoveryCancelledNotice(c, owner, "notice.recovery_cancelled.by_passkey")
	}
	return c.JSON(http.StatusOK, redirectBody{Redirect: nextOr(cer.Next, "/account")})
}

// passkeySignIn is what a verified, recorded assertion yields.
type passkeySignIn struct {
	owner             []byte    // the account signed in to
	iat               time.Time // the issue time of the session's tokens
	cancelledRecovery bool      // it ended a pending recovery
	flagsChanged      bool      // the passkey's backup flags changed
	lang              string    // the person's chosen language, or ""
}

// redirectBody is a finish's answer: where the page goes next.
type redirectBody struct {
	Redirect string `json:"redirect"`
}

var errPasskeyOfAnotherAccount = errs.E(errs.Forbidden, "error.passkey_of_another_account")

// verifyPasskeySignIn checks an assertion against its credential row and
// records the use at now, with the session it starts; it returns the
// sign-in, and whether the row came from this instance's memory. Any
// failure but a replay makes the instance forget what it remembered of
// the credential.
func (h *Handler) verifyPasskeySignIn(ctx context.Context, cer *auth.Ceremony, parsed *protocol.ParsedCredentialAssertionData,
	start db.SessionStart, now time.Time) (signIn passkeySignIn, remembered bool, err error) {
	cred, owner, remembered, err := h.db.CredentialForSignIn(ctx, parsed.RawID)
	if errs.Code(err) == errs.NotFound {
		return signIn, false, forgetCredential(parsed.RawID, errUnknownPasskey)
	}
	if err != nil {
		return signIn, false, err
	}
	signIn, err = h.checkAndRecordAssertion(ctx, cer, parsed, cred, owner, start, now)
	if err != nil && !errors.Is(err, db.ErrPasskeyReplay) {
		h.db.ForgetSignInCredential(parsed.RawID)
	}
	return signIn, remembered, err
}

// warnCounter logs a passkey whose signature counter did not increase over
// the remembered or the stored one: possibly a cloned authenticator.
func (h *Handler) warnCounter(credentialID []byte, against string) {
	h.log.Warn("passkey counter did not increase: possible cloned authenticator",
		"credential", base64.RawURLEncoding.EncodeToString(credentialID), "against", against)
}

// checkAndRecordAssertion verifies the assertion against cred, owned by
// owner, and records the use at now, with the session it starts.
func (h *Handler) checkAndRecordAssertion(ctx context.Context, cer *auth.Ceremony,
	parsed *protocol.ParsedCredentialAssertionData, cred *db.Credential, owner []byte, start db.SessionStart, now time.Time) (passkeySignIn, error) {
	signIn := passkeySignIn{owner: owner}
	if cer.Kind == auth.CeremonyReauth && !bytes.Equal(owner, cer.UserHandle) {
		return signIn, errPasskeyOfAnotherAccount // a step-up takes only the account's own passkeys
	}
	if !cred.LastUsedAt.Before(cer.Started) {
		// This ceremony (or a newer one) already used the credential: a
		// replay. Said before verifying, so that a replay is not reported
		// as a cloned authenticator; SignInWithPasskey enforces it
		// atomically either way.
		return signIn, db.ErrPasskeyReplay
	}
	used, flagsChanged, err := h.passkeys.FinishAssertion(owner, cred, cer, parsed)
	if err != nil {
		return signIn, err
	}
	signIn.flagsChanged = flagsChanged
	used.Session = start
	recorded, err := h.db.SignInWithPasskey(ctx, used, now)
	signIn.iat, signIn.cancelledRecovery, signIn.lang = recorded.IssuedAt, recorded.CancelledRecovery, recorded.Lang
	if errs.Code(err) == errs.NotFound {
		// Deleted since it was read (here or on another instance).
		return signIn, forgetCredential(parsed.RawID, errUnknownPasskey)
	}
	return signIn, err
}

// forgetCredentialError names a credential the browser should forget
// (the script passes it to signalUnknownCredential): one this site does
// not know, or one it has just refused to keep.
type forgetCredentialError struct {
	id  string // base64url
	err error
}

func forgetCredential(id []byte, err error) error {
	return &forgetCredentialError{id: base64.RawURLEncoding.EncodeToString(id), err: err}
}

func (e *forgetCredentialError) Error() string { return e.err.Error() }
func (e *forgetCredentialError) Unwrap() error { return e.err }

// beginPasskeyRegistration returns options for creating a passkey for the
// signed-in user (a sensitive action).
func (h *Handler) beginPasskeyRegistration(c echo.Context) error {
	if err := readBeginBody(c); err != nil {
		return err
	}
	u, err := h.currentUser(c)
	if err != nil {
		return err
	}
	creds, err := h.db.CredentialsOf(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	if len(creds) >= db.MaxCredentials {
		// Said before a step-up, and before the browser asks the person to
		// make a passkey that would then be refused (AddCredential has the
		// last word).
		return db.ErrTooManyPasskeys
	}
	if err := h.requireFresh(c, u, "/account"); err != nil {
		return err
	}
	options, cookie, err := h.passkeys.BeginRegistration(auth.PasskeyUser{User: u, Credentials: creds})
	if err != nil {
		return err
	}
	setCookie(c, cookieCeremony, cookie, auth.CeremonyTimeout)
	return c.JSON(http.StatusOK, options)
}

// finishPasskeyRegistration verifies and stores a new passkey, named after
// its provider: 200 {"redirect": "/account"}.
func (h *Handler) finishPasskeyRegistration(c echo.Context) error {
	body, err := readJSON(c)
	if err != nil {
		return err
	}
	parsed, err := h.passkeys.ParseRegistration(body)
	if err != nil {
		return notJSONOr(body, err) // the body first, as for sign-in
	}
	cer, err := h.passkeys.OpenCeremony(cookieValue(c, cookieCeremony), auth.CeremonyRegister)
	clearCookie(c, cookieCeremony)
	if err != nil {
		return err
	}
	u, err := h.currentUser(c)
	if err != nil {
		return err
	}
	if !bytes.Equal(u.Handle, cer.UserHandle) {
		return errs.E(errs.Forbidden, "error.ceremony_of_another_account")
	}
	if err := h.requireFresh(c, u, "/account"); err != nil {
		return err
	}
	ctx := c.Request().Context()
	// go-webauthn does not check that a new credential id is unused: the
	// credentials table's UNIQUE index does, when it is added (409).
	creds, err := h.db.CredentialsOf(ctx, u.ID)
	if err != nil {
		return err
	}
	cred, err := h.passkeys.FinishRegistration(auth.PasskeyUser{User: u, Credentials: creds}, cer, parsed)
	if err != nil {
		return err
	}
	cred.Name = uniqueName(providerOrDefault(cred.AAGUID, h.t(c)), creds)
	endedRecovery, err := h.db.AddCredential(ctx, cred)
	if err != nil {
		if errors.Is(err, db.ErrTooManyPasskeys) || errs.Code(err) == errs.Gone {
			// The passkey the browser has just made will never work here
			// (the account filled up or was deleted meanwhile): let it
			// forget it. (Not for a credential id already registered: that
			// passkey is known.)
			return forgetCredential(cred.CredentialID, err)
		}
		return err
	}
	h.passkeyAddedNotice(c, u, cred)
	h.event(c, events.PasskeyAdded, u.Handle, slog.String("name", cred.Name),
		slog.String("credential", base64.RawURLEncoding.EncodeToString(cred.CredentialID)))
	if endedRecovery {
		h.event(c, events.RecoveryCompleted, u.Handle)
	}
	return c.JSON(http.StatusOK, redirectBody{Redirect: "/account"})
}

// providerOrDefault names a new passkey after its provider ("iCloud
// Keychain"), else with the word for a passkey in the person's language
// (the name is theirs to change, and stays as it was given).
func providerOrDefault(aaguid []byte, t i18n.T) string {
	if name := auth.ProviderName(aaguid); name != "" {
		return name
	}
	return t.S("passkey.default_name")
}

// uniqueName numbers a name that one of the user's passkeys already has:
// "iCloud Keychain", "iCloud Keychain 2", …
func uniqueName(base string, existing []*db.Credential) string {
	taken := map[string]bool{}
	for _, c := range existing {
		taken[c.Name] = true
	}
	name := base
	for i := 2; taken[name]; i++ {
		name = fmt.Sprintf("%s %d", base, i)
	}
	return name
}

// renamePasskey renames one of the signed-in user's passkeys.
func (h *Handler) renamePasskey(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return err
	}
	id, err := passkeyID(c)
	if err != nil {
		return err
	}
	name, err := passkeyName(c.Request().PostForm.Get("name"))
	if err != nil {
		return err
	}
	u, err := h.currentUser(c)
	if err != nil {
		return err
	}
	if err := h.db.RenameCredential(c.Request().Context(), u.ID, id, name); err != nil {
		return err
	}
	h.event(c, events.PasskeyRenamed, u.Handle, slog.Int64("passkey", id), slog.String("name", name))
	return c.Redirect(http.StatusSeeOther, "/account")
}

// deletePasskey removes one of the signed-in user's passkeys (a sensitive
// action), unless it is the last one of a passkey-only account.
func (h *Handler) deletePasskey(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return err
	}
	id, err := passkeyID(c)
	if err != nil {
		return err
	}
	u, err := h.freshUser(c, "/account")
	if err != nil {
		return err
	}
	removed, err := h.removePasskey(c, u, id)
	if err != nil {
		return err
	}
	h.event(c, events.PasskeyRemoved, u.Handle, removed...)
	return c.Redirect(http.StatusSeeOther, "/account")
}

// removePasskey deletes the passkey id of the account u (the last one of
// a passkey-only account stays: db.ErrLastPasskey), tells the address,
// and returns what the security event says of it.
func (h *Handler) removePasskey(c echo.Context, u *db.User, id int64) ([]slog.Attr, error) {
	removed, err := h.db.DeleteCredential(c.Request().Context(), u.ID, id)
	if err != nil {
		return nil, err
	}
	h.passkeyRemovedNotice(c, u, removed)
	return []slog.Attr{slog.String("name", removed.Name),
		slog.String("credential", base64.RawURLEncoding.EncodeToString(removed.CredentialID))}, nil
}

func passkeyID(c echo.Context) (int64, error) { return passkeyIDParam(c, "id") }

// passkeyIDParam reads a passkey's id from the path parameter name.
func passkeyIDParam(c echo.Context, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, errs.E(errs.NotFound, "error.no_such_passkey")
	}
	return id, nil
}

var errBadPasskeyName = errs.EData(errs.Invalid, "error.passkey_name", "Max", views.MaxPasskeyName)

// passkeyName trims a new name and checks it: valid UTF-8, 1 to
// MaxPasskeyName characters, one line, nothing invisible or that turns
// text around (the name appears on the account page and in emails, where a
// right-to-left override could make "evil‮gnp.exe" read otherwise).
func passkeyName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > views.MaxPasskeyName ||
		strings.IndexFunc(s, unfitForName) >= 0 {
		return "", errBadPasskeyName
	}
	return s, nil
}

// unfitForName reports control, format (direction overrides, zero-width
// spaces) and line or paragraph separator characters. The zero-width joiner
// stays allowed: emoji sequences need it.
func unfitForName(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) ||
		(unicode.Is(unicode.Cf, r) && r != '\u200d')
}
