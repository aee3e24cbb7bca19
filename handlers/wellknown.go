package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/errs"
)

// jwks publishes the public keys that verify Latchkey's tokens, so other
// services can verify them without asking us.
func (h *Handler) jwks(c echo.Context) error {
	set, err := h.keys.JWKS()
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=300")
	return c.Blob(http.StatusOK, "application/jwk-set+json", set)
}

// healthz answers 200 when the database answers.
func (h *Handler) healthz(c echo.Context) error {
	if err := h.db.Ping(c.Request().Context()); err != nil {
		return errs.Wrap(err, errs.Unavailable, "error.database_unavailable")
	}
	return c.String(http.StatusOK, "ok\n")
}
