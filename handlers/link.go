package handlers

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
	"github.com/latchkey/latchkey/views"
)

var errWrongLinkKind = errs.E(errs.Invalid, "error.wrong_link_kind")

// errSignUpClosed refuses a sign-up link once SIGNUP no longer lets its
// address sign up. (An operator's invitation still works.)
var errSignUpClosed = errs.E(errs.Forbidden, "error.signup_closed")

// errLanguageUnknown refuses a language the switcher does not offer.
var errLanguageUnknown = errs.E(errs.Invalid, "error.language_unknown")

// signInLink opens a token as a link this page takes: sign-in, sign-up,
// recovery, an operator's recovery link, an invitation.
func (h *Handler) signInLink(token string) (*auth.Link, error) {
	l, err := h.keys.OpenLink(token, h.clock.Now())
	if err != nil {
		return nil, err
	}
	if l.Kind == auth.LinkEmailChange {
		return nil, errWrongLinkKind
	}
	return l, nil
}

// linkPage (GET and HEAD) checks a sign-in link and asks for a click.
// It never consumes the token: mail scanners open links before people do.
func (h *Handler) linkPage(c echo.Context) error {
	l, err := h.signInLink(c.QueryParam("token"))
	if err != nil {
		return err
	}
	if l.Kind == auth.LinkSignUp && !h.cfg.SignUp.Allows(l.Email) {
		return errSignUpClosed
	}
	newAccount, err := h.db.CheckLink(c.Request().Context(), l.Handle, l.Email, l.IssuedAt.UnixMicro(), l.Kind == auth.LinkOperator)
	if err != nil {
		return err
	}
	v := views.LinkConfirmView{
		Action:       "/signin/link",
		Token:        c.QueryParam("token"),
		Email:        l.Email,
		NewAccount:   newAccount,
		OtherBrowser: !h.isRequestingBrowser(c, l.RequestID),
		Delay:        h.cfg.RecoveryDelay,
	}
	title := "title.link_signin"
	switch {
	case newAccount:
		title = "title.link_signup"
	case l.Kind == auth.LinkRecovery:
		v.Recovery, title = "self", "title.link_recovery"
	case l.Kind == auth.LinkOperator:
		v.Recovery, title = "operator", "title.link_recovery"
	}
	return h.render(c, http.StatusOK, views.LinkConfirm(h.page(c, title), v))
}

// consumeLink (POST) uses a link exactly once, creating the account for a
// sign-up link (or an invitation), starting a recovery for a recovery
// link, and signs this browser in.
func (h *Handler) consumeLink(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return err
	}
	l, err := h.signInLink(c.Request().PostForm.Get("token"))
	if err != nil {
		return err
	}
	return h.useLink(c, l, db.MethodLink)
}

// useLink signs this browser in with l, used by its link or by its code
// (by: db.MethodLink or db.MethodCode): once, through the conditional
// update of the account's row that uses either (so using one voids
// both), creating the account for a sign-up link (or an invitation) and
// starting a recovery for a recovery link.
func (h *Handler) useLink(c echo.Context, l *auth.Link, by string) (err error) {
	method := "link"
	if by == db.MethodCode {
		method = "code"
	}
	defer func() {
		if err != nil {
			h.event(c, events.SignInFailed, l.Handle, slog.String("method", method), slog.String("reason", failureReason(err)))
		}
	}()
	ctx, now := c.Request().Context(), h.clock.Now()
	start := h.newSession(c, by, now)
	var (
		u                *db.User
		iat              time.Time
		created, started bool
	)
	switch l.Kind {
	case auth.LinkSignIn:
		u, iat, err = h.db.ConsumeSignInLink(ctx, l.Handle, l.Email, l.IssuedAt.UnixMicro(), now, start)
	case auth.LinkSignUp, auth.LinkInvite:
		if l.Kind == auth.LinkSignUp && !h.cfg.SignUp.Allows(l.Email) {
			return errSignUpClosed
		}
		u, created, iat, err = h.db.ConsumeSignUpLink(ctx, l.Email, l.IssuedAt.UnixMicro(), auth.NewUserHandle(), now, start)
	case auth.LinkRecovery:
		method = "recovery " + method
		u, iat, started, err = h.db.ConsumeRecoveryLink(ctx, l.Handle, l.Email, l.IssuedAt.UnixMicro(), now, h.cfg.RecoveryDelay, start)
	case auth.LinkOperator:
		method = "operator recovery link"
		u, iat, err = h.db.ConsumeOperatorLink(ctx, l.Handle, l.Email, l.IssuedAt.UnixMicro(), now, start)
	default:
		return errWrongLinkKind
	}
	if err != nil {
		return err
	}
	if err := h.startSession(c, u.Handle, auth.AMREmail, iat, start, now); err != nil {
		return err
	}
	h.adoptLanguage(c, u.Lang)
	if created {
		h.event(c, events.SignUp, u.Handle, slog.Bool("invited", l.Kind == auth.LinkInvite))
	}
	h.event(c, events.SignIn, u.Handle, slog.String("method", method))
	if started {
		h.event(c, events.RecoveryStarted, u.Handle, slog.Time("due", time.UnixMilli(u.RecoveryDue)))
		h.recoveryStartedNotice(c, u)
	}
	// Signed in, this browser needs no link-request cookie any more; it
	// would only add bytes to every request.
	clearCookie(c, cookieLinkRequest)
	next := nextOr(l.Next, "/account")
	if l.Kind == auth.LinkRecovery || l.Kind == auth.LinkOperator {
		next = "/account" // where the recovery is shown
	}
	return c.Redirect(http.StatusSeeOther, next)
}

// isRequestingBrowser reports whether this browser holds the link-request
// cookie of the browser that asked for the link. It only changes what the
// page says; it grants nothing.
func (h *Handler) isRequestingBrowser(c echo.Context, requestID []byte) bool {
	v := cookieValue(c, cookieLinkRequest)
	if v == "" || len(requestID) == 0 {
		return false
	}
	req, err := h.keys.OpenLinkRequest(v, h.clock.Now())
	return err == nil && subtle.ConstantTimeCompare(req.ID, requestID) == 1
}

func timeUnix(sec int64) time.Time { return time.Unix(sec, 0) }
