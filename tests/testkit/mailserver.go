// Package testkit is what Latchkey's black-box tests and load script use to
// meet the real app the way people do: an in-process SMTP server that
// receives the real emails, a cookie-keeping browser that sends
// browser-like headers, and a starter for the real app on httptest.
package testkit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Mail is one email as the SMTP server received it.
type Mail struct {
	From, To string
	Subject  string
	Header   netmail.Header
	Text     string
	HTML     string
	Raw      []byte
	// TLS is true when the message travelled over an encrypted connection.
	TLS bool
}

var linkPattern = regexp.MustCompile(`https?://[^\s"<>]+`)

// Links returns every URL in the plain-text part.
func (m Mail) Links() []string { return linkPattern.FindAllString(m.Text, -1) }

// Failure modes of the MailServer.
const (
	MailOK     = iota // accept every message
	MailReject        // answer 451 to every message
	MailSilent        // accept connections, never answer
)

// MailServer is an in-process SMTP server (emersion/go-smtp).
type MailServer struct {
	Addr string
	// TLSConfig trusts the server's certificate when STARTTLS is on.
	TLSConfig *tls.Config

	srv *smtp.Server
	ln  net.Listener

	mu      sync.Mutex
	mails   []Mail
	byAddr  map[string][]Mail // lowercased recipient → its mails
	arrived chan struct{}
	mode    int
	held    []net.Conn
}

// StartMailServer starts an SMTP server on loopback; with startTLS it offers
// STARTTLS with a fresh self-signed certificate. It stops when the test
// ends.
func StartMailServer(tb testing.TB, startTLS bool) *MailServer {
	tb.Helper()
	m, err := NewMailServer(startTLS)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Close)
	return m
}

// NewMailServer starts an SMTP server on loopback (see StartMailServer);
// Close stops it.
func NewMailServer(startTLS bool) (*MailServer, error) {
	m := &MailServer{arrived: make(chan struct{}, 1), byAddr: make(map[string][]Mail)}
	m.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &mailSession{server: m, tls: isTLS}, nil
	}))
	m.srv.Domain = "localhost"
	m.srv.ErrorLog = discardLogger{}
	m.srv.ReadTimeout = 30 * time.Second
	m.srv.WriteTimeout = 30 * time.Second
	m.srv.MaxMessageBytes = 1 << 20
	if startTLS {
		cert, pool, err := selfSignedCert()
		if err != nil {
			return nil, err
		}
		m.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		m.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m.ln = ln
	m.Addr = ln.Addr().String()
	go m.serve()
	return m, nil
}

// serve accepts connections; in MailSilent mode it holds them without a
// word, like a server that stopped answering.
func (m *MailServer) serve() {
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.mu.Lock()
		silent := m.mode == MailSilent
		if silent {
			m.held = append(m.held, conn)
		}
		m.mu.Unlock()
		if !silent {
			go m.srv.Serve(&oneConnListener{conn: conn, addr: m.ln.Addr()})
		}
	}
}

// URL is the SMTP_URL that reaches this server.
func (m *MailServer) URL() string { return "smtp://" + m.Addr }

// SetMode switches between MailOK, MailReject and MailSilent.
func (m *MailServer) SetMode(mode int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mode = mode
	if mode != MailSilent {
		for _, c := range m.held {
			c.Close()
		}
		m.held = nil
	}
}

// Close stops the server.
func (m *MailServer) Close() {
	m.ln.Close()
	m.srv.Close()
	m.SetMode(MailOK)
}

// MailsTo returns the messages received for one address.
func (m *MailServer) MailsTo(addr string) []Mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Mail(nil), m.byAddr[strings.ToLower(addr)]...)
}

// Count returns how many messages have arrived.
func (m *MailServer) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.mails)
}

// WaitFor waits up to 5 s for the n-th (1-based) message to addr.
func (m *MailServer) WaitFor(tb testing.TB, addr string, n int) Mail {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got := m.MailsTo(addr); len(got) >= n {
			return got[n-1]
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no email #%d to %s arrived (got %d)", n, addr, len(m.MailsTo(addr)))
		}
		select {
		case <-m.arrived:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitForMatch waits up to 5 s for a message to addr, after the first
// `after` ones, for which match is true.
func (m *MailServer) WaitForMatch(tb testing.TB, addr string, after int, match func(Mail) bool) Mail {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := m.MailsTo(addr)
		for i := after; i < len(got); i++ {
			if match(got[i]) {
				return got[i]
			}
		}
		if time.Now().After(deadline) {
			var subjects []string
			for _, m := range got {
				subjects = append(subjects, m.Subject)
			}
			tb.Fatalf("no matching email to %s arrived after the first %d; got %q", addr, after, subjects)
		}
		select {
		case <-m.arrived:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Last returns the newest message to addr, failing if there is none.
func (m *MailServer) Last(tb testing.TB, addr string) Mail {
	tb.Helper()
	got := m.MailsTo(addr)
	if len(got) == 0 {
		tb.Fatalf("no email to %s", addr)
	}
	return got[len(got)-1]
}

type mailSession struct {
	server   *MailServer
	tls      bool
	from, to string
}

func (s *mailSession) Reset()        { s.from, s.to = "", "" }
func (s *mailSession) Logout() error { return nil }

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.server.mu.Lock()
	reject := s.server.mode == MailReject
	s.server.mu.Unlock()
	if reject {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "mail system unavailable (test)"}
	}
	s.to = to
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	mail, err := parseMail(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "unparseable message: " + err.Error()}
	}
	mail.From, mail.To, mail.TLS = s.from, s.to, s.tls
	s.server.mu.Lock()
	s.server.mails = append(s.server.mails, mail)
	s.server.byAddr[strings.ToLower(mail.To)] = append(s.server.byAddr[strings.ToLower(mail.To)], mail)
	s.server.mu.Unlock()
	select {
	case s.server.arrived <- struct{}{}:
	default:
	}
	return nil
}

// parseMail decodes a message's subject and its text and HTML parts.
func parseMail(raw []byte) (Mail, error) {
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Mail{}, err
	}
	m := Mail{Raw: raw, Header: msg.Header}
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return Mail{}, err
	}
	err = walkParts(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, &m)
	return m, err
}

func walkParts(contentType, encoding string, body io.Reader, m *Mail) error {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return err
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := walkParts(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, m); err != nil {
				return err
			}
		}
	}
	if strings.EqualFold(encoding, "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	switch mediaType {
	case "text/plain":
		m.Text = string(b)
	case "text/html":
		m.HTML = string(b)
	}
	return nil
}

func selfSignedCert() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool, nil
}

// oneConnListener hands one accepted connection to smtp.Server.Serve.
type oneConnListener struct {
	conn net.Conn
	addr net.Addr
	once sync.Once
	done chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn; l.done = make(chan struct{}) })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { l.done = make(chan struct{}) })
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.addr }

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
