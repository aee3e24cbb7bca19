package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/latchkey/latchkey/db"
)

// Revocations is this instance's in-memory set of recently revoked users and
// sessions. Requests read it without database reads; a poller refreshes it
// from the users table, and local sign-outs add to it at once. An entry is
// kept only while an access token it voids can still be valid (its access
// TTL), so the set stays small.
//
// Reads take a read lock (no allocation, no contention between readers);
// writes add in place, and expired entries are swept at most once a second.
// (An earlier copy-on-write version cloned both maps on every sign-out,
// which a burst of sign-outs turned into megabytes of garbage each.)
type Revocations struct {
	accessTTL time.Duration
	clock     Clock

	mu sync.RWMutex
	// users maps a subject to the instant (Unix ms) at or before which its
	// tokens are void, and when the entry may be forgotten.
	users map[string]userRevocation
	// sessions maps a signed-out session to when it may be forgotten.
	sessions  map[sessionKey]int64
	lastSweep int64
}

type sessionKey struct{ sub, sid string }

type userRevocation struct{ validAfter, forgetAt int64 }

// NewRevocations returns an empty set.
func NewRevocations(accessTTL time.Duration, clock Clock) *Revocations {
	return &Revocations{accessTTL: accessTTL, clock: clock,
		users: map[string]userRevocation{}, sessions: map[sessionKey]int64{}}
}

// Revoked reports whether a token of subject sub, session sid, issued at
// iat (Unix ms) has been revoked.
func (r *Revocations) Revoked(sub, sid string, iat int64) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if u, ok := r.users[sub]; ok && iat <= u.validAfter {
		return true
	}
	_, ok := r.sessions[sessionKey{sub, sid}]
	return ok
}

// Len returns how many users and sessions the set holds.
func (r *Revocations) Len() (users, sessions int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.users), len(r.sessions)
}

// RevokeUser voids, on this instance at once, every token of sub issued at
// or before validAfter (Unix ms).
func (r *Revocations) RevokeUser(sub string, validAfter int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addUser(sub, validAfter, r.sweep()+r.keep())
}

// RevokeSession voids, on this instance at once, every token of one session.
func (r *Revocations) RevokeSession(sub, sid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addSession(sub, sid, r.sweep()+r.keep())
}

// Apply merges polled rows into the set.
func (r *Revocations) Apply(rows []db.Revocation) {
	if len(rows) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweep()
	for _, row := range rows {
		sub := Subject(row.Handle)
		// An entry must outlive every access token it voids: those were
		// all issued before the row changed, so revoked_at + TTL suffices.
		forget := row.RevokedAt + r.keep()
		if row.TokensValidAfter > 0 {
			r.addUser(sub, row.TokensValidAfter, forget)
		}
		for _, rs := range row.RevokedSessions {
			r.addSession(sub, rs.SID, forget)
		}
	}
}

// Sweep drops expired entries (the poller calls it, so that the set
// shrinks even when nothing new is revoked).
func (r *Revocations) Sweep() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweep()
}

// keep is how long an entry must be kept (ms): an access token's life,
// plus the one second of leeway verification allows and a second to spare.
func (r *Revocations) keep() int64 { return r.accessTTL.Milliseconds() + 2000 }

// sweep drops expired entries, at most once a second, and returns now
// (Unix ms). The caller holds the write lock.
func (r *Revocations) sweep() int64 {
	now := r.clock.Now().UnixMilli()
	if now-r.lastSweep < 1000 {
		return now
	}
	r.lastSweep = now
	for k, v := range r.users {
		if v.forgetAt <= now {
			delete(r.users, k)
		}
	}
	for k, v := range r.sessions {
		if v <= now {
			delete(r.sessions, k)
		}
	}
	return now
}

func (r *Revocations) addUser(sub string, validAfter, forgetAt int64) {
	cur := r.users[sub]
	r.users[sub] = userRevocation{validAfter: max(validAfter, cur.validAfter), forgetAt: max(forgetAt, cur.forgetAt)}
}

func (r *Revocations) addSession(sub, sid string, forgetAt int64) {
	k := sessionKey{sub, sid}
	r.sessions[k] = max(forgetAt, r.sessions[k])
}

// Poller keeps a Revocations current from the database.
type Poller struct {
	DB          *db.DB
	Revocations *Revocations
	Clock       Clock
	AccessTTL   time.Duration
	LinkTTL     time.Duration // tombstones that void older sign-up links stay this long
	Interval    time.Duration // how often to poll; well under the 2 s promise
	Logger      *slog.Logger

	cursor int64
}

// overlap re-reads rows changed shortly before the last one seen, so a
// write that committed late (its timestamp taken before a poll, its commit
// landing after) is never missed. Applying a row twice is harmless.
const overlap = 10 * time.Second

// Load reads every revocation that can still matter (changed within the
// access TTL); call it once before serving.
func (p *Poller) Load(ctx context.Context) error {
	p.cursor = p.Clock.Now().Add(-p.AccessTTL - overlap).UnixMilli()
	return p.Poll(ctx)
}

// Poll reads revocations changed since the last poll.
func (p *Poller) Poll(ctx context.Context) error {
	rows, err := p.DB.RevocationsSince(ctx, p.cursor-overlap.Milliseconds())
	if err != nil {
		return err
	}
	for _, r := range rows {
		p.cursor = max(p.cursor, r.RevokedAt)
	}
	p.Revocations.Apply(rows)
	p.Revocations.Sweep()
	return nil
}

// Run polls every Interval until ctx ends, and once a minute purges the
// tombstones that no token and no sign-up link can need any more.
func (p *Poller) Run(ctx context.Context) {
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	lastPurge := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			p.Logger.Error("revocation poll failed", "err", err)
		}
		if now := p.Clock.Now(); now.Sub(lastPurge) > time.Minute {
			lastPurge = now
			before := now.Add(-p.AccessTTL - overlap).UnixMilli()
			releasedBefore := now.Add(-p.LinkTTL - overlap).UnixMicro()
			if _, err := p.DB.PurgeTombstones(ctx, before, releasedBefore); err != nil && ctx.Err() == nil {
				p.Logger.Error("tombstone purge failed", "err", err)
			}
		}
	}
}
