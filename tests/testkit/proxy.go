package testkit

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of a server (the test's PostgreSQL), which
// a test can cut or make hang, as an outage or a network fault would.
type Proxy struct {
	Addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]bool
}

type proxyMode int

const (
	proxyUp   proxyMode = iota
	proxyDown           // connections are closed at once: a server that is down
	proxyHang           // connections are accepted and never answered: a network that drops packets
)

// StartProxy starts a proxy to target on loopback; it stops when the test
// ends.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{}}
	go p.serve()
	tb.Cleanup(func() {
		ln.Close()
		p.closeAll()
	})
	return p
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		if mode != proxyDown {
			p.conns[c] = true
		}
		p.mu.Unlock()
		switch mode {
		case proxyDown:
			c.Close()
		case proxyHang:
			// Held open, silent, until the mode changes.
		case proxyUp:
			go p.forward(c)
		}
	}
}

func (p *Proxy) forward(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		p.drop(c)
		return
	}
	p.mu.Lock()
	p.conns[s] = true
	p.mu.Unlock()
	go func() { io.Copy(s, c); p.drop(s); p.drop(c) }()
	io.Copy(c, s)
	p.drop(c)
	p.drop(s)
}

func (p *Proxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *Proxy) set(m proxyMode) {
	p.mu.Lock()
	p.mode = m
	p.mu.Unlock()
	p.closeAll()
}

// Cut closes every connection and refuses new ones, as a stopped server.
func (p *Proxy) Cut() { p.set(proxyDown) }

// Hang closes every connection and leaves new ones unanswered, as a
// network that drops every packet.
func (p *Proxy) Hang() { p.set(proxyHang) }

// Restore forwards new connections again (held ones are closed).
func (p *Proxy) Restore() { p.set(proxyUp) }
