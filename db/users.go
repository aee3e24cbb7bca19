package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/latchkey/latchkey/errs"
)

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
	// Disabled is true when an operator disabled the account.
	Disabled bool
	// RecoveryDue is when a pending recovery lets a link sign-in add a
	// passkey (Unix ms); 0 when none is pending.
	RecoveryDue int64
	// Grants are the applications the person lets sign them in.
	Grants []Grant
	// Lang is the language the person chose ("" if they never did).
	Lang string
	// Groups are the groups the account is in, sorted.
	Groups []string
	// SignedIn is when the account last signed in (zero: never recorded).
	SignedIn time.Time
	// Sessions are the account's sessions as the row lists them (see
	// LiveSessions for those still going).
	Sessions []RefreshSession
	listed   string // the list as read
}

// InGroup reports whether the account is in the group.
func (u *User) InGroup(group string) bool { return slices.Contains(u.Groups, group) }

// RecoveryReady reports whether a session signed in at authTime (Unix s)
// may add a passkey and delete the old ones because of a recovery: one is
// pending, its time has come, and the session signed in since (a sign-in
// within the second it came due counts).
func (u *User) RecoveryReady(authTime int64, now time.Time) bool {
	return u.RecoveryDue != 0 && now.UnixMilli() >= u.RecoveryDue && authTime >= u.RecoveryDue/1000
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
	(SELECT count(*) FROM credentials WHERE credentials.user_id = users.id),
	users.disabled_at IS NOT NULL, users.recovery_due_at, users.oidc_grants, users.lang, users.group_names, users.signed_in_at,
	users.refresh_sessions`

// scanUser scans userColumns, then extra.
func scanUser(row interface{ Scan(...any) error }, extra ...any) (*User, error) {
	var (
		u       User
		created int64
		revoked string
		grants  string
		groups  string
		signed  int64
		listed  string
	)
	dest := append([]any{&u.ID, &u.Handle, &u.Email, &u.EmailSignIn, &created, &u.TokensValidAfter, &revoked, &u.Passkeys,
		&u.Disabled, &u.RecoveryDue, &grants, &u.Lang, &groups, &signed, &listed}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	u.CreatedAt = time.UnixMilli(created)
	u.Groups = strings.Fields(groups)
	if signed > 0 {
		u.SignedIn = time.UnixMilli(signed)
	}
	u.RevokedSessions = parseRevokedSessions(revoked)
	u.Sessions, u.listed = parseRefreshSessions(listed), listed
	u.Grants = parseGrants(grants)
	return &u, nil
}

// issueAfter is the SQL expression for the issue time (Unix ms) of tokens
// a sign-in issues now ($now): now, or just after the account's last
// revocation if that is later (another instance's clock may be ahead).
// Written in the same statement that records the sign-in, it orders the
// sign-in with every revocation of the account: the row lock (SQLite's
// write lock) makes one of them come second, and the second sees the
// first.
func issueAfter(now string) string { return `GREATEST(` + now + `, users.tokens_valid_after + 1)` }

// issuedHigh is the SQL assignment recording that tokens were issued at
// issueAfter(now): a later revocation stamps no earlier.
func issuedHigh(now string) string {
	return `issued_high = GREATEST(users.issued_high, ` + issueAfter(now) + `)`
}

// revokeAll is the SQL assignment list of a write that voids every token
// of the account issued so far: the stamp is the later of now ($now) and
// the newest token ever issued, so a revocation on an instance whose clock
// is behind still voids tokens issued on one whose clock is ahead. The
// write takes the next revocation number (lockRevocations must be held).
func revokeAll(now string) string { return revokeAllBut(now, "''") }

// revokeAllBut is revokeAll for a write that starts a session at once
// (an email change confirmed in a signed-in browser): the list of
// sessions is then the SQL expression sessions.
func revokeAllBut(now, sessions string) string {
	return `tokens_valid_after = GREATEST(` + now + `, users.issued_high, users.tokens_valid_after),
		revoked_sessions = '', refresh_sessions = ` + sessions + `, revoked_at = ` + now + `,
		oidc_sessions = '', oidc_sessions_ended = users.oidc_sessions,
		revocation_seq = ` + nextRevocation
}

// Target is what answering a link or recovery request needs of the
// account with an address.
type Target struct {
	Handle      []byte
	EmailSignIn bool
	Disabled    bool
	Passkeys    int
	Lang        string // the person's chosen language, or ""
}

// LinkTarget returns what answering a link request needs of the live
// account with this email (errs.NotFound if there is none).
func (d *DB) LinkTarget(ctx context.Context, email string) (Target, error) {
	ctx, done := d.op(ctx, "LinkTarget")
	defer done()
	var t Target
	err := d.r.queryRow(ctx, `SELECT handle, email_signin, disabled_at IS NOT NULL,
		(SELECT count(*) FROM credentials WHERE credentials.user_id = users.id), lang
		FROM users WHERE email = $1 AND deleted_at IS NULL`, email).Scan(&t.Handle, &t.EmailSignIn, &t.Disabled, &t.Passkeys, &t.Lang)
	if err != nil {
		return Target{}, d.notFound("link target", err, "error.account_gone")
	}
	return t, nil
}

// ErrAccountDisabled refuses every way into a disabled account. It says no
// more than that: only someone who could otherwise have signed in sees it.
var ErrAccountDisabled = errs.E(errs.Forbidden, "error.account_disabled")

// UserByEmail returns the live account with this address (disabled or
// not), for the operator's commands.
func (d *DB) UserByEmail(ctx context.Context, email string) (*User, error) {
	ctx, done := d.op(ctx, "UserByEmail")
	defer done()
	u, err := scanUser(d.r.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1 AND deleted_at IS NULL`, email))
	if err != nil {
		return nil, d.notFound("user by email", err, "error.no_account_with_address")
	}
	return u, nil
}

// Listed is one account as the operator's list shows it.
type Listed struct {
	User
	LastPasskeyUse time.Time // zero: no passkey has signed in yet
}

// Users lists the live accounts whose address contains search (all when
// empty), oldest first.
func (d *DB) Users(ctx context.Context, search string) ([]Listed, error) {
	ctx, done := d.op(ctx, "Users")
	defer done()
	pattern := "%" + strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(strings.ToLower(search)) + "%"
	rows, err := d.r.query(ctx, `SELECT `+userColumns+`,
		(SELECT COALESCE(MAX(last_used_at), 0) FROM credentials WHERE credentials.user_id = users.id)
		FROM users WHERE deleted_at IS NULL AND email LIKE $1 ESCAPE '!' ORDER BY id`, pattern)
	if err != nil {
		return nil, d.fail("list users", err)
	}
	defer rows.Close()
	var out []Listed
	for rows.Next() {
		var last int64
		u, err := scanUser(rows, &last)
		if err != nil {
			return nil, d.fail("list users", err)
		}
		l := Listed{User: *u}
		if last > 0 {
			l.LastPasskeyUse = time.UnixMicro(last)
		}
		out = append(out, l)
	}
	return out, d.fail("list users", rows.Err())
}

// UserByHandle returns the live account with this handle.
func (d *DB) UserByHandle(ctx context.Context, handle []byte) (*User, error) {
	ctx, done := d.op(ctx, "UserByHandle")
	defer done()
	u, err := scanUser(d.r.queryRow(ctx,
		`SELECT `+userColumns+` FROM users WHERE handle = $1 AND deleted_at IS NULL`, handle))
	if err != nil {
		return nil, d.notFound("user by handle", err, "error.account_gone")
	}
	return u, nil
}

// errLinkGone is what every refused link gets: used, voided by a newer one,
// issued before email sign-in was turned off or the email changed, or for an
// account that no longer exists. The page does not say which, because the
// person's next step is the same.
var errLinkGone = errs.E(errs.Gone, "error.link_gone")

// ConsumeSignInLink signs in with a link issued at issuedAt (Unix µs) to
// email for the account handle, at now, and lists the session it starts.
// It succeeds at most once per link: the conditional update only matches
// while the row's link_used_at is older than the link, and moves it to
// the link's issue time, voiding older links. It returns the issue time
// the session's tokens must carry (see issueAfter).
//
// A session started by the link's code (MethodCode) is refused once
// MaxCodeFailures wrong codes were typed for it or a newer link (see
// CodeFailed).
func (d *DB) ConsumeSignInLink(ctx context.Context, handle []byte, email string, issuedAt int64, now time.Time, start SessionStart) (*User, time.Time, error) {
	ctx, done := d.op(ctx, "ConsumeSignInLink")
	defer done()
	return d.consumeLink(ctx, "", "email_signin", handle, email, issuedAt, now, 0, start)
}

// ConsumeRecoveryLink is ConsumeSignInLink for a self-service recovery
// link: it also starts the account's recovery, due after delay, unless
// one is pending already (which keeps its time: asking again cannot
// hurry it). started reports whether this link started it.
func (d *DB) ConsumeRecoveryLink(ctx context.Context, handle []byte, email string, issuedAt int64, now time.Time, delay time.Duration, start SessionStart) (u *User, iat time.Time, started bool, err error) {
	ctx, done := d.op(ctx, "ConsumeRecoveryLink")
	defer done()
	due := now.Add(delay).UnixMilli()
	u, iat, err = d.consumeLink(ctx, `, recovery_due_at = CASE WHEN recovery_due_at = 0 THEN $6 ELSE recovery_due_at END`,
		"email_signin", handle, email, issuedAt, now, due, start)
	return u, iat, err == nil && u.RecoveryDue == due, err
}

// ConsumeOperatorLink is ConsumeSignInLink for a recovery link an operator
// made after checking who the person is: it works whether or not the
// account signs in by email, and the sign-in it makes is fresh enough to
// add a passkey at once (a recovery due now).
func (d *DB) ConsumeOperatorLink(ctx context.Context, handle []byte, email string, issuedAt int64, now time.Time, start SessionStart) (*User, time.Time, error) {
	ctx, done := d.op(ctx, "ConsumeOperatorLink")
	defer done()
	return d.consumeLink(ctx, `, recovery_due_at = $4`, "TRUE", handle, email, issuedAt, now, 0, start)
}

// consumeLink is the conditional update that uses a link once: set adds
// assignments (which may use $6, arg), allowed is the condition the
// account must meet besides being live and enabled. The same statement
// lists the session it starts ($5).
func (d *DB) consumeLink(ctx context.Context, set, allowed string, handle []byte, email string, issuedAt int64, now time.Time, arg int64, start SessionStart) (*User, time.Time, error) {
	args := []any{issuedAt, handle, email, now.UnixMilli(), start.entry(now)}
	if strings.Contains(set, "$6") {
		args = append(args, arg)
	}
	if start.Method == MethodCode {
		allowed += codeNotVoided("$1")
	}
	var iat int64
	u, err := scanUser(d.w.queryRow(ctx, `UPDATE users SET link_used_at = $1, signed_in_at = $4, `+issuedHigh("$4")+`,
			`+appendSession("$5")+set+`
		WHERE handle = $2 AND email = $3 AND deleted_at IS NULL AND disabled_at IS NULL AND `+allowed+` AND link_used_at < $1
		RETURNING `+userColumns+`, `+issueAfter("$4"), args...), &iat)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, d.refusedLink(d.r.queryRow(ctx, `SELECT disabled_at IS NOT NULL FROM users
			WHERE handle = $1 AND email = $2 AND deleted_at IS NULL`, handle, email))
	}
	if err != nil {
		return nil, time.Time{}, d.fail("consume link", err)
	}
	if list, floor, ok := u.boundSessions(start.SID, now); ok {
		// Rare (a 33rd session): a second statement. A write in between
		// makes it match nothing, and that write bounded the list.
		if _, err := d.w.exec(ctx, boundSessionsSQL, list, floor, u.ID, u.listed); err != nil {
			return nil, time.Time{}, d.fail("bound sessions", err)
		}
	}
	return u, time.UnixMilli(iat), nil
}

// refusedLink says why a link matched no account: row answers whether
// the account it names is disabled (a disabled account says so, to
// someone who holds its link), or the link is gone.
func (d *DB) refusedLink(row *sql.Row) error {
	var disabled bool
	if err := row.Scan(&disabled); err == nil && disabled {
		return ErrAccountDisabled
	}
	return errLinkGone
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
// another address) creates nothing: it was that account's. It returns the
// issue time the session's tokens must carry, and lists the session it
// starts.
func (d *DB) ConsumeSignUpLink(ctx context.Context, email string, issuedAt int64, handle []byte, now time.Time, start SessionStart) (u *User, created bool, iat time.Time, err error) {
	ctx, done := d.op(ctx, "ConsumeSignUpLink")
	defer done()
	var ms int64
	entry := start.entry(now)
	err = d.inTx(ctx, func(tx *tx) error {
		created = false
		if err := tx.lockEmails(email); err != nil {
			return err
		}
		var released bool
		if err := tx.row(`SELECT `+releasedSince("$1", "$2"), email, issuedAt).Scan(&released); err != nil {
			return err
		}
		if released {
			return errLinkGone
		}
		ms = now.UnixMilli()
		var err error
		u, err = scanUser(tx.row(`INSERT INTO users (handle, email, created_at, link_used_at, issued_high, signed_in_at, refresh_sessions)
			VALUES ($1, $2, $3, $4, $3, $3, $5) ON CONFLICT (email) DO NOTHING RETURNING `+userColumns,
			handle, email, ms, issuedAt, entry))
		if err == nil {
			created = true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		allowed := ""
		if start.Method == MethodCode {
			allowed = codeNotVoided("$1")
		}
		u, err = scanUser(tx.row(`UPDATE users SET link_used_at = $1, signed_in_at = $3, `+issuedHigh("$3")+`, `+appendSession("$4")+`
			WHERE email = $2 AND deleted_at IS NULL AND disabled_at IS NULL AND email_signin AND link_used_at < $1`+allowed+`
			RETURNING `+userColumns+`, `+issueAfter("$3"), issuedAt, email, now.UnixMilli(), entry), &ms)
		if errors.Is(err, sql.ErrNoRows) {
			return d.refusedLink(tx.row(`SELECT disabled_at IS NOT NULL FROM users WHERE email = $1 AND deleted_at IS NULL`, email))
		}
		if err != nil {
			return err
		}
		if list, floor, ok := u.boundSessions(start.SID, now); ok {
			_, err = tx.exec(boundSessionsSQL, list, floor, u.ID, u.listed)
		}
		return err
	})
	if err != nil {
		return nil, false, time.Time{}, d.fail("consume sign-up link", err)
	}
	return u, created, time.UnixMilli(ms), nil
}

// CheckLink reports, without consuming anything, whether a link issued at
// issuedAt to email could still be used: for the account handle, or, when
// handle is empty (a sign-up link), for whatever account has the address
// by now. newAccount is true when a sign-up link would create the account.
// An operator's link (anyway) works whether or not the account signs in
// by email.
func (d *DB) CheckLink(ctx context.Context, handle []byte, email string, issuedAt int64, anyway bool) (newAccount bool, err error) {
	ctx, done := d.op(ctx, "CheckLink")
	defer done()
	var (
		usedAt            int64
		enabled, disabled bool
	)
	if len(handle) > 0 {
		err = d.r.queryRow(ctx, `SELECT link_used_at, email_signin, disabled_at IS NOT NULL FROM users
			WHERE handle = $1 AND email = $2 AND deleted_at IS NULL`, handle, email).Scan(&usedAt, &enabled, &disabled)
	} else {
		// One row whether or not an account has the address.
		var (
			released bool
			used     sql.NullInt64
			on, off  sql.NullBool
		)
		err = d.r.queryRow(ctx, `SELECT `+releasedSince("$1", "$2")+`, u.link_used_at, u.email_signin, u.disabled_at IS NOT NULL
			FROM (SELECT 1 AS one) AS one LEFT JOIN users AS u ON u.email = $1 AND u.deleted_at IS NULL`,
			email, issuedAt).Scan(&released, &used, &on, &off)
		switch {
		case err != nil:
			return false, d.fail("check link", err)
		case released:
			return false, errLinkGone
		case !used.Valid:
			return true, nil // nobody has the address: the link creates the account
		}
		usedAt, enabled, disabled = used.Int64, on.Bool, off.Bool
	}
	if errors.Is(err, sql.ErrNoRows) {
		return false, errLinkGone
	}
	if err != nil {
		return false, d.fail("check link", err)
	}
	switch {
	case disabled:
		return false, ErrAccountDisabled // (which voided its links too)
	case usedAt >= issuedAt || (!enabled && !anyway):
		return false, errLinkGone
	}
	return false, nil
}

// CancelRecovery ends the user's pending recovery; cancelled reports
// whether there was one.
func (d *DB) CancelRecovery(ctx context.Context, userID int64) (cancelled bool, err error) {
	ctx, done := d.op(ctx, "CancelRecovery")
	defer done()
	res, err := d.w.exec(ctx, `UPDATE users SET recovery_due_at = 0 WHERE id = $1 AND recovery_due_at <> 0`, userID)
	if err != nil {
		return false, d.fail("cancel recovery", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// SetDisabled disables (or enables again) the account handle, at now.
// Disabling voids every token and link of the account and any pending
// recovery, like a revocation that every instance catches up on; it
// returns the stamp, and the applications' sessions it ended. changed is
// false when the account already was so.
func (d *DB) SetDisabled(ctx context.Context, handle []byte, disabled bool, now time.Time) (stamp time.Time, ended Ended, changed bool, err error) {
	ctx, done := d.op(ctx, "SetDisabled")
	defer done()
	var ms int64
	err = d.inTx(ctx, func(tx *tx) error {
		changed, ended = false, Ended{}
		var was bool
		err := tx.row(`SELECT disabled_at IS NOT NULL FROM users WHERE handle = $1 AND deleted_at IS NULL`, handle).Scan(&was)
		if errors.Is(err, sql.ErrNoRows) {
			return errAccountGone
		}
		if err != nil || was == disabled {
			return err
		}
		changed = true
		if !disabled {
			_, err = tx.exec(`UPDATE users SET disabled_at = NULL WHERE handle = $1`, handle)
			return err
		}
		if err := tx.lockRevocations(); err != nil {
			return err
		}
		var grants, apps string
		err = tx.row(`UPDATE users SET disabled_at = $1, `+revokeAll("$1")+`,
				link_used_at = GREATEST(link_used_at, $2), recovery_due_at = 0
			WHERE handle = $3 AND deleted_at IS NULL RETURNING tokens_valid_after, oidc_grants, oidc_sessions_ended`,
			now.UnixMilli(), now.UnixMicro(), handle).Scan(&ms, &grants, &apps)
		ended = endedOfAccount(grants, apps, now.UnixMilli())
		return err
	})
	if err != nil {
		return time.Time{}, Ended{}, false, d.fail("set disabled", err)
	}
	return time.UnixMilli(ms), ended, changed, nil
}

// ErrEmailTaken is returned when an account already uses the address.
var ErrEmailTaken = errs.E(errs.Conflict, "error.email_taken")

// ChangeEmail moves the account handle from oldEmail to newEmail, from a
// confirmation link issued at issuedAt, at now. Like a sign-in link it
// works once, only while newer than the row's last link use, and voids
// older links (sign-in links to the old address die anyway: they name
// it). It also voids every token (see revokeAll), in one statement, so
// there is never an account without an email nor two accounts with one.
// It returns the account, the revocation stamp and the applications'
// sessions it ended; the session that made the change continues with
// tokens issued a millisecond after the stamp (recorded as issued, so a
// later revocation voids them too).
//
// continuing is the session that goes on in the confirming browser, if
// it does (the zero value when it does not): the only one listed after
// the change.
func (d *DB) ChangeEmail(ctx context.Context, handle []byte, oldEmail, newEmail string, issuedAt int64, now time.Time, continuing SessionStart) (*User, time.Time, Ended, error) {
	ctx, done := d.op(ctx, "ChangeEmail")
	defer done()
	var (
		u     *User
		stamp int64
		ended Ended
	)
	err := d.inTx(ctx, func(tx *tx) error {
		if err := tx.lockEmails(oldEmail, newEmail); err != nil {
			return err
		}
		if err := tx.lockRevocations(); err != nil {
			return err
		}
		// Every link issued before the change is void, not only those
		// before its confirmation link; and used is at least every link
		// the account ever used, whatever another instance's clock said
		// when it issued them.
		used := max(issuedAt, now.UnixMicro())
		var (
			err  error
			apps string
		)
		u, err = scanUser(tx.row(`UPDATE users SET email = $1, link_used_at = $6, `+revokeAllBut("$2", "CAST($7 AS TEXT)")+`,
				issued_high = GREATEST($2, users.issued_high, users.tokens_valid_after) + 1
			WHERE handle = $3 AND email = $4 AND deleted_at IS NULL AND link_used_at < $5
			RETURNING `+userColumns+`, oidc_sessions_ended`, newEmail, now.UnixMilli(), handle, oldEmail, issuedAt, used, continuing.entry(now)), &apps)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return errLinkGone
		case isUniqueViolation(err):
			return ErrEmailTaken
		case err != nil:
			return err
		}
		stamp = u.TokensValidAfter
		ended = endedOfAccount("", apps, now.UnixMilli())
		ended.Grants = u.Grants
		// A tombstone remembers that the old address was given up (see
		// released_email): an older sign-up link to it stays void. Its
		// random handle is never any account's.
		_, err = tx.exec(`INSERT INTO users (handle, email, created_at, deleted_at, released_email, released_at)
			VALUES ($1, NULL, $2, $2, $3, $4)`, randomHandle(), now.UnixMilli(), oldEmail, used)
		return err
	})
	if err != nil {
		return nil, time.Time{}, Ended{}, d.fail("change email", err)
	}
	return u, time.UnixMilli(stamp), ended, nil
}

// CheckEmailChange reports, without consuming anything, whether an
// email-change link from oldEmail to newEmail could still be used.
func (d *DB) CheckEmailChange(ctx context.Context, handle []byte, oldEmail, newEmail string, issuedAt int64) error {
	ctx, done := d.op(ctx, "CheckEmailChange")
	defer done()
	var (
		usedAt int64
		taken  bool
	)
	err := d.r.queryRow(ctx, `SELECT link_used_at, EXISTS (SELECT 1 FROM users WHERE email = $3)
		FROM users WHERE handle = $1 AND email = $2 AND deleted_at IS NULL`,
		handle, oldEmail, newEmail).Scan(&usedAt, &taken)
	switch {
	case errors.Is(err, sql.ErrNoRows) || (err == nil && usedAt >= issuedAt):
		return errLinkGone
	case err == nil && taken:
		// Taken since the link was sent: said now, as confirming would.
		return ErrEmailTaken
	}
	return d.fail("check email change", err)
}

var errAccountGone = errs.E(errs.NotFound, "error.account_gone")

// DeleteUser deletes an account at now: its passkeys go, and the row
// becomes a tombstone with no email (so the address can sign up afresh)
// whose "tokens valid after" stamp voids every token of the account, here
// and, through the revocation catch-up, on every instance. The tombstone
// is purged once no token of the account, and no sign-up link issued
// before, can still be valid. It returns the stamp, and the applications'
// sessions that ended.
func (d *DB) DeleteUser(ctx context.Context, handle []byte, now time.Time) (time.Time, Ended, error) {
	ctx, done := d.op(ctx, "DeleteUser")
	defer done()
	var (
		stamp int64
		ended Ended
	)
	err := d.inTx(ctx, func(tx *tx) error {
		var email string
		err := tx.row(`SELECT email FROM users WHERE handle = $1 AND deleted_at IS NULL`, handle).Scan(&email)
		if errors.Is(err, sql.ErrNoRows) {
			return errAccountGone
		}
		if err != nil {
			return err
		}
		if err := tx.lockEmails(email); err != nil {
			return err
		}
		if err := tx.lockRevocations(); err != nil {
			return err
		}
		// The row first (its lock keeps a passkey from being added
		// meanwhile), then its passkeys. The tombstone keeps the address,
		// released no earlier than any link the account used (another
		// instance's clock may be ahead of ours).
		var grants, apps string
		err = tx.row(`UPDATE users SET email = NULL, deleted_at = $1, `+revokeAll("$1")+`,
				link_used_at = GREATEST(link_used_at, $3), released_email = email, released_at = GREATEST(link_used_at, $3)
			WHERE handle = $2 AND deleted_at IS NULL AND email = $4 RETURNING tokens_valid_after, oidc_grants, oidc_sessions_ended`,
			now.UnixMilli(), handle, now.UnixMicro(), email).Scan(&stamp, &grants, &apps)
		ended = endedOfAccount(grants, apps, now.UnixMilli())
		if errors.Is(err, sql.ErrNoRows) {
			// Deleted, or moved to another address, since it was read.
			return errs.E(errs.Conflict, "error.account_changed")
		}
		if err != nil {
			return err
		}
		_, err = tx.exec(`DELETE FROM credentials WHERE user_id = (SELECT id FROM users WHERE handle = $1)`, handle)
		return err
	})
	if err != nil {
		return time.Time{}, Ended{}, d.fail("delete user", err)
	}
	d.signIns.forgetOwner(handle)
	return time.UnixMilli(stamp), ended, nil
}

// ErrNoPasskeyForPasskeyOnly refuses turning email sign-in off for an
// account that has no passkey to sign in with.
var ErrNoPasskeyForPasskeyOnly = errs.E(errs.Conflict, "error.passkey_first")

// SetEmailSignIn turns email sign-in on or off. Turning it off needs a
// passkey on the account and voids every link issued before now.
func (d *DB) SetEmailSignIn(ctx context.Context, userID int64, enabled bool, now time.Time) error {
	ctx, done := d.op(ctx, "SetEmailSignIn")
	defer done()
	err := d.inTx(ctx, func(tx *tx) error {
		// The row lock first: the passkey check below must see a passkey
		// deleted by a transaction that held it (the last one, deleted
		// because email sign-in was still on).
		_, err := tx.lockUser(userID)
		if errors.Is(err, sql.ErrNoRows) {
			return errAccountGone
		}
		if err != nil {
			return err
		}
		var res sql.Result
		if enabled {
			res, err = tx.exec(`UPDATE users SET email_signin = TRUE WHERE id = $1`, userID)
		} else {
			res, err = tx.exec(`UPDATE users SET email_signin = FALSE, link_used_at = GREATEST(link_used_at, $1)
				WHERE id = $2 AND EXISTS (SELECT 1 FROM credentials WHERE credentials.user_id = users.id)`, now.UnixMicro(), userID)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNoPasskeyForPasskeyOnly
		}
		return nil
	})
	return d.fail("set email sign-in", err)
}

// SetLanguage records the language the person chose.
func (d *DB) SetLanguage(ctx context.Context, userID int64, lang string) error {
	ctx, done := d.op(ctx, "SetLanguage")
	defer done()
	_, err := d.w.exec(ctx, `UPDATE users SET lang = $1 WHERE id = $2`, lang, userID)
	return d.fail("set language", err)
}

// randomHandle returns a random user handle (for tombstones, which belong
// to no one).
func randomHandle() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}
