package db

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/errs"
)

// MaxRevokedSessions bounds the list of signed-out sessions kept in a user's
// row. When a sign-out would exceed it, every session of the user is ended
// instead (the "tokens valid after" stamp moves), which is always safe.
const MaxRevokedSessions = 128

// MaxRefreshSessions bounds the refresh generations kept in a user's row:
// one per browser or device that refreshes, far more than one person
// uses at once. A session that falls out of the list (the one refreshed
// least recently) must sign in again.
const MaxRefreshSessions = 32

// RefreshGrace is how long after a rotation the refresh token it replaced
// still works, once, without counting as a replay: two tabs of one
// browser that refresh at the same moment both send the old token, and
// the second gets the current generation instead of signing the person
// out. Outside it, an old generation is a stolen copy, or the owner's
// after the thief used it: either way the session ends.
const RefreshGrace = 10 * time.Second

// RevokedSession is a session ended by "Sign out", remembered until no token
// of it can still be valid.
type RevokedSession struct {
	SID     string
	Expires int64 // Unix ms
}

// EndSession records that the session sid of the user has signed out, at
// now, until expires (Unix ms), after which no token of it can be valid
// anyway. Entries that have run out are dropped; if the list would still
// exceed MaxRevokedSessions, all the user's sessions are ended instead,
// and endedAll is that stamp (as from EndAllSessions); otherwise it is
// zero. The applications the session signed in end with it (their
// refresh tokens too); ended says which, to tell them. The row is locked
// while it is read and written, so two sessions signing out at once are
// both recorded.
func (d *DB) EndSession(ctx context.Context, handle []byte, sid string, expires int64, now time.Time) (endedAll time.Time, ended Ended, err error) {
	ctx, done := d.op(ctx, "EndSession")
	defer done()
	err = d.inTx(ctx, func(tx *tx) error {
		endedAll = time.Time{}
		all, e, err := tx.endSession(handle, sid, expires, now)
		if all != 0 {
			endedAll = time.UnixMilli(all)
		}
		ended = e
		return err
	})
	return endedAll, ended, d.fail("end session", err)
}

// endSession is EndSession inside a transaction; it returns the stamp
// when every session had to end, else 0.
func (t *tx) endSession(handle []byte, sid string, expires int64, now time.Time) (int64, Ended, error) {
	if err := t.lockRevocations(); err != nil {
		return 0, Ended{}, err
	}
	var (
		revoked, refreshing, grants, apps string
		floor                             int64
	)
	err := t.row(`SELECT revoked_sessions, refresh_sessions, refresh_floor, oidc_grants, oidc_sessions FROM users
		WHERE handle = $1 AND deleted_at IS NULL FOR UPDATE`, handle).Scan(&revoked, &refreshing, &floor, &grants, &apps)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, Ended{}, nil // the account is gone, and with it every session
	}
	if err != nil {
		return 0, Ended{}, err
	}
	nowMs := now.UnixMilli()
	kept := make([]RevokedSession, 0, MaxRevokedSessions)
	for _, s := range parseRevokedSessions(revoked) {
		if s.Expires > nowMs && s.SID != sid {
			kept = append(kept, s)
		}
	}
	kept = append(kept, RevokedSession{SID: sid, Expires: expires})
	if len(kept) > MaxRevokedSessions {
		var stamp int64
		err := t.row(`UPDATE users SET `+revokeAll("$1")+` WHERE handle = $2 RETURNING tokens_valid_after`,
			nowMs, handle).Scan(&stamp)
		return stamp, endedOfAccount(grants, apps, nowMs), err
	}
	others, floor := liveSessions(parseRefreshSessions(refreshing), floor, nowMs, "")
	others = removeSession(others, sid)
	var (
		ended    Ended
		keptApps []AppSession
	)
	ended.Sessions, keptApps = partitionAppSessions(parseAppSessions(apps), func(s AppSession) bool { return s.SID == sid })
	ended.Sessions = slices.DeleteFunc(ended.Sessions, func(s AppSession) bool { return s.Expires <= nowMs })
	_, err = t.exec(`UPDATE users SET revoked_sessions = $1, refresh_sessions = $2, refresh_floor = $3, oidc_sessions = $4,
		revoked_at = $5, revocation_seq = `+nextRevocation+` WHERE handle = $6`,
		formatRevokedSessions(kept), formatRefreshSessions(others), floor, formatAppSessions(keptApps), nowMs, handle)
	return 0, ended, err
}

// EndAllSessions voids, at now, every token the user holds anywhere and
// returns the stamp: tokens issued at or before it stop working. The stamp
// is no earlier than any token issued so far (see revokeAll), so sign-ins
// and refreshes that committed first are void, and those that come second
// see it and issue newer tokens. The applications' sessions end too;
// ended says which, to tell them.
func (d *DB) EndAllSessions(ctx context.Context, handle []byte, now time.Time) (time.Time, Ended, error) {
	ctx, done := d.op(ctx, "EndAllSessions")
	defer done()
	stamp := now.UnixMilli()
	var ended Ended
	err := d.inTx(ctx, func(tx *tx) error {
		if err := tx.lockRevocations(); err != nil {
			return err
		}
		var grants, apps string
		err := tx.row(`UPDATE users SET `+revokeAll("$1")+` WHERE handle = $2 AND deleted_at IS NULL
			RETURNING tokens_valid_after, oidc_grants, oidc_sessions_ended`, now.UnixMilli(), handle).Scan(&stamp, &grants, &apps)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // the account is gone, and with it every session
		}
		ended = endedOfAccount(grants, apps, now.UnixMilli())
		return err
	})
	if err != nil {
		return time.Time{}, Ended{}, d.fail("end all sessions", err)
	}
	return time.UnixMilli(stamp), ended, nil
}

// Refresh is a refresh token presented for rotation.
type Refresh struct {
	Handle   []byte
	SID      string
	Gen      int64 // its generation: 0 for the token a sign-in issued
	IssuedAt int64 // Unix ms
	AuthTime int64 // the session's sign-in, Unix s
	// Expires is when the session ends if it is not refreshed again
	// (Unix ms): the idle limit from now, or its absolute limit.
	Expires int64
	// Method, Browser and System describe the session (see
	// RefreshSession) where its entry does not: one listed before
	// sessions were described, or signed in before they were listed.
	Method, Browser, System string
}

// Refresh errors. Each signs the browser out.
var (
	// ErrSessionEnded: the session was signed out, or every session was.
	ErrSessionEnded = errs.E(errs.Unauthorized, "error.signed_out_again")
	// ErrRefreshReplayed: an older generation of the session's refresh
	// token was presented, so the session was ended everywhere (the error
	// is a *RefreshReplayError, which says what else ended).
	ErrRefreshReplayed = errs.E(errs.Unauthorized, "error.refresh_replayed")
	// ErrSessionForgotten: the session fell out of the bounded list.
	ErrSessionForgotten = errs.E(errs.Unauthorized, "error.session_forgotten")
)

// RefreshReplayError is ErrRefreshReplayed, with the applications the
// ended session had signed in.
type RefreshReplayError struct{ Ended Ended }

func (e *RefreshReplayError) Error() string { return ErrRefreshReplayed.Error() }

// Unwrap makes errors.Is(err, ErrRefreshReplayed) hold.
func (e *RefreshReplayError) Unwrap() error { return ErrRefreshReplayed }

// RotateRefresh checks a refresh token against the user's row and moves
// its session to the next generation, at now. It returns the live account,
// the generation the new refresh token carries and the issue time of the
// new tokens. The row is locked while it is read and written, so a refresh
// and a revocation of the account are always ordered: a refresh that came
// first issued tokens the revocation voids, one that came second sees it.
//
// A token of the current generation moves the session on; the one just
// replaced, within RefreshGrace of its rotation, gets the current
// generation again (two tabs refreshing at once); any older one ends the
// session everywhere (ErrRefreshReplayed). A session unknown to the list
// is taken in if its token is the one its sign-in issued and it signed in
// after every session that fell out of the list; otherwise it must sign
// in again. (Every sign-in lists its session; one unknown to the list
// signed in before they did.)
func (d *DB) RotateRefresh(ctx context.Context, r Refresh, now time.Time) (*User, int64, time.Time, error) {
	ctx, done := d.op(ctx, "RotateRefresh")
	defer done()
	var (
		u       *User
		gen     int64
		iat     int64
		replay  bool
		nowMs   = now.UnixMilli()
		stamped = func(u *User) bool { return r.IssuedAt <= u.TokensValidAfter || u.SessionRevoked(r.SID) }
	)
	err := d.inTx(ctx, func(tx *tx) error {
		replay = false
		var (
			floor int64
			err   error
		)
		u, err = scanUser(tx.row(`SELECT `+userColumns+`, refresh_floor
			FROM users WHERE handle = $1 AND deleted_at IS NULL FOR UPDATE`, r.Handle), &floor)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrSessionEnded
		}
		if err != nil {
			return err
		}
		if stamped(u) || u.Disabled {
			return ErrSessionEnded
		}
		var sessions []RefreshSession
		sessions, floor = liveSessions(u.Sessions, floor, nowMs, r.SID)
		i := findSession(sessions, r.SID)
		switch {
		case i < 0 && r.Gen == 0 && r.AuthTime > floor:
			gen = 1
			// Make room: the session refreshed least recently falls out,
			// and every session signed in no later than it must sign in
			// again before it refreshes.
			sessions, floor = capSessions(sessions, floor, MaxRefreshSessions-1, "")
			sessions = append(sessions, RefreshSession{SID: r.SID, Gen: gen, Rotated: nowMs, Expires: r.Expires, AuthTime: r.AuthTime})
			r.describe(&sessions[len(sessions)-1])
		case i < 0:
			return ErrSessionForgotten
		case r.Gen == sessions[i].Gen:
			gen = r.Gen + 1
			sessions[i].Gen, sessions[i].Rotated, sessions[i].Expires = gen, nowMs, r.Expires
			r.describe(&sessions[i])
		case r.Gen == sessions[i].Gen-1 && nowMs-sessions[i].Rotated <= RefreshGrace.Milliseconds():
			gen = sessions[i].Gen
		default:
			replay = true
			return ErrRefreshReplayed
		}
		iat = max(nowMs, u.TokensValidAfter+1)
		_, err = tx.exec(`UPDATE users SET refresh_sessions = $1, refresh_floor = $2, issued_high = GREATEST(issued_high, $3)
			WHERE id = $4`, formatRefreshSessions(sessions), floor, iat, u.ID)
		return err
	})
	if replay {
		// The replay ends the session, in a transaction of its own (a
		// revocation takes its locks in a fixed order, the row last).
		_, ended, err := d.EndSession(context.WithoutCancel(ctx), r.Handle, r.SID, r.Expires, now)
		if err != nil {
			return nil, 0, time.Time{}, err
		}
		return nil, 0, time.Time{}, &RefreshReplayError{Ended: ended}
	}
	if err != nil {
		return nil, 0, time.Time{}, d.fail("rotate refresh", err)
	}
	return u, gen, time.UnixMilli(iat), nil
}

// describe fills in what s does not say of how and where it signed in.
func (r Refresh) describe(s *RefreshSession) {
	if s.Method == "" && validMethod(r.Method) {
		s.Method = r.Method
	}
	if s.Browser == "" && s.System == "" {
		s.Browser, s.System = deviceWord(r.Browser), deviceWord(r.System)
	}
}

// RefreshSession is one session of the account, as its list in the row
// keeps it: the current refresh-token generation, and how and where it
// signed in (what the account page shows).
type RefreshSession struct {
	SID      string
	Gen      int64
	Rotated  int64 // when it moved to Gen (its sign-in, for Gen 0), Unix ms
	Expires  int64 // when it ends unless refreshed, Unix ms
	AuthTime int64 // its sign-in, Unix s
	// Method is how it signed in (MethodPasskey, MethodLink,
	// MethodCode); "" when unknown (listed before it was recorded).
	Method string
	// Browser and System are the kind of browser and system it signed
	// in from ("Firefox", "Linux"; "" when unknown): words from a fixed
	// list, never the User-Agent itself (see deviceWord).
	Browser, System string
	// Replaces is the session this browser held when it signed in again
	// (see SessionStart); "" once that one is gone from the list.
	Replaces string
}

func findSession(list []RefreshSession, sid string) int {
	for i, s := range list {
		if s.SID == sid {
			return i
		}
	}
	return -1
}

func removeSession(list []RefreshSession, sid string) []RefreshSession {
	if i := findSession(list, sid); i >= 0 {
		return append(list[:i], list[i+1:]...)
	}
	return list
}

// Revocation is the revocation state of one user, as every instance reads
// it into its in-memory set.
type Revocation struct {
	Handle           []byte
	TokensValidAfter int64
	RevokedSessions  []RevokedSession
	RevokedAt        int64 // the revoking instance's clock, Unix ms
	Seq              int64 // the database's order of revocations
}

// RevocationsAfter returns, in order, the users whose revocation state
// changed with a revocation number above seq. The query runs on the
// revocation_seq index.
func (d *DB) RevocationsAfter(ctx context.Context, seq int64) ([]Revocation, error) {
	ctx, done := d.op(ctx, "RevocationsAfter")
	defer done()
	return d.revocations(ctx, `SELECT handle, tokens_valid_after, revoked_sessions, revoked_at, revocation_seq
		FROM users WHERE revocation_seq > $1 ORDER BY revocation_seq`, seq)
}

// RecentRevocations returns the revocation number reached so far and the
// users revoked at or after since (Unix ms, by the revoking instances'
// clocks): what an instance starting up must know. Rows revoked after the
// number was read are also returned, or found by the next
// RevocationsAfter.
func (d *DB) RecentRevocations(ctx context.Context, since int64) (int64, []Revocation, error) {
	ctx, done := d.op(ctx, "RecentRevocations")
	defer done()
	var seq int64
	if err := d.r.queryRow(ctx, `SELECT COALESCE(MAX(revocation_seq), 0) FROM users`).Scan(&seq); err != nil {
		return 0, nil, d.fail("revocation number", err)
	}
	rows, err := d.revocations(ctx, `SELECT handle, tokens_valid_after, revoked_sessions, revoked_at, revocation_seq
		FROM users WHERE revocation_seq > 0 AND revoked_at >= $1`, since)
	return seq, rows, err
}

func (d *DB) revocations(ctx context.Context, query string, arg int64) ([]Revocation, error) {
	rows, err := d.r.query(ctx, query, arg)
	if err != nil {
		return nil, d.fail("read revocations", err)
	}
	defer rows.Close()
	var out []Revocation
	for rows.Next() {
		var (
			r       Revocation
			revoked string
		)
		if err := rows.Scan(&r.Handle, &r.TokensValidAfter, &revoked, &r.RevokedAt, &r.Seq); err != nil {
			return nil, d.fail("scan revocation", err)
		}
		r.RevokedSessions = parseRevokedSessions(revoked)
		out = append(out, r)
	}
	return out, d.fail("read revocations", rows.Err())
}

// PurgeTombstones removes tombstones deleted before before (Unix ms), by
// when no token of theirs can be valid, whose address (if they record one)
// was given up before releasedBefore (Unix µs), by when no sign-up link
// issued earlier can still be in time. It returns how many it removed.
//
// The row holding the highest revocation number is the exception: it
// stays, so that the next revocation never reuses a number an instance
// has already read, but it forgets the address it kept; a later purge
// removes it once another revocation has taken a higher number.
func (d *DB) PurgeTombstones(ctx context.Context, before, releasedBefore int64) (int64, error) {
	ctx, done := d.op(ctx, "PurgeTombstones")
	defer done()
	var purged int64
	err := d.inTx(ctx, func(tx *tx) error {
		const expired = `deleted_at IS NOT NULL AND deleted_at < $1 AND (released_email IS NULL OR released_at < $2)`
		res, err := tx.exec(`DELETE FROM users WHERE `+expired+`
			AND revocation_seq < (SELECT MAX(revocation_seq) FROM users)`, before, releasedBefore)
		if err != nil {
			return err
		}
		purged, _ = res.RowsAffected()
		_, err = tx.exec(`UPDATE users SET released_email = NULL, released_at = 0
			WHERE `+expired+` AND released_email IS NOT NULL`, before, releasedBefore)
		return err
	})
	if err != nil {
		return 0, d.fail("purge tombstones", err)
	}
	return purged, nil
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
