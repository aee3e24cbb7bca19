package auth

import (
	"context"
	"encoding/base64"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchkey/latchkey/db"
)

// Revocations is this instance's in-memory set of recently revoked users and
// sessions. Requests read it without locks or database reads; a poller
// refreshes it from the users table, and local sign-outs add to it at once.
// An entry is kept only while an access token it voids can still be valid
// (its access TTL), so the set stays small.
type Revocations struct {
	accessTTL time.Duration
	clock     Clock

	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[revocationSnapshot]
}

type sessionKey struct{ sub, sid string }

type revocationSnapshot struct {
	// users maps a subject to the instant (Unix ms) at or before which its
	// tokens are void, and when the entry may be forgotten.
	users map[string]userRevocation
	// sessions maps a signed-out session to when it may be forgotten.
	sessions map[sessionKey]int64
}

type userRevocation struct{ validAfter, forgetAt int64 }

// NewRevocations returns an empty set.
func NewRevocations(accessTTL time.Duration, clock Clock) *Revocations {
	r := &Revocations{accessTTL: accessTTL, clock: clock}
	r.snap.Store(&revocationSnapshot{users: map[string]userRevocation{}, sessions: map[sessionKey]int64{}})
	return r
}

// Revoked reports whether a token of subject sub, session sid, issued at
// iat (Unix ms) has been revoked.
func (r *Revocations) Revoked(sub, sid string, iat int64) bool {
	s := r.snap.Load()
	if u, ok := s.users[sub]; ok && iat <= u.validAfter {
		return true
	}
	_, ok := s.sessions[sessionKey{sub, sid}]
	return ok
}

// Len returns how many users and sessions the set holds.
func (r *Revocations) Len() (users, sessions int) {
	s := r.snap.Load()
	return len(s.users), len(s.sessions)
}

// RevokeUser voids, on this instance at once, every token of sub issued at
// or before validAfter (Unix ms).
func (r *Revocations) RevokeUser(sub string, validAfter int64) {
	r.update(func(s *revocationSnapshot, forgetAt int64) bool {
		return s.addUser(sub, validAfter, forgetAt)
	})
}

// RevokeSession voids, on this instance at once, every token of one session.
func (r *Revocations) RevokeSession(sub, sid string) {
	r.update(func(s *revocationSnapshot, forgetAt int64) bool {
		return s.addSession(sub, sid, forgetAt)
	})
}

// Apply merges polled rows into the set.
func (r *Revocations) Apply(rows []db.Revocation) {
	if len(rows) == 0 {
		return
	}
	r.update(func(s *revocationSnapshot, _ int64) bool {
		changed := false
		for _, row := range rows {
			sub := base64.RawURLEncoding.EncodeToString(row.Handle)
			// An entry must outlive every access token it voids: those were
			// all issued before the row changed, so revoked_at + TTL suffices.
			forget := row.RevokedAt + r.accessTTL.Milliseconds() + 2000
			if row.TokensValidAfter > 0 && s.addUser(sub, row.TokensValidAfter, forget) {
				changed = true
			}
			for _, rs := range row.RevokedSessions {
				if s.addSession(sub, rs.SID, forget) {
					changed = true
				}
			}
		}
		return changed
	})
}

// update copies the snapshot, lets fn change it, drops expired entries and
// publishes the result if anything changed. Writes are rare (sign-outs), so
// copy-on-write keeps reads free of locks.
func (r *Revocations) update(fn func(s *revocationSnapshot, forgetAt int64) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now().UnixMilli()
	old := r.snap.Load()
	next := &revocationSnapshot{users: maps.Clone(old.users), sessions: maps.Clone(old.sessions)}
	changed := fn(next, now+r.accessTTL.Milliseconds()+2000)
	for k, v := range next.users {
		if v.forgetAt <= now {
			delete(next.users, k)
			changed = true
		}
	}
	for k, v := range next.sessions {
		if v <= now {
			delete(next.sessions, k)
			changed = true
		}
	}
	if changed {
		r.snap.Store(next)
	}
}

func (s *revocationSnapshot) addUser(sub string, validAfter, forgetAt int64) bool {
	cur, ok := s.users[sub]
	if ok && cur.validAfter >= validAfter && cur.forgetAt >= forgetAt {
		return false
	}
	s.users[sub] = userRevocation{validAfter: max(validAfter, cur.validAfter), forgetAt: max(forgetAt, cur.forgetAt)}
	return true
}

func (s *revocationSnapshot) addSession(sub, sid string, forgetAt int64) bool {
	k := sessionKey{sub, sid}
	if cur, ok := s.sessions[k]; ok && cur >= forgetAt {
		return false
	}
	s.sessions[k] = forgetAt
	return true
}

// Poller keeps a Revocations current from the database.
type Poller struct {
	DB          *db.DB
	Revocations *Revocations
	Clock       Clock
	AccessTTL   time.Duration
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
	return nil
}

// Run polls every Interval until ctx ends, and once a minute purges
// deleted accounts' tombstones that no token can need any more.
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
			if _, err := p.DB.PurgeTombstones(ctx, before); err != nil && ctx.Err() == nil {
				p.Logger.Error("tombstone purge failed", "err", err)
			}
		}
	}
}
