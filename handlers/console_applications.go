package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/views"
)

// consoleApplications is GET /admin/applications: the applications of
// OIDC_CLIENTS_FILE, read-only (the file is the registry: editing it and
// restarting is how one is added or changed).
func (h *Handler) consoleApplications(c echo.Context) error {
	p := h.consolePage(c, "title.console.applications", "applications")
	var v views.ConsoleApplicationsView
	for _, client := range h.oidc.Clients().All() {
		v.Applications = append(v.Applications, views.ConsoleApplication{
			ID: client.ID, Name: client.Name, RedirectURIs: client.RedirectURIs, AllowedGroups: client.AllowedGroups,
			Scopes: client.Scopes, Public: client.Public, Trusted: client.Trusted, BackChannel: client.BackChannelLogoutURI != "",
		})
	}
	return h.render(c, http.StatusOK, views.ConsoleApplications(p, v))
}
