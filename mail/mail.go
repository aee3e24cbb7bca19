// Package mail sends Latchkey's emails: through an SMTP server (go-mail), or,
// in development, by writing them to the log.
package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one email, in plain text and HTML.
type Message struct {
	To      string
	Subject string
	Text    string
	HTML    string
}

// Sender sends email. It is the one interface in Latchkey that really has
// two implementations.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// SMTPConfig is a parsed SMTP_URL.
type SMTPConfig struct {
	Host     string
	Port     int
	Username string
	Password string
	// ImplicitTLS is smtps://.
	ImplicitTLS bool
	// RequireSTARTTLS refuses servers that do not offer STARTTLS
	// (smtp://…?starttls=required); otherwise smtp:// upgrades when offered.
	RequireSTARTTLS bool
	// TLSConfig overrides the TLS settings (tests use it to trust their
	// own certificate).
	TLSConfig *tls.Config
}

// ParseSMTPURL parses smtp://[user:pass@]host[:port][?starttls=required] or
// smtps://[user:pass@]host[:port].
func ParseSMTPURL(raw string) (SMTPConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return SMTPConfig{}, errors.New("SMTP_URL is not a URL")
	}
	var c SMTPConfig
	switch u.Scheme {
	case "smtp":
		c.Port = 587
	case "smtps":
		c.Port = 465
		c.ImplicitTLS = true
	default:
		return c, errors.New("SMTP_URL must start with smtp:// or smtps://")
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return c, errors.New("SMTP_URL has no host")
	}
	if p := u.Port(); p != "" {
		if c.Port, err = strconv.Atoi(p); err != nil || c.Port < 1 || c.Port > 65535 {
			return c, errors.New("SMTP_URL has a bad port")
		}
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	for k, v := range u.Query() {
		switch {
		case k == "starttls" && len(v) == 1 && v[0] == "required" && !c.ImplicitTLS:
			c.RequireSTARTTLS = true
		default:
			return c, fmt.Errorf("SMTP_URL: unknown option %q (only starttls=required, on smtp://)", k)
		}
	}
	return c, nil
}

// SMTPSender sends through an SMTP server, one connection per message.
type SMTPSender struct {
	Config  SMTPConfig
	From    string
	Timeout time.Duration
}

// Send delivers m or returns why it could not, within s.Timeout.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(s.From); err != nil {
		return fmt.Errorf("MAIL_FROM: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return fmt.Errorf("recipient: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}

	opts := []gomail.Option{
		gomail.WithPort(s.Config.Port),
		gomail.WithTimeout(s.Timeout),
	}
	switch {
	case s.Config.ImplicitTLS:
		opts = append(opts, gomail.WithSSL())
	case s.Config.RequireSTARTTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.Config.TLSConfig != nil {
		opts = append(opts, gomail.WithTLSConfig(s.Config.TLSConfig))
	}
	if s.Config.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.Config.Username), gomail.WithPassword(s.Config.Password))
	}
	client, err := gomail.NewClient(s.Config.Host, opts...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	return client.DialAndSendWithContext(ctx, msg)
}

// LogSender writes each email to W instead of sending it. It exists so that
// a first run needs no mail server: the sign-in link appears in the log.
type LogSender struct {
	W  io.Writer
	mu sync.Mutex
}

// Send writes m's plain-text version to the log.
func (l *LogSender) Send(_ context.Context, m Message) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	b.WriteString("\n----- DEVELOPMENT MAIL SENDER: SMTP_URL is empty, so this email was not sent -----\n")
	fmt.Fprintf(&b, "To: %s\nSubject: %s\n\n%s\n", m.To, m.Subject, strings.TrimSpace(m.Text))
	b.WriteString("----- end of email -----\n\n")
	_, err := io.WriteString(l.W, b.String())
	return err
}
