package ratelimit

import (
	"strconv"
	"testing"
	"time"
)

func TestSlidingWindow(t *testing.T) {
	l := New(Rate{Limit: 3, Window: 15 * time.Minute}, 100)
	now := time.Unix(1_800_000_000, 0)
	for i := range 3 {
		if ok, _ := l.Allow("a", now.Add(time.Duration(i)*time.Minute)); !ok {
			t.Fatalf("event %d refused", i+1)
		}
	}
	ok, wait := l.Allow("a", now.Add(5*time.Minute))
	if ok || wait != 10*time.Minute {
		t.Errorf("fourth event: ok=%v wait=%v, want refused, 10m", ok, wait)
	}
	if ok, _ := l.Allow("b", now); !ok {
		t.Error("another key is limited")
	}
	// Exactly one window after the first event, one more is allowed; not
	// two (the log slides, it does not reset).
	if ok, _ := l.Allow("a", now.Add(15*time.Minute)); !ok {
		t.Error("refused after the first event left the window")
	}
	if ok, _ := l.Allow("a", now.Add(15*time.Minute+time.Second)); ok {
		t.Error("allowed a fourth event within 15 minutes")
	}
}

func TestKeysAreBoundedWithoutLockingOut(t *testing.T) {
	l := New(Rate{Limit: 1, Window: time.Minute}, 2)
	now := time.Now()
	l.Allow("a", now)
	l.Allow("b", now.Add(time.Second))
	// Full: a new key still gets in, and the least recently used one goes.
	if ok, _ := l.Allow("c", now.Add(2*time.Second)); !ok {
		t.Error("a new key was locked out by a full table")
	}
	if l.Len() != 2 {
		t.Errorf("%d keys tracked, want 2", l.Len())
	}
	if ok, _ := l.Allow("b", now.Add(3*time.Second)); ok {
		t.Error("the recently used key was forgotten instead of the oldest")
	}
	if ok, _ := l.Allow("d", now.Add(2*time.Minute)); !ok || l.Len() != 1 {
		t.Errorf("expired keys were not swept: %d keys", l.Len())
	}
}

func TestParseRate(t *testing.T) {
	if r, err := ParseRate("30/10m"); err != nil || r.Limit != 30 || r.Window != 10*time.Minute {
		t.Errorf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "30", "x/10m", "0/10m", "3/0s", "3/48h", "3/soon"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":          "203.0.113.7",
		"::ffff:203.0.113.7":   "203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"garbage":              "invalid",
	} {
		if got := ClientKey(in); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAFullTableIsNotSweptOnEveryCall: with the table full of live keys,
// new keys make room by evicting one, and the whole table is walked at
// most once per window (walking it on every call cost milliseconds each).
func TestAFullTableIsNotSweptOnEveryCall(t *testing.T) {
	const keys = 100
	now := time.Now()
	l := fullLimiter(keys, now)
	swept := l.lastSweep
	for i := range 10 {
		if ok, _ := l.Allow("client "+strconv.Itoa(i), now.Add(time.Minute)); !ok {
			t.Fatalf("a new client was refused by a full table")
		}
	}
	if l.lastSweep != swept || l.Len() != keys {
		t.Errorf("within one window a full table was swept again (%v → %v) or grew to %d keys", swept, l.lastSweep, l.Len())
	}
}

// BenchmarkAllowFullTable measures Allow with the table full of live keys,
// as a flood of distinct clients leaves it: it must not walk every key.
func BenchmarkAllowFullTable(b *testing.B) {
	now := time.Now()
	l := fullLimiter(100_000, now)
	i := 0
	for b.Loop() {
		i++
		l.Allow("client "+strconv.Itoa(i%1000), now)
	}
}

// fullLimiter returns a limiter tracking as many live keys as it can, as a
// flood of distinct clients at now leaves it.
func fullLimiter(keys int, now time.Time) *Limiter {
	l := New(Rate{Limit: 30, Window: 10 * time.Minute}, keys)
	for i := range keys {
		l.Allow("flood "+strconv.Itoa(i), now)
	}
	return l
}

// TestBlockedRecordsNothing: Blocked says whether a key is at its limit,
// and how long until it is not, without counting anything itself.
func TestBlockedRecordsNothing(t *testing.T) {
	l := New(Rate{Limit: 2, Window: time.Minute}, 10)
	now := time.Unix(1_000_000, 0)
	for range 5 {
		if _, blocked := l.Blocked("k", now); blocked {
			t.Fatal("blocked before any event")
		}
	}
	l.Allow("k", now)
	l.Allow("k", now.Add(10*time.Second))
	wait, blocked := l.Blocked("k", now.Add(20*time.Second))
	if !blocked || wait != 40*time.Second {
		t.Errorf("at the limit: blocked %v, wait %s; want true, 40s", blocked, wait)
	}
	if _, blocked := l.Blocked("k", now.Add(61*time.Second)); blocked {
		t.Error("still blocked once the first event left the window")
	}
	if ok, _ := l.Allow("other", now); !ok {
		t.Error("Blocked counted against another key")
	}
}
