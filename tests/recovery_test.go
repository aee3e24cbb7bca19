package tests

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/tests/testkit"
)

// recoveryLink asks for a recovery link for email from b ("Lost your
// passkey?") and returns the token from the email.
func recoveryLink(t *testing.T, a *testkit.App, b *testkit.Browser, email string) string {
	t.Helper()
	before := len(a.Mail.MailsTo(email))
	r := b.Post("/signin/recover", url.Values{"email": {email}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin/sent" {
		t.Fatalf("POST /signin/recover = %d %q, want 303 /signin/sent", r.StatusCode, r.Header.Get("Location"))
	}
	m := a.Mail.WaitForMatch(t, email, before, func(m testkit.Mail) bool { return strings.Contains(m.Text, "/signin/link?token=") })
	if !strings.Contains(m.Subject, "Recover") {
		t.Fatalf("the email is %q, not a recovery link", m.Subject)
	}
	return linkToken(t, m)
}

// canAddPasskey reports whether b's session may begin adding a passkey
// now (rather than being sent to confirm it's them).
func canAddPasskey(t *testing.T, b *testkit.Browser) bool {
	t.Helper()
	r := b.PostJSON("/account/passkeys/begin", nil)
	switch r.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusForbidden:
		if jsonField(t, r, "error") != "reauth_required" {
			t.Fatalf("begin: %s", r.Body)
		}
		return false
	}
	t.Fatalf("begin: %d %s", r.StatusCode, r.Body)
	return false
}

// TestLostPhoneRecovery is the journey of issue #10: sign up by link, add
// a passkey on a phone, lose the phone. A link sign-in is not enough to
// replace the passkey; "Lost your passkey?" starts a recovery that tells
// the address at once and, after RECOVERY_DELAY, lets a new link sign-in
// delete the lost passkey and add a new one, which ends the recovery.
func TestLostPhoneRecovery(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		clock := testkit.NewClock()
		a := testkit.StartApp(t, testkit.AppOptions{Clock: clock, Store: store,
			Env: map[string]string{"RECOVERY_DELAY": "2h", "RATE_LIMIT_EMAIL": "100/1m"}})
		email := "phone@example.com"
		phone := a.Browser(t)
		signIn(t, a, phone, email)
		lost := addPasskey(t, a, phone)

		// A new laptop: a link sign-in works, but adding a passkey asks for
		// the passkey that is gone. The step-up page offers recovery.
		laptop := a.Browser(t)
		signIn(t, a, laptop, email)
		if canAddPasskey(t, laptop) {
			t.Fatal("a link sign-in could add a passkey to an account with passkeys")
		}
		expectPage(t, laptop.Get("/account/reauth?next=/account"), http.StatusOK, "Lost your passkey?", `action="/signin/recover"`)
		expectPage(t, a.Browser(t).Get("/signin"), http.StatusOK, `href="/signin/recover"`)
		expectPage(t, a.Browser(t).Get("/signin/recover"), http.StatusOK, "Lost your passkey?", "waiting period")

		tok := recoveryLink(t, a, laptop, email)
		expectPage(t, laptop.Get("/signin/link?token="+tok), http.StatusOK, "Recover your account", "2 hours")
		expectStatus(t, laptop.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
		started := notice(t, a, email, "Someone started recovering your")
		if !strings.Contains(started.Text, "one of your passkeys") {
			t.Errorf("the recovery notice does not say how to stop it:\n%s", started.Text)
		}
		expectPage(t, laptop.Get("/account"), http.StatusOK, "A recovery of this account is under way", "2 hours from now", "Cancel the recovery")
		if canAddPasskey(t, laptop) {
			t.Fatal("a recovery let a passkey be added before its waiting period ended")
		}
		// The recovery link again, or another, does not hurry it.
		again := recoveryLink(t, a, a.Browser(t), email)
		expectStatus(t, a.Browser(t).Post("/signin/link", url.Values{"token": {again}}), http.StatusSeeOther)
		expectPage(t, laptop.Get("/account"), http.StatusOK, "2 hours from now")

		// After the delay the session that started it is still not fresh:
		// a new link sign-in is.
		clock.Advance(2*time.Hour + time.Second)
		if canAddPasskey(t, laptop) {
			t.Fatal("the sign-in that started the recovery counts as fresh after the delay")
		}
		expectPage(t, laptop.Get("/account/reauth?next=/account"), http.StatusOK, "recovery is ready", "Email me a link")
		signIn(t, a, laptop, email)
		expectPage(t, laptop.Get("/account"), http.StatusOK, "Your recovery is ready")
		expectStatus(t, laptop.Post("/account/passkeys/"+firstPasskeyID(t, laptop)+"/delete", nil), http.StatusSeeOther)
		notice(t, a, email, "A passkey was removed")
		replacement := addPasskey(t, a, laptop)
		if page := laptop.Get("/account").Body; strings.Contains(page, "recovery") {
			t.Error("the account page still shows a recovery after a passkey was added")
		}
		if canAddPasskey(t, laptop) {
			t.Error("after the recovery ended, a link session can still add passkeys")
		}
		expectStatus(t, passkeySignIn(t, a.Browser(t), replacement), http.StatusOK)
		expectJSONError(t, passkeySignIn(t, a.Browser(t), lost), http.StatusNotFound)
	})
}

// TestRecoveryIsCancelledByTheOwner: any passkey sign-in of the account
// cancels a pending recovery (the owner still has a passkey), and so does
// the button on the account page; the address is told; a link sign-in
// after the delay is then no more than a link sign-in.
func TestRecoveryIsCancelledByTheOwner(t *testing.T) {
	clock := testkit.NewClock()
	a := testkit.StartApp(t, testkit.AppOptions{Clock: clock, Env: map[string]string{"RECOVERY_DELAY": "1h", "RATE_LIMIT_EMAIL": "100/1m"}})
	email := "owner@example.com"
	owner := a.Browser(t)
	signIn(t, a, owner, email)
	pk := addPasskey(t, a, owner)

	for _, cancel := range []string{"passkey sign-in", "button"} {
		thief := a.Browser(t)
		tok := recoveryLink(t, a, thief, email)
		expectStatus(t, thief.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
		before := len(a.Mail.MailsTo(email))
		switch cancel {
		case "passkey sign-in":
			expectStatus(t, passkeySignIn(t, owner, pk), http.StatusOK)
		case "button":
			expectStatus(t, passkeySignIn(t, owner, pk), http.StatusOK) // (already cancels)
			tok := recoveryLink(t, a, thief, email)
			expectStatus(t, thief.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
			before = len(a.Mail.MailsTo(email))
			expectPage(t, owner.Get("/account"), http.StatusOK, "A recovery of this account is under way")
			expectPage(t, owner.Post("/account/recovery/cancel", nil), http.StatusOK, "The recovery was cancelled")
		}
		m := a.Mail.WaitForMatch(t, email, before, func(m testkit.Mail) bool { return strings.Contains(m.Subject, "was cancelled") })
		if len(m.Links()) != 0 {
			t.Errorf("the cancellation notice carries a link")
		}
		clock.Advance(time.Hour + time.Second)
		signIn(t, a, thief, email)
		if canAddPasskey(t, thief) {
			t.Fatalf("cancelled by %s, the recovery still let a link sign-in add a passkey", cancel)
		}
		expectPage(t, owner.Get("/account"), http.StatusOK)
		if strings.Contains(owner.Get("/account").Body, "Account recovery") {
			t.Errorf("cancelled by %s, the account page still shows the recovery", cancel)
		}
	}
	// Cancelling when there is nothing to cancel says so.
	expectPage(t, owner.Post("/account/recovery/cancel", nil), http.StatusOK, "no recovery to cancel")
}

// TestRecoveryAnswersLikeALinkRequest: "Lost your passkey?" gives every
// address the same answer as /signin/email, within the same limits; an
// account without passkeys gets a plain sign-in link (it needs no more);
// a passkey-only account gets a notice naming the operator, no link.
func TestRecoveryAnswersLikeALinkRequest(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{})
	withPasskey, passkeyOnly, linkOnly := "with@example.com", "only@example.com", "links@example.com"
	b := a.Browser(t)
	signIn(t, a, b, withPasskey)
	addPasskey(t, a, b)
	c := a.Browser(t)
	signIn(t, a, c, passkeyOnly)
	pk := addPasskey(t, a, c)
	expectStatus(t, passkeySignIn(t, c, pk), http.StatusOK)
	expectStatus(t, c.Post("/account/email-signin", url.Values{"enabled": {"false"}}), http.StatusOK)
	signIn(t, a, a.Browser(t), linkOnly)

	var answers []string
	for _, email := range []string{withPasskey, passkeyOnly, linkOnly, "nobody@example.com"} {
		r := a.Browser(t).Post("/signin/recover", url.Values{"email": {email}})
		answers = append(answers, r.Header.Get("Location")+" "+http.StatusText(r.StatusCode))
	}
	for _, got := range answers {
		if got != answers[0] || got != "/signin/sent See Other" {
			t.Fatalf("different answers for different addresses: %q", answers)
		}
	}
	m := a.Mail.WaitForMatch(t, passkeyOnly, 0, func(m testkit.Mail) bool { return strings.Contains(m.Subject, "Sign-in attempt") })
	if len(m.Links()) != 0 {
		t.Error("a passkey-only account was sent a link")
	}
	m = a.Mail.WaitForMatch(t, linkOnly, 1, func(m testkit.Mail) bool { return strings.Contains(m.Text, "/signin/link?token=") })
	if strings.Contains(m.Subject, "Recover") {
		t.Error("an account without passkeys was sent a recovery link instead of a sign-in link")
	}
	expectPage(t, a.Browser(t).Post("/signin/recover", url.Values{"email": {"not an address"}}), http.StatusBadRequest, "Lost your passkey?", `aria-invalid="true"`)

	// The same per-address limit as every email someone else can trigger:
	// the address had a sign-up link and a recovery link, so of three more
	// requests one sends, and all answer the same.
	for range 3 {
		expectStatus(t, a.Browser(t).Post("/signin/recover", url.Values{"email": {withPasskey}}), http.StatusSeeOther)
	}
	time.Sleep(200 * time.Millisecond)
	links := 0
	for _, m := range a.Mail.MailsTo(withPasskey) {
		if len(m.Links()) > 0 {
			links++
		}
	}
	if links != 3 {
		t.Errorf("%d emails with a link went to one address within the window, want 3 (RATE_LIMIT_EMAIL 3/15m)", links)
	}

	// Turning email sign-in off says plainly there is no self-service way
	// back, before it happens.
	d := a.Browser(t)
	signIn(t, a, d, "about-to@example.com")
	addPasskey(t, a, d)
	expectPage(t, d.Get("/account"), http.StatusOK, "no way to recover the account yourself", "only the people who run this site")
}

// TestOperatorRecoveryLinkGetsAPasskeyOnlyAccountBackIn: a passkey-only
// account whose owner lost every passkey has no self-service way back; the
// operator checks who they are and runs `latchkey admin recovery-link`,
// which prints a one-time link and tells the address. The link signs in
// (fresh enough to add a passkey at once), works once, and the new
// passkey ends the recovery.
func TestOperatorRecoveryLinkGetsAPasskeyOnlyAccountBackIn(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		a := testkit.StartApp(t, testkit.AppOptions{Store: store})
		email := "locked@example.com"
		b := a.Browser(t)
		signIn(t, a, b, email)
		lost := addPasskey(t, a, b)
		expectStatus(t, passkeySignIn(t, b, lost), http.StatusOK)
		expectStatus(t, b.Post("/account/email-signin", url.Values{"enabled": {"false"}}), http.StatusOK)

		out, stderr, exit := admin(t, a, "", "recovery-link", email)
		if exit != 0 {
			t.Fatalf("recovery-link: exit %d\n%s", exit, stderr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], a.URL+"/signin/link?token=") {
			t.Fatalf("recovery-link printed %q, want the link on its own line", out)
		}
		notice(t, a, email, "A recovery link was made")
		u, _ := url.Parse(lines[0])
		tok := u.Query().Get("token")

		person := a.Browser(t)
		expectPage(t, person.Get("/signin/link?token="+tok), http.StatusOK, "Recover your account", "made this link")
		expectStatus(t, person.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
		if !canAddPasskey(t, person) {
			t.Fatal("the operator's recovery link did not let the person add a passkey")
		}
		fresh := addPasskey(t, a, person)
		expectStatus(t, a.Browser(t).Post("/signin/link", url.Values{"token": {tok}}), http.StatusGone) // once
		expectStatus(t, passkeySignIn(t, a.Browser(t), fresh), http.StatusOK)
		if canAddPasskey(t, person) {
			t.Error("after the new passkey, the link session can still add passkeys")
		}
	})
}

// TestRecoveryWithoutADelay: RECOVERY_DELAY=0 (an operator's choice of
// speed over the waiting period) makes the recovery link's own sign-in
// fresh enough to add a passkey.
func TestRecoveryWithoutADelay(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{Env: map[string]string{"RECOVERY_DELAY": "0"}})
	b := a.Browser(t)
	signIn(t, a, b, "quick@example.com")
	addPasskey(t, a, b)
	other := a.Browser(t)
	tok := recoveryLink(t, a, other, "quick@example.com")
	expectStatus(t, other.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
	if !canAddPasskey(t, other) {
		t.Fatal("with RECOVERY_DELAY=0 the recovery sign-in could not add a passkey")
	}
	notice(t, a, "quick@example.com", "Someone started recovering")
}
