package handlers

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
	"github.com/latchkey/latchkey/views"
)

// signInWithCode (POST /signin/code, form code) signs this browser in
// with the one-time code of the last email it asked for: for someone who
// reads the email on a phone and signs in on a laptop. The code works
// only with this browser's link-request cookie (which holds the code's
// MAC, never the code), as long as the link, and once: it is used through
// the same conditional update of the account's row as the link, so
// using either voids both. Wrong codes are counted where every instance
// sees them (the account's row; for an address without an account, this
// instance's memory, since the cookie that also counts them can be
// replayed), and after db.MaxCodeFailures the page says to ask for a new
// email. A malformed code is a 400 that counts nothing.
func (h *Handler) signInWithCode(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return err
	}
	req, expired := h.linkRequest(c)
	l := req.Link
	switch {
	case expired:
		return h.refuseCode(c, http.StatusGone, "sent.code_expired", nil, "expired")
	case l == nil:
		return h.refuseCode(c, http.StatusBadRequest, "sent.code_no_request", nil, "no_code_request")
	case !h.clock.Now().Before(l.IssuedAt.Add(h.cfg.LinkTTL)):
		return h.refuseCode(c, http.StatusGone, "sent.code_expired", l.Handle, "expired")
	}
	code, ok := auth.NormalizeCode(c.Request().PostForm.Get("code"))
	if !ok {
		return h.renderSent(c, http.StatusBadRequest, views.SentView{Error: "sent.code_malformed"})
	}
	if req.Tries >= db.MaxCodeFailures || (!accountCode(l) && h.codeTries.voided(l.Email, l.IssuedAt.UnixMicro())) {
		return h.refuseCode(c, http.StatusGone, "sent.code_void", l.Handle, "code_void")
	}
	if !h.keys.CheckCode(l, req.CodeMAC, code) {
		return h.wrongCode(c, req)
	}
	err := h.useLink(c, l, db.MethodCode)
	if errs.Code(err) == errs.Gone {
		// Used, by its link or its code; a newer link used; or too many
		// wrong codes counted on another instance.
		return h.renderSent(c, http.StatusGone, views.SentView{Void: "sent.code_void"})
	}
	return err
}

// accountCode reports whether l's wrong codes are counted in an
// account's row: a sign-in or recovery link's. (A sign-up's, and a
// stand-in's, are counted per address in memory.)
func accountCode(l *auth.Link) bool { return l.Kind == auth.LinkSignIn || l.Kind == auth.LinkRecovery }

// refuseCode answers a code that cannot work here (status, the message
// id why) and logs it as a failed sign-in.
func (h *Handler) refuseCode(c echo.Context, status int, why string, handle []byte, reason string) error {
	h.event(c, events.SignInFailed, handle, slog.String("method", "code"), slog.String("reason", reason))
	return h.renderSent(c, status, views.SentView{Void: why})
}

// wrongCode counts a wrong code for req's link: in the account's row, or
// for an address without an account in this instance's memory, and in
// the cookie. At db.MaxCodeFailures the code is void.
func (h *Handler) wrongCode(c echo.Context, req *auth.LinkRequest) error {
	l, now := req.Link, h.clock.Now()
	var (
		failures int
		voided   bool
	)
	if accountCode(l) {
		var err error
		if failures, voided, err = h.db.CodeFailed(c.Request().Context(), l.Handle, l.Email, l.IssuedAt.UnixMicro()); err != nil {
			return err
		}
	} else {
		failures, voided = h.codeTries.failed(l.Email, l.IssuedAt.UnixMicro(), l.IssuedAt.Add(h.cfg.LinkTTL), now)
	}
	req.Tries = max(req.Tries+1, failures)
	voided = voided || req.Tries >= db.MaxCodeFailures
	h.setLinkRequest(c, req)
	if voided {
		return h.refuseCode(c, http.StatusGone, "sent.code_void", l.Handle, "code_void")
	}
	h.event(c, events.SignInFailed, l.Handle, slog.String("method", "code"), slog.String("reason", "wrong_code"))
	return h.renderSent(c, http.StatusBadRequest, views.SentView{Error: "sent.code_wrong", TriesLeft: db.MaxCodeFailures - req.Tries})
}

// codeTries counts, on this instance, the wrong codes typed for
// addresses without an account (sign-up codes, and the stand-ins of
// emails that carried none), per address, for the newest link tried, as
// an account's row does (see db.CodeFailed). The link-request cookie
// counts them too, but whoever holds a cookie can send an older copy of
// it again. Entries are forgotten once their link has expired; at most
// maxLimiterKeys are kept.
type codeTries struct {
	mu sync.Mutex
	m  map[string]codeTry
}

type codeTry struct {
	link     int64 // the newest link tried, its issue time (Unix µs)
	failures int
	forget   time.Time // when that link expires
}

// voided reports whether the codes of the link issued at link to email
// are void: enough wrong codes for it or a newer link.
func (ct *codeTries) voided(email string, link int64) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	e, ok := ct.m[email]
	return ok && e.failures >= db.MaxCodeFailures && e.link >= link
}

// failed counts a wrong code for the link issued at link to email, which
// expires at expires; it returns the count and whether the code is void.
func (ct *codeTries) failed(email string, link int64, expires, now time.Time) (int, bool) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.m == nil {
		ct.m = make(map[string]codeTry)
	}
	e, known := ct.m[email]
	if known && !now.Before(e.forget) {
		e, known = codeTry{}, false
	}
	switch {
	case link > e.link:
		e = codeTry{link: link, failures: 1, forget: expires}
	case e.failures < db.MaxCodeFailures:
		e.failures++
	}
	if !known && len(ct.m) >= maxLimiterKeys {
		ct.makeRoom(now)
	}
	ct.m[email] = e
	return e.failures, e.failures >= db.MaxCodeFailures
}

// makeRoom forgets the entries whose links have expired, or, if none
// has, an arbitrary one (a flood of addresses must not stop counting
// for everyone; each entry took a wrong code, which the per-client limit
// counts).
func (ct *codeTries) makeRoom(now time.Time) {
	for k, e := range ct.m {
		if !now.Before(e.forget) {
			delete(ct.m, k)
		}
	}
	for k := range ct.m {
		if len(ct.m) < maxLimiterKeys {
			return
		}
		delete(ct.m, k)
	}
}
