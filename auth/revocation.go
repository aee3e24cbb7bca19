package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/events"
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

// Apply merges revocation rows read from the database into the set.
func (r *Revocations) Apply(rows []db.Revocation) {
	if len(rows) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.sweep()
	for _, row := range rows {
		sub := Subject(row.Handle)
		// An entry must outlive every access token it voids. Those were
		// issued at or before the stamp (or before the sign-out), by
		// clocks that may differ from ours: keep it an access token's
		// life past the latest of the stamp, the revocation and now.
		forget := max(row.RevokedAt, row.TokensValidAfter, now) + r.keep()
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

// Poller keeps a Revocations current from the database. It catches up by
// revocation number, which the database assigns in each revoking write
// (never by an instance's clock): it reads the rows numbered above the
// last it has seen. On PostgreSQL it is woken by every revocation
// (LISTEN/NOTIFY) and polls as a safety net; on SQLite it polls.
type Poller struct {
	DB          *db.DB
	Revocations *Revocations
	Clock       Clock
	AccessTTL   time.Duration
	LinkTTL     time.Duration // tombstones that void older sign-up links stay this long
	Interval    time.Duration // how often to poll; well under the 2 s promise
	// Push uses the database's notifications when it has them.
	Push   bool
	Logger *slog.Logger

	cursor  int64 // the highest revocation number read
	failing bool  // the last poll failed (logged once, until it recovers)
}

// maxClockSkew is how far apart instances' clocks may be for a starting
// instance to still load every revocation that can matter, and how far
// in the future a revocation may be dated before it is logged as a sign
// of a clock that is off.
const maxClockSkew = 5 * time.Minute

// purgeMargin is how long past the last moment a tombstone can matter it
// is kept, for clocks that differ a little.
const purgeMargin = 10 * time.Second

// Load reads the revocation number reached so far and every revocation
// that can still matter (revoked within an access token's life); call it
// once before serving.
func (p *Poller) Load(ctx context.Context) error {
	since := p.Clock.Now().Add(-p.AccessTTL - maxClockSkew).UnixMilli()
	seq, rows, err := p.DB.RecentRevocations(ctx, since)
	if err != nil {
		return err
	}
	p.cursor = seq
	p.apply(rows)
	return nil
}

// Poll reads the revocations numbered above the last one read.
func (p *Poller) Poll(ctx context.Context) error {
	rows, err := p.DB.RevocationsAfter(ctx, p.cursor)
	if err != nil {
		return err
	}
	p.apply(rows)
	p.Revocations.Sweep()
	return nil
}

func (p *Poller) apply(rows []db.Revocation) {
	now := p.Clock.Now()
	for _, r := range rows {
		p.cursor = max(p.cursor, r.Seq)
		if ahead := time.UnixMilli(r.RevokedAt).Sub(now); ahead > 2*time.Second {
			// Harmless to the order (numbers, not times, decide it), but
			// a clock this far off shortens or stretches tokens' lives.
			events.Log(context.Background(), p.Logger, slog.LevelWarn, events.ClockSkew, "",
				slog.String("ahead", ahead.Round(time.Millisecond).String()), slog.Int64("revocation", r.Seq))
		}
	}
	p.Revocations.Apply(rows)
}

// Run keeps the set current until ctx ends: it polls every Interval, at
// once when the database announces a revocation, and after every
// (re)connection of the listening connection (to catch up on anything
// announced while it was away). Once a minute it purges the tombstones
// that no token and no sign-up link can need any more.
func (p *Poller) Run(ctx context.Context) {
	wake := make(chan struct{}, 1)
	if p.Push && p.DB.Pushes() {
		go p.DB.Listen(ctx, func() {
			select {
			case wake <- struct{}{}:
			default: // a poll is due already
			}
		}, func(err error) {
			p.Logger.Warn("listening for revocations failed; polling until it reconnects", "err", err)
		})
	}
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	lastPurge := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-wake:
		}
		err := p.Poll(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !p.failing:
			p.failing = true
			p.Logger.Error("revocation catch-up failed; retrying (tokens revoked meanwhile on other instances are caught up once it works)", "err", err)
		case err == nil && p.failing:
			p.failing = false
			p.Logger.Info("revocation catch-up works again")
		}
		if now := p.Clock.Now(); err == nil && now.Sub(lastPurge) > time.Minute {
			lastPurge = now
			before := now.Add(-p.AccessTTL - purgeMargin).UnixMilli()
			releasedBefore := now.Add(-p.LinkTTL - purgeMargin).UnixMicro()
			if _, err := p.DB.PurgeTombstones(ctx, before, releasedBefore); err != nil && ctx.Err() == nil {
				p.Logger.Error("tombstone purge failed", "err", err)
			}
		}
	}
}
