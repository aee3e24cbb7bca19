package oidc

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// Discovery serves /.well-known/openid-configuration (OpenID Connect
// Discovery 1.0): what this provider supports, and where.
func (p *Provider) Discovery(c echo.Context) error {
	iss := p.cfg.Issuer
	c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=300")
	return c.JSON(http.StatusOK, map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + "/oauth2/authorize",
		"token_endpoint":                                 iss + "/oauth2/token",
		"userinfo_endpoint":                              iss + "/oauth2/userinfo",
		"jwks_uri":                                       iss + "/.well-known/jwks.json",
		"end_session_endpoint":                           iss + "/oauth2/logout",
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token"},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{"RS256", "EdDSA"},
		"scopes_supported":                               knownScopes,
		"claims_supported":                               []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "at_hash", "sid", "email", "email_verified", "groups"},
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
		"ui_locales_supported":                           p.cfg.Locales,
		"display_values_supported":                       []string{"page"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":               []string{"S256"},
		"prompt_values_supported":                        []string{"none", "login", "consent"},
		"authorization_response_iss_parameter_supported": true,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"claims_parameter_supported":                     false,
	})
}
