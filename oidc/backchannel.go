package oidc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/events"
)

// Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a
// Latchkey session or a whole account's sessions end, the applications
// they signed in are told, server to server, with a logout token POSTed
// to their backchannel_logout_uri. The instance that ends the session
// sends it, at once and in the background (the person's answer never
// waits for an application), and retries with backoff while the
// application does not answer 2xx. Retries live in memory: an instance
// that stops stops retrying (docs/applications.md says so).
const (
	// backChannelTimeout bounds one delivery attempt.
	backChannelTimeout = 5 * time.Second
	// backChannelRetryFor is how long a logout is retried: at least two
	// minutes (attempts after 1, 2, 4, … 64 seconds).
	backChannelRetryFor = LogoutRetryFor
	// backChannelMaxDelay caps the backoff.
	backChannelMaxDelay = 64 * time.Second
	// logoutTokenTTL is a logout token's life (the specification asks for
	// a short one; each attempt signs a new token).
	logoutTokenTTL = 2 * time.Minute
	// maxPendingLogouts bounds the logouts being delivered or retried at
	// once for one application; past it new ones are dropped, each a
	// security event.
	maxPendingLogouts = 1_000
	// maxConcurrentPosts bounds the requests in flight at once to one
	// application: one whose endpoint hangs holds only its own.
	maxConcurrentPosts = 4
)

// BackChannel delivers logout tokens.
type BackChannel struct {
	p      *Provider
	log    *slog.Logger
	client *http.Client

	ctx    context.Context // ends with Close: in-flight requests and waits stop
	cancel context.CancelFunc

	mu      sync.Mutex
	pending int                  // in all
	apps    map[string]*appQueue // by client id
	done    chan struct{}        // closed (and replaced) whenever pending drops to 0
	wg      sync.WaitGroup
}

// appQueue is one application's logouts: how many are pending, and the
// slots of its requests in flight.
type appQueue struct {
	pending int
	slots   chan struct{}
}

func newBackChannel(p *Provider, log *slog.Logger) *BackChannel {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &BackChannel{
		p:   p,
		log: log,
		client: &http.Client{
			Timeout: backChannelTimeout,
			// A redirect is not an answer: the application must take the
			// token at the address it registered.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		apps:   map[string]*appQueue{},
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
}

// LogoutRetryFor is how long a back-channel logout is retried while the
// application does not take it.
const LogoutRetryFor = 2 * time.Minute

// logout is one logout token to deliver: to client, about the account sub
// and, when one session ended, its sid.
type logout struct {
	client   *Client
	sub, sid string
}

// Notify tells the applications what ended of the account handle's
// sessions (see db.Ended), in the background. When one Latchkey session
// ended, each application it signed in gets a token with that session's
// sid and the account's sub. When all ended (sign out everywhere,
// disabling, deletion, an email change) or an application was removed,
// each application granted gets a token with sub only, or, if it requires
// session ids (backchannel_logout_session_required), one per session it
// had.
func (p *Provider) Notify(handle []byte, ended db.Ended) {
	sub := auth.Subject(handle)
	seen := map[logout]bool{}
	send := func(client *Client, sid string) {
		l := logout{client: client, sub: sub, sid: sid}
		if !seen[l] {
			seen[l] = true
			p.backChannel.send(l)
		}
	}
	if ended.Grants == nil {
		for _, s := range ended.Sessions {
			if client, ok := p.clients.Get(s.Client); ok && client.BackChannelLogoutURI != "" {
				send(client, s.SID)
			}
		}
		return
	}
	for _, g := range ended.Grants {
		client, ok := p.clients.Get(g.Client)
		if !ok || client.BackChannelLogoutURI == "" {
			continue
		}
		sent := false
		if client.BackChannelLogoutSessionRequired {
			for _, s := range ended.Sessions {
				if s.Client == client.ID {
					send(client, s.SID)
					sent = true
				}
			}
		}
		if !sent {
			send(client, "")
		}
	}
}

// WaitForLogouts waits until every logout sent so far was delivered or given up,
// or ctx ends; it returns how many are still pending.
func (p *Provider) WaitForLogouts(ctx context.Context) int {
	b := p.backChannel
	for {
		b.mu.Lock()
		n, done := b.pending, b.done
		b.mu.Unlock()
		if n == 0 {
			return 0
		}
		select {
		case <-done:
		case <-ctx.Done():
			return n
		}
	}
}

// Close stops delivering: retries end, requests in flight are cancelled.
func (p *Provider) Close() {
	p.backChannel.cancel()
	p.backChannel.wg.Wait()
}

// send starts delivering l.
func (b *BackChannel) send(l logout) {
	b.mu.Lock()
	q := b.apps[l.client.ID]
	if q == nil {
		q = &appQueue{slots: make(chan struct{}, maxConcurrentPosts)}
		b.apps[l.client.ID] = q
	}
	if q.pending >= maxPendingLogouts || b.ctx.Err() != nil {
		b.mu.Unlock()
		b.event(events.BackChannelLogoutAbandoned, l, 0, "too many logouts pending for this application, or the server is stopping")
		return
	}
	q.pending++
	b.pending++
	b.mu.Unlock()
	b.wg.Go(func() {
		defer b.finished(q)
		b.deliver(l, q)
	})
}

func (b *BackChannel) finished(q *appQueue) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q.pending--
	if b.pending--; b.pending == 0 {
		close(b.done)
		b.done = make(chan struct{})
	}
}

// deliver posts l until the application answers 2xx, retrying with
// backoff for backChannelRetryFor; each failure is a security event.
func (b *BackChannel) deliver(l logout, q *appQueue) {
	start := time.Now()
	delay := time.Second
	for attempt := 1; ; attempt++ {
		err := b.post(l, q)
		if err == nil {
			return
		}
		if b.ctx.Err() != nil {
			return
		}
		b.event(events.BackChannelLogoutFailed, l, attempt, err.Error())
		if time.Since(start) >= backChannelRetryFor {
			b.event(events.BackChannelLogoutAbandoned, l, attempt, "no 2xx answer for "+backChannelRetryFor.String())
			return
		}
		select {
		case <-time.After(delay):
		case <-b.ctx.Done():
			return
		}
		delay = min(2*delay, backChannelMaxDelay)
	}
}

// post makes one attempt: a fresh logout token, POSTed as the form field
// logout_token.
func (b *BackChannel) post(l logout, q *appQueue) error {
	select {
	case q.slots <- struct{}{}:
		defer func() { <-q.slots }()
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
	token, err := b.p.logoutToken(l)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(b.ctx, http.MethodPost, l.client.BackChannelLogoutURI,
		strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // (the address is in the client file; the event names the app)
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errors.New("answered " + strconv.Itoa(resp.StatusCode))
	}
	return nil
}

func (b *BackChannel) event(name events.Name, l logout, attempt int, reason string) {
	attrs := []slog.Attr{slog.String("app", l.client.ID), slog.Int("attempt", attempt), slog.String("reason", reason)}
	if l.sid != "" {
		attrs = append(attrs, slog.String("session", l.sid))
	}
	events.Log(context.Background(), b.log, slog.LevelWarn, name, l.sub, attrs...)
}

// logoutToken signs a logout token for l, as the client's ID tokens are
// signed.
func (p *Provider) logoutToken(l logout) (string, error) {
	now := p.clock.Now().Unix()
	return p.sign(typLogout, l.client.IDTokenAlg, &logoutClaims{
		Issuer: p.cfg.Issuer, Audience: l.client.ID, IssuedAt: now, Expires: now + int64(logoutTokenTTL/time.Second),
		JTI: randomID(), Events: map[string]any{backChannelLogoutEvent: map[string]any{}}, Subject: l.sub, SID: l.sid,
	})
}
