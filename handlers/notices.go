package handlers

import (
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/i18n"
	"github.com/latchkey/latchkey/views"
)

// sendNotice emails the account holder, after the response, in their
// language (t), about something done on their account, saying when and
// from what kind of browser. Notices never carry a link that signs anyone
// in, and notices of the owner's own actions are not rate limited.
// subject and paragraphs are message ids, with the site's name and host
// as template data (Site, Host) besides data.
func (h *Handler) sendNotice(c echo.Context, to string, t i18n.T, subject string, paragraphs []string, data ...any) {
	data = append(data, "Site", views.SiteName, "Host", h.cfg.BaseURL.Host)
	e := views.NoticeEmail{
		T:        t,
		Subject:  t.S(subject, data...),
		When:     h.clock.Now(),
		Browser:  describeBrowserIn(t, c.Request().UserAgent()),
		IfNotYou: t.S("notice.if_not_you", data...),
		Host:     h.cfg.BaseURL.Host,
	}
	for _, p := range paragraphs {
		e.Paragraphs = append(e.Paragraphs, t.S(p, data...))
	}
	h.sendLater(to, e.Subject, views.NoticeEmailHTML(e), views.NoticeEmailText(e))
}

func (h *Handler) passkeyAddedNotice(c echo.Context, u *db.User, cred *db.Credential) {
	h.sendNotice(c, u.Email, h.tFor(c, u.Lang), "notice.passkey_added.subject", []string{"notice.passkey_added"}, "Name", cred.Name)
}

func (h *Handler) passkeyRemovedNotice(c echo.Context, u *db.User, cred *db.Credential) {
	h.sendNotice(c, u.Email, h.tFor(c, u.Lang), "notice.passkey_removed.subject", []string{"notice.passkey_removed"}, "Name", cred.Name)
}

// sendAnswerNotice is a notice that stands in for a link someone else's
// request would have sent: sent at once (not in the background), like
// the link, and within the per-address limit. subject, paragraphs and
// ifNotYou are message ids.
func (h *Handler) sendAnswerNotice(c echo.Context, to string, t i18n.T, subject string, paragraphs []string, ifNotYou string) error {
	data := []any{"Site", views.SiteName, "Host", h.cfg.BaseURL.Host}
	e := views.NoticeEmail{T: t, Subject: t.S(subject, data...), When: h.clock.Now(), IfNotYou: t.S(ifNotYou, data...), Host: h.cfg.BaseURL.Host}
	for _, p := range paragraphs {
		e.Paragraphs = append(e.Paragraphs, t.S(p, data...))
	}
	return h.sendEmail(c.Request().Context(), to, e.Subject, views.NoticeEmailHTML(e), views.NoticeEmailText(e))
}

// sendPasskeyOnlyNotice answers a link request for a passkey-only account:
// the same response as any address, but the email holds no link.
func (h *Handler) sendPasskeyOnlyNotice(c echo.Context, email string, t i18n.T) error {
	return h.sendAnswerNotice(c, email, t, "notice.passkey_only.subject",
		[]string{"notice.passkey_only.asked", "notice.passkey_only.explain"}, "notice.passkey_only.if_not_you")
}

// browserAndSystem names the kind of browser and system from a
// User-Agent, such as "Firefox" and "Linux" (either "" when unknown): enough
// for a person to recognise, nothing that identifies them.
func browserAndSystem(ua string) (browser, system string) {
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"},
		{"Chromium/", "Chromium"}, {"Safari/", "Safari"}, {"curl/", "curl"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	for _, s := range []struct{ token, name string }{
		{"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Android", "Android"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, s.token) {
			system = s.name
			break
		}
	}
	return browser, system
}

// describeBrowser is browserAndSystem for the logs, always in English:
// "Firefox on Linux", "an unknown browser". It never echoes the header
// itself, which the sender controls.
func describeBrowser(ua string) string {
	browser, system := browserAndSystem(ua)
	if browser == "" {
		browser = "an unknown browser"
	}
	if system == "" {
		return browser
	}
	return browser + " on " + system
}

// describeBrowserIn is browserAndSystem for a person, in their language:
// "Firefox on Linux", "an unknown browser".
func describeBrowserIn(t i18n.T, ua string) string {
	browser, system := browserAndSystem(ua)
	return describeDevice(t, browser, system, "notice.unknown_browser")
}

// describeDevice names a kind of browser and system (as browserAndSystem
// gives them; either "" when unknown) for a person, in their language;
// unknown is the message for a browser it cannot name.
func describeDevice(t i18n.T, browser, system, unknown string) string {
	if browser == "" {
		browser = t.S(unknown)
	}
	if system == "" {
		return browser
	}
	return t.S("notice.browser_on", "Browser", browser, "System", system)
}

// sendEmailTakenNotice tells the owner of an address that someone tried
// to move another account to it. It is sent at once (not in the
// background), like the link it stands in for.
func (h *Handler) sendEmailTakenNotice(c echo.Context, to string, t i18n.T) error {
	return h.sendAnswerNotice(c, to, t, "notice.email_taken.subject",
		[]string{"notice.email_taken.asked", "notice.email_taken.explain"}, "notice.nothing_to_do")
}

// sendDisabledNotice answers a link or recovery request for a disabled
// account: the same response as any address; the email says the account
// is disabled and carries no link.
func (h *Handler) sendDisabledNotice(c echo.Context, email string, t i18n.T) error {
	return h.sendAnswerNotice(c, email, t, "notice.disabled.subject",
		[]string{"notice.disabled.asked", "notice.disabled.explain"}, "notice.disabled.if_not_you")
}

// sendSignUpClosedNotice answers a link request for a new address that
// SIGNUP does not let sign up: the same response as any address; the
// email says why nothing was created.
func (h *Handler) sendSignUpClosedNotice(c echo.Context, email string, t i18n.T) error {
	return h.sendAnswerNotice(c, email, t, "notice.signup_closed.subject",
		[]string{"notice.signup_closed.asked", "notice.signup_closed.explain"}, "notice.nothing_to_do")
}

// recoveryStartedNotice tells the account's address, at once, that a
// recovery started, when it will let a link sign-in add a passkey, and
// how to stop it.
func (h *Handler) recoveryStartedNotice(c echo.Context, u *db.User) {
	t := h.tFor(c, u.Lang)
	due := time.UnixMilli(u.RecoveryDue)
	h.sendNotice(c, u.Email, t, "notice.recovery_started.subject",
		[]string{"notice.recovery_started.opened", "notice.recovery_started.when", "notice.recovery_started.stop"},
		"Date", t.Date(due), "Duration", t.Duration(due.Sub(h.clock.Now())))
}

// recoveryCancelledNotice tells the account's address that its recovery
// was cancelled, and why (a message id).
func (h *Handler) recoveryCancelledNotice(c echo.Context, handle []byte, why string) {
	u, err := h.db.UserByHandle(c.Request().Context(), handle)
	if err != nil {
		h.log.Warn("could not send the recovery-cancelled notice", "err", err)
		return
	}
	h.sendNotice(c, u.Email, h.tFor(c, u.Lang), "notice.recovery_cancelled.subject", []string{why})
}
