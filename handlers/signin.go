package handlers

import (
	"crypto/rand"
	"errors"
	"net/http"

	"github.com/a-h/templ"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/i18n"
	"github.com/latchkey/latchkey/mail"
	"github.com/latchkey/latchkey/views"
)

// signInPage shows the email field and the passkey button. An
// application that sends the person here may say which address it
// expects (login_hint): the field starts with it.
func (h *Handler) signInPage(c echo.Context) error {
	f := views.SignInForm{Next: safeNext(c.QueryParam("next"))}
	if hint, err := mail.NormalizeAddress(c.QueryParam("login_hint")); err == nil {
		f.Email = hint
	}
	return h.render(c, http.StatusOK, views.SignIn(h.page(c, "title.signin"), f))
}

// requestLink emails a sign-in link (known address) or a sign-up link (new
// address) and always answers 303 → /signin/sent, so the response never
// tells whether an account exists. Past the per-address limit it answers
// the same and sends nothing.
func (h *Handler) requestLink(c echo.Context) error {
	return h.answerEmailRequest(c, views.SignIn, h.sendSignInEmail, true)
}

// requestRecovery is "Lost your passkey?": it answers exactly as
// requestLink does (same page, same limits, no enumeration) and emails a
// recovery link to an account with passkeys that signs in by email. It
// takes no next: a recovery link has none, and whatever this browser's
// request cookie holds must not differ by which answer the address got.
func (h *Handler) requestRecovery(c echo.Context) error {
	return h.answerEmailRequest(c, views.Recover, h.sendRecoveryEmail, false)
}

// answerEmailRequest is what every "email me" form does: check the
// address (the form again, 400, if it is not one), send what the address
// should get unless it has had its share, and answer 303 → /signin/sent
// whatever the address is. The link-request cookie then holds what the
// code of the email needs (see auth.LinkRequest): for an email without a
// code (a notice), or none at all, a stand-in that no code matches,
// counted like a sign-up's, so that neither the cookie nor what the code
// field answers tells whether the address has an account.
func (h *Handler) answerEmailRequest(c echo.Context, page func(views.Page, views.SignInForm) templ.Component,
	send func(c echo.Context, email, next string, requestID []byte) (*sentCode, error), takesNext bool) error {
	if err := parseForm(c); err != nil {
		return err
	}
	f := views.SignInForm{Email: c.Request().PostForm.Get("email")}
	if takesNext {
		f.Next = safeNext(c.Request().PostForm.Get("next"))
	}
	if !f.Validate() {
		return h.render(c, http.StatusBadRequest, page(h.page(c, "title.signin"), f))
	}
	req, _ := h.linkRequest(c)
	if ok, _ := h.emailLimiter.Allow(f.Email, h.clock.Now()); ok {
		sent, err := send(c, f.Email, f.Next, req.ID)
		if err != nil {
			if errs.Code(err) != errs.Unavailable {
				return err
			}
			f.Problem = errs.Message(err)
			return h.render(c, http.StatusServiceUnavailable, page(h.page(c, "title.signin"), f))
		}
		if sent == nil {
			sent = h.standInCode(f.Email, f.Next, req.ID)
		}
		req.Link, req.CodeMAC, req.Tries = sent.link, sent.mac, 0
	} else if req.Link == nil || req.Link.Email != f.Email {
		// Nothing sent: the code of an earlier email to the same address
		// still works here; for another address, a stand-in.
		sent := h.standInCode(f.Email, f.Next, req.ID)
		req.Link, req.CodeMAC, req.Tries = sent.link, sent.mac, 0
	}
	h.setLinkRequest(c, req)
	return c.Redirect(http.StatusSeeOther, "/signin/sent")
}

// sentCode is the link an email carried with its code, and the code's
// MAC (never the code itself): what the link-request cookie keeps.
type sentCode struct {
	link *auth.Link
	mac  []byte
}

// standInCode is what the link-request cookie holds when the email
// carried no code: a link like a sign-up's, with a random MAC that no
// code matches.
func (h *Handler) standInCode(email, next string, requestID []byte) *sentCode {
	mac := make([]byte, 32)
	rand.Read(mac)
	return &sentCode{link: &auth.Link{Kind: auth.LinkSignUp, IssuedAt: h.clock.Now(), Email: email, Next: next, RequestID: requestID}, mac: mac}
}

// sendSignInEmail sends what an address should get: a sign-in link for an
// account that signs in by email, a sign-up link for a new address (or a
// notice that sign-up is closed), and a notice (no link) for a
// passkey-only or disabled account. Links come with a code.
func (h *Handler) sendSignInEmail(c echo.Context, email, next string, requestID []byte) (*sentCode, error) {
	t, err := h.db.LinkTarget(c.Request().Context(), email)
	switch {
	case errs.Code(err) == errs.NotFound:
		return h.sendSignUpEmail(c, email, next, requestID)
	case err != nil:
		return nil, err
	case t.Disabled:
		return nil, h.sendDisabledNotice(c, email, h.tFor(c, t.Lang))
	case !t.EmailSignIn:
		return nil, h.sendPasskeyOnlyNotice(c, email, h.tFor(c, t.Lang))
	}
	return h.sendLinkWithCode(c, &auth.Link{Kind: auth.LinkSignIn, Handle: t.Handle, Email: email, Next: next, RequestID: requestID}, "signin", h.tFor(c, t.Lang))
}

// sendSignUpEmail sends a new address a sign-up link, or, when SIGNUP
// does not let it sign up, a notice that says so.
func (h *Handler) sendSignUpEmail(c echo.Context, email, next string, requestID []byte) (*sentCode, error) {
	if !h.cfg.SignUp.Allows(email) {
		return nil, h.sendSignUpClosedNotice(c, email, h.t(c))
	}
	return h.sendLinkWithCode(c, &auth.Link{Kind: auth.LinkSignUp, Email: email, Next: next, RequestID: requestID}, "signup", h.t(c))
}

// sendRecoveryEmail sends what an address should get when someone says
// its passkey is lost: a recovery link for an account with passkeys that
// signs in by email; for an account without passkeys a plain sign-in link
// (a link sign-in is all it needs); otherwise what a link request gets.
// A passkey-only account has no self-service way back: its notice says
// so, and names the operator.
func (h *Handler) sendRecoveryEmail(c echo.Context, email, next string, requestID []byte) (*sentCode, error) {
	t, err := h.db.LinkTarget(c.Request().Context(), email)
	if err != nil || t.Disabled || !t.EmailSignIn || t.Passkeys == 0 {
		return h.sendSignInEmail(c, email, next, requestID)
	}
	return h.sendLinkWithCode(c, &auth.Link{Kind: auth.LinkRecovery, Handle: t.Handle, Email: email, RequestID: requestID}, "recovery", h.tFor(c, t.Lang))
}

// recoverPage is "Lost your passkey?": what recovery does, and the form.
func (h *Handler) recoverPage(c echo.Context) error {
	f := views.SignInForm{Email: c.QueryParam("email")}
	if f.Email != "" && !f.Validate() {
		f = views.SignInForm{}
	}
	return h.render(c, http.StatusOK, views.Recover(h.page(c, "title.recover"), f))
}

// sendLink seals l (issued now) and emails it to l.Email, in t's
// language. The link is built from BASE_URL only, never from the request's
// Host or forwarding headers.
func (h *Handler) sendLink(c echo.Context, l *auth.Link, purpose, oldEmail string, t i18n.T) error {
	_, err := h.sendLinkAndCode(c, l, purpose, oldEmail, t, "")
	return err
}

// sendLinkWithCode is sendLink for a link that comes with a one-time code
// for the browser that asked (see signInWithCode). It returns what that
// browser's cookie keeps of it.
func (h *Handler) sendLinkWithCode(c echo.Context, l *auth.Link, purpose string, t i18n.T) (*sentCode, error) {
	code := auth.NewCode()
	mac, err := h.sendLinkAndCode(c, l, purpose, "", t, code)
	if err != nil {
		return nil, err
	}
	return &sentCode{link: l, mac: mac}, nil
}

// sendLinkAndCode sends l, and the code beside it unless it is "",
// returning the code's MAC.
func (h *Handler) sendLinkAndCode(c echo.Context, l *auth.Link, purpose, oldEmail string, t i18n.T, code string) ([]byte, error) {
	l.IssuedAt = h.clock.Now()
	token, err := h.keys.SealLink(l, h.cfg.LinkTTL)
	if err != nil {
		return nil, err
	}
	e := views.LinkEmail{
		T:        t,
		Link:     h.absoluteURL(LinkPath(l.Kind, token)),
		Email:    l.Email,
		Host:     h.cfg.BaseURL.Host,
		TTL:      h.cfg.LinkTTL,
		Purpose:  purpose,
		OldEmail: oldEmail,
		Delay:    h.cfg.RecoveryDelay,
	}
	var mac []byte
	if code != "" {
		e.Code, mac = auth.FormatCode(code), h.keys.CodeMAC(l, code)
	}
	return mac, h.sendEmail(c.Request().Context(), l.Email, e.Subject(), views.LinkEmailHTML(e), views.LinkEmailText(e))
}

// LinkPath is the path and query of a link of kind carrying token: an
// email change is confirmed on its own page, every other link on
// /signin/link.
func LinkPath(kind auth.LinkKind, token string) string {
	if kind == auth.LinkEmailChange {
		return "/account/email/confirm?token=" + token
	}
	return "/signin/link?token=" + token
}

// linkRequest returns what this browser's link-request cookie holds, or
// a new request with a fresh id (expired tells that the cookie had
// expired). Reusing the id means every link this browser asks for is
// recognised as its own.
func (h *Handler) linkRequest(c echo.Context) (req *auth.LinkRequest, expired bool) {
	if v := cookieValue(c, cookieLinkRequest); v != "" {
		r, err := h.keys.OpenLinkRequest(v, h.clock.Now())
		if err == nil && len(r.ID) == auth.RequestIDLength {
			return r, false
		}
		expired = errors.Is(err, auth.ErrSealExpired)
	}
	id := make([]byte, auth.RequestIDLength)
	rand.Read(id)
	return &auth.LinkRequest{ID: id}, expired
}

// setLinkRequest sets the link-request cookie, for as long as its link
// works.
func (h *Handler) setLinkRequest(c echo.Context, req *auth.LinkRequest) {
	expires := h.clock.Now().Add(h.cfg.LinkTTL)
	if req.Link != nil {
		expires = req.Link.IssuedAt.Add(h.cfg.LinkTTL)
	}
	setCookie(c, cookieLinkRequest, h.keys.SealLinkRequest(req, expires), expires.Sub(h.clock.Now()))
}

// sentPage asks the person to check their email, and offers the field
// for the email's code.
func (h *Handler) sentPage(c echo.Context) error {
	return h.renderSent(c, http.StatusOK, views.SentView{})
}

// renderSent renders the "check your email" page with status.
func (h *Handler) renderSent(c echo.Context, status int, v views.SentView) error {
	v.TTL = h.cfg.LinkTTL
	return h.render(c, status, views.Sent(h.page(c, "title.sent"), v))
}

// homePage shows whether the visitor is signed in, from the token alone.
func (h *Handler) homePage(c echo.Context) error {
	var v views.HomeView
	if s := sessionOf(c); s != nil {
		v.SignedIn = true
		v.Passkey = s.Passkey()
	}
	title := "title.home"
	if v.SignedIn {
		title = "title.home_signed_in"
	}
	return h.render(c, http.StatusOK, views.Home(h.page(c, title), v))
}

// currentUser returns the signed-in user's row. If the account no longer
// exists (deleted in another browser) or was disabled, or the row says
// the session has ended (signed out, or older than the account's last
// revocation: this instance's revocation set may not have caught up yet),
// it signs this browser out.
func (h *Handler) currentUser(c echo.Context) (*db.User, error) {
	s := sessionOf(c)
	if s == nil {
		return nil, errSignedOut
	}
	u, err := h.db.UserByHandle(c.Request().Context(), s.Handle())
	switch {
	case errs.Code(err) == errs.NotFound:
		h.clearSessionCookies(c)
		return nil, &signedOutError{message: "error.account_gone"}
	case err == nil && u.Disabled:
		h.clearSessionCookies(c)
		return nil, db.ErrAccountDisabled
	case err == nil && (u.SessionRevoked(s.SID) || int64(s.IssuedAt) <= u.TokensValidAfter):
		h.revocations.RevokeSession(s.Subject, s.SID)
		h.clearSessionCookies(c)
		return nil, &signedOutError{message: "error.signed_out_again"}
	}
	return u, err
}
