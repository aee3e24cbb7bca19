// Package ratelimit counts attempts per key in a sliding window.
package ratelimit

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rate is "Limit events per Window".
type Rate struct {
	Limit  int
	Window time.Duration
}

// ParseRate reads "3/15m" (three per fifteen minutes).
func ParseRate(s string) (Rate, error) {
	n, w, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, errors.New(`want "count/duration", such as "30/10m"`)
	}
	limit, err := strconv.Atoi(n)
	if err != nil || limit < 1 || limit > 1_000_000 {
		return Rate{}, fmt.Errorf("bad count %q", n)
	}
	window, err := time.ParseDuration(w)
	if err != nil || window < time.Second || window > 24*time.Hour {
		return Rate{}, fmt.Errorf("bad duration %q (from 1s to 24h)", w)
	}
	return Rate{Limit: limit, Window: window}, nil
}

// Limiter allows at most Rate.Limit events per key in any window of
// Rate.Window (a sliding log: exact, and small because limits are small).
// It tracks at most maxKeys keys. When that many are active, it forgets the
// least recently used of a sample of keys to make room: a flood of new keys
// must not lock everyone else out (failing closed would turn the limiter
// into the attack), and forgetting one idle key's count is cheap to
// tolerate.
type Limiter struct {
	rate    Rate
	maxKeys int

	mu        sync.Mutex
	keys      map[string][]int64 // event times, Unix ms, oldest first
	lastSweep time.Time
}

// New returns a limiter for rate tracking up to maxKeys keys.
func New(rate Rate, maxKeys int) *Limiter {
	return &Limiter{rate: rate, maxKeys: maxKeys, keys: make(map[string][]int64)}
}

// Allow records an event for key at now if the key is under its limit. If
// not, it returns how long until the next event would be allowed.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	nowMs := now.UnixMilli()
	windowMs := l.rate.Window.Milliseconds()
	// Sweep expired keys once per window. Not more often when the table is
	// full: then every call would walk every key under the lock (a full
	// table costs milliseconds a call); evictOne makes room instead.
	if now.Sub(l.lastSweep) > l.rate.Window {
		l.sweep(nowMs - windowMs)
		l.lastSweep = now
	}
	events, known := l.keys[key]
	events = inWindow(events, nowMs-windowMs)
	if len(events) >= l.rate.Limit {
		l.keys[key] = events
		return false, time.Duration(events[0]+windowMs-nowMs) * time.Millisecond
	}
	if !known && len(l.keys) >= l.maxKeys {
		l.evictOne()
	}
	if cap(events) == 0 {
		events = make([]int64, 0, min(l.rate.Limit, 8))
	}
	l.keys[key] = append(events, nowMs)
	return true, 0
}

// Blocked reports, without recording anything, whether key has reached
// its limit at now, and if so how long until it has not.
func (l *Limiter) Blocked(key string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	nowMs := now.UnixMilli()
	windowMs := l.rate.Window.Milliseconds()
	events := inWindow(l.keys[key], nowMs-windowMs)
	if len(events) < l.rate.Limit {
		return 0, false
	}
	return time.Duration(events[0]+windowMs-nowMs) * time.Millisecond, true
}

// inWindow returns the events (oldest first) after cutoff.
func inWindow(events []int64, cutoff int64) []int64 {
	i := 0
	for i < len(events) && events[i] <= cutoff {
		i++
	}
	return events[i:]
}

// Len returns how many keys are tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// evictOne forgets the key with the oldest latest event among a sample
// (map iteration order is random): approximately the least recently used.
func (l *Limiter) evictOne() {
	var (
		victim string
		oldest int64
		seen   int
	)
	for k, events := range l.keys {
		last := int64(0)
		if len(events) > 0 {
			last = events[len(events)-1]
		}
		if seen == 0 || last < oldest {
			victim, oldest = k, last
		}
		if seen++; seen == 64 {
			break
		}
	}
	delete(l.keys, victim)
}

func (l *Limiter) sweep(cutoff int64) {
	for k, events := range l.keys {
		if len(events) == 0 || events[len(events)-1] <= cutoff {
			delete(l.keys, k)
		}
	}
}

// ClientKey returns the rate-limit key for a client address: the address
// itself for IPv4, its /64 for IPv6 (one subscriber usually holds a whole
// /64, so counting single IPv6 addresses would count nothing).
func ClientKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return "invalid"
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}
