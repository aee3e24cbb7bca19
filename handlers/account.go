package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/views"
)

// accountPage shows the signed-in user's account.
func (h *Handler) accountPage(c echo.Context) error {
	u, err := h.currentUser(c)
	if err != nil {
		return err
	}
	s := sessionOf(c)
	p := h.page(c, "Your account")
	p.Wide = true
	return h.render(c, http.StatusOK, views.Account(p, views.AccountView{
		Email:       u.Email,
		Passkey:     s.Passkey(),
		AuthTime:    timeUnix(s.AuthTime),
		Now:         h.clock.Now(),
		Created:     u.CreatedAt,
		EmailSignIn: u.EmailSignIn,
	}))
}
