package handlers

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
	"github.com/latchkey/latchkey/views"
)

// requestEmailChange sends a confirmation link to the new address (a
// sensitive action). The account changes only when that link is confirmed.
// An address that belongs to another account, or that has had its share of
// emails, gets the same answer and no email.
func (h *Handler) requestEmailChange(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return err
	}
	u, err := h.freshUser(c, "/account")
	if err != nil {
		return err
	}
	form := views.EmailChangeForm{Email: c.Request().PostForm.Get("email")}
	if !form.Validate() {
		return h.renderAccount(c, http.StatusBadRequest, u, form, "")
	}
	if form.Email == u.Email {
		form.Error = "error.same_address"
		return h.renderAccount(c, http.StatusBadRequest, u, form, "")
	}
	ctx := c.Request().Context()
	owner, err := h.db.LinkTarget(ctx, form.Email)
	taken := err == nil
	if err != nil && errs.Code(err) != errs.NotFound {
		return err
	}
	if allowed, _ := h.emailLimiter.Allow(form.Email, h.clock.Now()); allowed {
		// A taken address gets a notice instead of a link: an email goes
		// out either way, so neither the answer nor its timing tells
		// whether the address has an account.
		send := func() error {
			return h.sendEmailTakenNotice(c, form.Email, h.tFor(c, owner.Lang))
		}
		if !taken {
			send = func() error {
				l := &auth.Link{Kind: auth.LinkEmailChange, Handle: u.Handle, Email: form.Email, Next: u.Email}
				return h.sendLink(c, l, "email-change", u.Email, h.tFor(c, u.Lang))
			}
		}
		if err := send(); err != nil {
			if errs.Code(err) != errs.Unavailable {
				return err
			}
			form.Error = errs.Message(err)
			return h.renderAccount(c, http.StatusServiceUnavailable, u, form, "")
		}
	}
	h.event(c, events.EmailChangeStart, u.Handle)
	return h.renderAccount(c, http.StatusOK, u, views.EmailChangeForm{}, h.t(c).S("account.notice.change_sent", "Email", form.Email))
}

// emailChangeLink opens an email-change link. The link's Next field holds
// the address being replaced (sealed, like everything in it).
func (h *Handler) emailChangeLink(c echo.Context, token string) (*auth.Link, error) {
	l, err := h.keys.OpenLink(token, h.clock.Now())
	if err != nil {
		return nil, err
	}
	if l.Kind != auth.LinkEmailChange || l.Next == "" {
		return nil, errWrongLinkKind
	}
	return l, nil
}

// emailChangePage (GET and HEAD) names both addresses and asks for a
// click; like the sign-in link page it never consumes the token.
func (h *Handler) emailChangePage(c echo.Context) error {
	token := c.QueryParam("token")
	l, err := h.emailChangeLink(c, token)
	if err != nil {
		return err
	}
	if err := h.db.CheckEmailChange(c.Request().Context(), l.Handle, l.Next, l.Email, l.IssuedAt.UnixMicro()); err != nil {
		return err
	}
	return h.render(c, http.StatusOK, views.LinkConfirm(h.page(c, "title.email_change"), views.LinkConfirmView{
		Action:   "/account/email/confirm",
		Token:    token,
		Email:    l.Email,
		OldEmail: l.Next,
	}))
}

// confirmEmailChange (POST) makes the change, once. Every token issued
// before it stops working everywhere; the old address gets a notice. This
// browser stays signed in if it was signed in to this account; another
// browser is sent to sign in.
func (h *Handler) confirmEmailChange(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return err
	}
	l, err := h.emailChangeLink(c, c.Request().PostForm.Get("token"))
	if err != nil {
		return err
	}
	// The same person, in the same browser, goes on with a new session
	// with the same proof of identity (a passkey session stays a passkey
	// session): the only one listed after the change.
	s, changedAt := sessionOf(c), h.clock.Now()
	var continuing db.SessionStart
	if s != nil && s.Subject == auth.Subject(l.Handle) {
		continuing = h.newSession(c, methodOf(s), changedAt)
		continuing.Replaces, continuing.AuthTime = "", s.AuthTime
		continuing.Expires = h.sessionExpiry(timeUnix(s.AuthTime), changedAt).UnixMilli()
	}
	u, now, ended, err := h.db.ChangeEmail(c.Request().Context(), l.Handle, l.Next, l.Email, l.IssuedAt.UnixMicro(), changedAt, continuing)
	if err != nil {
		return err
	}
	sub := auth.Subject(u.Handle)
	h.allSessionsEnded(u.Handle, now, ended)
	h.event(c, events.EmailChanged, u.Handle)
	h.sendNotice(c, l.Next, h.tFor(c, u.Lang), "notice.email_changed.subject",
		[]string{"notice.email_changed", "notice.email_changed.signed_out"}, "Email", maskEmail(u.Email))

	t := h.t(c)
	if s == nil {
		h.clearSessionCookies(c)
		return h.render(c, http.StatusOK, views.Message(h.page(c, "title.email_changed"), views.MessageView{
			Title:       t.S("email_changed.title", "Email", u.Email),
			Body:        t.S("email_changed.body"),
			ActionHref:  "/signin",
			ActionLabel: t.S("action.signin"),
		}))
	}
	if s.Subject != sub {
		// Confirmed in a browser signed in to another account: that
		// session has nothing to do with the change and stays.
		return h.render(c, http.StatusOK, views.Message(h.page(c, "title.email_changed"), views.MessageView{
			Title:       t.S("email_changed.other.title", "Email", u.Email),
			Body:        t.S("email_changed.other.body"),
			ActionHref:  "/account",
			ActionLabel: t.S("action.your_account"),
		}))
	}
	// The continuing session's tokens are issued just after the stamp (as
	// ChangeEmail recorded).
	issued, err := h.tokens.IssueAt(now.Add(time.Millisecond), u.Handle, s.AMR, timeUnix(s.AuthTime), continuing.SID, 0)
	if err != nil {
		return err
	}
	h.setSessionCookies(c, issued)
	setSession(c, issued.Claims)
	return h.renderAccount(c, http.StatusOK, u, views.EmailChangeForm{}, t.S("account.notice.email_changed", "Email", u.Email))
}

// maskEmail shows enough of an address to recognise it, not to harvest
// it: "al•••@example.com".
func maskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok {
		return "•••"
	}
	keep := min(2, len(local))
	return local[:keep] + "•••@" + domain
}
