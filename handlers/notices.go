package handlers

import (
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/views"
)

// sendNotice emails the account holder, after the response, about
// something done on their account, saying when and from what kind of
// browser. Notices never carry a link that signs anyone in, and notices of
// the owner's own actions are not rate limited.
func (h *Handler) sendNotice(c echo.Context, to, subject string, paragraphs ...string) {
	e := views.NoticeEmail{
		Subject:    subject,
		Paragraphs: paragraphs,
		When:       views.Stamp(h.clock.Now()),
		Browser:    describeBrowser(c.Request().UserAgent()),
		IfNotYou:   "Sign in to " + views.SiteName + " at " + h.cfg.BaseURL.Host + " (type the address yourself; we never send a link in a notice) and choose \"Sign out everywhere\" on your account page, then review your passkeys and email address.",
		Host:       h.cfg.BaseURL.Host,
	}
	h.sendLater(to, subject, views.NoticeEmailHTML(e), views.NoticeEmailText(e))
}

func (h *Handler) passkeyAddedNotice(c echo.Context, u *db.User, cred *db.Credential) {
	h.sendNotice(c, u.Email, "A passkey was added to your "+views.SiteName+" account",
		"A new passkey, \""+cred.Name+"\", was added to your account. It can now sign in to your account on its own.")
}

func (h *Handler) passkeyRemovedNotice(c echo.Context, u *db.User, cred *db.Credential) {
	h.sendNotice(c, u.Email, "A passkey was removed from your "+views.SiteName+" account",
		"The passkey \""+cred.Name+"\" was removed from your account. It can no longer sign in.")
}

// sendPasskeyOnlyNotice answers a link request for a passkey-only account:
// the same response as any address, but the email holds no link.
func (h *Handler) sendPasskeyOnlyNotice(c echo.Context, email string) error {
	e := views.NoticeEmail{
		Subject: "Sign-in attempt on your " + views.SiteName + " account",
		Paragraphs: []string{
			"Someone asked to sign in to your account by email at " + h.cfg.BaseURL.Host + ".",
			"This account signs in with passkeys only, so no sign-in link was sent. To sign in, use \"Sign in with a passkey\" on the sign-in page.",
		},
		When:     views.Stamp(h.clock.Now()),
		IfNotYou: "You don't need to do anything: without one of your passkeys nobody can sign in.",
		Host:     h.cfg.BaseURL.Host,
	}
	return h.sendEmail(c.Request().Context(), email, e.Subject, views.NoticeEmailHTML(e), views.NoticeEmailText(e))
}

// describeBrowser names the kind of browser and system from a User-Agent,
// coarsely ("Chrome on macOS"), for notices. It never echoes the header
// itself, which the sender controls.
func describeBrowser(ua string) string {
	browser := "an unknown browser"
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"},
		{"Chromium/", "Chromium"}, {"Safari/", "Safari"}, {"curl/", "curl"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	system := ""
	for _, s := range []struct{ token, name string }{
		{"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Android", "Android"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, s.token) {
			system = s.name
			break
		}
	}
	if system == "" {
		return browser
	}
	return browser + " on " + system
}

// sendEmailTakenNotice tells the owner of an address that someone tried
// to move another account to it. It is sent at once (not in the
// background), like the link it stands in for.
func (h *Handler) sendEmailTakenNotice(c echo.Context, to string) error {
	e := views.NoticeEmail{
		Subject: "Someone tried to use your address on " + views.SiteName,
		Paragraphs: []string{
			"Someone signed in to another " + views.SiteName + " account at " + h.cfg.BaseURL.Host + " asked to change its email address to this one.",
			"This address already belongs to your account, so nothing was changed.",
		},
		When:     views.Stamp(h.clock.Now()),
		IfNotYou: "You don't need to do anything.",
		Host:     h.cfg.BaseURL.Host,
	}
	return h.sendEmail(c.Request().Context(), to, e.Subject, views.NoticeEmailHTML(e), views.NoticeEmailText(e))
}

// sendAnswerNotice is a notice that stands in for a link someone else's
// request would have sent: sent at once (not in the background), like
// the link, and within the per-address limit.
func (h *Handler) sendAnswerNotice(c echo.Context, to string, e views.NoticeEmail) error {
	e.When, e.Host = views.Stamp(h.clock.Now()), h.cfg.BaseURL.Host
	return h.sendEmail(c.Request().Context(), to, e.Subject, views.NoticeEmailHTML(e), views.NoticeEmailText(e))
}

// sendDisabledNotice answers a link or recovery request for a disabled
// account: the same response as any address; the email says the account
// is disabled and carries no link.
func (h *Handler) sendDisabledNotice(c echo.Context, email string) error {
	return h.sendAnswerNotice(c, email, views.NoticeEmail{
		Subject: "Sign-in attempt on your disabled " + views.SiteName + " account",
		Paragraphs: []string{
			"Someone asked to sign in to your account at " + h.cfg.BaseURL.Host + " by email.",
			"This account is disabled by the people who run the site, so no sign-in link was sent. If you think this is a mistake, contact them.",
		},
		IfNotYou: "You don't need to do anything: nobody can sign in to a disabled account.",
	})
}

// sendSignUpClosedNotice answers a link request for a new address that
// SIGNUP does not let sign up: the same response as any address; the
// email says why nothing was created.
func (h *Handler) sendSignUpClosedNotice(c echo.Context, email string) error {
	return h.sendAnswerNotice(c, email, views.NoticeEmail{
		Subject: "No " + views.SiteName + " account was created",
		Paragraphs: []string{
			"Someone asked to create an account at " + h.cfg.BaseURL.Host + " with this email address.",
			"New accounts can't be created there with this address: sign-up is by invitation only, or limited to some email domains. Nothing was created. If you were invited, use the link from your invitation.",
		},
		IfNotYou: "You don't need to do anything.",
	})
}

// recoveryStartedNotice tells the account's address, at once, that a
// recovery started, when it will let a link sign-in add a passkey, and
// how to stop it.
func (h *Handler) recoveryStartedNotice(c echo.Context, u *db.User) {
	due := time.UnixMilli(u.RecoveryDue)
	h.sendNotice(c, u.Email, "Someone started recovering your "+views.SiteName+" account",
		"Someone opened an account-recovery link sent to this address, because a passkey was lost.",
		"From "+views.Stamp(due)+" ("+views.Minutes(due.Sub(h.clock.Now()))+" from now), signing in with an emailed link will be able to add a new passkey to your account and remove the old ones.",
		"If it wasn't you, sign in to "+h.cfg.BaseURL.Host+" with one of your passkeys: that cancels the recovery at once.")
}

// recoveryCancelledNotice tells the account's address that its recovery
// was cancelled, and why.
func (h *Handler) recoveryCancelledNotice(c echo.Context, handle []byte, why string) {
	u, err := h.db.UserByHandle(c.Request().Context(), handle)
	if err != nil {
		h.log.Warn("could not send the recovery-cancelled notice", "err", err)
		return
	}
	h.sendNotice(c, u.Email, "The recovery of your "+views.SiteName+" account was cancelled",
		"The account recovery that was under way was cancelled "+why+". Nothing about your passkeys changed.")
}
