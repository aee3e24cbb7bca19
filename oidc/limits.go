package oidc

import (
	"time"

	"github.com/latchkey/latchkey/ratelimit"
)

// clientFailures limits failed client authentications at the token
// endpoint (RATE_LIMIT_SIGNIN), per client id and address, never the
// requests of an address: one application server redeems the codes of
// all its users. A client id past the limit from an address is refused
// there before its secret is compared, so guessing a secret from one
// address gets nowhere; and since the count is per address, someone who
// knows a client id (it is in every authorization URL) cannot lock the
// application's own server out from elsewhere. (Secrets that
// `latchkey admin oidc-client` makes have 256 bits: guessing from many
// addresses is hopeless too.)
type clientFailures struct{ limiter *ratelimit.Limiter }

// maxFailingClients bounds the failure counts kept.
const maxFailingClients = 100_000

func newClientFailures(rate ratelimit.Rate) *clientFailures {
	if rate.Limit == 0 {
		rate = ratelimit.Rate{Limit: 30, Window: 10 * time.Minute}
	}
	return &clientFailures{limiter: ratelimit.New(rate, maxFailingClients)}
}

func failureKey(client, addr string) string { return client + " " + ratelimit.ClientKey(addr) }

// limited reports whether client, asked from addr, must wait (and how
// long) before its authentication is even tried.
func (f *clientFailures) limited(client, addr string, now time.Time) (time.Duration, bool) {
	return f.limiter.Blocked(failureKey(client, addr), now)
}

// failed counts a failed authentication of client from addr.
func (f *clientFailures) failed(client, addr string, now time.Time) {
	f.limiter.Allow(failureKey(client, addr), now)
}
