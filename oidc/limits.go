package oidc

import (
	"sync"
	"time"

	"github.com/latchkey/latchkey/ratelimit"
)

// clientFailures limits failed client authentications at the token
// endpoint per client id (RATE_LIMIT_SIGNIN), never per address: one
// application server redeems the codes of all its users. A client past
// the limit is refused before its secret is compared, so guessing a
// secret gets nowhere; an address the client authenticated from within
// the last day is exempt, so that someone who knows a client id (it is
// in every authorization URL) cannot lock its own server out.
type clientFailures struct {
	limiter *ratelimit.Limiter

	mu   sync.Mutex
	good map[goodAddress]time.Time // last successful authentication
}

type goodAddress struct{ client, addr string }

const (
	// goodAddressMemory is how long an address that authenticated as a
	// client stays exempt from that client's failure limit.
	goodAddressMemory = 24 * time.Hour
	// maxGoodAddresses bounds that memory.
	maxGoodAddresses = 10_000
	// maxFailingClients bounds the failure counts kept (one per client
	// id the registry knows, so this is far above any real count).
	maxFailingClients = 10_000
)

func newClientFailures(rate ratelimit.Rate) *clientFailures {
	if rate.Limit == 0 {
		rate = ratelimit.Rate{Limit: 30, Window: 10 * time.Minute}
	}
	return &clientFailures{limiter: ratelimit.New(rate, maxFailingClients), good: map[goodAddress]time.Time{}}
}

// limited reports whether client, asked from addr, must wait (and how
// long) before its authentication is even tried.
func (f *clientFailures) limited(client, addr string, now time.Time) (time.Duration, bool) {
	wait, blocked := f.limiter.Blocked(client, now)
	if !blocked {
		return 0, false
	}
	f.mu.Lock()
	last, ok := f.good[goodAddress{client, ratelimit.ClientKey(addr)}]
	f.mu.Unlock()
	if ok && now.Sub(last) < goodAddressMemory {
		return 0, false
	}
	return wait, true
}

// failed counts a failed authentication of client.
func (f *clientFailures) failed(client string, now time.Time) { f.limiter.Allow(client, now) }

// succeeded remembers that client authenticated from addr.
func (f *clientFailures) succeeded(client, addr string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.good) >= maxGoodAddresses {
		for k, t := range f.good {
			if now.Sub(t) >= goodAddressMemory {
				delete(f.good, k)
			}
		}
		for k := range f.good {
			if len(f.good) < maxGoodAddresses {
				break
			}
			delete(f.good, k) // (random: map order)
		}
	}
	f.good[goodAddress{client, ratelimit.ClientKey(addr)}] = now
}
