package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/errs"
)

// Grant is an application the person let sign them in, and with what.
type Grant struct {
	Client    string
	GrantedAt int64 // Unix ms: refresh tokens carry it, and die with it
	Scopes    []string
}

// Covers reports whether the grant includes every scope.
func (g Grant) Covers(scopes []string) bool {
	for _, s := range scopes {
		if !slices.Contains(g.Scopes, s) {
			return false
		}
	}
	return true
}

// GrantTo returns the user's grant to client, if any.
func (u *User) GrantTo(client string) (Grant, bool) {
	for _, g := range u.Grants {
		if g.Client == client {
			return g, true
		}
	}
	return Grant{}, false
}

// MaxGrants bounds the applications one account can have granted; the
// operator configures the applications, so this is far above any real
// count.
const MaxGrants = 64

// MaxCodesPerMinute bounds the authorization codes one account is issued
// in a minute (counted where they are issued, so the person is told at
// once rather than when the application redeems the code).
const MaxCodesPerMinute = 64

// codeWindow is how many of an account's newest codes can still redeem:
// a code is void once this many newer ones were issued. With at most
// MaxCodesPerMinute a minute counted in fixed windows, no more than twice
// that are issued in any minute, so a code is never voided this way
// before it expires.
const codeWindow = 2 * MaxCodesPerMinute

// MaxAppSessions bounds the applications' sessions kept in a user's row
// (see AppSession); when a new one would exceed it, the one used least
// recently ends.
const MaxAppSessions = 64

// AppSession is an application signed in through one Latchkey session:
// with a refresh token (Gen 0 and up, rotated on every use), or only
// remembered so that the application hears when the session ends (Gen -1).
type AppSession struct {
	ID       string // random; the refresh token carries it
	Client   string
	SID      string // the Latchkey session that authorized it
	Gen      int64  // the current refresh-token generation; -1: none
	Rotated  int64  // Unix ms, in database order: the last issue for it
	Expires  int64  // Unix ms: it ends unless refreshed before
	AuthTime int64  // Unix s: the sign-in it comes from
}

// Refreshes reports whether the application holds a refresh token of it.
func (s AppSession) Refreshes() bool { return s.Gen >= 0 }

// Ended is what a revocation ended of an account's applications: who must
// be told (back-channel logout).
type Ended struct {
	// Grants are every application the account had granted when all its
	// sessions ended (sign out everywhere, disabling, deletion, an email
	// change) or the one application removed; nil when one Latchkey
	// session ended.
	Grants []Grant
	// Sessions are the applications' sessions that ended.
	Sessions []AppSession
}

// Empty reports whether nothing needs telling.
func (e Ended) Empty() bool { return len(e.Grants) == 0 && len(e.Sessions) == 0 }

// GrantApplication records that the user lets client sign them in with
// scopes (added to any it had), at now, and returns the grant.
func (d *DB) GrantApplication(ctx context.Context, userID int64, client string, scopes []string, now time.Time) (Grant, error) {
	ctx, done := d.op(ctx, "GrantApplication")
	defer done()
	var g Grant
	err := d.inTx(ctx, func(tx *tx) error {
		var raw string
		err := tx.row(`SELECT oidc_grants FROM users WHERE id = $1 AND deleted_at IS NULL AND disabled_at IS NULL FOR UPDATE`, userID).Scan(&raw)
		if errors.Is(err, sql.ErrNoRows) {
			return errAccountGone
		}
		if err != nil {
			return err
		}
		grants := parseGrants(raw)
		i := slices.IndexFunc(grants, func(g Grant) bool { return g.Client == client })
		if i < 0 {
			if len(grants) >= MaxGrants {
				return errs.E(errs.Conflict, "error.too_many_applications")
			}
			grants = append(grants, Grant{Client: client, GrantedAt: now.UnixMilli()})
			i = len(grants) - 1
		}
		for _, s := range scopes {
			if !slices.Contains(grants[i].Scopes, s) {
				grants[i].Scopes = append(grants[i].Scopes, s)
			}
		}
		g = grants[i]
		_, err = tx.exec(`UPDATE users SET oidc_grants = $1 WHERE id = $2`, formatGrants(grants), userID)
		return err
	})
	return g, d.fail("grant application", err)
}

// RevokeGrant removes the user's grant to client, and with it every
// session and refresh token of that application; revoked is false when
// there was none. ended says whom to tell.
func (d *DB) RevokeGrant(ctx context.Context, userID int64, client string) (revoked bool, ended Ended, err error) {
	ctx, done := d.op(ctx, "RevokeGrant")
	defer done()
	err = d.inTx(ctx, func(tx *tx) error {
		revoked, ended = false, Ended{}
		var rawGrants, rawSessions string
		err := tx.row(`SELECT oidc_grants, oidc_sessions FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`,
			userID).Scan(&rawGrants, &rawSessions)
		if errors.Is(err, sql.ErrNoRows) {
			return errAccountGone
		}
		if err != nil {
			return err
		}
		grants := parseGrants(rawGrants)
		i := slices.IndexFunc(grants, func(g Grant) bool { return g.Client == client })
		if i < 0 {
			return nil
		}
		revoked = true
		ended.Grants = []Grant{grants[i]}
		var kept []AppSession
		ended.Sessions, kept = partitionAppSessions(parseAppSessions(rawSessions), func(s AppSession) bool { return s.Client == client })
		_, err = tx.exec(`UPDATE users SET oidc_grants = $1, oidc_sessions = $2 WHERE id = $3`,
			formatGrants(slices.Delete(grants, i, i+1)), formatAppSessions(kept), userID)
		return err
	})
	return revoked, ended, d.fail("revoke grant", err)
}

// Errors of issuing and redeeming authorization codes.
var (
	// ErrCodeUsed refuses an authorization code that was redeemed
	// already, or that is older than the account's newest codes.
	ErrCodeUsed = errs.E(errs.Gone, "error.code_used")
	// ErrCodeSessionEnded refuses to issue or redeem a code of a session
	// that signed out, or that "Sign out everywhere" ended (or an email
	// change, or disabling the account).
	ErrCodeSessionEnded = errs.E(errs.Unauthorized, "error.signed_out_again")
	// ErrTooManyCodes refuses a code past MaxCodesPerMinute.
	ErrTooManyCodes = errs.E(errs.TooManyRequests, "error.too_many_codes")
	// ErrGrantGone refuses a code or refresh token of an application the
	// person no longer lets sign them in.
	ErrGrantGone = errs.E(errs.Forbidden, "error.default.forbidden")
	// ErrNotAdmitted refuses a code or refresh token of an application
	// that admits only groups the account is not in (any more).
	ErrNotAdmitted = errs.E(errs.Forbidden, "error.default.forbidden")
)

// IssuedCode is an authorization code the database has numbered.
type IssuedCode struct {
	Seq      int64 // the account's code number, in database order
	IssuedAt int64 // Unix ms, ordered with the account's revocations
}

// IssueCode numbers a new authorization code for the session sid of the
// account handle, whose tokens were issued at sessionIssued (Unix ms), at
// now. The write orders it with every revocation of the account, as a
// sign-in is ordered (see issueAfter): a session that signed out, or was
// ended by a revocation that committed first, gets ErrCodeSessionEnded,
// and a revocation that commits after voids the code. Past
// MaxCodesPerMinute it returns ErrTooManyCodes.
func (d *DB) IssueCode(ctx context.Context, handle []byte, sid string, sessionIssued int64, now time.Time) (IssuedCode, error) {
	ctx, done := d.op(ctx, "IssueCode")
	defer done()
	nowMs := now.UnixMilli()
	// A new window starts a minute after the last one did (or when the
	// last one was started by an instance whose clock is more than a
	// minute ahead of this one's, which would otherwise hold it open).
	const newWindow = `($1 - oidc_code_window >= 60000 OR oidc_code_window - $1 > 60000)`
	var (
		c       IssuedCode
		revoked string
	)
	err := d.w.queryRow(ctx, `UPDATE users SET oidc_code_seq = oidc_code_seq + 1,
			oidc_code_window = CASE WHEN `+newWindow+` THEN $1 ELSE oidc_code_window END,
			oidc_code_count = CASE WHEN `+newWindow+` THEN 1 ELSE oidc_code_count + 1 END,
			`+issuedHigh("$1")+`
		WHERE handle = $2 AND deleted_at IS NULL AND disabled_at IS NULL AND tokens_valid_after < $3
			AND (`+newWindow+` OR oidc_code_count < $4)
		RETURNING oidc_code_seq, `+issueAfter("$1")+`, revoked_sessions`,
		nowMs, handle, sessionIssued, MaxCodesPerMinute).Scan(&c.Seq, &c.IssuedAt, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		// Why: the session (or account) ended, or the limit is reached.
		var live bool
		err = d.r.queryRow(ctx, `SELECT disabled_at IS NULL AND tokens_valid_after < $2 FROM users
			WHERE handle = $1 AND deleted_at IS NULL`, handle, sessionIssued).Scan(&live)
		switch {
		case err == nil && live:
			return IssuedCode{}, ErrTooManyCodes
		case err == nil || errors.Is(err, sql.ErrNoRows):
			return IssuedCode{}, ErrCodeSessionEnded
		}
	}
	if err != nil {
		return IssuedCode{}, d.fail("issue code", err)
	}
	for _, s := range parseRevokedSessions(revoked) {
		if s.SID == sid {
			return IssuedCode{}, ErrCodeSessionEnded
		}
	}
	return c, nil
}

// Code is an authorization code being redeemed.
type Code struct {
	Handle []byte
	Client string
	IssuedCode
	SID      string // the Latchkey session that authorized it
	AuthTime int64  // Unix s
	// Refresh is whether a refresh token is issued with it
	// (offline_access); RefreshExpires is then when it ends unless used
	// (Unix ms), and SessionEnds otherwise when the Latchkey session ends
	// at the latest (Unix ms).
	Refresh        bool
	RefreshExpires int64
	SessionEnds    int64
	// Admits says whether the application admits the account (its
	// allowed groups), checked on the row as it is now.
	Admits func(*User) bool
}

// Redeemed is a redeemed authorization code: the account (its grants
// included), the issue time of the tokens (Unix ms, ordered with the
// account's revocations), and the application's session.
type Redeemed struct {
	User     *User
	IssuedAt int64
	Session  AppSession
	// Evicted are the application sessions that ended to make room (the
	// ones used least recently, past MaxAppSessions), to be told.
	Evicted []AppSession
}

// CodeReplayError is ErrCodeUsed for a code presented again: the
// application session its first redemption started has ended (RFC 6749
// 4.1.2: the tokens issued for a code used twice are revoked). Ended says
// which, to tell the application.
type CodeReplayError struct{ Ended Ended }

func (e *CodeReplayError) Error() string { return ErrCodeUsed.Error() }

// Unwrap makes errors.Is(err, ErrCodeUsed) hold.
func (e *CodeReplayError) Unwrap() error { return ErrCodeUsed }

// RedeemCode redeems an authorization code at now, once: the user's row
// (locked) remembers which of its newest codes were redeemed, by number,
// so several codes can be in flight for one person, none works twice, and
// no instance's clock decides what is forgotten. The code must be of a
// session that is still signed in (not signed out, nor older than the
// account's last revocation), of an application the person still grants.
// The application's session is recorded: with a refresh token of
// generation 0, or, without one, only so that it hears when the Latchkey
// session ends. A code presented again ends the session its first
// redemption started (*CodeReplayError).
func (d *DB) RedeemCode(ctx context.Context, c Code, now time.Time) (Redeemed, error) {
	ctx, done := d.op(ctx, "RedeemCode")
	defer done()
	var (
		out    Redeemed
		replay *CodeReplayError
	)
	err := d.inTx(ctx, func(tx *tx) error {
		out, replay = Redeemed{}, nil
		var (
			rawCodes, rawSessions string
			seqHigh               int64
		)
		u, err := scanUser(tx.row(`SELECT `+userColumns+`, oidc_codes, oidc_code_seq, oidc_sessions FROM users
			WHERE handle = $1 AND deleted_at IS NULL FOR UPDATE`, c.Handle), &rawCodes, &seqHigh, &rawSessions)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrCodeSessionEnded
		case err != nil:
			return err
		case u.Disabled:
			return ErrAccountDisabled
		case c.IssuedAt <= u.TokensValidAfter || u.SessionRevoked(c.SID):
			return ErrCodeSessionEnded
		case c.Seq <= seqHigh-codeWindow || c.Seq > seqHigh:
			return ErrCodeUsed
		}
		redeemed := parseRedeemed(rawCodes)
		nowMs := now.UnixMilli()
		sessions := liveAppSessions(parseAppSessions(rawSessions), u, nowMs)
		if i := slices.IndexFunc(redeemed, func(r redeemedCode) bool { return r.seq == c.Seq }); i >= 0 {
			replay = &CodeReplayError{}
			var kept []AppSession
			replay.Ended.Sessions, kept = partitionAppSessions(sessions, func(s AppSession) bool { return s.ID == redeemed[i].session })
			if len(replay.Ended.Sessions) == 0 {
				return ErrCodeUsed
			}
			_, err := tx.exec(`UPDATE users SET oidc_sessions = $1 WHERE id = $2`, formatAppSessions(kept), u.ID)
			return err
		}
		if _, ok := u.GrantTo(c.Client); !ok {
			return ErrGrantGone
		}
		if c.Admits != nil && !c.Admits(u) {
			return ErrNotAdmitted
		}
		redeemed = slices.DeleteFunc(redeemed, func(r redeemedCode) bool { return r.seq <= seqHigh-codeWindow })

		iat := max(nowMs, u.TokensValidAfter+1)
		s := AppSession{Client: c.Client, SID: c.SID, Gen: -1, Rotated: iat, Expires: c.SessionEnds, AuthTime: c.AuthTime}
		if c.Refresh {
			s.ID, s.Gen, s.Expires = newAppSessionID(), 0, c.RefreshExpires
			sessions = append(sessions, s)
		} else if i := slices.IndexFunc(sessions, func(o AppSession) bool { return o.Client == c.Client && o.SID == c.SID && !o.Refreshes() }); i >= 0 {
			sessions[i].Rotated = iat
			s = sessions[i]
		} else {
			s.ID = newAppSessionID()
			sessions = append(sessions, s)
		}
		sessions, evicted := evictAppSessions(sessions)
		redeemed = append(redeemed, redeemedCode{seq: c.Seq, session: s.ID})
		if _, err := tx.exec(`UPDATE users SET oidc_codes = $1, oidc_sessions = $2, issued_high = GREATEST(issued_high, $3)
			WHERE id = $4`, formatRedeemed(redeemed), formatAppSessions(sessions), iat, u.ID); err != nil {
			return err
		}
		out = Redeemed{User: u, IssuedAt: iat, Session: s, Evicted: evicted}
		return nil
	})
	if err != nil {
		return Redeemed{}, d.fail("redeem code", err)
	}
	if replay != nil {
		return Redeemed{}, replay
	}
	return out, nil
}

// AppSessionLive reports whether the account handle is live and enabled
// and its application session id still live at now (not ended by a
// replay, a sign-out, a revocation or its expiry), returning the account:
// the userinfo endpoint's check of an access token.
func (d *DB) AppSessionLive(ctx context.Context, handle []byte, id string, now time.Time) (*User, bool, error) {
	ctx, done := d.op(ctx, "AppSessionLive")
	defer done()
	var raw string
	u, err := scanUser(d.r.queryRow(ctx, `SELECT `+userColumns+`, oidc_sessions FROM users
		WHERE handle = $1 AND deleted_at IS NULL`, handle), &raw)
	if err != nil {
		return nil, false, d.notFound("application session", err, "error.account_gone")
	}
	live := !u.Disabled && slices.ContainsFunc(liveAppSessions(parseAppSessions(raw), u, now.UnixMilli()),
		func(s AppSession) bool { return s.ID == id })
	return u, live, nil
}

// AppRefresh is an application's refresh token presented for rotation.
type AppRefresh struct {
	Handle    []byte
	Client    string
	ID        string // its application session
	Gen       int64
	GrantedAt int64 // the grant it was issued under (Unix ms)
	// Expires is when the session ends if not refreshed again (Unix ms):
	// the idle limit from now, or its absolute limit.
	Expires int64
	// Admits says whether the application admits the account (its
	// allowed groups); when it no longer does, every refresh token of the
	// application for the account ends (*ErrAppNotAdmitted).
	Admits func(*User) bool
}

// ErrAppNotAdmitted is ErrNotAdmitted from a refresh: the account left the
// groups the application admits, so its sessions of the application
// ended. Ended says which.
type ErrAppNotAdmitted struct{ Ended Ended }

func (e *ErrAppNotAdmitted) Error() string { return ErrNotAdmitted.Error() }

// Unwrap makes errors.Is(err, ErrNotAdmitted) hold.
func (e *ErrAppNotAdmitted) Unwrap() error { return ErrNotAdmitted }

// ErrAppRefreshReplayed: a rotated-out refresh token of an application
// was presented outside the grace period, so every refresh token of that
// application for the person ended. Ended says which.
type ErrAppRefreshReplayed struct{ Ended Ended }

func (e *ErrAppRefreshReplayed) Error() string { return "an application's refresh token was replayed" }

// RotateAppRefresh checks an application's refresh token against the
// user's row (locked) and moves its session to the next generation, at
// now, exactly as RotateRefresh does for Latchkey's own sessions: the
// current generation moves on; the one just replaced, within RefreshGrace,
// gets the current one again; an older one ends every session of that
// application for the person (*ErrAppRefreshReplayed). The session must
// still be live: not idle past its expiry, its Latchkey session not
// signed out, no revocation of the account since it was last issued, and
// the grant it was issued under still in place. It returns the account,
// the session as it now is and the new tokens' issue time (Unix ms).
func (d *DB) RotateAppRefresh(ctx context.Context, r AppRefresh, now time.Time) (*User, AppSession, int64, error) {
	ctx, done := d.op(ctx, "RotateAppRefresh")
	defer done()
	var (
		u           *User
		s           AppSession
		iat         int64
		replayed    *ErrAppRefreshReplayed
		notAdmitted *ErrAppNotAdmitted
	)
	err := d.inTx(ctx, func(tx *tx) error {
		replayed, notAdmitted = nil, nil
		var raw string
		var err error
		u, err = scanUser(tx.row(`SELECT `+userColumns+`, oidc_sessions FROM users
			WHERE handle = $1 AND deleted_at IS NULL FOR UPDATE`, r.Handle), &raw)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrSessionEnded
		case err != nil:
			return err
		case u.Disabled:
			return ErrSessionEnded
		}
		nowMs := now.UnixMilli()
		all := parseAppSessions(raw)
		sessions := liveAppSessions(all, u, nowMs)
		i := slices.IndexFunc(sessions, func(o AppSession) bool { return o.ID == r.ID && o.Client == r.Client && o.Refreshes() })
		if i < 0 {
			return ErrSessionEnded
		}
		if g, ok := u.GrantTo(r.Client); !ok || g.GrantedAt != r.GrantedAt {
			return ErrGrantGone
		}
		endClient := func() (Ended, error) {
			var e Ended
			var kept []AppSession
			e.Sessions, kept = partitionAppSessions(sessions, func(o AppSession) bool { return o.Client == r.Client })
			_, err := tx.exec(`UPDATE users SET oidc_sessions = $1 WHERE id = $2`, formatAppSessions(kept), u.ID)
			return e, err
		}
		if r.Admits != nil && !r.Admits(u) {
			e, err := endClient()
			notAdmitted = &ErrAppNotAdmitted{Ended: e}
			return err
		}
		iat = max(nowMs, u.TokensValidAfter+1)
		switch cur := &sessions[i]; {
		case r.Gen == cur.Gen:
			cur.Gen, cur.Rotated, cur.Expires = cur.Gen+1, iat, r.Expires
		case r.Gen == cur.Gen-1 && nowMs-cur.Rotated <= RefreshGrace.Milliseconds():
			// (the current generation again: two requests at once)
		default:
			e, err := endClient()
			replayed = &ErrAppRefreshReplayed{Ended: e}
			return err
		}
		s = sessions[i]
		_, err = tx.exec(`UPDATE users SET oidc_sessions = $1, issued_high = GREATEST(issued_high, $2) WHERE id = $3`,
			formatAppSessions(sessions), iat, u.ID)
		return err
	})
	if err != nil {
		return nil, AppSession{}, 0, d.fail("rotate application refresh", err)
	}
	if replayed != nil {
		return nil, AppSession{}, 0, replayed
	}
	if notAdmitted != nil {
		return nil, AppSession{}, 0, notAdmitted
	}
	return u, s, iat, nil
}

// liveAppSessions returns the sessions that can still be used at now
// (Unix ms): not expired, and issued after the account's last revocation
// and not of a signed-out Latchkey session.
func liveAppSessions(all []AppSession, u *User, now int64) []AppSession {
	live := all[:0:0]
	for _, s := range all {
		if s.Expires > now && s.Rotated > u.TokensValidAfter && !u.SessionRevoked(s.SID) {
			live = append(live, s)
		}
	}
	return live
}

// partitionAppSessions splits list into the sessions that match (those a
// change ends) and the others (those the row keeps).
func partitionAppSessions(list []AppSession, match func(AppSession) bool) (matched, others []AppSession) {
	for _, s := range list {
		if match(s) {
			matched = append(matched, s)
		} else {
			others = append(others, s)
		}
	}
	return matched, others
}

// evictAppSessions keeps at most MaxAppSessions, ending those used least
// recently; it returns those kept and those ended.
func evictAppSessions(list []AppSession) (kept, evicted []AppSession) {
	for len(list) > MaxAppSessions {
		oldest := 0
		for i, s := range list {
			if s.Rotated < list[oldest].Rotated {
				oldest = i
			}
		}
		evicted = append(evicted, list[oldest])
		list = slices.Delete(list, oldest, oldest+1)
	}
	return list, evicted
}

// endedOfAccount is what a revocation of the whole account ends: every
// grant, and every application session that was live before it.
func endedOfAccount(rawGrants, rawSessions string, now int64) Ended {
	e := Ended{Grants: parseGrants(rawGrants)}
	for _, s := range parseAppSessions(rawSessions) {
		if s.Expires > now {
			e.Sessions = append(e.Sessions, s)
		}
	}
	return e
}

func newAppSessionID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseGrants(s string) []Grant {
	if s == "" {
		return nil
	}
	var out []Grant
	for _, entry := range strings.Split(s, ",") {
		f := strings.SplitN(entry, "|", 3)
		if len(f) != 3 {
			continue
		}
		ms, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, Grant{Client: f[0], GrantedAt: ms, Scopes: strings.Fields(f[2])})
	}
	return out
}

func formatGrants(list []Grant) string {
	var b strings.Builder
	for i, g := range list {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(g.Client)
		b.WriteByte('|')
		b.WriteString(strconv.FormatInt(g.GrantedAt, 10))
		b.WriteByte('|')
		b.WriteString(strings.Join(g.Scopes, " "))
	}
	return b.String()
}

func parseAppSessions(s string) []AppSession {
	if s == "" {
		return nil
	}
	var out []AppSession
	for _, entry := range strings.Split(s, ",") {
		f := strings.Split(entry, "|")
		if len(f) != 7 {
			continue
		}
		var n [4]int64
		ok := true
		for i := range n {
			v, err := strconv.ParseInt(f[i+3], 10, 64)
			n[i], ok = v, ok && err == nil
		}
		if ok {
			out = append(out, AppSession{ID: f[0], Client: f[1], SID: f[2], Gen: n[0], Rotated: n[1], Expires: n[2], AuthTime: n[3]})
		}
	}
	return out
}

func formatAppSessions(list []AppSession) string {
	var b strings.Builder
	for i, s := range list {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.ID)
		b.WriteByte('|')
		b.WriteString(s.Client)
		b.WriteByte('|')
		b.WriteString(s.SID)
		for _, n := range []int64{s.Gen, s.Rotated, s.Expires, s.AuthTime} {
			b.WriteByte('|')
			b.WriteString(strconv.FormatInt(n, 10))
		}
	}
	return b.String()
}

// redeemedCode is a redeemed code's number and the application session
// its redemption started.
type redeemedCode struct {
	seq     int64
	session string
}

func parseRedeemed(s string) []redeemedCode {
	var out []redeemedCode
	for _, f := range strings.Split(s, ",") {
		num, session, _ := strings.Cut(f, ".")
		if n, err := strconv.ParseInt(num, 10, 64); err == nil {
			out = append(out, redeemedCode{n, session})
		}
	}
	return out
}

func formatRedeemed(list []redeemedCode) string {
	var b strings.Builder
	for i, r := range list {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(r.seq, 10))
		b.WriteByte('.')
		b.WriteString(r.session)
	}
	return b.String()
}
