package oidc

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// oauthError is an OAuth 2.0 / OpenID Connect error: its code is one of
// the names the specifications define, its description says what to fix.
type oauthError struct {
	Code        string
	Description string
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func oauthErr(code, description string) *oauthError { return &oauthError{code, description} }

// The error codes, each named once (RFC 6749 4.1.2.1 and 5.2, OpenID
// Connect Core 3.1.2.6, RFC 6750 3.1).
const (
	errInvalidRequest          = "invalid_request"
	errUnauthorizedClient      = "unauthorized_client"
	errAccessDenied            = "access_denied"
	errUnsupportedResponseType = "unsupported_response_type"
	errInvalidScope            = "invalid_scope"
	errServerError             = "server_error"
	errTemporarilyUnavailable  = "temporarily_unavailable"
	errInvalidClient           = "invalid_client"
	errInvalidGrant            = "invalid_grant"
	errUnsupportedGrantType    = "unsupported_grant_type"
	errLoginRequired           = "login_required"
	errConsentRequired         = "consent_required"
	errRequestNotSupported     = "request_not_supported"
	errRequestURINotSupported  = "request_uri_not_supported"
	errInvalidToken            = "invalid_token"
	// errSlowDown is RFC 8628's token-endpoint error for "too many
	// requests" (registered for the token endpoint response): the answer
	// to a client whose authentications failed too often.
	errSlowDown = "slow_down"
)

// statusOf is the HTTP status of an error answered by the token and
// userinfo endpoints (authorization errors go back in a redirect).
var statusOf = map[string]int{
	errInvalidClient:          http.StatusUnauthorized,
	errInvalidToken:           http.StatusUnauthorized,
	errServerError:            http.StatusInternalServerError,
	errTemporarilyUnavailable: http.StatusServiceUnavailable,
	errSlowDown:               http.StatusTooManyRequests,
}

// writeError answers a token or userinfo request with e as JSON. A failed
// client authentication by HTTP Basic asks for it again (RFC 6749 5.2);
// a bad bearer token says so in WWW-Authenticate (RFC 6750 3).
func writeError(c echo.Context, e *oauthError, basicAuth bool) error {
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusBadRequest
	}
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderCacheControl, "no-store")
	hdr.Set("Pragma", "no-cache")
	switch {
	case e.Code == errInvalidClient && basicAuth:
		hdr.Set("WWW-Authenticate", `Basic realm="latchkey"`)
	case e.Code == errInvalidToken:
		hdr.Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+e.Description+`"`)
	}
	return c.JSON(status, map[string]string{"error": e.Code, "error_description": e.Description})
}
