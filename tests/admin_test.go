package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	adminpkg "github.com/latchkey/latchkey/admin"
	"github.com/latchkey/latchkey/tests/testkit"
)

// TestAdminCommands drives every `latchkey admin` subcommand against a
// running deployment (two instances, on each engine), as an operator
// would, and checks what people then meet.
func TestAdminCommands(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		apps := instances(t, store, 2, 0, nil)
		a, other := apps[0], apps[1]
		ann := a.Browser(t)
		signIn(t, a, ann, "ann@example.com")
		pk := addPasskey(t, a, ann)
		expectStatus(t, passkeySignIn(t, ann, pk), http.StatusOK)
		bob := a.Browser(t)
		signIn(t, a, bob, "bob@example.net")

		// users: a table, a search, JSON.
		out, _, exit := admin(t, a, "", "users")
		if exit != 0 || !strings.Contains(out, "ann@example.com") || !strings.Contains(out, "bob@example.net") || !strings.Contains(out, "EMAIL SIGN-IN") {
			t.Errorf("users: exit %d\n%s", exit, out)
		}
		out, _, _ = admin(t, a, "", "users", "--search", "EXAMPLE.NET")
		if !strings.Contains(out, "bob@") || strings.Contains(out, "ann@") {
			t.Errorf("users --search example.net:\n%s", out)
		}
		out, _, _ = admin(t, a, "", "users", "--search", "%")
		if strings.Contains(out, "@") {
			t.Errorf("users --search %% matched addresses without a %%:\n%s", out)
		}
		out, _, exit = admin(t, a, "", "users", "--json")
		var list []map[string]any
		if err := json.Unmarshal([]byte(out), &list); err != nil || exit != 0 || len(list) != 2 {
			t.Fatalf("users --json: %v, exit %d\n%s", err, exit, out)
		}
		for _, field := range []string{"email", "created", "passkeys", "email_signin", "disabled", "last_passkey_use"} {
			if _, ok := list[0][field]; !ok {
				t.Errorf("users --json has no %q: %v", field, list[0])
			}
		}
		if list[0]["email"] != "ann@example.com" || list[0]["passkeys"] != float64(1) || list[0]["last_passkey_use"] == nil || list[1]["disabled"] != false {
			t.Errorf("users --json: %v", list)
		}

		// show: the account, its passkeys and the id the log uses.
		out, _, exit = admin(t, a, "", "show", "Ann@Example.com")
		sub := tokenClaims(t, ann.Cookie("__Host-at"))["sub"].(string)
		if exit != 0 || !strings.Contains(out, sub) || !strings.Contains(out, "passkeys") || !strings.Contains(out, "added") {
			t.Errorf("show: exit %d, want the user id %s\n%s", exit, sub, out)
		}

		// signout: every session ends, on the other instance within a second.
		onOther := other.Browser(t)
		bob.CopyCookies(onOther)
		if !signedIn(t, onOther) {
			t.Fatal("the other instance does not accept bob's session")
		}
		if _, stderr, exit := admin(t, a, "", "signout", "bob@example.net"); exit != 0 {
			t.Fatalf("signout: %d %s", exit, stderr)
		}
		waitSignedOut(t, onOther, "signout")

		// disable: no sign-in by any means, sessions end, links and pages
		// say so; enable: back.
		signIn(t, a, bob, "bob@example.net")
		pending := requestLink(t, a, a.Browser(t), "ann@example.com")
		bob.CopyCookies(onOther)
		if _, stderr, exit := admin(t, a, "", "disable", "ann@example.com"); exit != 0 {
			t.Fatalf("disable: %d %s", exit, stderr)
		}
		annOnOther := other.Browser(t)
		ann.CopyCookies(annOnOther)
		waitSignedOut(t, annOnOther, "disable")
		if !signedIn(t, onOther) {
			t.Error("disabling one account signed another out")
		}
		expectPage(t, a.Browser(t).Get("/signin/link?token="+pending), http.StatusForbidden, "This account is disabled")
		expectPage(t, a.Browser(t).Post("/signin/link", url.Values{"token": {pending}}), http.StatusForbidden, "disabled")
		r := passkeySignIn(t, a.Browser(t), pk)
		expectJSONError(t, r, http.StatusForbidden)
		if !strings.Contains(jsonField(t, r, "message"), "disabled") {
			t.Errorf("a passkey sign-in to a disabled account says %q", jsonField(t, r, "message"))
		}
		// A stranger asking for a link gets the same answer as ever; the
		// address gets a notice, no link.
		expectStatus(t, a.Browser(t).Post("/signin/email", url.Values{"email": {"ann@example.com"}}), http.StatusSeeOther)
		notice(t, a, "ann@example.com", "disabled")
		if out, _, _ := admin(t, a, "", "recovery-link", "ann@example.com"); out != "" {
			t.Errorf("a recovery link was made for a disabled account: %q", out)
		}
		out, _, _ = admin(t, a, "", "disable", "ann@example.com")
		if !strings.Contains(out, "already disabled") {
			t.Errorf("disable twice: %q", out)
		}
		if _, stderr, exit := admin(t, a, "", "enable", "ann@example.com"); exit != 0 {
			t.Fatalf("enable: %d %s", exit, stderr)
		}
		a.Clock = nil
		expectStatus(t, passkeySignIn(t, a.Browser(t), pk), http.StatusOK)

		// delete: asks to confirm; a wrong answer deletes nothing.
		if _, _, exit := admin(t, a, "nope\n", "delete", "bob@example.net"); exit != 1 {
			t.Errorf("delete with a wrong confirmation: exit %d, want 1", exit)
		}
		if !signedIn(t, onOther) {
			t.Fatal("an unconfirmed delete signed bob out")
		}
		if _, stderr, exit := admin(t, a, "bob@example.net\n", "delete", "bob@example.net"); exit != 0 {
			t.Fatalf("delete, confirmed: %d %s", exit, stderr)
		}
		waitSignedOut(t, onOther, "delete")
		notice(t, a, "bob@example.net", "was deleted")
		signIn(t, a, ann, "carl@example.com")
		if _, stderr, exit := admin(t, a, "", "delete", "carl@example.com", "--yes"); exit != 0 {
			t.Fatalf("delete --yes: %d %s", exit, stderr)
		}
		if n := accountsOf(t, a, "bob@example.net", "carl@example.com"); n != 0 {
			t.Errorf("%d deleted accounts still exist", n)
		}

		// Unknown accounts exit 1; bad usage exits 2.
		for _, args := range [][]string{{"show", "nobody@example.com"}, {"signout", "nobody@example.com"},
			{"disable", "nobody@example.com"}, {"delete", "nobody@example.com", "--yes"}, {"recovery-link", "nobody@example.com"}} {
			if _, stderr, exit := admin(t, a, "", args...); exit != 1 || !strings.Contains(stderr, "no account") {
				t.Errorf("%v: exit %d, want 1 with a clear message: %s", args, exit, stderr)
			}
		}
		for _, args := range [][]string{{}, {"bogus"}, {"show"}, {"show", "a@example.com", "b@example.com"}, {"show", "not-an-address"},
			{"users", "--bogus"}, {"users", "extra"}, {"delete", "a@example.com", "--yes=maybe"}} {
			if _, _, exit := admin(t, a, "", args...); exit != 2 {
				t.Errorf("%v: exit %d, want 2", args, exit)
			}
		}
		if out, _, exit := admin(t, a, "", "-h"); exit != 0 || !strings.Contains(out, "recovery-link") || !strings.Contains(out, "invite") {
			t.Errorf("admin -h: exit %d\n%s", exit, out)
		}
	})
}

// TestAdminRefusesAMissingDatabase: pointed at a database that is not
// there (a typo in DATABASE_PATH, another folder, an empty PostgreSQL
// schema), every command says so, naming the place, and exits 1 creating
// nothing: no file, no folder, no secret, no tables (a second try finds
// the same nothing). migrate-db refuses a missing source the same way.
func TestAdminRefusesAMissingDatabase(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{filepath.Join(dir, "latchkey.db"), filepath.Join(dir, "typo", "latchkey.db")} {
		nowhere := &testkit.App{Env: map[string]string{"DATABASE_PATH": path}}
		for _, args := range [][]string{{"users"}, {"users"}, {"show", "ann@example.com"}, {"invite", "ann@example.com"}, {"recovery-link", "ann@example.com"}} {
			out, stderr, exit := admin(t, nowhere, "", args...)
			if exit != 1 || out != "" || !strings.Contains(stderr, "no Latchkey database at "+path) {
				t.Errorf("%v on %s: exit %d, want 1 saying there is no database there\n%s%s", args, path, exit, out, stderr)
			}
		}
		var out, errOut bytes.Buffer
		err := adminpkg.MigrateDB(context.Background(), []string{"--to", "postgres://u@127.0.0.1:1/db"}, func(k string) string { return nowhere.Env[k] }, &out, &errOut)
		if adminpkg.ExitCode(err) != adminpkg.ExitFailure || !strings.Contains(fmt.Sprint(err), "no Latchkey database at "+path) {
			t.Errorf("migrate-db from %s: %v (exit %d), want exit 1 saying there is no database there", path, err, adminpkg.ExitCode(err))
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("after the commands on %s, the folder holds %v, want nothing", path, entries)
		}
	}

	pg := testkit.PostgresStore(t)
	empty := &testkit.App{Env: map[string]string{"DATABASE_URL": pg.URL, "SECRET_KEYS": testkit.NewSecret()}}
	for range 2 {
		out, stderr, exit := admin(t, empty, "", "users")
		if exit != 1 || out != "" || !strings.Contains(stderr, "no Latchkey database in the PostgreSQL database") || !strings.Contains(stderr, "DATABASE_URL") {
			t.Errorf("users on an empty PostgreSQL schema: exit %d, want 1 saying there is no database there\n%s%s", exit, out, stderr)
		}
	}

	// A database the server made is found, of course.
	a := testkit.StartApp(t, testkit.AppOptions{})
	if _, stderr, exit := admin(t, a, "", "users"); exit != 0 {
		t.Errorf("users on the server's database: exit %d\n%s", exit, stderr)
	}
}

// TestAdminSaysWhatItDid: without SMTP, the read-only commands print no
// development-mode warning (nothing of theirs would be sent anyway), an
// invitation says it was written to the log, not sent, and counts read
// as English: "1 account", "2 accounts".
func TestAdminSaysWhatItDid(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{MailLog: io.Discard})
	if _, ok := a.Env["SMTP_URL"]; ok {
		t.Fatal("the app has SMTP")
	}
	if _, stderr, _ := admin(t, a, "", "users"); stderr != "0 accounts\n" {
		t.Errorf("users on no accounts: %q", stderr)
	}
	for i, email := range []string{"ann@example.com", "bob@example.com"} {
		out, stderr, exit := admin(t, a, "", "invite", email)
		if exit != 0 || strings.Contains(out, "sent to") || !strings.Contains(out, "not sent") || !strings.Contains(out, "written to the log") {
			t.Errorf("invite without SMTP: exit %d, want it to say the invitation was written to the log, not sent:\n%s", exit, out)
		}
		link := regexp.MustCompile(`/signin/link\?token=([A-Za-z0-9_-]+)`).FindStringSubmatch(stderr)
		if link == nil {
			t.Fatalf("the invitation is not in the command's log:\n%s", stderr)
		}
		expectStatus(t, a.Browser(t).Post("/signin/link", url.Values{"token": {link[1]}}), http.StatusSeeOther)

		want := []string{"1 account\n", "2 accounts\n"}[i]
		if _, stderr, exit := admin(t, a, "", "users"); exit != 0 || stderr != want {
			t.Errorf("users on %d accounts: stderr %q, want %q alone", i+1, stderr, want)
		}
	}
	if out, stderr, exit := admin(t, a, "", "show", "ann@example.com"); exit != 0 || stderr != "" || !strings.Contains(out, "ann@example.com") {
		t.Errorf("show: exit %d, stderr %q (want nothing there)\n%s", exit, stderr, out)
	}
	if _, stderr, _ := admin(t, a, "", "users", "--json"); stderr != "" {
		t.Errorf("users --json: stderr %q, want nothing there", stderr)
	}
}

// waitSignedOut waits until b is signed out, within a second and a half.
func waitSignedOut(t *testing.T, b *testkit.Browser, after string) {
	t.Helper()
	for deadline := time.Now().Add(1500 * time.Millisecond); signedIn(t, b); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still signed in on another instance well over a second after %s", after)
		}
	}
}

// TestSignUpControls: SIGNUP=invite lets only existing accounts and
// people an operator invites in; a list of domains lets those domains
// sign up. A refused address gets the same page as any other, and an
// email that says sign-up is closed.
func TestSignUpControls(t *testing.T) {
	a := testkit.StartApp(t, testkit.AppOptions{Env: map[string]string{"SIGNUP": "invite"}})
	member := a.Browser(t)
	// The first account comes by invitation.
	out, stderr, exit := admin(t, a, "", "invite", "first@example.com")
	if exit != 0 || !strings.Contains(out, "Invitation sent to first@example.com") {
		t.Fatalf("invite: exit %d %s %s", exit, out, stderr)
	}
	invitation := a.Mail.WaitForMatch(t, "first@example.com", 0, func(m testkit.Mail) bool { return strings.Contains(m.Subject, "invited") })
	tok := linkToken(t, invitation)
	expectPage(t, member.Get("/signin/link?token="+tok), http.StatusOK, "Create your account")
	expectStatus(t, member.Post("/signin/link", url.Values{"token": {tok}}), http.StatusSeeOther)
	expectPage(t, member.Get("/account"), http.StatusOK, "first@example.com")
	if _, _, exit := admin(t, a, "", "invite", "first@example.com"); exit != 1 {
		t.Errorf("inviting an existing account: exit %d, want 1", exit)
	}
	// An invitation in another language, and one the tool cannot write.
	if out, stderr, exit := admin(t, a, "", "invite", "--lang", "fr", "amelie@example.com"); exit != 0 {
		t.Fatalf("invite --lang fr: exit %d %s %s", exit, out, stderr)
	}
	fr := catalog.T("fr")
	a.Mail.WaitForMatch(t, "amelie@example.com", 0, func(m testkit.Mail) bool {
		return m.Subject == fr.S("email.invite.subject", "Site", "Latchkey") && strings.Contains(m.Text, fr.S("email.ignore"))
	})
	if _, stderr, exit := admin(t, a, "", "invite", "--lang", "xx", "nobody@example.com"); exit != 2 || !strings.Contains(stderr, "de, es, fr") {
		t.Errorf("invite --lang xx: exit %d %q, want 2 naming the languages", exit, stderr)
	}
	// The member signs in as usual.
	signIn(t, a, a.Browser(t), "first@example.com")

	// A stranger: the same answer, an email that explains, no account.
	stranger := a.Browser(t)
	r := stranger.Post("/signin/email", url.Values{"email": {"stranger@example.com"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin/sent" {
		t.Fatalf("a refused address got %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	closed := notice(t, a, "stranger@example.com", "No Latchkey account was created")
	if !strings.Contains(closed.Text, "invitation") {
		t.Errorf("the refusal email does not say why:\n%s", closed.Text)
	}
	if n := accountsOf(t, a, "first@example.com"); n != 1 {
		t.Error("the member's account is gone")
	}

	d := testkit.StartApp(t, testkit.AppOptions{Env: map[string]string{"SIGNUP": "example.org, example.net"}})
	signIn(t, d, d.Browser(t), "ok@example.org")
	expectStatus(t, d.Browser(t).Post("/signin/email", url.Values{"email": {"no@example.com"}}), http.StatusSeeOther)
	notice(t, d, "no@example.com", "No Latchkey account was created")
}

// TestSecurityEventsOfAJourney: one person's journey leaves one
// structured line per security event, in order, with the event, the
// opaque user id, the client address and the browser family, and never a
// token or a link (LOG_FORMAT=json, as log shippers read it).
func TestSecurityEventsOfAJourney(t *testing.T) {
	var log testkit.SyncBuffer
	a := testkit.StartApp(t, testkit.AppOptions{Log: &log, Env: map[string]string{"LOG_FORMAT": "json", "LOG_LEVEL": "info"}})
	b := a.Browser(t)
	signIn(t, a, b, "events@example.com")
	pk := addPasskey(t, a, b)
	expectStatus(t, b.Post("/signout", nil), http.StatusSeeOther)
	expectStatus(t, passkeySignIn(t, b, pk), http.StatusOK)
	expectStatus(t, b.Post("/account/passkeys/"+firstPasskeyID(t, b)+"/rename", url.Values{"name": {"Work laptop"}}), http.StatusSeeOther)
	used := requestLink(t, a, a.Browser(t), "events@example.com")
	expectStatus(t, a.Browser(t).Post("/signin/link", url.Values{"token": {used}}), http.StatusSeeOther)
	expectStatus(t, a.Browser(t).Post("/signin/link", url.Values{"token": {used}}), http.StatusGone)
	expectStatus(t, b.Post("/account/email-signin", url.Values{"enabled": {"false"}}), http.StatusOK)
	expectStatus(t, b.Post("/signout/everywhere", nil), http.StatusSeeOther)
	_, adminLog, _ := admin(t, a, "", "disable", "events@example.com")

	sub := ""
	var got []string
	for _, line := range strings.Split(log.String(), "\n") {
		if line == "" {
			continue
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if strings.Contains(line, "token=") || strings.Contains(line, "/signin/link?") {
			t.Errorf("a log line holds a link: %s", line)
		}
		event, _ := entry["event"].(string)
		if entry["msg"] != "security event" || event == "" {
			continue
		}
		got = append(got, event)
		if event == "signup" {
			sub, _ = entry["user"].(string)
		}
		if entry["user"] != sub || entry["client"] != "127.0.0.1" || entry["browser"] != "Chrome on Linux" {
			t.Errorf("event %s: user %v (want %s), client %v, browser %v", event, entry["user"], sub, entry["client"], entry["browser"])
		}
	}
	want := []string{"signup", "signin", "passkey_added", "signout", "signin", "passkey_renamed", "signin", "signin_failed",
		"email_signin_off", "signout_everywhere"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("security events:\n got %v\nwant %v", got, want)
	}
	// The operator's command logs its own, with the same user id.
	var entry map[string]any
	for _, line := range strings.Split(adminLog, "\n") {
		if strings.Contains(line, `"event":"admin_disable"`) {
			json.Unmarshal([]byte(line), &entry)
		}
	}
	if entry == nil || entry["user"] != sub {
		t.Errorf("admin disable logged %v, want event admin_disable for user %s:\n%s", entry, sub, adminLog)
	}
}
