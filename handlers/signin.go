package handlers

import (
	"crypto/rand"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/views"
)

// signInPage shows the email field and the passkey button.
func (h *Handler) signInPage(c echo.Context) error {
	f := views.SignInForm{Next: safeNext(c.QueryParam("next"))}
	return h.render(c, http.StatusOK, views.SignIn(h.page(c, "Sign in"), f))
}

// requestLink emails a sign-in link (known address) or a sign-up link (new
// address) and always answers 303 → /signin/sent, so the response never
// tells whether an account exists. Past the per-address limit it answers
// the same and sends nothing.
func (h *Handler) requestLink(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return err
	}
	f := views.SignInForm{Email: c.Request().PostForm.Get("email"), Next: safeNext(c.Request().PostForm.Get("next"))}
	if !f.Validate() {
		return h.render(c, http.StatusBadRequest, views.SignIn(h.page(c, "Sign in"), f))
	}
	requestID := h.linkRequestID(c)
	if ok, _ := h.emailLimiter.Allow(f.Email, h.clock.Now()); ok {
		if err := h.sendSignInEmail(c, f.Email, f.Next, requestID); err != nil {
			if errs.Code(err) != errs.Unavailable {
				return err
			}
			f.Problem = errs.Message(err)
			return h.render(c, http.StatusServiceUnavailable, views.SignIn(h.page(c, "Sign in"), f))
		}
	}
	setCookie(c, cookieLinkRequest, h.keys.Seal(auth.PurposeLinkRequest, requestID, h.clock.Now().Add(h.cfg.LinkTTL)), h.cfg.LinkTTL)
	return c.Redirect(http.StatusSeeOther, "/signin/sent")
}

// sendSignInEmail sends what an address should get: a sign-in link for an
// account that signs in by email, a sign-up link for a new address, and a
// notice (no link) for a passkey-only account.
func (h *Handler) sendSignInEmail(c echo.Context, email, next string, requestID []byte) error {
	handle, emailSignIn, err := h.db.LinkTarget(c.Request().Context(), email)
	switch {
	case errs.Code(err) == errs.NotFound:
		return h.sendLink(c, &auth.Link{Kind: auth.LinkSignUp, Email: email, Next: next, RequestID: requestID}, "signup", "")
	case err != nil:
		return err
	case !emailSignIn:
		return h.sendPasskeyOnlyNotice(c, email)
	}
	return h.sendLink(c, &auth.Link{Kind: auth.LinkSignIn, Handle: handle, Email: email, Next: next, RequestID: requestID}, "signin", "")
}

// sendLink seals l (issued now) and emails it to l.Email. The link is built
// from BASE_URL only, never from the request's Host or forwarding headers.
func (h *Handler) sendLink(c echo.Context, l *auth.Link, purpose, oldEmail string) error {
	l.IssuedAt = h.clock.Now()
	token, err := h.keys.SealLink(l, h.cfg.LinkTTL)
	if err != nil {
		return err
	}
	path := "/signin/link?token="
	if l.Kind == auth.LinkEmailChange {
		path = "/account/email/confirm?token="
	}
	e := views.LinkEmail{
		Link:     h.absoluteURL(path + token),
		Email:    l.Email,
		Host:     h.cfg.BaseURL.Host,
		Minutes:  views.Minutes(h.cfg.LinkTTL),
		Purpose:  purpose,
		OldEmail: oldEmail,
	}
	return h.sendEmail(c.Request().Context(), l.Email, e.Subject(), views.LinkEmailHTML(e), views.LinkEmailText(e))
}

// linkRequestID returns this browser's link-request id from its cookie, or
// a new one. Reusing it means every link this browser asks for is
// recognised as its own.
func (h *Handler) linkRequestID(c echo.Context) []byte {
	if v := cookieValue(c, cookieLinkRequest); v != "" {
		if id, err := h.keys.Open(auth.PurposeLinkRequest, v, h.clock.Now()); err == nil && len(id) == 12 {
			return id
		}
	}
	id := make([]byte, 12)
	rand.Read(id)
	return id
}

// sentPage asks the person to check their email.
func (h *Handler) sentPage(c echo.Context) error {
	return h.render(c, http.StatusOK, views.Sent(h.page(c, "Check your email"), h.cfg.LinkTTL))
}

// homePage shows whether the visitor is signed in, from the token alone.
func (h *Handler) homePage(c echo.Context) error {
	var v views.HomeView
	if s := sessionOf(c); s != nil {
		v.SignedIn = true
		v.Passkey = s.Passkey()
	}
	title := "Welcome"
	if v.SignedIn {
		title = "Signed in"
	}
	return h.render(c, http.StatusOK, views.Home(h.page(c, title), v))
}

// currentUser returns the signed-in user's row. If the account no longer
// exists (deleted in another browser), it signs this browser out.
func (h *Handler) currentUser(c echo.Context) (*db.User, error) {
	s := sessionOf(c)
	if s == nil {
		return nil, errSignedOut
	}
	u, err := h.db.UserByHandle(c.Request().Context(), s.Handle())
	if errs.Code(err) == errs.NotFound {
		h.clearSessionCookies(c)
		return nil, &signedOutError{message: "This account no longer exists."}
	}
	return u, err
}
