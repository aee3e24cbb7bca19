package handlers

import (
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/static"
)

var getHead = []string{http.MethodGet, http.MethodHead}

// Register registers every route and the middleware around them.
func (h *Handler) Register(e *echo.Echo) {
	e.HTTPErrorHandler = h.HTTPErrorHandler
	// (refuseTrace after the headers and the log: a refused TRACE is
	// logged and carries the same security headers as any answer.)
	e.Use(h.logRequests, h.recoverPanics, h.securityHeaders, refuseTrace)

	// Assets and machine endpoints: no session, cacheable.
	e.Match(getHead, "/static/:file", serveStatic)
	e.Match(getHead, "/.well-known/jwks.json", h.jwks, h.oidc.CORS)
	e.Match(getHead, "/.well-known/openid-configuration", h.oidc.Discovery, h.oidc.CORS)
	e.Match(getHead, "/healthz", h.healthz, noStore)

	// Pages and actions: cross-origin protection, a body limit, and the
	// session from the cookies. loadSession answers the errors of what
	// follows it with the session known, so panics are recovered inside it
	// too. (Route-level middleware rather than Echo groups: a group's
	// middleware also swallows unmatched paths, turning 404s and 405s into
	// its own answers.)
	page := []echo.MiddlewareFunc{noStore, h.crossOriginProtection, limitBody, h.loadSession, h.recoverPanics}
	signedIn := append(slices.Clone(page), h.requireSession)
	signIn := append(slices.Clone(page), h.limitClient)
	link := append(slices.Clone(page), noReferrer)

	e.Match(getHead, "/", h.homePage, page...)
	e.Match(getHead, "/signin", h.signInPage, page...)
	e.POST("/signin/email", h.requestLink, signIn...)
	e.Match(getHead, "/signin/sent", h.sentPage, page...)
	e.POST("/signin/code", h.signInWithCode, signIn...)
	e.Match(getHead, "/signin/link", h.linkPage, link...)
	e.POST("/signin/link", h.consumeLink, append(link, h.limitClient)...)
	e.POST("/signout", h.signOut, page...)
	e.Match(getHead, "/signin/recover", h.recoverPage, page...)
	e.POST("/signin/recover", h.requestRecovery, signIn...)
	e.POST("/signin/passkey/begin", h.beginPasskeySignIn, signIn...)
	e.POST("/signin/passkey/finish", h.finishPasskeySignIn, signIn...)

	e.Match(getHead, "/account", h.accountPage, signedIn...)
	e.POST("/signout/everywhere", h.signOutEverywhere, signedIn...)
	e.POST("/account/sessions/:sid/signout", h.signOutSession, signedIn...)
	e.Match(getHead, "/account/reauth", h.reauthPage, signedIn...)
	e.POST("/account/passkeys/begin", h.beginPasskeyRegistration, signedIn...)
	e.POST("/account/passkeys/finish", h.finishPasskeyRegistration, signedIn...)
	e.POST("/account/passkeys/:id/rename", h.renamePasskey, signedIn...)
	e.POST("/account/passkeys/:id/delete", h.deletePasskey, signedIn...)
	// Each request can email a new address: counted like the sign-in
	// endpoints, so one account cannot turn the app into a mailer.
	e.POST("/account/email", h.requestEmailChange, append(slices.Clone(signedIn), h.limitClient)...)
	e.POST("/account/email-signin", h.setEmailSignIn, signedIn...)
	e.POST("/account/recovery/cancel", h.cancelRecovery, signedIn...)
	e.Match(getHead, "/account/delete", h.deleteAccountPage, signedIn...)
	e.POST("/account/delete", h.deleteAccount, signedIn...)
	e.POST("/account/applications/:client/revoke", h.revokeApplication, signedIn...)
	e.POST("/language", h.setLanguage, page...)

	// OpenID Connect. The browser's side (authorize, consent, logout)
	// behaves as every page, except that an authorization request may be
	// a form posted from the application's site (OpenID Connect Core
	// 3.1.2.1): POST /oauth2/authorize checks the origin itself, for the
	// consent page's answer only. The token and userinfo endpoints are
	// called by applications, with their own credentials and no cookies,
	// so they take no cross-origin check and allow CORS for registered
	// origins; the token endpoint limits failed client authentications
	// per client, never requests per address (one application server
	// speaks for all its users).
	e.GET("/oauth2/authorize", h.oidc.Authorize, page...)
	e.POST("/oauth2/authorize", h.oidc.AuthorizePost, noStore, limitBody, h.loadSession, h.recoverPanics)
	e.Match([]string{http.MethodGet, http.MethodPost}, "/oauth2/logout", h.oidc.Logout, page...)
	api := []echo.MiddlewareFunc{noStore, h.oidc.CORS, limitBody}
	e.POST("/oauth2/token", h.oidc.Token, api...)
	e.Match([]string{http.MethodGet, http.MethodPost}, "/oauth2/userinfo", h.oidc.UserInfo, api...)
	for _, path := range []string{"/oauth2/token", "/oauth2/userinfo", "/.well-known/openid-configuration", "/.well-known/jwks.json"} {
		e.OPTIONS(path, preflightRefused, h.oidc.CORS) // CORS answers allowed origins first
	}

	// The operator's console: members of ADMIN_GROUP only (requireAdmin,
	// checked here once for every console route); to everyone else it is
	// an address that does not exist. Changes are POSTs, checked for their
	// origin like every form, and need a recent sign-in (each handler's
	// freshOperator).
	// (The group is checked first, before the origin and the body: to
	// anyone else, no method, origin or body tells these addresses from
	// unknown ones.)
	h.registerConsole(e, []consoleRoute{
		{"/admin", h.consoleAccounts, nil},
		{"/admin/accounts/:id", h.consoleAccount, nil},
		{"/admin/accounts/:id/passkeys/:passkey/delete", nil, h.consoleDeletePasskey},
		{"/admin/accounts/:id/groups", nil, h.consoleGroups},
		{"/admin/accounts/:id/disable", nil, h.consoleDisable},
		{"/admin/accounts/:id/signout", nil, h.consoleSignOut},
		{"/admin/accounts/:id/recovery", nil, h.consoleRecovery},
		{"/admin/accounts/:id/delete", nil, h.consoleDelete},
		{"/admin/invite", h.consoleInvitePage, h.consoleInvite},
		{"/admin/applications", h.consoleApplications, nil},
	})

	// Confirming a new address works from any browser, signed in or not.
	e.Match(getHead, "/account/email/confirm", h.emailChangePage, link...)
	e.POST("/account/email/confirm", h.confirmEmailChange, link...)
}

// consoleRoute is one address of the console: what GET (and HEAD) and
// POST do there, nil for a method it does not take.
type consoleRoute struct {
	path      string
	get, post echo.HandlerFunc
}

// consoleMethods are the methods every console address answers (TRACE
// and CONNECT are refused for every address before routing).
var consoleMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions}

// registerConsole registers the console's addresses for every method,
// each behind requireAdmin (after the session is known, before anything
// else is checked): a method an address does not take is 405 for a member
// of ADMIN_GROUP, and 404, as for an unknown address, for everyone else.
func (h *Handler) registerConsole(e *echo.Echo, routes []consoleRoute) {
	admin := []echo.MiddlewareFunc{noStore, h.loadSession, h.recoverPanics, h.requireAdmin}
	changes := append(slices.Clone(admin), h.crossOriginProtection, limitBody)
	for _, r := range routes {
		for _, m := range consoleMethods {
			switch {
			case (m == http.MethodGet || m == http.MethodHead) && r.get != nil:
				e.Add(m, r.path, r.get, admin...)
			case m == http.MethodPost && r.post != nil:
				e.Add(m, r.path, r.post, changes...)
			default:
				e.Add(m, r.path, methodNotAllowed, admin...)
			}
		}
	}
}

func methodNotAllowed(echo.Context) error { return echo.ErrMethodNotAllowed }

// preflightRefused answers a CORS preflight from an origin that is not a
// registered client's.
func preflightRefused(c echo.Context) error { return c.NoContent(http.StatusForbidden) }

// serveStatic serves the embedded assets, whole. Pages reference them with
// a content hash in the query, so they may be cached for a year, and there
// is nothing to revalidate or to send in ranges (Range and conditional
// headers are ignored: an asset is a few kilobytes).
func serveStatic(c echo.Context) error {
	name := c.Param("file")
	data, err := fs.ReadFile(static.FS, name)
	contentType := mime.TypeByExtension(path.Ext(name))
	if err != nil || strings.Contains(name, "/") || contentType == "" {
		return echo.ErrNotFound
	}
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderCacheControl, "public, max-age=31536000, immutable")
	hdr.Set(echo.HeaderContentType, contentType)
	hdr.Set(echo.HeaderContentLength, strconv.Itoa(len(data)))
	c.Response().WriteHeader(http.StatusOK)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	_, err = c.Response().Write(data)
	return err
}
