package handlers

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/views"
)

// render renders a page into a pooled buffer, then writes the status, a
// Content-Length and the body in one go. Rendering first means an error
// while rendering never leaves a half-sent page with a 200 status; the
// Content-Length avoids the chunked encoding (and the extra write) that
// templ's Flush would otherwise cause.
func (h *Handler) render(c echo.Context, status int, page templ.Component) error {
	buf := h.buffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer h.putBuffer(buf)
	if err := page.Render(c.Request().Context(), buf); err != nil {
		return err
	}
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	hdr.Set(echo.HeaderContentLength, strconv.Itoa(buf.Len()))
	c.Response().WriteHeader(status)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	_, err := c.Response().Write(buf.Bytes())
	return err
}

// putBuffer returns a rendering buffer to the pool, unless an unusually
// large page grew it: the pool should not pin that memory.
func (h *Handler) putBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= 64<<10 {
		h.buffers.Put(buf)
	}
}

// page returns the layout settings for a page whose title is the message
// id title (with template data as name, value pairs), in the request's
// language.
func (h *Handler) page(c echo.Context, title string, kv ...any) views.Page {
	t := h.t(c)
	return views.Page{Title: t.S(title, kv...), SignedIn: sessionOf(c) != nil, T: t, Path: returnPath(c)}
}

// returnPath is where the language switcher comes back to: this page, as
// asked for (a GET), without a next= it would not follow itself.
func returnPath(c echo.Context) string {
	r := c.Request()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "/"
	}
	u := *r.URL
	if q := u.Query(); q.Has("next") && safeNext(q.Get("next")) == "" {
		q.Del("next")
		u.RawQuery = q.Encode()
	}
	if p := u.RequestURI(); len(p) <= maxNextLength {
		return p
	}
	return "/"
}
