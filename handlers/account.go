package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
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
	v := views.AccountView{
		Email:       u.Email,
		Passkey:     s.Passkey(),
		AuthTime:    timeUnix(s.AuthTime),
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
	if u.RecoveryDue != 0 {
		v.RecoveryDue = time.UnixMilli(u.RecoveryDue)
		v.RecoveryReady = u.RecoveryReady(s.AuthTime, v.Now)
	}
	for _, k := range creds {
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
	p := h.page(c, "title.account")
	p.Wide = true
	return h.render(c, status, views.Account(p, v))
}
