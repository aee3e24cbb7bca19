package handlers

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// The Set-Cookie lines written directly are the ones net/http writes.
func TestCookieLinesMatchNetHTTP(t *testing.T) {
	for _, tc := range []struct {
		value  string
		maxAge int
	}{
		{"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln-_", 600},
		{"", -1},
		{"AQID", 1},
		{"AQID", 0},
	} {
		e := echo.New()
		w := httptest.NewRecorder()
		c := e.NewContext(httptest.NewRequest(http.MethodGet, "/", nil), w)
		addCookie(c, "__Host-at", tc.value, tc.maxAge)
		want := (&http.Cookie{Name: "__Host-at", Value: tc.value, Path: "/", MaxAge: tc.maxAge,
			Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}).String()
		if got := w.Header().Get("Set-Cookie"); got != want {
			t.Errorf("value %q max-age %d:\n got %s\nwant %s", tc.value, tc.maxAge, got, want)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Error("a response that sets a cookie is cacheable")
		}
	}
	// Anything but base64url and dots goes through net/http, which quotes
	// or drops what a cookie cannot carry.
	e := echo.New()
	w := httptest.NewRecorder()
	setCookie(e.NewContext(httptest.NewRequest(http.MethodGet, "/", nil), w), "__Host-x", "a b", time.Minute)
	if got, want := w.Header().Get("Set-Cookie"), (&http.Cookie{Name: "__Host-x", Value: "a b", Path: "/", MaxAge: 60,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}).String(); got != want {
		t.Errorf("unusual value:\n got %s\nwant %s", got, want)
	}
}
