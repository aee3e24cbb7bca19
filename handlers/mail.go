package handlers

import (
	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/mail"
)

// sendEmail renders and sends one email. A failure to send becomes an
// errs.Unavailable error whose message tells the person to try again; the
// cause is logged, never shown.
func (h *Handler) sendEmail(c echo.Context, to, subject string, html, text templ.Component) error {
	htmlBody, err := h.renderString(c, html)
	if err != nil {
		return err
	}
	textBody, err := h.renderString(c, text)
	if err != nil {
		return err
	}
	if err := h.mailer.Send(c.Request().Context(), mail.Message{To: to, Subject: subject, Text: textBody, HTML: htmlBody}); err != nil {
		h.log.Error("sending email failed", "subject", subject, "err", err)
		return errs.Wrap(err, errs.Unavailable, "We couldn't send the email just now. Nothing was changed; please try again in a minute.")
	}
	return nil
}
