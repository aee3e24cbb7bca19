package handlers

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/i18n"
)

// cookieLanguage remembers the language the person chose on the switcher.
const cookieLanguage = "__Host-lang"

// languageCookieAge is how long the choice is remembered in a browser.
const languageCookieAge = 365 * 24 * time.Hour

// t returns the translator for the request: the language the person chose
// (its cookie), else the one an application asked for (ui_locales), else
// the best match for Accept-Language, else English. (The choice of a
// signed-in person is also in their row: a browser they sign in on takes
// it up then, so requests never read it.)
func (h *Handler) t(c echo.Context) i18n.T {
	accept := c.Request().Header.Get("Accept-Language")
	if ui := uiLocales(c); ui != "" {
		accept = ui + "," + accept
	}
	return h.catalog.T(h.catalog.Pick(accept, cookieValue(c, cookieLanguage)))
}

// maxUILocales bounds the ui_locales value read.
const maxUILocales = 100

// uiLocales returns the languages an OpenID Connect authorization request
// asks its pages in (ui_locales: BCP 47 tags, most preferred first), as
// an Accept-Language list, or "": from the request's own query (the
// authorization endpoint and the sign-in page it sends to) or from the
// authorization request it goes back to ("next", in its query or a form
// already read).
func uiLocales(c echo.Context) string {
	r := c.Request()
	v := ""
	if strings.Contains(r.URL.RawQuery, "ui_locales") {
		v = c.QueryParam("ui_locales")
		if v == "" {
			v = nextUILocales(c.QueryParam("next"))
		}
	}
	if v == "" && r.PostForm != nil {
		v = nextUILocales(r.PostForm.Get("next"))
	}
	if v == "" || len(v) > maxUILocales {
		return ""
	}
	return strings.Join(strings.Fields(v), ",")
}

// nextUILocales returns the ui_locales of the authorization request a
// next path goes back to.
func nextUILocales(next string) string {
	if !strings.HasPrefix(next, "/oauth2/authorize?") || !strings.Contains(next, "ui_locales") {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil {
		return ""
	}
	return u.Query().Get("ui_locales")
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
