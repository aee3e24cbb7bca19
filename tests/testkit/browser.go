package testkit

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
)

// ChromeUA is the User-Agent the Browser sends.
const ChromeUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"

// Browser is one simulated browser: its own cookie jar, browser-like
// headers (Origin and Sec-Fetch-Site on every POST), and no automatic
// redirects, so tests see every 303.
type Browser struct {
	tb     testing.TB
	Base   *url.URL
	Jar    *cookiejar.Jar
	Client *http.Client
	// Header is added to every request (tests set hostile headers here).
	Header http.Header
}

// NewBrowser returns a browser for the site at base.
func NewBrowser(tb testing.TB, base string) *Browser {
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	return &Browser{
		tb:   tb,
		Base: u,
		Jar:  jar,
		Client: &http.Client{
			Jar:           jar,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Header: http.Header{},
	}
}

// Response is a response with its body read.
type Response struct {
	*http.Response
	Body string
}

// URL resolves a path against the site.
func (b *Browser) URL(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return b.Base.String() + path
}

// Get navigates to path.
func (b *Browser) Get(path string) *Response {
	b.tb.Helper()
	req, err := http.NewRequest(http.MethodGet, b.URL(path), nil)
	if err != nil {
		b.tb.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Sec-Fetch-Dest", "document")
	return b.Do(req)
}

// Post submits a form to path, as a same-origin page would.
func (b *Browser) Post(path string, form url.Values) *Response {
	b.tb.Helper()
	req, err := http.NewRequest(http.MethodPost, b.URL(path), strings.NewReader(form.Encode()))
	if err != nil {
		b.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	b.sameOrigin(req)
	return b.Do(req)
}

// PostJSON posts a JSON body (a []byte or string is sent as is) as the
// page's script would with fetch.
func (b *Browser) PostJSON(path string, body any) *Response {
	b.tb.Helper()
	var data []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		data = v
	case string:
		data = []byte(v)
	default:
		var err error
		if data, err = json.Marshal(v); err != nil {
			b.tb.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, b.URL(path), bytes.NewReader(data))
	if err != nil {
		b.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Mode", "cors")
	b.sameOrigin(req)
	return b.Do(req)
}

func (b *Browser) sameOrigin(req *http.Request) {
	req.Header.Set("Origin", b.Base.Scheme+"://"+b.Base.Host)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
}

// Do sends req with the browser's cookies and headers.
func (b *Browser) Do(req *http.Request) *Response {
	b.tb.Helper()
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", ChromeUA)
	}
	for k, v := range b.Header {
		req.Header[k] = v
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		b.tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.tb.Fatal(err)
	}
	return &Response{Response: resp, Body: string(body)}
}

// Cookie returns the value of a cookie the browser holds, or "".
func (b *Browser) Cookie(name string) string {
	for _, c := range b.Jar.Cookies(b.Base) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// SetCookie stores a cookie as if the site had set it.
func (b *Browser) SetCookie(name, value string) {
	b.Jar.SetCookies(b.Base, []*http.Cookie{{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true}})
}

// DeleteCookie drops a cookie from the jar.
func (b *Browser) DeleteCookie(name string) {
	b.Jar.SetCookies(b.Base, []*http.Cookie{{Name: name, Value: "", Path: "/", MaxAge: -1}})
}

// CopyCookies gives other the same cookies as b (a stolen cookie jar).
func (b *Browser) CopyCookies(other *Browser) {
	other.Jar.SetCookies(other.Base, b.Jar.Cookies(b.Base))
}
