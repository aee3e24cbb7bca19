package handlers

import (
	"bytes"
	"context"
	"time"

	"github.com/a-h/templ"

	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/mail"
)

// sendEmail renders and sends one email. A failure to send becomes an
// errs.Unavailable error whose message tells the person to try again; the
// cause is logged, never shown.
func (h *Handler) sendEmail(ctx context.Context, to, subject string, html, text templ.Component) error {
	htmlBody, err := h.renderString(ctx, html)
	if err != nil {
		return err
	}
	textBody, err := h.renderString(ctx, text)
	if err != nil {
		return err
	}
	if err := h.mailer.Send(ctx, mail.Message{To: to, Subject: subject, Text: textBody, HTML: htmlBody}); err != nil {
		h.log.Error("sending email failed", "subject", subject, "err", err)
		return errs.Wrap(err, errs.Unavailable, "error.mail_failed")
	}
	return nil
}

// noticeTimeout bounds sending a notice in the background.
const noticeTimeout = time.Minute

// sendLater sends an email after the response, so a slow mail server never
// delays the person; failures are logged. Wait blocks until every such
// email is done (graceful shutdown).
func (h *Handler) sendLater(to, subject string, html, text templ.Component) {
	h.background.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), noticeTimeout)
		defer cancel()
		_ = h.sendEmail(ctx, to, subject, html, text)
	})
}

// logoutGrace is how long stopping waits for back-channel logouts still
// being delivered before it gives them up.
const logoutGrace = 3 * time.Second

// Wait waits for emails being sent in the background, and a little for
// back-channel logouts still being delivered (their retries end here:
// an instance that stops stops retrying).
func (h *Handler) Wait() {
	ctx, cancel := context.WithTimeout(context.Background(), logoutGrace)
	defer cancel()
	h.oidc.WaitForLogouts(ctx)
	h.oidc.Close()
	h.background.Wait()
}

// renderString renders comp through a pooled buffer: the only allocation
// left is the string itself, at its exact size.
func (h *Handler) renderString(ctx context.Context, comp templ.Component) (string, error) {
	buf := h.buffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer h.putBuffer(buf)
	if err := comp.Render(ctx, buf); err != nil {
		return "", err
	}
	return buf.String(), nil
}
