package handlers

import (
	"encoding/base64"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/i18n"
	"github.com/latchkey/latchkey/views"
)

// accountPage shows the signed-in user's account: passkeys, sessions, and
// what can be changed.
func (h *Handler) accountPage(c echo.Context) error {
	u, err := h.currentUser(c)
	if err != nil {
		return err
	}
	return h.renderAccount(c, http.StatusOK, u, views.EmailChangeForm{}, "")
}

func (h *Handler) renderAccount(c echo.Context, status int, u *db.User, form views.EmailChangeForm, notice string) error {
	creds, err := h.db.CredentialsOf(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	s := sessionOf(c)
	p := h.page(c, "title.account")
	p.Wide = true
	v := views.AccountView{
		Email:       u.Email,
		Now:         h.clock.Now(),
		Created:     u.CreatedAt,
		EmailSignIn: u.EmailSignIn,
		MaxPasskeys: db.MaxCredentials,
		Fresh:       h.freshSession(c, u),
		EmailForm:   form,
		Notice:      notice,
		Console:     u.InGroup(h.cfg.AdminGroup),
	}
	v.Applications = h.applications(u)
	v.Sessions = h.sessions(c, p.T, u, s, v.Now)
	if u.RecoveryDue != 0 {
		v.RecoveryDue = time.UnixMilli(u.RecoveryDue)
		v.RecoveryReady = u.RecoveryReady(s.AuthTime, v.Now)
	}
	v.Signals = views.PasskeySignals{RPID: h.cfg.BaseURL.Hostname(), UserID: base64.RawURLEncoding.EncodeToString(u.Handle), Name: u.Email}
	for _, k := range creds {
		v.Signals.CredentialIDs = append(v.Signals.CredentialIDs, base64.RawURLEncoding.EncodeToString(k.CredentialID))
		v.Passkeys = append(v.Passkeys, views.PasskeyView{
			ID:             k.ID,
			Name:           k.Name,
			Provider:       auth.ProviderName(k.AAGUID),
			Created:        k.CreatedAt,
			LastUsed:       k.LastUsedAt,
			BackupEligible: k.BackupEligible,
			BackedUp:       k.BackupState,
		})
	}
	return h.render(c, status, views.Account(p, v))
}

// sessions lists where the account is signed in, from its row: this
// browser first (from its token, if the row does not list it: a session
// from before sessions were listed), then the others, most recently
// active first.
func (h *Handler) sessions(c echo.Context, t i18n.T, u *db.User, current *auth.Claims, now time.Time) []views.SessionView {
	this := views.SessionView{ID: current.SID, SignedIn: timeUnix(current.AuthTime), LastActive: now, Current: true,
		How: howMessage(methodOf(current))}
	browser, system := browserAndSystem(c.Request().UserAgent())
	this.Device = describeDevice(t, browser, system, "account.unknown_browser")
	var others []views.SessionView
	for _, s := range u.LiveSessions(now) {
		v := views.SessionView{ID: s.SID, Device: describeDevice(t, s.Browser, s.System, "account.unknown_browser"), How: howMessage(s.Method),
			SignedIn: time.Unix(s.AuthTime, 0), LastActive: time.UnixMilli(s.Rotated)}
		if s.SID == current.SID {
			v.Current, v.LastActive = true, now
			this = v
			continue
		}
		others = append(others, v)
	}
	slices.SortStableFunc(others, func(a, b views.SessionView) int { return b.LastActive.Compare(a.LastActive) })
	return append([]views.SessionView{this}, others...)
}

// howMessage is the message saying how a session signed in (see
// db.RefreshSession.Method), or "" when that is not known.
func howMessage(method string) string {
	switch method {
	case db.MethodPasskey:
		return "account.with_passkey"
	case db.MethodLink:
		return "account.with_link"
	case db.MethodCode:
		return "account.with_code"
	}
	return ""
}
