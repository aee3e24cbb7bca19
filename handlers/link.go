package handlers

import (
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/views"
)

var errWrongLinkKind = errs.E(errs.Invalid, "This link is meant for another page. Open it exactly as it appears in the email.")

// linkPage (GET and HEAD) checks a sign-in link and asks for a click.
// It never consumes the token: mail scanners open links before people do.
func (h *Handler) linkPage(c echo.Context) error {
	l, err := h.keys.OpenLink(c.QueryParam("token"), h.clock.Now())
	if err != nil {
		return err
	}
	if l.Kind != auth.LinkSignIn && l.Kind != auth.LinkSignUp {
		return errWrongLinkKind
	}
	newAccount, err := h.db.CheckLink(c.Request().Context(), l.Handle, l.Email, l.IssuedAt.UnixMicro())
	if err != nil {
		return err
	}
	v := views.LinkConfirmView{
		Action:       "/signin/link",
		Token:        c.QueryParam("token"),
		Email:        l.Email,
		NewAccount:   newAccount,
		OtherBrowser: !h.isRequestingBrowser(c, l.RequestID),
	}
	title := "Sign in"
	if newAccount {
		title = "Create your account"
	}
	return h.render(c, http.StatusOK, views.LinkConfirm(h.page(c, title), v))
}

// consumeLink (POST) uses a sign-in or sign-up link exactly once, creating
// the account for a sign-up link, and signs this browser in.
func (h *Handler) consumeLink(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return err
	}
	l, err := h.keys.OpenLink(c.Request().PostForm.Get("token"), h.clock.Now())
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var (
		u   *db.User
		iat time.Time
	)
	switch l.Kind {
	case auth.LinkSignIn:
		u, iat, err = h.db.ConsumeSignInLink(ctx, l.Handle, l.Email, l.IssuedAt.UnixMicro(), h.clock.Now())
	case auth.LinkSignUp:
		u, _, iat, err = h.db.ConsumeSignUpLink(ctx, l.Email, l.IssuedAt.UnixMicro(), auth.NewUserHandle(), h.clock.Now())
	default:
		return errWrongLinkKind
	}
	if err != nil {
		return err
	}
	if err := h.startSession(c, u.Handle, auth.AMREmail, iat); err != nil {
		return err
	}
	// Signed in, this browser needs no link-request cookie any more; it
	// would only add bytes to every request.
	clearCookie(c, cookieLinkRequest)
	return c.Redirect(http.StatusSeeOther, nextOr(l.Next, "/account"))
}

// isRequestingBrowser reports whether this browser holds the link-request
// cookie of the browser that asked for the link. It only changes what the
// page says; it grants nothing.
func (h *Handler) isRequestingBrowser(c echo.Context, requestID []byte) bool {
	v := cookieValue(c, cookieLinkRequest)
	if v == "" || len(requestID) == 0 {
		return false
	}
	id, err := h.keys.Open(auth.PurposeLinkRequest, v, h.clock.Now())
	return err == nil && subtle.ConstantTimeCompare(id, requestID) == 1
}

func timeUnix(sec int64) time.Time { return time.Unix(sec, 0) }
