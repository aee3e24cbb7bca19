package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/i18n"
)

// cookieLanguage remembers the language the person chose on the switcher.
const cookieLanguage = "__Host-lang"

// languageCookieAge is how long the choice is remembered in a browser.
const languageCookieAge = 365 * 24 * time.Hour

// t returns the translator for the request: the language the person chose
// (its cookie), else the best match for Accept-Language, else English.
// (The choice of a signed-in person is also in their row: a browser they
// sign in on takes it up then, so requests never read it.)
func (h *Handler) t(c echo.Context) i18n.T {
	return h.catalog.T(h.catalog.Pick(c.Request().Header.Get("Accept-Language"), cookieValue(c, cookieLanguage)))
}

// tFor returns the translator for an email to someone whose chosen
// language is stored ("" if none): that, else the request's.
func (h *Handler) tFor(c echo.Context, stored string) i18n.T {
	if h.catalog.Supported(stored) {
		return h.catalog.T(stored)
	}
	return h.t(c)
}

// adoptLanguage sets the language cookie from an account's stored choice
// at sign-in, unless this browser has a choice of its own.
func (h *Handler) adoptLanguage(c echo.Context, stored string) {
	if stored != "" && cookieValue(c, cookieLanguage) == "" && h.catalog.Supported(stored) {
		setCookie(c, cookieLanguage, stored, languageCookieAge)
	}
}

// setLanguage is the language switcher (POST /language): it remembers the
// choice in a cookie and, for a signed-in person, in their row, and goes
// back to the page it was on.
func (h *Handler) setLanguage(c echo.Context) error {
	if err := parseForm(c); err != nil {
		return err
	}
	lang := c.Request().PostForm.Get("lang")
	if !h.catalog.Supported(lang) {
		return errLanguageUnknown
	}
	setCookie(c, cookieLanguage, lang, languageCookieAge)
	if s := sessionOf(c); s != nil {
		if u, err := h.currentUser(c); err == nil {
			if err := h.db.SetLanguage(c.Request().Context(), u.ID, lang); err != nil {
				return err
			}
		}
	}
	return c.Redirect(http.StatusSeeOther, nextOr(c.Request().PostForm.Get("next"), "/"))
}
