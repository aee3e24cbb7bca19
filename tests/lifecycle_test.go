package tests

import (
	"database/sql"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/tests/testkit"
)

// emailLink waits for the next email to addr carrying a link under path
// and returns that link's token.
func emailLink(t *testing.T, a *testkit.App, addr string, after int, path string) string {
	t.Helper()
	m := a.Mail.WaitForMatch(t, addr, after, func(m testkit.Mail) bool { return strings.Contains(m.Text, path+"?token=") })
	return linkToken(t, m)
}

// notice waits for a notice to addr whose subject contains subject, and
// checks that it carries no link at all.
func notice(t *testing.T, a *testkit.App, addr, subject string) testkit.Mail {
	t.Helper()
	m := a.Mail.WaitForMatch(t, addr, 0, func(m testkit.Mail) bool { return strings.Contains(m.Subject, subject) })
	if links := m.Links(); len(links) != 0 {
		t.Errorf("notice %q carries links: %v", m.Subject, links)
	}
	if strings.Contains(m.HTML, "<a ") {
		t.Errorf("notice %q has a link in its HTML", m.Subject)
	}
	for _, want := range []string{"When:", "Wasn't you?"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("notice %q lacks %q:\n%s", m.Subject, want, m.Text)
		}
	}
	return m
}

func TestChangeEmail(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock})
	b := a.Browser(t)
	signIn(t, a, b, "old@example.com")
	other := a.Browser(t)
	signIn(t, a, other, "old@example.com")
	staleLink := requestLink(t, a, a.Browser(t), "old@example.com")

	r := b.Post("/account/email", url.Values{"email": {"New@Example.com"}})
	expectPage(t, r, http.StatusOK, "sent a confirmation link to new@example.com")
	expectPage(t, b.Get("/account"), http.StatusOK, "old@example.com") // nothing changed yet
	tok := emailLink(t, a, "new@example.com", 0, "/account/email/confirm")

	page := a.Browser(t).Get("/account/email/confirm?token=" + tok) // a scanner
	expectPage(t, page, http.StatusOK, "old@example.com", "new@example.com", "Use new@example.com")
	if page.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Error("email confirmation page lacks Referrer-Policy: no-referrer")
	}
	r = b.Post("/account/email/confirm", url.Values{"token": {tok}})
	expectPage(t, r, http.StatusOK, "Your email address is now new@example.com")
	expectPage(t, b.Get("/account"), http.StatusOK, "new@example.com") // this browser: still signed in
	time.Sleep(300 * time.Millisecond)
	if signedIn(t, other) {
		t.Error("another browser is still signed in after the email change")
	}
	n := notice(t, a, "old@example.com", "email address was changed")
	if !strings.Contains(n.Text, "ne•••@example.com") || !strings.Contains(n.Text, "Chrome on Linux") {
		t.Errorf("old-address notice:\n%s", n.Text)
	}
	// Used once; older links to the old address are void; the new address
	// signs in; the old address is free for a new account.
	expectStatus(t, b.Post("/account/email/confirm", url.Values{"token": {tok}}), http.StatusGone)
	expectStatus(t, a.Browser(t).Post("/signin/link", url.Values{"token": {staleLink}}), http.StatusGone)
	signIn(t, a, a.Browser(t), "new@example.com")
	clock.Advance(15 * time.Minute) // old@ has had its 3 emails for now
	fresh := a.Browser(t)
	tok = requestLink(t, a, fresh, "old@example.com")
	expectPage(t, fresh.Get("/signin/link?token="+tok), http.StatusOK, "Create your account")
}

func TestChangeEmailConfirmedElsewhereAsksToSignIn(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "pia@example.com")
	expectStatus(t, b.Post("/account/email", url.Values{"email": {"pia2@example.com"}}), http.StatusOK)
	phone := a.Browser(t)
	r := phone.Post("/account/email/confirm", url.Values{"token": {emailLink(t, a, "pia2@example.com", 0, "/account/email/confirm")}})
	expectPage(t, r, http.StatusOK, "Your email address is now pia2@example.com", `href="/signin"`)
	if phone.Cookie("__Host-at") != "" {
		t.Error("confirming in another browser signed that browser in")
	}
	time.Sleep(300 * time.Millisecond)
	if signedIn(t, b) {
		t.Error("the browser that asked is still signed in with pre-change tokens")
	}
}

// TestChangeEmailConfirmedInAnotherAccountsBrowser: a browser signed in to
// another account confirms the link; that account's session is untouched.
func TestChangeEmailConfirmedInAnotherAccountsBrowser(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	owner, other := a.Browser(t), a.Browser(t)
	signIn(t, a, owner, "quin@example.com")
	signIn(t, a, other, "rae@example.com")
	expectStatus(t, owner.Post("/account/email", url.Values{"email": {"quin2@example.com"}}), http.StatusOK)
	r := other.Post("/account/email/confirm", url.Values{"token": {emailLink(t, a, "quin2@example.com", 0, "/account/email/confirm")}})
	expectPage(t, r, http.StatusOK, "email address is now quin2@example.com", "stays signed in")
	if strings.Contains(r.Body, "Every device that was signed in has been signed out") {
		t.Error("the page tells another account's browser that it was signed out")
	}
	time.Sleep(300 * time.Millisecond)
	expectPage(t, other.Get("/account"), http.StatusOK, "rae@example.com")
	if signedIn(t, owner) {
		t.Error("the changed account's own browser is still signed in with pre-change tokens")
	}
}

func TestChangeEmailToATakenAddressLooksTheSame(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "quin@example.com")
	signIn(t, a, a.Browser(t), "taken@example.com")
	before := len(a.Mail.MailsTo("taken@example.com"))

	free := b.Post("/account/email", url.Values{"email": {"free@example.com"}})
	taken := b.Post("/account/email", url.Values{"email": {"taken@example.com"}})
	expectStatus(t, taken, http.StatusOK)
	norm := func(r *testkit.Response) string {
		return strings.ReplaceAll(strings.ReplaceAll(r.Body, "free@example.com", "X"), "taken@example.com", "X")
	}
	if norm(free) != norm(taken) {
		t.Error("a taken address gets a different answer")
	}
	m := a.Mail.WaitForMatch(t, "taken@example.com", before, func(m testkit.Mail) bool {
		return strings.Contains(m.Subject, "tried to use your address")
	})
	if links := m.Links(); len(links) != 0 {
		t.Errorf("the taken address got a notice with links %v", links)
	}
	expectPage(t, b.Get("/account"), http.StatusOK, "quin@example.com")
	// Bad input on the form.
	expectPage(t, b.Post("/account/email", url.Values{"email": {"not an address"}}), http.StatusBadRequest, "Enter just one email address")
	expectPage(t, b.Post("/account/email", url.Values{"email": {"quin@example.com"}}), http.StatusBadRequest, "already your address")
	// The form counts per client like the sign-in endpoints.
	for i := range 26 {
		b.Post("/account/email", url.Values{"email": {"spam" + itoa(i) + "@example.com"}})
	}
	expectStatus(t, b.Post("/account/email", url.Values{"email": {"spam99@example.com"}}), http.StatusTooManyRequests)
}

func TestEmailChangeRaces(t *testing.T) {
	testkit.EachEngine(t, testEmailChangeRaces)
}

func testEmailChangeRaces(t *testing.T, store testkit.Store) {
	apps := instances(t, store, 3, 0, nil)
	a := apps[0]
	// One account, two pending changes: exactly one wins.
	b := a.Browser(t)
	signIn(t, a, b, "race@example.com")
	expectStatus(t, b.Post("/account/email", url.Values{"email": {"x@example.com"}}), http.StatusOK)
	expectStatus(t, b.Post("/account/email", url.Values{"email": {"y@example.com"}}), http.StatusOK)
	toks := []string{emailLink(t, a, "x@example.com", 0, "/account/email/confirm"), emailLink(t, a, "y@example.com", 0, "/account/email/confirm")}
	codes := confirmAtOnce(t, apps, toks)
	if codes[http.StatusOK] != 1 || codes[http.StatusGone] != 1 {
		t.Errorf("two changes of one account: %v, want one 200 and one 410", codes)
	}
	// The account kept exactly one address: one of x and y signs in to
	// it, the other (and the old one) would create a new account.
	if got := accountsOf(t, a, "x@example.com", "y@example.com", "race@example.com"); got != 1 {
		t.Errorf("%d of x, y and race@ are accounts after the race, want 1", got)
	}

	// Two accounts, one new address: exactly one gets it.
	c1, c2 := a.Browser(t), a.Browser(t)
	signIn(t, a, c1, "one@example.com")
	signIn(t, a, c2, "two@example.com")
	expectStatus(t, c1.Post("/account/email", url.Values{"email": {"both@example.com"}}), http.StatusOK)
	expectStatus(t, c2.Post("/account/email", url.Values{"email": {"both@example.com"}}), http.StatusOK)
	mails := a.Mail.MailsTo("both@example.com")
	if len(mails) != 2 {
		t.Fatalf("%d confirmation emails", len(mails))
	}
	codes = confirmAtOnce(t, apps, []string{linkToken(t, mails[0]), linkToken(t, mails[1])})
	if codes[http.StatusOK] != 1 || codes[http.StatusConflict] != 1 {
		t.Errorf("two accounts to one address: %v, want one 200 and one 409", codes)
	}
	// Opened again, the winner's link is used up and the loser's says at
	// once that the address is taken, before any click.
	opened := map[int]int{}
	for _, m := range mails {
		r := a.Browser(t).Get("/account/email/confirm?token=" + linkToken(t, m))
		opened[r.StatusCode]++
		if r.StatusCode == http.StatusConflict && !strings.Contains(r.Body, "belongs to another account") {
			t.Errorf("the losing link's page does not say why:\n%s", clip(r.Body))
		}
	}
	if opened[http.StatusGone] != 1 || opened[http.StatusConflict] != 1 {
		t.Errorf("opening both links again: %v, want one 410 and one 409", opened)
	}
	// both@ is one account now; of one@ and two@, exactly one moved away.
	if accountsOf(t, a, "both@example.com") != 1 || accountsOf(t, a, "one@example.com", "two@example.com") != 1 {
		t.Error("after the race, the addresses do not belong to exactly two accounts")
	}
}

// accountsOf counts how many of the addresses belong to an account, as a
// person finds out: the link page says "Create your account" for the
// others.
func accountsOf(t *testing.T, a *testkit.App, emails ...string) int {
	t.Helper()
	n := 0
	for _, email := range emails {
		b := a.Browser(t)
		page := b.Get("/signin/link?token=" + requestLink(t, a, b, email))
		expectStatus(t, page, http.StatusOK)
		if !strings.Contains(page.Body, "Create your account") {
			n++
		}
	}
	return n
}

// confirmAtOnce confirms each email-change link at the same moment, each
// on another instance.
func confirmAtOnce(t *testing.T, apps []*testkit.App, toks []string) map[int]int {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
	)
	for i, tok := range toks {
		wg.Go(func() {
			r := apps[i%len(apps)].Browser(t).Post("/account/email/confirm", url.Values{"token": {tok}})
			mu.Lock()
			codes[r.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return codes
}

func TestSensitiveAccountActionsNeedAStepUp(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock})
	b := a.Browser(t)
	signIn(t, a, b, "rob@example.com")
	clock.Advance(11 * time.Minute)
	for _, r := range []*testkit.Response{
		b.Post("/account/email", url.Values{"email": {"rob2@example.com"}}),
		b.Get("/account/delete"),
		b.Post("/account/delete", url.Values{"confirm": {"rob@example.com"}}),
		b.Post("/account/email-signin", url.Values{"enabled": {"false"}}),
	} {
		expectStatus(t, r, http.StatusSeeOther)
		if !strings.HasPrefix(r.Header.Get("Location"), "/account/reauth?next=") {
			t.Errorf("%s %s → %q", r.Request.Method, r.Request.URL.Path, r.Header.Get("Location"))
		}
	}
	expectPage(t, b.Get("/account"), http.StatusOK, "rob@example.com")
	if len(a.Mail.MailsTo("rob2@example.com")) != 0 {
		t.Error("a stale session sent an email-change link")
	}
}

func TestDeleteAccount(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "sue@example.com")
	first := addPasskey(t, a, b)
	expectStatus(t, passkeySignIn(t, b, first), http.StatusOK)
	pk := addPasskey(t, a, b)
	other := a.Browser(t)
	signIn(t, a, other, "sue@example.com")

	page := b.Get("/account/delete")
	expectPage(t, page, http.StatusOK, "sue@example.com", "its 2 passkeys", "every device is signed out", `name="confirm"`)
	expectPage(t, b.Post("/account/delete", url.Values{"confirm": {"someone@example.com"}}), http.StatusBadRequest, "exactly as shown")
	expectPage(t, b.Get("/account"), http.StatusOK, "sue@example.com")

	r := b.Post("/account/delete", url.Values{"confirm": {" SUE@example.com "}})
	expectPage(t, r, http.StatusOK, "Your account has been deleted")
	if !strings.Contains(setCookieHeader(r, "__Host-at"), "Max-Age=0") {
		t.Error("deleting did not clear this browser's cookies")
	}
	if signedIn(t, b) || signedIn(t, other) {
		t.Error("a browser is still signed in after the account was deleted")
	}
	if r := other.Get("/account"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin?next=%2Faccount" {
		t.Errorf("the other browser's /account → %d %q, want 303 to sign in", r.StatusCode, r.Header.Get("Location"))
	}
	notice(t, a, "sue@example.com", "account was deleted")
	// The other browser's stolen-in-time tokens cannot add a passkey.
	expectStatus(t, other.PostJSON("/account/passkeys/begin", nil), http.StatusUnauthorized)
	// The passkeys no longer sign in.
	expectStatus(t, passkeySignIn(t, a.Browser(t), pk), http.StatusNotFound)
	// The address signs up afresh, as a new empty account.
	fresh := a.Browser(t)
	tok := requestLink(t, a, fresh, "sue@example.com")
	expectPage(t, fresh.Get("/signin/link?token="+tok), http.StatusOK, "Create your account")
	expectStatus(t, fresh.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
	if strings.Contains(fresh.Get("/account").Body, "passkey-name") {
		t.Error("the new account inherited passkeys")
	}
}

func TestPasskeyOnlyAccount(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock})
	b := a.Browser(t)
	signIn(t, a, b, "tess@example.com")
	// No passkey yet: email sign-in cannot be turned off.
	expectPage(t, b.Get("/account"), http.StatusOK, "Add a passkey first")
	expectStatus(t, b.Post("/account/email-signin", url.Values{"enabled": {"false"}}), http.StatusConflict)
	pk := addPasskey(t, a, b)
	pending := requestLink(t, a, a.Browser(t), "tess@example.com")

	// A link session cannot turn it off: a passkey sign-in is needed.
	r := b.Post("/account/email-signin", url.Values{"enabled": {"false"}})
	expectStatus(t, r, http.StatusSeeOther)
	expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK)
	expectPage(t, b.Post("/account/email-signin", url.Values{"enabled": {"false"}}), http.StatusOK, "only your passkeys can sign in")
	expectPage(t, b.Get("/account"), http.StatusOK, "Passkeys only", "Turn email sign-in back on")
	notice(t, a, "tess@example.com", "Email sign-in was turned off")

	// A link sent before the switch no longer works.
	expectStatus(t, a.Browser(t).Post("/signin/link", url.Values{"token": {pending}}), http.StatusGone)
	// Asking for a link answers as for any address, and sends a notice.
	before := len(a.Mail.MailsTo("tess@example.com"))
	r = a.Browser(t).Post("/signin/email", url.Values{"email": {"tess@example.com"}})
	expectStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != "/signin/sent" {
		t.Errorf("Location %q", r.Header.Get("Location"))
	}
	// (Match the subject: the earlier notices are sent in the background
	// and may still be arriving.)
	m := a.Mail.WaitForMatch(t, "tess@example.com", before, func(m testkit.Mail) bool { return strings.HasPrefix(m.Subject, "Sign-in attempt") })
	if len(m.Links()) != 0 || !strings.Contains(m.Text, "passkeys only") {
		t.Errorf("passkey-only account got %q with links %v:\n%s", m.Subject, m.Links(), m.Text)
	}

	// The last passkey of a passkey-only account cannot be deleted.
	id := firstPasskeyID(t, b)
	expectPage(t, b.Post("/account/passkeys/"+id+"/delete", nil), http.StatusConflict, "only passkey", "Turn email sign-in back on")
	expectPage(t, b.Get("/account"), http.StatusOK, "passkey-name")

	// Turned back on from the passkey session; links work again.
	expectPage(t, b.Post("/account/email-signin", url.Values{"enabled": {"true"}}), http.StatusOK, "Email sign-in is on")
	notice(t, a, "tess@example.com", "Email sign-in was turned on")
	// The link sent before it was turned off, still in time, stays void.
	expectStatus(t, a.Browser(t).Post("/signin/link", url.Values{"token": {pending}}), http.StatusGone)
	clock.Advance(15 * time.Minute) // the address has had its 3 emails for now
	signIn(t, a, a.Browser(t), "tess@example.com")
	// Bad input.
	expectStatus(t, b.Post("/account/email-signin", url.Values{"enabled": {"maybe"}}), http.StatusBadRequest)
}

func TestPasskeyNotices(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "uli@example.com")
	pk := addPasskey(t, a, b)
	n := notice(t, a, "uli@example.com", "passkey was added")
	if !strings.Contains(n.Text, "Chrome on Linux") {
		t.Errorf("notice does not say which browser:\n%s", n.Text)
	}
	deleteOnlyPasskey(t, b, pk)
	notice(t, a, "uli@example.com", "passkey was removed")
}

func TestLinkTokensWorkOnlyOnTheirOwnPage(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "yuri@example.com")
	expectStatus(t, b.Post("/account/email", url.Values{"email": {"yuri2@example.com"}}), http.StatusOK)
	change := emailLink(t, a, "yuri2@example.com", 0, "/account/email/confirm")
	signin := requestLink(t, a, a.Browser(t), "other@example.com")

	// Each kind of token is refused on the other kind's page, GET and POST.
	for path, tok := range map[string]string{"/signin/link": change, "/account/email/confirm": signin} {
		expectPage(t, a.Browser(t).Get(path+"?token="+tok), http.StatusBadRequest, "meant for another page")
		expectPage(t, a.Browser(t).Post(path, url.Values{"token": {tok}}), http.StatusBadRequest, "meant for another page")
	}
	// Damaged tokens on the email confirmation page.
	for _, bad := range []string{"", "garbage", change[:len(change)-4], change + "AA", strings.Repeat("A", 5000)} {
		expectPage(t, a.Browser(t).Get("/account/email/confirm?token="+url.QueryEscape(bad)), http.StatusBadRequest, "damaged")
		expectPage(t, a.Browser(t).Post("/account/email/confirm", url.Values{"token": {bad}}), http.StatusBadRequest, "damaged")
	}
	// Both still work where they belong.
	expectStatus(t, a.Browser(t).Post("/account/email/confirm", url.Values{"token": {change}}), http.StatusOK)
	expectStatus(t, a.Browser(t).Post("/signin/link", url.Values{"token": {signin}}), http.StatusSeeOther)
}

// TestAnEmailChangeLinkWorksOnce: after changing A→B and back B→A, the
// first link (A→B) is still within its time, and its address matches again;
// it must still be refused, on the page and when posted.
func TestAnEmailChangeLinkWorksOnce(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	b := a.Browser(t)
	signIn(t, a, b, "ann@example.com")
	change := func(to string, n int) string {
		expectPage(t, b.Post("/account/email", url.Values{"email": {to}}), http.StatusOK, "sent a confirmation link to "+to)
		tok := emailLink(t, a, to, n, "/account/email/confirm")
		expectPage(t, b.Post("/account/email/confirm", url.Values{"token": {tok}}), http.StatusOK, "Your email address is now "+to)
		expectStatus(t, b.Get("/account/email/confirm?token="+tok), http.StatusGone) // its page says so at once
		return tok
	}
	first := change("bob@example.com", 0)
	change("ann@example.com", len(a.Mail.MailsTo("ann@example.com")))

	expectStatus(t, b.Get("/account/email/confirm?token="+first), http.StatusGone)
	expectStatus(t, b.Post("/account/email/confirm", url.Values{"token": {first}}), http.StatusGone)
	expectPage(t, b.Get("/account"), http.StatusOK, "ann@example.com")
}

// TestUsedSignUpLinkStaysUsedWhenTheAddressMovesOn: a sign-up link that
// created an account cannot create another for its address, still in time,
// once that account is deleted or changes its address: the page and the
// button both say it was used. A new link for the address works.
func TestUsedSignUpLinkStaysUsedWhenTheAddressMovesOn(t *testing.T) {
	for _, leave := range []string{"deleted", "moved"} {
		t.Run(leave, func(t *testing.T) {
			clock := testkit.NewClock()
			// Links outlive access tokens here, so the tombstone is kept
			// for the link alone once the tokens it voids have expired.
			a := testkit.StartApp(t, testkit.AppOptions{Clock: clock, Env: map[string]string{"LINK_TTL": "20m"}})
			email := leave + "@example.com"
			b := a.Browser(t)
			tok := requestLink(t, a, b, email)
			expectPage(t, b.Get("/signin/link?token="+tok), http.StatusOK, "Create your account")
			expectStatus(t, b.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)

			switch leave {
			case "deleted":
				expectStatus(t, b.Post("/account/delete", url.Values{"confirm": {email}}), http.StatusOK)
			case "moved":
				expectStatus(t, b.Post("/account/email", url.Values{"email": {"elsewhere@example.com"}}), http.StatusOK)
				change := emailLink(t, a, "elsewhere@example.com", 0, "/account/email/confirm")
				expectPage(t, b.Post("/account/email/confirm", url.Values{"token": {change}}), http.StatusOK, "now elsewhere@example.com")
			}
			// Past the access tokens' life, the link still in time; let the
			// poller purge what it may.
			clock.Advance(12 * time.Minute)
			time.Sleep(400 * time.Millisecond)

			holder := a.Browser(t) // whoever kept the used link
			expectPage(t, holder.Get("/signin/link?token="+tok), http.StatusGone, "already been used")
			expectPage(t, holder.Post("/signin/link", url.Values{"token": {tok}}), http.StatusGone, "already been used")
			if signedIn(t, holder) {
				t.Fatal("the used sign-up link signed someone in again")
			}
			signIn(t, a, a.Browser(t), email) // a new link (the email limit's window has passed)

			// Once every link issued before has expired, the tombstone and
			// the address it kept are gone.
			if n := releasedAddresses(t, a); n != 1 {
				t.Errorf("%d released addresses kept while a link could need one, want 1", n)
			}
			clock.Advance(22 * time.Minute)
			for deadline := time.Now().Add(5 * time.Second); releasedAddresses(t, a) != 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d released addresses still kept 5 s after every link that needed them expired", releasedAddresses(t, a))
				}
			}
		})
	}
}

// releasedAddresses counts the addresses tombstones keep, read from the
// app's database file.
func releasedAddresses(t *testing.T, a *testkit.App) (n int) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+a.Config.DatabasePath+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.QueryRow(`SELECT count(*) FROM users WHERE released_email IS NOT NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
