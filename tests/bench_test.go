package tests

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"github.com/latchkey/latchkey/tests/testkit"
)

// benchEnv lifts the rate limits, which would otherwise (rightly) stop a
// benchmark after 30 requests.
var benchEnv = map[string]string{"RATE_LIMIT_SIGNIN": "1000000/1s", "RATE_LIMIT_EMAIL": "1000000/1s", "LOG_LEVEL": "error"}

// BenchmarkRequestSignUpLink measures POST /signin/email for a new address
// through the whole handler stack, with the email rendered but written to
// io.Discard instead of an SMTP conversation.
func BenchmarkRequestSignUpLink(b *testing.B) {
	a := testkit.StartApp(b, testkit.AppOptions{Env: benchEnv, MailLog: io.Discard})
	i := 0
	for b.Loop() {
		i++
		req := formRequest("/signin/email", url.Values{"email": {"bench" + strconv.Itoa(i) + "@example.com"}})
		w := httptest.NewRecorder()
		a.App.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusSeeOther {
			b.Fatalf("status %d", w.Code)
		}
	}
}
