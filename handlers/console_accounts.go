package handlers

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/views"
)

// maxConsoleSearch bounds the console's search text (an address is at
// most 254 characters).
const maxConsoleSearch = 254

// consoleAccounts is GET /admin: the accounts, newest first, in pages of
// 50 by key (?before= the last id of the page before), optionally those
// whose address or domain starts with ?q=.
func (h *Handler) consoleAccounts(c echo.Context) error {
	q := c.QueryParam("q")
	if len(q) > maxConsoleSearch {
		q = q[:maxConsoleSearch]
	}
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	page, err := h.db.Accounts(c.Request().Context(), q, max(before, 0))
	if err != nil {
		return err
	}
	p := h.consolePage(c, "title.console.accounts", "accounts")
	v := views.ConsoleAccountsView{Search: q, Now: h.clock.Now(), First: before > 0, Notice: consoleNotice(p.Page, c.QueryParam("done"))}
	if page.Next != 0 {
		v.Next = strconv.FormatInt(page.Next, 10)
	}
	for _, u := range page.Accounts {
		v.Accounts = append(v.Accounts, views.ConsoleAccountRow{
			ID: auth.Subject(u.Handle), Email: u.Email, Created: u.CreatedAt, SignedIn: u.SignedIn, Passkeys: u.Passkeys,
			Groups: u.Groups, Disabled: u.Disabled, EmailSignInOff: !u.EmailSignIn, RecoveryPending: u.RecoveryDue != 0,
		})
	}
	return h.render(c, http.StatusOK, views.ConsoleAccounts(p, v))
}
