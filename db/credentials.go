package db

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
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

var errNoPasskey = errs.E(errs.NotFound, "There is no such passkey on your account.")

// CredentialsOf returns a user's passkeys, oldest first.
func (d *DB) CredentialsOf(ctx context.Context, userID int64) ([]*Credential, error) {
	d.queries.add("CredentialsOf")
	rows, err := d.r.query(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, d.internal("list credentials", err)
	}
	defer rows.Close()
	var out []*Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, d.internal("scan credential", err)
		}
		out = append(out, c)
	}
	return out, d.internal("list credentials", rows.Err())
}

// CredentialForSignIn returns what verifying an assertion needs of the
// passkey with this authenticator credential id, and its live owner's
// handle, in one query: the public key, the flags, the counter and the last
// use. Other fields are left empty.
//
// A credential read once is kept in memory (see signInCache), so repeated
// sign-ins with it read nothing (remembered reports that it came from
// there); RecordCredentialUse stays the authority.
// The read itself runs on the writer connection, not the read pool: a
// sign-in reads the row and then updates it, and every write makes the
// pooled readers drop their page caches and re-read the pages with system
// calls, which cost more than the query. The writer's cache stays warm.
func (d *DB) CredentialForSignIn(ctx context.Context, credentialID []byte) (cred *Credential, owner []byte, remembered bool, err error) {
	if cred, owner, ok := d.signIns.get(credentialID); ok {
		return cred, owner, true, nil
	}
	d.queries.add("CredentialForSignIn")
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
		WHERE credentials.credential_id = ? AND users.deleted_at IS NULL`, credentialID).Scan(
		&c.ID, &c.UserID, &c.PublicKey, &c.AttestationType, &c.AttestationFormat, &c.SignCount,
		&c.UserPresent, &c.UserVerified, &c.BackupEligible, &c.BackupState, &lastUse, &handle)
	if err != nil {
		return nil, nil, false, d.notFound("credential for sign-in", err, "This passkey is not registered here.")
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

var errPasskeyTaken = errs.E(errs.Conflict, "This passkey is already registered.")

// MaxCredentials is the most passkeys one account can have: one for every
// device and password manager a person uses, with room to spare, yet few
// enough that the account page stays readable and one account cannot grow
// the database without bound.
const MaxCredentials = 20

// ErrTooManyPasskeys is what adding a passkey to an account that already
// has MaxCredentials gets.
var ErrTooManyPasskeys = errs.E(errs.Conflict, fmt.Sprintf(
	"This account already has %d passkeys, the most it can have. Delete one you no longer use, then add the new one.", MaxCredentials))

// AddCredential stores a new passkey for a live user that has fewer than
// MaxCredentials (counted in the same statement, so two registrations
// finishing at once cannot both take the last place).
func (d *DB) AddCredential(ctx context.Context, c *Credential) error {
	d.queries.add("AddCredential")
	if c.AAGUID == nil {
		c.AAGUID = []byte{}
	}
	res, err := d.w.exec(ctx, `INSERT INTO credentials (user_id, credential_id, public_key, attestation_type,
		attestation_format, aaguid, transports, attachment, sign_count, user_present, user_verified, backup_eligible,
		backup_state, name, created_at, last_used_at)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 0 FROM users
		WHERE id = ?1 AND deleted_at IS NULL AND (SELECT count(*) FROM credentials WHERE user_id = ?1) < ?16`,
		c.UserID, c.CredentialID, c.PublicKey, c.AttestationType, c.AttestationFormat, c.AAGUID,
		strings.Join(c.Transports, ","), c.Attachment, c.SignCount, c.UserPresent, c.UserVerified, c.BackupEligible,
		c.BackupState, c.Name, c.CreatedAt.UnixMilli(), MaxCredentials)
	if isUniqueViolation(err) {
		return errPasskeyTaken
	}
	if err != nil {
		return d.internal("add credential", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// The account is gone, or full (and the passkey may be one of its
		// own, sent twice); only the refusal pays for telling them apart.
		var live, taken bool
		err := d.r.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = ? AND deleted_at IS NULL),
			EXISTS (SELECT 1 FROM credentials WHERE credential_id = ?)`, c.UserID, c.CredentialID).Scan(&live, &taken)
		switch {
		case err != nil:
			return d.internal("add credential: account", err)
		case !live:
			return errs.E(errs.Gone, "This account no longer exists.")
		case taken:
			return errPasskeyTaken
		}
		return ErrTooManyPasskeys
	}
	c.ID, _ = res.LastInsertId()
	return nil
}

// ErrPasskeyReplay is returned when an assertion's ceremony is not newer
// than the credential's last use: a replay, or a ceremony overtaken by a
// newer one.
var ErrPasskeyReplay = errs.E(errs.Gone, "This sign-in attempt was already used. Please try again.")

// ErrCounterWentBack is returned when the authenticator's signature counter
// did not move forward: the mark of a cloned authenticator.
var ErrCounterWentBack = errs.E(errs.Forbidden, "This passkey reported an inconsistent state and was refused. If this keeps happening, remove it and add it again.")

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
	Eligible     bool   // the backup-eligible flag it was checked with

	SignCount    uint32
	UserVerified bool
	BackupState  bool
	// CeremonyStart is when the ceremony that used it began (Unix µs). The
	// update succeeds only if the credential's last use is older, which
	// makes each ceremony single use without storing challenges.
	CeremonyStart int64
}

// credentialAsVerified matches a credential row only if it is still the
// one an assertion was verified against (see UsedCredential).
const credentialAsVerified = `id = ?5 AND credential_id = ?6 AND public_key = ?7
	AND user_id = (SELECT id FROM users WHERE handle = ?8 AND deleted_at IS NULL) AND backup_eligible = ?9`

// RecordCredentialUse saves an assertion's counter and flags, atomically
// refusing a credential that is no longer the one verified, a replayed
// ceremony and a counter that did not increase (when either the stored or
// the new value is non-zero). It is what makes a passkey sign-in count;
// the credential read before it may come from memory (signInCache).
func (d *DB) RecordCredentialUse(ctx context.Context, u UsedCredential) error {
	d.queries.add("RecordCredentialUse")
	res, err := d.w.exec(ctx, `UPDATE credentials
		SET sign_count = ?1, user_verified = ?2, backup_state = ?3, last_used_at = ?4
		WHERE `+credentialAsVerified+` AND last_used_at < ?4 AND ((?1 = 0 AND sign_count = 0) OR sign_count < ?1)`,
		u.SignCount, u.UserVerified, u.BackupState, u.CeremonyStart, u.ID, u.CredentialID, u.PublicKey, u.Owner, u.Eligible)
	if err != nil {
		d.signIns.forget(u.CredentialID)
		return d.internal("record credential use", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		d.signIns.used(u)
		return nil
	}
	d.signIns.forget(u.CredentialID)
	// Which condition failed decides the answer; a second read is fine on
	// this failure path.
	var lastUsed, count int64
	err = d.r.queryRow(ctx, `SELECT last_used_at, sign_count FROM credentials WHERE `+credentialAsVerified,
		nil, nil, nil, nil, u.ID, u.CredentialID, u.PublicKey, u.Owner, u.Eligible).Scan(&lastUsed, &count)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return errs.E(errs.NotFound, "This passkey is not registered here.")
	case err != nil:
		return d.internal("read credential", err)
	case lastUsed >= u.CeremonyStart:
		return ErrPasskeyReplay
	}
	return ErrCounterWentBack
}

// RenameCredential renames one of the user's passkeys.
func (d *DB) RenameCredential(ctx context.Context, userID, id int64, name string) error {
	d.queries.add("RenameCredential")
	res, err := d.w.exec(ctx, `UPDATE credentials SET name = ? WHERE id = ? AND user_id = ?`, name, id, userID)
	if err != nil {
		return d.internal("rename credential", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNoPasskey
	}
	return nil
}

// ErrLastPasskey refuses deleting the only passkey of a passkey-only
// account, which would lock its owner out.
var ErrLastPasskey = errs.E(errs.Conflict, "This is the only passkey of an account that signs in with passkeys only. Turn email sign-in back on, or add another passkey, before removing it.")

// DeleteCredential removes one of the user's passkeys, unless it is the
// last one of a passkey-only account. It returns the removed passkey.
func (d *DB) DeleteCredential(ctx context.Context, userID, id int64) (*Credential, error) {
	d.queries.add("DeleteCredential")
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, d.internal("begin delete credential", err)
	}
	defer tx.Rollback()
	c, err := scanCredential(tx.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE id = ? AND user_id = ?`, id, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoPasskey
	}
	if err != nil {
		return nil, d.internal("read credential", err)
	}
	var emailSignIn bool
	var count int
	if err := tx.QueryRowContext(ctx, `SELECT email_signin, (SELECT count(*) FROM credentials WHERE user_id = users.id)
		FROM users WHERE id = ?`, userID).Scan(&emailSignIn, &count); err != nil {
		return nil, d.internal("read user", err)
	}
	if !emailSignIn && count <= 1 {
		return nil, ErrLastPasskey
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE id = ?`, id); err != nil {
		return nil, d.internal("delete credential", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, d.internal("commit delete credential", err)
	}
	d.signIns.forgetRow(id)
	return c, nil
}
