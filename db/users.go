package db

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/errs"
)

// MaxRevokedSessions bounds the list of signed-out sessions kept in a user's
// row. When a sign-out would exceed it, every session of the user is ended
// instead (the "tokens valid after" stamp moves), which is always safe.
const MaxRevokedSessions = 128

// User is an account.
type User struct {
	ID     int64
	Handle []byte // opaque; WebAuthn user handle and token subject
	Email  string
	// EmailSignIn is false for passkey-only accounts.
	EmailSignIn bool
	CreatedAt   time.Time
	// TokensValidAfter voids every token issued at or before it (Unix ms).
	TokensValidAfter int64
	// RevokedSessions are the sessions ended by "Sign out".
	RevokedSessions []RevokedSession
	// Passkeys is how many passkeys the user has.
	Passkeys int
}

// RevokedSession is a session ended by "Sign out", remembered until no token
// of it can still be valid.
type RevokedSession struct {
	SID     string
	Expires int64 // Unix ms
}

// SessionRevoked reports whether the session sid was ended by "Sign out".
func (u *User) SessionRevoked(sid string) bool {
	for _, s := range u.RevokedSessions {
		if s.SID == sid {
			return true
		}
	}
	return false
}

const userColumns = `users.id, users.handle, users.email, users.email_signin, users.created_at,
	users.tokens_valid_after, users.revoked_sessions,
	(SELECT count(*) FROM credentials WHERE credentials.user_id = users.id)`

func scanUser(row interface{ Scan(...any) error }) (*User, error) {
	var (
		u       User
		created int64
		revoked string
	)
	if err := row.Scan(&u.ID, &u.Handle, &u.Email, &u.EmailSignIn, &created, &u.TokensValidAfter, &revoked, &u.Passkeys); err != nil {
		return nil, err
	}
	u.CreatedAt = time.UnixMilli(created)
	u.RevokedSessions = parseRevokedSessions(revoked)
	return &u, nil
}

// notFound turns sql.ErrNoRows into the not-found error, so handlers never
// see database errors.
func (d *DB) notFound(op string, err error, message string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return errs.E(errs.NotFound, message)
	}
	return d.internal(op, err)
}

// LinkTarget returns what answering a link request needs of the live
// account with this email: its handle and whether it signs in by email.
func (d *DB) LinkTarget(ctx context.Context, email string) (handle []byte, emailSignIn bool, err error) {
	d.queries.add("LinkTarget")
	err = d.r.queryRow(ctx, `SELECT handle, email_signin FROM users WHERE email = ? AND deleted_at IS NULL`, email).Scan(&handle, &emailSignIn)
	if err != nil {
		return nil, false, d.notFound("link target", err, "No such account.")
	}
	return handle, emailSignIn, nil
}

// UserByHandle returns the live account with this handle.
func (d *DB) UserByHandle(ctx context.Context, handle []byte) (*User, error) {
	d.queries.add("UserByHandle")
	u, err := scanUser(d.r.queryRow(ctx,
		`SELECT `+userColumns+` FROM users WHERE handle = ? AND deleted_at IS NULL`, handle))
	if err != nil {
		return nil, d.notFound("user by handle", err, "No such account.")
	}
	return u, nil
}

// errLinkGone is what every refused link gets: used, voided by a newer one,
// issued before email sign-in was turned off or the email changed, or for an
// account that no longer exists. The page does not say which, because the
// person's next step is the same.
var errLinkGone = errs.E(errs.Gone, "This link has already been used, or a newer one has replaced it.")

// ConsumeSignInLink signs in with a link issued at issuedAt (Unix µs) to
// email for the account handle. It succeeds at most once per link: the
// conditional update only matches while the row's link_used_at is older
// than the link, and moves it to the link's issue time, voiding older links.
func (d *DB) ConsumeSignInLink(ctx context.Context, handle []byte, email string, issuedAt int64) (*User, error) {
	d.queries.add("ConsumeSignInLink")
	u, err := scanUser(d.w.queryRow(ctx, `UPDATE users SET link_used_at = ?1
		WHERE handle = ?2 AND email = ?3 AND deleted_at IS NULL AND email_signin = 1 AND link_used_at < ?1
		RETURNING `+userColumns, issuedAt, handle, email))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errLinkGone
	}
	if err != nil {
		return nil, d.internal("consume sign-in link", err)
	}
	return u, nil
}

// releasedSince is an SQL condition, true when an account gave up the
// address (the parameter email) at or after the time (the parameter
// issued, Unix µs): a sign-up link issued before then is void, whoever
// holds the address now.
func releasedSince(email, issued string) string {
	return `EXISTS (SELECT 1 FROM users WHERE released_email = ` + email + ` AND released_at >= ` + issued + `)`
}

// ConsumeSignUpLink creates the account for email from a sign-up link issued
// at issuedAt, or, if an account with that email exists by now (the link was
// clicked twice, or two sign-up links were sent), consumes the link against
// it exactly as ConsumeSignInLink would. created reports which happened. A
// link issued before an account gave the address up (deleted, or moved to
// another address) creates nothing: it was that account's.
func (d *DB) ConsumeSignUpLink(ctx context.Context, email string, issuedAt int64, handle []byte, now time.Time) (u *User, created bool, err error) {
	d.queries.add("ConsumeSignUpLink")
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, d.internal("begin sign-up", err)
	}
	defer tx.Rollback()

	u, err = scanUser(tx.QueryRowContext(ctx, `INSERT INTO users (handle, email, created_at, link_used_at)
		SELECT ?1, ?2, ?3, ?4 WHERE NOT `+releasedSince("?2", "?4")+`
		ON CONFLICT (email) DO NOTHING RETURNING `+userColumns,
		handle, email, now.UnixMilli(), issuedAt))
	switch {
	case err == nil:
		created = true
	case errors.Is(err, sql.ErrNoRows):
		u, err = scanUser(tx.QueryRowContext(ctx, `UPDATE users SET link_used_at = ?1
			WHERE email = ?2 AND deleted_at IS NULL AND email_signin = 1 AND link_used_at < ?1
				AND NOT `+releasedSince("?2", "?1")+`
			RETURNING `+userColumns, issuedAt, email))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, false, errLinkGone
		}
		if err != nil {
			return nil, false, d.internal("consume sign-up link", err)
		}
	default:
		return nil, false, d.internal("create user", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, false, d.internal("commit sign-up", err)
	}
	return u, created, nil
}

// Now is a clock the revocation writers call once they hold the write
// lock (see EndAllSessions).
type Now func() time.Time

// EndSession records that the session sid of the user has signed out, until
// expires (Unix ms), after which no token of it can be valid anyway. Entries
// that have run out are dropped; if the list would still exceed
// MaxRevokedSessions, all the user's sessions are ended instead, and
// endedAll is that stamp (as from EndAllSessions); otherwise it is zero.
func (d *DB) EndSession(ctx context.Context, handle []byte, sid string, expires int64, now Now) (endedAll time.Time, err error) {
	d.queries.add("EndSession")
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return time.Time{}, d.internal("begin end session", err)
	}
	defer tx.Rollback()

	var revoked string
	err = tx.QueryRowContext(ctx, `SELECT revoked_sessions FROM users WHERE handle = ? AND deleted_at IS NULL`, handle).Scan(&revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil // the account is gone, and with it every session
	}
	if err != nil {
		return time.Time{}, d.internal("read revoked sessions", err)
	}
	nowMs := now().UnixMilli()
	kept := make([]RevokedSession, 0, MaxRevokedSessions)
	for _, s := range parseRevokedSessions(revoked) {
		if s.Expires > nowMs && s.SID != sid {
			kept = append(kept, s)
		}
	}
	kept = append(kept, RevokedSession{SID: sid, Expires: expires})
	if len(kept) > MaxRevokedSessions {
		endedAll = time.UnixMilli(nowMs)
		_, err = tx.ExecContext(ctx, `UPDATE users SET tokens_valid_after = ?1, revoked_sessions = '', revoked_at = ?1
			WHERE handle = ?2`, nowMs, handle)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE users SET revoked_sessions = ?1, revoked_at = ?2 WHERE handle = ?3`,
			formatRevokedSessions(kept), nowMs, handle)
	}
	if err != nil {
		return time.Time{}, d.internal("end session", err)
	}
	if err := tx.Commit(); err != nil {
		return time.Time{}, d.internal("commit end session", err)
	}
	return endedAll, nil
}

// EndAllSessions voids every token the user holds anywhere and returns the
// stamp: tokens issued at or before it stop working.
//
// The stamp is read from the clock only once the write lock is held, and a
// refresh reads the row and takes its tokens' issue time under the same
// lock (UserForRefresh), so the two are always ordered: a refresh that got
// in first issued tokens older than the stamp, and one that came second
// sees the stamp.
func (d *DB) EndAllSessions(ctx context.Context, handle []byte, now Now) (time.Time, error) {
	d.queries.add("EndAllSessions")
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return time.Time{}, d.internal("begin end all sessions", err)
	}
	defer tx.Rollback()
	t := now()
	if _, err := tx.ExecContext(ctx, `UPDATE users SET tokens_valid_after = ?1, revoked_sessions = '', revoked_at = ?1
		WHERE handle = ?2 AND deleted_at IS NULL`, t.UnixMilli(), handle); err != nil {
		return time.Time{}, d.internal("end all sessions", err)
	}
	return t, d.internal("commit end all sessions", tx.Commit())
}

// UserForRefresh reads the live account with this handle for a token
// refresh, holding the write lock, and returns the time the new tokens must
// carry as their issue time (see EndAllSessions).
func (d *DB) UserForRefresh(ctx context.Context, handle []byte, now Now) (*User, time.Time, error) {
	d.queries.add("UserForRefresh")
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, time.Time{}, d.internal("begin refresh", err)
	}
	defer tx.Rollback()
	u, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE handle = ? AND deleted_at IS NULL`, handle))
	if err != nil {
		return nil, time.Time{}, d.notFound("user for refresh", err, "No such account.")
	}
	t := now()
	return u, t, d.internal("end refresh", tx.Commit())
}

// Revocation is the revocation state of one user, as polled by every
// instance into its in-memory set.
type Revocation struct {
	Handle           []byte
	TokensValidAfter int64
	RevokedSessions  []RevokedSession
	RevokedAt        int64
}

// RevocationsSince returns the users whose revocation state changed at or
// after since (Unix ms). The query runs on the revoked_at index.
func (d *DB) RevocationsSince(ctx context.Context, since int64) ([]Revocation, error) {
	d.queries.add("RevocationsSince")
	rows, err := d.r.query(ctx, `SELECT handle, tokens_valid_after, revoked_sessions, revoked_at
		FROM users WHERE revoked_at >= ?`, since)
	if err != nil {
		return nil, d.internal("poll revocations", err)
	}
	defer rows.Close()
	var out []Revocation
	for rows.Next() {
		var (
			r       Revocation
			revoked string
		)
		if err := rows.Scan(&r.Handle, &r.TokensValidAfter, &revoked, &r.RevokedAt); err != nil {
			return nil, d.internal("scan revocation", err)
		}
		r.RevokedSessions = parseRevokedSessions(revoked)
		out = append(out, r)
	}
	return out, d.internal("poll revocations", rows.Err())
}

// PurgeTombstones removes tombstones deleted before before (Unix ms), by
// when no token of theirs can be valid, whose address (if they record one)
// was given up before releasedBefore (Unix µs), by when no sign-up link
// issued earlier can still be in time.
func (d *DB) PurgeTombstones(ctx context.Context, before, releasedBefore int64) (int64, error) {
	d.queries.add("PurgeTombstones")
	res, err := d.w.exec(ctx, `DELETE FROM users WHERE deleted_at IS NOT NULL AND deleted_at < ?
		AND (released_email IS NULL OR released_at < ?)`, before, releasedBefore)
	if err != nil {
		return 0, d.internal("purge tombstones", err)
	}
	return res.RowsAffected()
}

func parseRevokedSessions(s string) []RevokedSession {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := make([]RevokedSession, 0, len(parts))
	for _, p := range parts {
		sid, exp, ok := strings.Cut(p, ".")
		if !ok {
			continue
		}
		ms, err := strconv.ParseInt(exp, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, RevokedSession{SID: sid, Expires: ms})
	}
	return out
}

func formatRevokedSessions(list []RevokedSession) string {
	var b strings.Builder
	for i, s := range list {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.SID)
		b.WriteByte('.')
		b.WriteString(strconv.FormatInt(s.Expires, 10))
	}
	return b.String()
}

// CheckLink reports, without consuming anything, whether a link issued at
// issuedAt to email could still be used: for the account handle, or, when
// handle is empty (a sign-up link), for whatever account has the address
// by now. newAccount is true when a sign-up link would create the account.
func (d *DB) CheckLink(ctx context.Context, handle []byte, email string, issuedAt int64) (newAccount bool, err error) {
	d.queries.add("CheckLink")
	var (
		usedAt  int64
		enabled bool
	)
	if len(handle) > 0 {
		err = d.r.queryRow(ctx, `SELECT link_used_at, email_signin FROM users
			WHERE handle = ? AND email = ? AND deleted_at IS NULL`, handle, email).Scan(&usedAt, &enabled)
	} else {
		// One row whether or not an account has the address.
		var (
			released bool
			used     sql.NullInt64
			on       sql.NullBool
		)
		err = d.r.queryRow(ctx, `SELECT `+releasedSince("?1", "?2")+`, u.link_used_at, u.email_signin
			FROM (SELECT 1) LEFT JOIN users u ON u.email = ?1 AND u.deleted_at IS NULL`,
			email, issuedAt).Scan(&released, &used, &on)
		switch {
		case err != nil:
			return false, d.internal("check link", err)
		case released:
			return false, errLinkGone
		case !used.Valid:
			return true, nil // nobody has the address: the link creates the account
		}
		usedAt, enabled = used.Int64, on.Bool
	}
	if errors.Is(err, sql.ErrNoRows) {
		return false, errLinkGone
	}
	if err != nil {
		return false, d.internal("check link", err)
	}
	if !enabled || usedAt >= issuedAt {
		return false, errLinkGone
	}
	return false, nil
}

// ErrEmailTaken is returned when an account already uses the address.
var ErrEmailTaken = errs.E(errs.Conflict, "That address now belongs to another account, so your email was not changed.")

// ChangeEmail moves the account handle from oldEmail to newEmail, from a
// confirmation link issued at issuedAt. Like a sign-in link it works once,
// only while newer than the row's last link use, and voids older links
// (sign-in links to the old address die anyway: they name it). It also
// voids every token (the "tokens valid after" stamp moves), in one
// statement, so there is never an account without an email nor two
// accounts with one.
func (d *DB) ChangeEmail(ctx context.Context, handle []byte, oldEmail, newEmail string, issuedAt int64, now Now) (*User, time.Time, error) {
	d.queries.add("ChangeEmail")
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, time.Time{}, d.internal("begin change email", err)
	}
	defer tx.Rollback()
	t := now() // under the write lock: see EndAllSessions
	// Every link issued before the change is void, not only those before
	// its confirmation link; and used is at least every link the account
	// ever used, whatever another instance's clock said when it issued them.
	used := max(issuedAt, t.UnixMicro())
	u, err := scanUser(tx.QueryRowContext(ctx, `UPDATE users SET email = ?1, link_used_at = ?6, tokens_valid_after = ?2,
			revoked_sessions = '', revoked_at = ?2
		WHERE handle = ?3 AND email = ?4 AND deleted_at IS NULL AND link_used_at < ?5
		RETURNING `+userColumns, newEmail, t.UnixMilli(), handle, oldEmail, issuedAt, used))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, time.Time{}, errLinkGone
	case isUniqueViolation(err):
		return nil, time.Time{}, ErrEmailTaken
	case err != nil:
		return nil, time.Time{}, d.internal("change email", err)
	}
	// A tombstone remembers that the old address was given up (see
	// released_email): an older sign-up link to it stays void. Its random
	// handle is never any account's.
	if _, err := tx.ExecContext(ctx, `INSERT INTO users (handle, email, created_at, deleted_at, released_email, released_at)
		VALUES (randomblob(16), NULL, ?1, ?1, ?2, ?3)`, t.UnixMilli(), oldEmail, used); err != nil {
		return nil, time.Time{}, d.internal("record released email", err)
	}
	return u, t, d.internal("commit change email", tx.Commit())
}

// CheckEmailChange reports, without consuming anything, whether an
// email-change link from oldEmail to newEmail could still be used.
func (d *DB) CheckEmailChange(ctx context.Context, handle []byte, oldEmail, newEmail string, issuedAt int64) error {
	d.queries.add("CheckEmailChange")
	var (
		usedAt int64
		taken  bool
	)
	err := d.r.queryRow(ctx, `SELECT link_used_at, EXISTS (SELECT 1 FROM users WHERE email = ?3)
		FROM users WHERE handle = ?1 AND email = ?2 AND deleted_at IS NULL`,
		handle, oldEmail, newEmail).Scan(&usedAt, &taken)
	switch {
	case errors.Is(err, sql.ErrNoRows) || (err == nil && usedAt >= issuedAt):
		return errLinkGone
	case err == nil && taken:
		// Taken since the link was sent: said now, as confirming would.
		return ErrEmailTaken
	}
	return d.internal("check email change", err)
}

// DeleteUser deletes an account: its passkeys go, and the row becomes a
// tombstone with no email (so the address can sign up afresh) whose "tokens
// valid after" stamp voids every token of the account, here and, through
// the revocation poll, on every instance. The tombstone is purged once no
// token of the account can still be valid.
func (d *DB) DeleteUser(ctx context.Context, handle []byte, now Now) (time.Time, error) {
	d.queries.add("DeleteUser")
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return time.Time{}, d.internal("begin delete user", err)
	}
	defer tx.Rollback()
	t := now() // under the write lock: see EndAllSessions
	ms, us := t.UnixMilli(), t.UnixMicro()
	if _, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE user_id = (SELECT id FROM users WHERE handle = ?)`, handle); err != nil {
		return time.Time{}, d.internal("delete credentials", err)
	}
	// The tombstone keeps the address, released no earlier than any link
	// the account used (another instance's clock may be ahead of ours).
	res, err := tx.ExecContext(ctx, `UPDATE users SET email = NULL, deleted_at = ?1, tokens_valid_after = ?1,
			revoked_sessions = '', revoked_at = ?1, link_used_at = max(link_used_at, ?3),
			released_email = email, released_at = max(link_used_at, ?3)
		WHERE handle = ?2 AND deleted_at IS NULL`, ms, handle, us)
	if err != nil {
		return time.Time{}, d.internal("delete user", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return time.Time{}, errs.E(errs.NotFound, "This account no longer exists.")
	}
	if err := tx.Commit(); err != nil {
		return time.Time{}, d.internal("commit delete user", err)
	}
	d.signIns.forgetOwner(handle)
	return t, nil
}

// ErrNoPasskeyForPasskeyOnly refuses turning email sign-in off for an
// account that has no passkey to sign in with.
var ErrNoPasskeyForPasskeyOnly = errs.E(errs.Conflict, "Add a passkey before turning email sign-in off, or you could not sign in at all.")

// SetEmailSignIn turns email sign-in on or off. Turning it off needs a
// passkey on the account and voids every link issued before now.
func (d *DB) SetEmailSignIn(ctx context.Context, userID int64, enabled bool, now time.Time) error {
	d.queries.add("SetEmailSignIn")
	var (
		res sql.Result
		err error
	)
	if enabled {
		res, err = d.w.exec(ctx, `UPDATE users SET email_signin = 1 WHERE id = ? AND deleted_at IS NULL`, userID)
	} else {
		res, err = d.w.exec(ctx, `UPDATE users SET email_signin = 0, link_used_at = max(link_used_at, ?1)
			WHERE id = ?2 AND deleted_at IS NULL
			AND EXISTS (SELECT 1 FROM credentials WHERE credentials.user_id = users.id)`, now.UnixMicro(), userID)
	}
	if err != nil {
		return d.internal("set email sign-in", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if enabled {
			return errs.E(errs.NotFound, "This account no longer exists.")
		}
		return ErrNoPasskeyForPasskeyOnly
	}
	return nil
}
