package db

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/errs"
)

// Credential is a passkey.
type Credential struct {
	ID                int64 // our id, used in URLs
	UserID            int64
	CredentialID      []byte // the authenticator's id
	PublicKey         []byte // COSE
	AttestationType   string
	AttestationFormat string
	AAGUID            []byte
	Transports        []string
	Attachment        string
	SignCount         uint32
	UserPresent       bool
	UserVerified      bool
	BackupEligible    bool
	BackupState       bool
	Name              string
	CreatedAt         time.Time
	LastUsedAt        time.Time // start of the ceremony that last used it; zero if never
}

const credentialColumns = `id, user_id, credential_id, public_key, attestation_type, attestation_format, aaguid,
	transports, attachment, sign_count, user_present, user_verified, backup_eligible, backup_state, name,
	created_at, last_used_at`

func scanCredential(row interface{ Scan(...any) error }) (*Credential, error) {
	var (
		c                Credential
		transports       string
		created, lastUse int64
	)
	err := row.Scan(&c.ID, &c.UserID, &c.CredentialID, &c.PublicKey, &c.AttestationType, &c.AttestationFormat, &c.AAGUID,
		&transports, &c.Attachment, &c.SignCount, &c.UserPresent, &c.UserVerified, &c.BackupEligible, &c.BackupState,
		&c.Name, &created, &lastUse)
	if err != nil {
		return nil, err
	}
	if transports != "" {
		c.Transports = strings.Split(transports, ",")
	}
	c.CreatedAt = time.UnixMilli(created)
	if lastUse > 0 {
		c.LastUsedAt = time.UnixMicro(lastUse)
	}
	return &c, nil
}

var errNoPasskey = errs.E(errs.NotFound, "error.no_such_passkey")

// CredentialsOf returns a user's passkeys, oldest first.
func (d *DB) CredentialsOf(ctx context.Context, userID int64) ([]*Credential, error) {
	ctx, done := d.op(ctx, "CredentialsOf")
	defer done()
	rows, err := d.r.query(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE user_id = $1 ORDER BY id`, userID)
	if err != nil {
		return nil, d.fail("list credentials", err)
	}
	defer rows.Close()
	var out []*Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, d.fail("scan credential", err)
		}
		out = append(out, c)
	}
	return out, d.fail("list credentials", rows.Err())
}

// CredentialForSignIn returns what verifying an assertion needs of the
// passkey with this authenticator credential id, and its live owner's
// handle, in one query: the public key, the flags, the counter and the last
// use. Other fields are left empty.
//
// A credential read once is kept in memory (see signInCache), so repeated
// sign-ins with it read nothing (remembered reports that it came from
// there); SignInWithPasskey stays the authority.
// On SQLite the read itself runs on the writer connection, not the read
// pool: a sign-in reads the row and then updates it, and every write makes
// the pooled readers drop their page caches and re-read the pages with
// system calls, which cost more than the query. The writer's cache stays
// warm. (On PostgreSQL both are the same pool.)
func (d *DB) CredentialForSignIn(ctx context.Context, credentialID []byte) (cred *Credential, owner []byte, remembered bool, err error) {
	if cred, owner, ok := d.signIns.get(credentialID); ok {
		return cred, owner, true, nil
	}
	ctx, done := d.op(ctx, "CredentialForSignIn")
	defer done()
	var (
		c       Credential
		lastUse int64
		handle  []byte
	)
	err = d.w.queryRow(ctx, `SELECT credentials.id, credentials.user_id, credentials.public_key,
		credentials.attestation_type, credentials.attestation_format, credentials.sign_count,
		credentials.user_present, credentials.user_verified, credentials.backup_eligible, credentials.backup_state,
		credentials.last_used_at, users.handle
		FROM credentials JOIN users ON users.id = credentials.user_id
		WHERE credentials.credential_id = $1 AND users.deleted_at IS NULL`, credentialID).Scan(
		&c.ID, &c.UserID, &c.PublicKey, &c.AttestationType, &c.AttestationFormat, &c.SignCount,
		&c.UserPresent, &c.UserVerified, &c.BackupEligible, &c.BackupState, &lastUse, &handle)
	if err != nil {
		return nil, nil, false, d.notFound("credential for sign-in", err, "error.passkey_not_registered")
	}
	c.CredentialID = bytes.Clone(credentialID)
	if lastUse > 0 {
		c.LastUsedAt = time.UnixMicro(lastUse)
	}
	d.signIns.put(&c, handle)
	return &c, handle, false, nil
}

// ForgetSignInCredential drops a credential from the sign-in cache, so the
// next sign-in with it reads the row again (after an assertion failed).
func (d *DB) ForgetSignInCredential(credentialID []byte) { d.signIns.forget(credentialID) }

var errPasskeyTaken = errs.E(errs.Conflict, "error.passkey_taken")

// MaxCredentials is the most passkeys one account can have: one for every
// device and password manager a person uses, with room to spare, yet few
// enough that the account page stays readable and one account cannot grow
// the database without bound.
const MaxCredentials = 20

// ErrTooManyPasskeys is what adding a passkey to an account that already
// has MaxCredentials gets.
var ErrTooManyPasskeys = errs.EData(errs.Conflict, "error.too_many_passkeys", "Max", MaxCredentials)

// AddCredential stores a new passkey for a live user that has fewer than
// MaxCredentials, and ends the account's pending recovery (reported by
// endedRecovery): the passkey is what the recovery was for. The user's row
// is locked first, so two registrations finishing at once (on any
// instances) count one another, and the account cannot be deleted in
// between.
func (d *DB) AddCredential(ctx context.Context, c *Credential) (endedRecovery bool, err error) {
	ctx, done := d.op(ctx, "AddCredential")
	defer done()
	if c.AAGUID == nil {
		c.AAGUID = []byte{}
	}
	err = d.inTx(ctx, func(tx *tx) error {
		endedRecovery = false
		if _, err := tx.lockUser(c.UserID); errors.Is(err, sql.ErrNoRows) {
			return errs.E(errs.Gone, "error.account_gone")
		} else if err != nil {
			return err
		}
		// One of its own passkeys sent again (a retried request) is
		// "already registered", full account or not.
		var (
			count int
			taken bool
		)
		if err := tx.row(`SELECT (SELECT count(*) FROM credentials WHERE user_id = $1),
			EXISTS (SELECT 1 FROM credentials WHERE credential_id = $2)`, c.UserID, c.CredentialID).Scan(&count, &taken); err != nil {
			return err
		}
		if taken {
			return errPasskeyTaken
		}
		if count >= MaxCredentials {
			return ErrTooManyPasskeys
		}
		err := tx.row(`INSERT INTO credentials (user_id, credential_id, public_key, attestation_type,
			attestation_format, aaguid, transports, attachment, sign_count, user_present, user_verified, backup_eligible,
			backup_state, name, created_at, last_used_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0) RETURNING id`,
			c.UserID, c.CredentialID, c.PublicKey, c.AttestationType, c.AttestationFormat, c.AAGUID,
			strings.Join(c.Transports, ","), c.Attachment, int64(c.SignCount), c.UserPresent, c.UserVerified, c.BackupEligible,
			c.BackupState, c.Name, c.CreatedAt.UnixMilli()).Scan(&c.ID)
		if isUniqueViolation(err) {
			return errPasskeyTaken // registered elsewhere meanwhile
		}
		if err != nil {
			return err
		}
		res, err := tx.exec(`UPDATE users SET recovery_due_at = 0 WHERE id = $1 AND recovery_due_at <> 0`, c.UserID)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		endedRecovery = n == 1
		return nil
	})
	return endedRecovery, d.fail("add credential", err)
}

// ErrPasskeyReplay is returned when an assertion's ceremony is not newer
// than the credential's last use: a replay, or a ceremony overtaken by a
// newer one.
var ErrPasskeyReplay = errs.E(errs.Gone, "error.passkey_replay")

// ErrCounterWentBack is returned when the authenticator's signature counter
// did not move forward: the mark of a cloned authenticator.
var ErrCounterWentBack = errs.E(errs.Forbidden, "error.counter_went_back")

// UsedCredential is what a successful assertion updates.
type UsedCredential struct {
	// The row, as the assertion was verified against it: the update
	// matches all four, so it cannot land on another row (SQLite reuses a
	// deleted row's id; a credential id can be registered again, on any
	// account, once it is deleted), nor on an account deleted since.
	ID           int64
	CredentialID []byte // the authenticator's id
	PublicKey    []byte // the key the signature was checked with
	Owner        []byte // the live user's handle the session goes to
	Eligible     bool   // the backup-eligible flag the row had when read

	SignCount    uint32
	UserVerified bool
	// The backup flags the assertion reported: recorded, even when
	// eligibility changed (real authenticators flip it after a sync).
	NowEligible bool
	BackupState bool
	// CeremonyStart is when the ceremony that used it began (Unix µs). The
	// update succeeds only if the credential's last use is older, which
	// makes each ceremony single use without storing challenges.
	CeremonyStart int64

	// Session is the session the sign-in starts, listed by the write
	// that records it.
	Session SessionStart
}

// credentialAsVerified is an SQL condition that matches a credential row
// only if it is still the one an assertion was verified against (see
// UsedCredential), given as the five parameters from $n on.
func credentialAsVerified(n int) string {
	p := func(i int) string { return "$" + strconv.Itoa(n+i) }
	return `id = ` + p(0) + ` AND credential_id = ` + p(1) + ` AND public_key = ` + p(2) + `
		AND user_id = (SELECT id FROM users WHERE handle = ` + p(3) + ` AND deleted_at IS NULL) AND backup_eligible = ` + p(4)
}

// Both engines bind the same numbered parameters.
var (
	recordUse = `UPDATE credentials SET sign_count = $1, user_verified = $2, backup_state = $3, last_used_at = $4,
			backup_eligible = $10
		WHERE ` + credentialAsVerified(5) + ` AND last_used_at < $4 AND (($1 = 0 AND sign_count = 0) OR sign_count < $1)`
	readUse = `SELECT last_used_at, sign_count FROM credentials WHERE ` + credentialAsVerified(1)
)

// SignInWithPasskey records a verified assertion at now and returns the
// issue time of the session's tokens, whether it cancelled a pending
// recovery (a passkey sign-in proves the owner still has one), and the
// person's language. It saves the counter and flags,
// atomically refusing a credential that is no longer the one verified, a
// replayed ceremony and a counter that did not increase (when either the
// stored or the new value is non-zero); and, in the same transaction,
// records the sign-in on the owner's row, which orders it with every
// revocation of the account (see issueAfter). It is what makes a passkey
// sign-in count; the credential read before it may come from memory
// (signInCache).
func (d *DB) SignInWithPasskey(ctx context.Context, u UsedCredential, now time.Time) (s PasskeySignIn, err error) {
	ctx, done := d.op(ctx, "SignInWithPasskey")
	defer done()
	var ms int64
	err = d.inTx(ctx, func(tx *tx) error {
		s.CancelledRecovery = false
		// The owner's row first: rows are locked users before credentials.
		var (
			recovery int64
			owner    User
		)
		err := tx.row(`UPDATE users SET signed_in_at = $1, `+issuedHigh("$1")+`, `+appendSession("$3")+`
			WHERE handle = $2 AND deleted_at IS NULL AND disabled_at IS NULL
			RETURNING `+issueAfter("$1")+`, recovery_due_at, lang, id, refresh_sessions`, now.UnixMilli(), u.Owner, u.Session.entry(now)).Scan(
			&ms, &recovery, &s.Lang, &owner.ID, &owner.listed)
		if errors.Is(err, sql.ErrNoRows) {
			var disabled bool
			if tx.row(`SELECT disabled_at IS NOT NULL FROM users WHERE handle = $1 AND deleted_at IS NULL`, u.Owner).Scan(&disabled); disabled {
				return ErrAccountDisabled
			}
			return errs.E(errs.NotFound, "error.passkey_not_registered")
		}
		if err != nil {
			return err
		}
		res, err := tx.exec(recordUse, int64(u.SignCount), u.UserVerified, u.BackupState, u.CeremonyStart, u.ID, u.CredentialID, u.PublicKey, u.Owner, u.Eligible, u.NowEligible)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			if recovery != 0 {
				s.CancelledRecovery = true
				if _, err = tx.exec(`UPDATE users SET recovery_due_at = 0 WHERE handle = $1`, u.Owner); err != nil {
					return err
				}
			}
			if list, floor, ok := owner.boundSessions(u.Session.SID, now); ok {
				_, err = tx.exec(boundSessionsSQL, list, floor, owner.ID, owner.listed)
			}
			return err
		}
		// Which condition failed decides the answer; a second read is fine
		// on this failure path.
		var lastUsed, count int64
		err = tx.row(readUse, u.ID, u.CredentialID, u.PublicKey, u.Owner, u.Eligible).Scan(&lastUsed, &count)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return errs.E(errs.NotFound, "error.passkey_not_registered")
		case err != nil:
			return err
		case lastUsed >= u.CeremonyStart:
			return ErrPasskeyReplay
		}
		return ErrCounterWentBack
	})
	if err != nil {
		d.signIns.forget(u.CredentialID)
		return PasskeySignIn{}, d.fail("passkey sign-in", err)
	}
	d.signIns.used(u)
	s.IssuedAt = time.UnixMilli(ms)
	return s, nil
}

// PasskeySignIn is what a recorded passkey sign-in tells the session.
type PasskeySignIn struct {
	IssuedAt          time.Time // the issue time of its tokens (see issueAfter)
	CancelledRecovery bool      // it ended a pending recovery
	Lang              string    // the person's chosen language, or ""
}

// RenameCredential renames one of the user's passkeys.
func (d *DB) RenameCredential(ctx context.Context, userID, id int64, name string) error {
	ctx, done := d.op(ctx, "RenameCredential")
	defer done()
	res, err := d.w.exec(ctx, `UPDATE credentials SET name = $1 WHERE id = $2 AND user_id = $3`, name, id, userID)
	if err != nil {
		return d.fail("rename credential", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNoPasskey
	}
	return nil
}

// ErrLastPasskey refuses deleting the only passkey of a passkey-only
// account, which would lock its owner out.
var ErrLastPasskey = errs.E(errs.Conflict, "error.last_passkey")

// DeleteCredential removes one of the user's passkeys, unless it is the
// last one of a passkey-only account. It returns the removed passkey. The
// user's row is locked first, so two deletions racing for the last
// passkey, or a deletion racing email sign-in being turned off, are
// ordered and the second sees the first.
func (d *DB) DeleteCredential(ctx context.Context, userID, id int64) (*Credential, error) {
	ctx, done := d.op(ctx, "DeleteCredential")
	defer done()
	var c *Credential
	err := d.inTx(ctx, func(tx *tx) error {
		emailSignIn, err := tx.lockUser(userID)
		if errors.Is(err, sql.ErrNoRows) {
			return errNoPasskey
		}
		if err != nil {
			return err
		}
		var count int
		if err := tx.row(`SELECT count(*) FROM credentials WHERE user_id = $1`, userID).Scan(&count); err != nil {
			return err
		}
		c, err = scanCredential(tx.row(`SELECT `+credentialColumns+` FROM credentials WHERE id = $1 AND user_id = $2`, id, userID))
		if errors.Is(err, sql.ErrNoRows) {
			return errNoPasskey
		}
		if err != nil {
			return err
		}
		if !emailSignIn && count <= 1 {
			return ErrLastPasskey
		}
		_, err = tx.exec(`DELETE FROM credentials WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return nil, d.fail("delete credential", err)
	}
	d.signIns.forgetRow(id)
	return c, nil
}

// lockUser locks the live account's row until the transaction ends and
// returns whether it signs in by email (sql.ErrNoRows: no such account).
// Whatever the transaction reads of the account's passkeys must be read
// after it, in statements of their own: on PostgreSQL a statement sees
// what was committed when it began, and the lock may have waited for a
// transaction that added or removed one.
func (t *tx) lockUser(userID int64) (emailSignIn bool, err error) {
	err = t.row(`SELECT email_signin FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, userID).Scan(&emailSignIn)
	return emailSignIn, err
}
