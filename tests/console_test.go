package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/tests/testkit"
)

// grafanaCallback is the redirect URI of the test's Grafana-like
// application, which admits only the group ops and asks for groups.
const grafanaCallback = "https://grafana.example.com/login/generic_oauth"

var grafanaClient = `{"id": "grafana", "name": "Grafana", "secret_hash": "` + sha256Hex(chatSecret) + `",
	 "redirect_uris": ["` + grafanaCallback + `"], "scopes": ["openid", "email", "groups", "offline_access"],
	 "allowed_groups": ["ops"], "trusted": true}`

// operatorAndPerson starts Latchkey with the Grafana-like application,
// makes an operator (in the admin group, by the admin command, with a
// passkey, freshly signed in) and a person with a passkey; it returns
// both browsers and passkeys.
func operatorAndPerson(t *testing.T, store testkit.Store, clock *testkit.Clock, log *testkit.SyncBuffer) (a *testkit.App, op, person *testkit.Browser, opKey, personKey *testkit.Passkey) {
	t.Helper()
	e := map[string]string{"OIDC_CLIENTS_FILE": writeClients(t, grafanaClient), "RATE_LIMIT_SIGNIN": "1000/1m"}
	o := testkit.AppOptions{Store: store, Clock: clock, Env: e}
	if log != nil {
		e["LOG_FORMAT"] = "json"
		o.Log = log
	}
	a = testkit.StartApp(t, o)
	op, person = a.Browser(t), a.Browser(t)
	signIn(t, a, op, "operator@example.com")
	opKey = addPasskey(t, a, op)
	signIn(t, a, person, "person@example.org")
	personKey = addPasskey(t, a, person)
	if out, errOut, exit := admin(t, a, "", "group", "add", "operator@example.com", "admin"); exit != 0 {
		t.Fatalf("admin group add: %d %s %s", exit, out, errOut)
	}
	expectStatus(t, passkeySignIn(t, op, opKey), http.StatusOK)
	return a, op, person, opKey, personKey
}

var accountLink = regexp.MustCompile(`href="(/admin/accounts/[A-Za-z0-9_-]+)"`)

// consoleAccountOf finds the person's page in the console by searching
// for their address, as an operator would.
func consoleAccountOf(t *testing.T, op *testkit.Browser, email string) string {
	t.Helper()
	r := op.Get("/admin?q=" + url.QueryEscape(strings.Split(email, "@")[0]))
	expectPage(t, r, http.StatusOK, email)
	m := accountLink.FindAllStringSubmatch(r.Body, -1)
	if len(m) != 1 {
		t.Fatalf("searching for %s found %d accounts:\n%s", email, len(m), clip(r.Body))
	}
	return m[0][1]
}

// TestTheConsoleIsOnlyForTheAdminGroup: to everyone but members of
// ADMIN_GROUP, signed in or not, every console address answers exactly as
// an address that does not exist, GET or POST.
func TestTheConsoleIsOnlyForTheAdminGroup(t *testing.T) {
	a, op, person, _, _ := operatorAndPerson(t, testkit.SQLiteStore(t), nil, nil)
	nobody := a.Browser(t)
	target := consoleAccountOf(t, op, "person@example.org")
	missing := nobody.Get("/no-such-page")
	expectStatus(t, missing, http.StatusNotFound)
	for _, b := range []*testkit.Browser{nobody, person} {
		for _, path := range []string{"/admin", "/admin?q=p", target, "/admin/invite", "/admin/applications"} {
			r := b.Get(path)
			expectStatus(t, r, http.StatusNotFound)
			if title(r.Body) != title(missing.Body) {
				t.Errorf("%s: title %q, not the missing page's %q", path, title(r.Body), title(missing.Body))
			}
		}
		for _, path := range []string{target + "/disable", target + "/groups", target + "/delete", "/admin/invite"} {
			expectStatus(t, b.Post(path, url.Values{"disabled": {"true"}, "add": {"admin"}, "confirm": {"person@example.org"}, "email": {"x@example.com"}}), http.StatusNotFound)
		}
		// No method, origin or body tells a console address from an
		// unknown one.
		for _, tc := range []struct{ method, path, site string }{
			{http.MethodPost, "/admin", "same-origin"}, {http.MethodDelete, "/admin", "same-origin"}, {http.MethodOptions, "/admin", "same-origin"},
			{http.MethodGet, target + "/delete", "same-origin"}, {http.MethodPut, "/admin/invite", "same-origin"},
			{http.MethodPost, target + "/delete", "cross-site"}, {http.MethodPost, "/no-such-page", "same-origin"},
		} {
			req, _ := http.NewRequest(tc.method, a.URL+tc.path, strings.NewReader("confirm="+strings.Repeat("x", 70<<10)))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", tc.site)
			r := b.Do(req)
			if r.StatusCode != http.StatusNotFound || r.Header.Get("Allow") != "" {
				t.Errorf("%s %s (%s, 70 KB): %d, Allow %q; want 404 as for an unknown address", tc.method, tc.path, tc.site, r.StatusCode, r.Header.Get("Allow"))
			}
		}
	}
	// For a member, a method the address does not take is just that.
	expectStatus(t, op.Post("/admin", nil), http.StatusMethodNotAllowed)
	// Bad input: a search no address can match, a garbled change.
	expectPage(t, op.Get("/admin?q=%00"), http.StatusOK, "No account")
	expectPage(t, op.Get("/admin?q=%C3%A9"), http.StatusOK, "No account")
	expectStatus(t, op.Post(target+"/disable", url.Values{"disabled": {"maybe"}}), http.StatusBadRequest)
	// Nothing happened to anyone.
	if out, _, _ := admin(t, a, "", "show", "person@example.org"); !strings.Contains(out, "disabled       no") && !regexp.MustCompile(`disabled\s+no`).MatchString(out) {
		t.Errorf("the person was changed:\n%s", out)
	}
	if out, _, _ := admin(t, a, "", "groups", "admin"); strings.Contains(out, "person@") {
		t.Errorf("the person made themselves admin:\n%s", out)
	}
	// A member leaving the group leaves the console at once.
	admin(t, a, "", "group", "remove", "operator@example.com", "admin")
	expectStatus(t, op.Get("/admin"), http.StatusNotFound)
}

var titlePattern = regexp.MustCompile(`<title>([^<]*)</title>`)

func title(body string) string {
	if m := titlePattern.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return ""
}

// TestConsoleActions: every change the console offers, as an operator
// makes it: each needs a recent sign-in, each is one security event
// naming the operator and the account, a cross-site POST changes nothing,
// and bad input gets a page that says what to fix.
func TestConsoleActions(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		var log testkit.SyncBuffer
		clock := testkit.NewClock()
		a, op, person, opKey, _ := operatorAndPerson(t, store, clock, &log)
		target := consoleAccountOf(t, op, "person@example.org")
		expectPage(t, op.Get(target), http.StatusOK, "person@example.org", "Passkeys", "Groups", "Sign out everywhere", "Email a recovery link", "Disable the account")
		opSub := tokenClaims(t, op.Cookie("__Host-at"))["sub"].(string)
		for _, q := range []string{"%00", "a%00b", "%C3%A9", "%25", "_", "%7F", strings.Repeat("x", 300)} {
			expectPage(t, op.Get("/admin?q="+q), http.StatusOK, "No account")
		}

		// A stale sign-in is sent to the step-up first.
		clock.Advance(11 * time.Minute)
		r := op.Post(target+"/groups", url.Values{"add": {"ops"}})
		if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/account/reauth?next=") {
			t.Fatalf("a change with a stale sign-in: %d %s, want the step-up", r.StatusCode, r.Header.Get("Location"))
		}
		expectStatus(t, passkeySignIn(t, op, opKey), http.StatusOK)

		// Groups: add two, remove one; a bad name says what to fix.
		r = op.Post(target+"/groups", url.Values{"add": {"ops team-b"}})
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("adding groups: %d %s", r.StatusCode, clip(r.Body))
		}
		expectPage(t, op.Get(r.Header.Get("Location")), http.StatusOK, "groups were changed", ">ops<", ">team-b<")
		expectStatus(t, op.Post(target+"/groups", url.Values{"remove": {"team-b"}}), http.StatusSeeOther)
		expectPage(t, op.Post(target+"/groups", url.Values{"add": {"Ops!"}}), http.StatusBadRequest, "lowercase letter or digit")
		if out, _, _ := admin(t, a, "", "show", "person@example.org"); !regexp.MustCompile(`groups\s+ops\n`).MatchString(out) {
			t.Errorf("after the console's changes:\n%s", out)
		}

		// A cross-site form changes nothing.
		req, _ := http.NewRequest(http.MethodPost, a.URL+target+"/disable", strings.NewReader("disabled=true"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		expectStatus(t, op.Do(req), http.StatusForbidden)
		if !signedIn(t, person) {
			t.Fatal("a cross-site POST disabled the person")
		}

		// Recovery link: emailed to the person, never on the page.
		before := len(a.Mail.MailsTo("person@example.org"))
		r = op.Post(target+"/recovery", nil)
		expectStatus(t, r, http.StatusSeeOther)
		page := op.Get(r.Header.Get("Location"))
		expectPage(t, page, http.StatusOK, "recovery link was emailed")
		mail := a.Mail.WaitForMatch(t, "person@example.org", before, func(m testkit.Mail) bool { return strings.Contains(m.Text, "/signin/link?token=") })
		if strings.Contains(page.Body, linkToken(t, mail)) {
			t.Error("the recovery link is on the console's page")
		}

		// Sign out everywhere, disable, enable.
		expectStatus(t, op.Post(target+"/signout", nil), http.StatusSeeOther)
		time.Sleep(300 * time.Millisecond) // (revocations reach the set within a poll)
		if signedIn(t, person) {
			t.Error("still signed in after the console signed the account out everywhere")
		}
		expectStatus(t, op.Post(target+"/disable", url.Values{"disabled": {"true"}}), http.StatusSeeOther)
		expectPage(t, op.Get(target), http.StatusOK, "disabled", "Enable the account")
		expectStatus(t, op.Post(target+"/disable", url.Values{"disabled": {"false"}}), http.StatusSeeOther)
		expectPage(t, op.Get(target), http.StatusOK, "Disable the account")

		// Delete one passkey: the person is told.
		page = op.Get(target)
		del := regexp.MustCompile(`action="(` + regexp.QuoteMeta(target) + `/passkeys/\d+/delete)"`).FindStringSubmatch(page.Body)
		if del == nil {
			t.Fatalf("no passkey to delete:\n%s", clip(page.Body))
		}
		before = len(a.Mail.MailsTo("person@example.org"))
		expectStatus(t, op.Post(del[1], nil), http.StatusSeeOther)
		a.Mail.WaitForMatch(t, "person@example.org", before, func(m testkit.Mail) bool { return strings.Contains(m.Subject, "removed") })
		expectStatus(t, op.Post(target+"/passkeys/999999/delete", nil), http.StatusNotFound)
		expectStatus(t, op.Post("/admin/accounts/not-an-id/disable", nil), http.StatusNotFound)

		// Invite: sent; an address with an account is told apart.
		expectPage(t, op.Post("/admin/invite", url.Values{"email": {"person@example.org"}, "lang": {"en"}}), http.StatusConflict, "has an account already")
		expectPage(t, op.Post("/admin/invite", url.Values{"email": {"not an address"}, "lang": {"en"}}), http.StatusBadRequest)
		r = op.Post("/admin/invite", url.Values{"email": {"newcomer@example.net"}, "lang": {"de"}})
		expectStatus(t, r, http.StatusSeeOther)
		if m := a.Mail.WaitFor(t, "newcomer@example.net", 1); !strings.Contains(m.Text, "/signin/link?token=") {
			t.Errorf("the invitation: %s", m.Text)
		}

		// Delete: the address must be typed.
		expectPage(t, op.Post(target+"/delete", url.Values{"confirm": {"someone@else.example"}}), http.StatusBadRequest, "exactly as shown")
		r = op.Post(target+"/delete", url.Values{"confirm": {"Person@Example.org"}})
		if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/admin?") {
			t.Fatalf("delete: %d %s", r.StatusCode, r.Header.Get("Location"))
		}
		expectStatus(t, op.Get(target), http.StatusNotFound)

		// The operator cannot lock themselves out from the console.
		self := consoleAccountOf(t, op, "operator@example.com")
		expectStatus(t, op.Post(self+"/groups", url.Values{"remove": {"admin"}}), http.StatusConflict)
		expectStatus(t, op.Post(self+"/disable", url.Values{"disabled": {"true"}}), http.StatusConflict)

		// One security event per action, each naming the operator and
		// the account.
		want := map[string]int{"admin_group_add": 1, "admin_group_remove": 1, "admin_recovery_link": 1, "admin_signout": 1,
			"admin_disable": 1, "admin_enable": 1, "admin_passkey_delete": 1, "admin_invite": 1, "admin_delete": 1}
		got := map[string]int{}
		for _, line := range strings.Split(log.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) != nil || e["via"] != "console" {
				continue
			}
			name := e["event"].(string)
			got[name]++
			if e["operator"] != opSub || (name != "admin_invite" && e["user"] == "") {
				t.Errorf("%s: operator %v (want %s), user %v", name, e["operator"], opSub, e["user"])
			}
		}
		for name, n := range want {
			if got[name] != n {
				t.Errorf("%d %s events, want %d (all: %v)", got[name], name, n, got)
			}
		}
	})
}

// TestGroupsDecideWhoEntersAnApplication is the operator's whole journey
// from the README: make themselves admin with the command, open the
// console, find a person, add them to ops; an application that admits
// only ops (a go-oidc relying party) lets them in and sees their groups;
// a person outside ops gets a page saying they have no access (and
// access_denied without a page); once the person leaves ops, their
// sessions of it end at once: the refresh token and the access token stop
// working.
func TestGroupsDecideWhoEntersAnApplication(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		var log testkit.SyncBuffer
		a, op, person, _, personKey := operatorAndPerson(t, store, nil, &log)
		ctx := context.Background()
		provider, err := oidc.NewProvider(ctx, a.URL)
		if err != nil {
			t.Fatal(err)
		}
		grafana := oauth2.Config{ClientID: "grafana", ClientSecret: chatSecret, Endpoint: provider.Endpoint(), RedirectURL: grafanaCallback,
			Scopes: []string{oidc.ScopeOpenID, "email", "groups", "offline_access"}}
		verifier := provider.Verifier(&oidc.Config{ClientID: "grafana"})

		// Not in ops: a page naming the application, and a security event.
		r := person.Get(pathOf(t, grafana.AuthCodeURL("st")))
		expectPage(t, r, http.StatusForbidden, "You don't have access to Grafana", "person@example.org", "Back to grafana.example.com")
		q := url.Values{"client_id": {"grafana"}, "redirect_uri": {grafanaCallback}, "response_type": {"code"}, "scope": {"openid"},
			"prompt": {"none"}, "state": {"n"}}
		loc, _ := url.Parse(person.Get("/oauth2/authorize?" + q.Encode()).Header.Get("Location"))
		if loc == nil || loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "n" {
			t.Errorf("prompt=none outside the allowed groups: %v, want access_denied", loc)
		}

		// The operator adds the person to ops in the console.
		target := consoleAccountOf(t, op, "person@example.org")
		expectStatus(t, op.Post(target+"/groups", url.Values{"add": {"ops"}}), http.StatusSeeOther)

		back := authorize(t, a, person, grafana.AuthCodeURL("st"), personKey, true)
		tok, err := grafana.Exchange(ctx, back.Get("code"))
		if err != nil {
			t.Fatalf("a member of ops: %v", err)
		}
		id, err := verifier.Verify(ctx, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Groups []string `json:"groups"`
		}
		id.Claims(&claims)
		if strings.Join(claims.Groups, ",") != "ops" {
			t.Errorf("the ID token's groups: %v, want [ops]", claims.Groups)
		}
		info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		var infoClaims struct {
			Groups []string `json:"groups"`
		}
		if err != nil || info.Claims(&infoClaims) != nil || strings.Join(infoClaims.Groups, ",") != "ops" {
			t.Errorf("userinfo's groups: %v %v", infoClaims.Groups, err)
		}

		// Out of ops again: the refresh token stops working.
		expectStatus(t, op.Post(target+"/groups", url.Values{"remove": {"ops"}}), http.StatusSeeOther)
		tok.Expiry = time.Now().Add(-time.Minute)
		if _, err := grafana.TokenSource(ctx, tok).Token(); !isOAuthError(err, "invalid_grant") {
			t.Errorf("a refresh after leaving ops: %v, want invalid_grant", err)
		}
		if _, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
			t.Error("userinfo still answers after the person left ops")
		}
		expectStatus(t, person.Get(pathOf(t, grafana.AuthCodeURL("st"))), http.StatusForbidden)

		// Each refusal was a security event: the page, prompt=none and
		// the page again. (Taking the person out of the group ended their
		// sessions of the application at once: the refresh finds none.)
		var reasons []string
		for _, line := range strings.Split(log.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["event"] == "application_refused" && e["app"] == "grafana" {
				reasons = append(reasons, e["reason"].(string))
			}
		}
		if strings.Join(reasons, " ") != "not_in_allowed_groups not_in_allowed_groups not_in_allowed_groups" {
			t.Errorf("application_refused events: %v", reasons)
		}

		// Discovery lists the scope and the claim.
		var d map[string]any
		json.Unmarshal([]byte(a.Browser(t).Get("/.well-known/openid-configuration").Body), &d)
		if !strings.Contains(strings.Join(toStrings(d["scopes_supported"]), " "), "groups") || !strings.Contains(strings.Join(toStrings(d["claims_supported"]), " "), "groups") {
			t.Errorf("discovery: scopes %v, claims %v", d["scopes_supported"], d["claims_supported"])
		}
	})
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestGroupCommands: latchkey admin group and groups, with the exit codes
// of every admin command.
func TestGroupCommands(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, store testkit.Store) {
		a := testkit.StartApp(t, testkit.AppOptions{Store: store})
		for _, email := range []string{"ann@example.com", "bob@example.com"} {
			signIn(t, a, a.Browser(t), email)
		}
		for _, tc := range []struct {
			args []string
			exit int
			out  string
		}{
			{[]string{"group", "add", "ann@example.com", "ops", "db.admins"}, 0, "ann@example.com is now in: db.admins ops."},
			{[]string{"group", "add", "bob@example.com", "ops"}, 0, "bob@example.com is now in: ops."},
			{[]string{"group", "add", "ann@example.com", "ops"}, 0, "in those groups already"},
			{[]string{"group", "remove", "ann@example.com", "db.admins"}, 0, "ann@example.com is now in: ops."},
			{[]string{"group", "add", "nobody@example.com", "ops"}, 1, ""},
			{[]string{"group", "add", "ann@example.com", "Ops"}, 2, ""},
			{[]string{"group", "add", "ann@example.com", "-ops"}, 2, ""},
			{[]string{"group", "add", "ann@example.com"}, 2, ""},
			{[]string{"group", "join", "ann@example.com", "ops"}, 2, ""},
			{[]string{"groups"}, 0, "ops"},
			{[]string{"groups", "ops"}, 0, "ann@example.com\nbob@example.com\n"},
			{[]string{"groups", "Bad Name"}, 2, ""},
			{[]string{"show", "ann@example.com"}, 0, "ops"},
		} {
			out, errOut, exit := admin(t, a, "", tc.args...)
			if exit != tc.exit || !strings.Contains(out, tc.out) {
				t.Errorf("%v: exit %d (want %d)\n%s%s", tc.args, exit, tc.exit, out, errOut)
			}
		}
		out, _, _ := admin(t, a, "", "groups")
		if !regexp.MustCompile(`ops\s+2`).MatchString(out) {
			t.Errorf("groups:\n%s", out)
		}
		out, _, _ = admin(t, a, "", "users", "--json")
		var list []struct {
			Email  string   `json:"email"`
			Groups []string `json:"groups"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || strings.Join(list[0].Groups, " ") != "ops" {
			t.Errorf("users --json: %v %+v", err, list)
		}
	})
}
