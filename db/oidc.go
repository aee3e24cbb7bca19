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

// maxCodesInFlight bounds the redeemed codes remembered per account. A
// code lives a minute, so this is 64 sign-ins into applications in one
// minute.
const maxCodesInFlight = 64

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

// RevokeGrant removes the user's grant to client; revoked is false when
// there was none.
func (d *DB) RevokeGrant(ctx context.Context, userID int64, client string) (revoked bool, err error) {
	ctx, done := d.op(ctx, "RevokeGrant")
	defer done()
	err = d.inTx(ctx, func(tx *tx) error {
		revoked = false
		var raw string
		err := tx.row(`SELECT oidc_grants FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, userID).Scan(&raw)
		if errors.Is(err, sql.ErrNoRows) {
			return errAccountGone
		}
		if err != nil {
			return err
		}
		grants := parseGrants(raw)
		kept := slices.DeleteFunc(slices.Clone(grants), func(g Grant) bool { return g.Client == client })
		if len(kept) == len(grants) {
			return nil
		}
		revoked = true
		_, err = tx.exec(`UPDATE users SET oidc_grants = $1 WHERE id = $2`, formatGrants(kept), userID)
		return err
	})
	return revoked, d.fail("revoke grant", err)
}

// ErrCodeUsed refuses an authorization code that was redeemed already, or
// issued before the account's tokens were revoked.
var ErrCodeUsed = errs.E(errs.Gone, "error.code_used")

// Code is an authorization code being redeemed.
type Code struct {
	Handle   []byte
	ID       string // random, unique per code
	IssuedAt int64  // Unix ms
	Expires  int64  // Unix ms
}

// RedeemCode redeems an authorization code at now, once: the user's row
// (locked) remembers the codes redeemed and not yet expired, so several
// codes can be in flight for one person and none works twice. A code
// issued at or before the account's last revocation ("Sign out
// everywhere", an email change) is refused too. It returns the account and
// the issue time of the tokens (see issueAfter).
func (d *DB) RedeemCode(ctx context.Context, c Code, now time.Time) (*User, time.Time, error) {
	ctx, done := d.op(ctx, "RedeemCode")
	defer done()
	var (
		u   *User
		iat int64
	)
	err := d.inTx(ctx, func(tx *tx) error {
		var raw string
		var err error
		u, err = scanUser(tx.row(`SELECT `+userColumns+`, oidc_codes FROM users
			WHERE handle = $1 AND deleted_at IS NULL FOR UPDATE`, c.Handle), &raw)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrCodeUsed
		case err != nil:
			return err
		case u.Disabled:
			return ErrAccountDisabled
		case c.IssuedAt <= u.TokensValidAfter:
			return ErrCodeUsed
		}
		nowMs := now.UnixMilli()
		var live []RevokedSession // (a code id and when it can be forgotten)
		for _, e := range parseRevokedSessions(raw) {
			if e.SID == c.ID {
				return ErrCodeUsed
			}
			if e.Expires > nowMs {
				live = append(live, e)
			}
		}
		if len(live) >= maxCodesInFlight {
			return errs.E(errs.TooManyRequests, "error.too_many_codes")
		}
		live = append(live, RevokedSession{SID: c.ID, Expires: c.Expires})
		iat = max(nowMs, u.TokensValidAfter+1)
		_, err = tx.exec(`UPDATE users SET oidc_codes = $1, issued_high = GREATEST(issued_high, $2) WHERE id = $3`,
			formatRevokedSessions(live), iat, u.ID)
		return err
	})
	if err != nil {
		return nil, time.Time{}, d.fail("redeem code", err)
	}
	return u, time.UnixMilli(iat), nil
}

// RefreshApplication checks, at now, that an application's refresh token
// issued at tokenIssued (Unix ms) for the account handle is still good:
// the account is live and enabled, and no revocation came after the
// token. It returns the account (with its grants, which the caller checks)
// and the issue time of the new tokens, recorded as issued.
func (d *DB) RefreshApplication(ctx context.Context, handle []byte, tokenIssued int64, now time.Time) (*User, time.Time, error) {
	ctx, done := d.op(ctx, "RefreshApplication")
	defer done()
	var iat int64
	u, err := scanUser(d.w.queryRow(ctx, `UPDATE users SET `+issuedHigh("$1")+`
		WHERE handle = $2 AND deleted_at IS NULL AND disabled_at IS NULL AND tokens_valid_after < $3
		RETURNING `+userColumns+`, `+issueAfter("$1"), now.UnixMilli(), handle, tokenIssued), &iat)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, ErrSessionEnded
	}
	if err != nil {
		return nil, time.Time{}, d.fail("refresh application", err)
	}
	return u, time.UnixMilli(iat), nil
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
