package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/a-h/templ"

	"github.com/latchkey/latchkey/app"
	"github.com/latchkey/latchkey/auth"
	"github.com/latchkey/latchkey/db"
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/events"
	"github.com/latchkey/latchkey/handlers"
	"github.com/latchkey/latchkey/i18n"
	"github.com/latchkey/latchkey/mail"
	"github.com/latchkey/latchkey/oidc"
	"github.com/latchkey/latchkey/views"
)

// Env is where a command runs: the environment the server reads, the
// terminal, and options for tests (a clock, the mail server's TLS).
type Env struct {
	Getenv         func(string) string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Options        app.Options
}

// command is one `latchkey admin` subcommand.
type command struct {
	name, args, help string
	run              func(t *tool, flags *flag.FlagSet, args []string) error
	flags            func(flags *flag.FlagSet)
}

var commands = []command{
	{"users", "[--search TEXT] [--json]", "list the accounts: email, created, passkeys, email sign-in on/off, last passkey use, disabled",
		(*tool).users, func(f *flag.FlagSet) {
			f.String("search", "", "only addresses that contain TEXT")
			f.Bool("json", false, "a JSON array")
		}},
	{"show", "EMAIL", "the account and its passkeys, with its user id (as in the security events of the log)", (*tool).show, nil},
	{"recovery-link", "EMAIL", "print a one-time link (valid LINK_TTL) that signs the person in, fresh enough to add a passkey; check who they are first. The address is told", (*tool).recoveryLink, nil},
	{"signout", "EMAIL", "end every session of the account, on every instance (as \"Sign out everywhere\")", (*tool).signOut, nil},
	{"disable", "EMAIL", "the account can no longer sign in by any means; its sessions end within a second everywhere; its links and recovery are void", (*tool).disable, nil},
	{"enable", "EMAIL", "let a disabled account sign in again", (*tool).enable, nil},
	{"delete", "EMAIL [--yes]", "delete the account and its passkeys, as its own deletion does (asks to confirm unless --yes)",
		(*tool).delete, func(f *flag.FlagSet) { f.Bool("yes", false, "do not ask to confirm") }},
	{"invite", "EMAIL [--lang TAG]", "email a sign-up link, which works even when SIGNUP does not let the address sign up (in English, or the language TAG: de, es, fr)",
		(*tool).invite, func(f *flag.FlagSet) { f.String("lang", i18n.Default, "the email's language") }},
	{"group", "add|remove EMAIL GROUP…", "add the account to groups, or remove it from them (a name is a lowercase letter or digit, then up to 63 of those, \".\", \"_\" or \"-\"; at most 64 groups)",
		(*tool).group, nil},
	{"groups", "[GROUP]", "every group with how many accounts are in it, or the accounts in GROUP", (*tool).groups, nil},
	{"oidc-client", "--id ID --name NAME --redirect-uri URI…", "print a new OpenID Connect client entry for OIDC_CLIENTS_FILE, with a fresh secret and its hash",
		nil, oidcClientFlags},
}

// Run is `latchkey admin …`.
func Run(ctx context.Context, args []string, env Env) error {
	usageText := func(w io.Writer) {
		fmt.Fprintln(w, "Usage: latchkey admin COMMAND [ARGUMENTS]\n\n"+
			"Operator commands. They read the same environment as the server (DATABASE_PATH or\n"+
			"DATABASE_URL, SECRET_KEYS, SMTP_URL, BASE_URL, …) and are safe to run while servers run.\n"+
			"They never create a database. Each change is a security event in their log (standard\n"+
			"error, in LOG_FORMAT), like the server's.\n\nCommands:")
		for _, c := range commands {
			fmt.Fprintf(w, "  %-14s %-28s %s\n", c.name, c.args, c.help)
		}
		fmt.Fprintln(w, "\nExit status: 0 done, 1 failed, no such account or no database there, 2 bad usage.")
	}
	if len(args) == 0 {
		usageText(env.Stderr)
		return usage("admin needs a command")
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usageText(env.Stdout)
		return nil
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == args[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		usageText(env.Stderr)
		return usage("unknown admin command %q", args[0])
	}
	flags := flag.NewFlagSet("latchkey admin "+cmd.name, flag.ContinueOnError)
	// The flag package's own messages would repeat the error main prints.
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	commandUsage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: latchkey admin %s %s\n  %s\n", cmd.name, cmd.args, cmd.help)
		flags.SetOutput(w)
		flags.PrintDefaults()
		flags.SetOutput(io.Discard)
	}
	if cmd.flags != nil {
		cmd.flags(flags)
	}
	positional, err := parseInterspersed(flags, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		commandUsage(env.Stdout)
		return nil
	}
	if err != nil {
		commandUsage(env.Stderr)
		return &ExitError{Code: ExitUsage, Err: err}
	}
	wantsEmail := strings.HasPrefix(cmd.args, "EMAIL")
	switch {
	case cmd.name == "group":
		if len(positional) < 3 || (positional[0] != "add" && positional[0] != "remove") {
			commandUsage(env.Stderr)
			return usage("group needs add or remove, an email address and at least one group")
		}
		normal, err := mail.NormalizeAddress(positional[1])
		if err != nil {
			return usage("%q is not an email address", positional[1])
		}
		positional[1] = normal
		for _, g := range positional[2:] {
			if !db.ValidGroup(g) {
				return usage("%q is not a group name: a lowercase letter or digit, then up to 63 of those, \".\", \"_\" or \"-\"", g)
			}
		}
	case cmd.name == "groups":
		if len(positional) > 1 {
			commandUsage(env.Stderr)
			return usage("groups takes at most one group")
		}
		if len(positional) == 1 && !db.ValidGroup(positional[0]) {
			return usage("%q is not a group name", positional[0])
		}
	case wantsEmail && len(positional) != 1:
		commandUsage(env.Stderr)
		return usage("%s needs one email address", cmd.name)
	case !wantsEmail && len(positional) != 0:
		commandUsage(env.Stderr)
		return usage("%s takes no arguments besides its flags", cmd.name)
	}
	if wantsEmail {
		normal, err := mail.NormalizeAddress(positional[0])
		if err != nil {
			return usage("%q is not an email address", positional[0])
		}
		positional[0] = normal
	}

	if cmd.name == "oidc-client" {
		return oidcClient(flags, env) // needs no database
	}
	cfg, err := app.ConfigFromEnv(env.Getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := env.Options.Logger
	if log == nil {
		log = app.NewLogger(cfg, env.Stderr)
	}
	env.Options.Logger = log
	if env.Options.MailLog == nil {
		env.Options.MailLog = env.Stderr
	}
	if env.Options.Clock == nil {
		env.Options.Clock = auth.SystemClock{}
	}
	// Only the server creates a database and its secret: pointed at the
	// wrong place, a command must not answer from a new, empty one.
	env.Options.ExistingDatabase = true
	base, err := app.OpenBase(ctx, cfg, env.Options)
	if errors.Is(err, db.ErrNoDatabase) {
		setting := "DATABASE_PATH"
		if cfg.DatabaseURL != "" {
			setting = "DATABASE_URL"
		}
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%w (%s): is that where the server keeps it? The server creates its database on its first start; this command creates nothing", err, setting)}
	}
	if err != nil {
		return err
	}
	defer base.DB.Close()
	catalog, err := i18n.Load()
	if err != nil {
		return err
	}
	t := &tool{ctx: ctx, cfg: cfg, Base: base, env: env, log: log, clock: env.Options.Clock, name: cmd.name, catalog: catalog}
	return cmd.run(t, flags, positional)
}

// parseInterspersed parses flags that may come before or after the
// positional arguments ("delete EMAIL --yes").
func parseInterspersed(flags *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := flags.Parse(args); err != nil {
			return nil, err
		}
		args = flags.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// tool is one command's run: configuration, database, keys, mailer.
type tool struct {
	*app.Base
	ctx     context.Context
	cfg     app.Config
	env     Env
	log     *slog.Logger
	clock   auth.Clock
	name    string
	catalog *i18n.Catalog
}

// account returns the account with the address, or exit status 1.
func (t *tool) account(email string) (*db.User, error) {
	u, err := t.DB.UserByEmail(t.ctx, email)
	if errs.Code(err) == errs.NotFound {
		return nil, &ExitError{Code: ExitFailure, Err: fmt.Errorf("there is no account with the address %s", email)}
	}
	return u, err
}

// commandEvents are the security events of the commands that change
// something.
var commandEvents = map[string]events.Name{
	"recovery-link": events.AdminRecoveryLink,
	"signout":       events.AdminSignOut,
	"disable":       events.AdminDisable,
	"enable":        events.AdminEnable,
	"delete":        events.AdminDelete,
	"invite":        events.AdminInvite,
}

// event logs the command as a security event, like the server's.
func (t *tool) event(u *db.User, attrs ...slog.Attr) {
	user := ""
	if u != nil {
		user = auth.Subject(u.Handle)
	}
	events.Log(t.ctx, t.log, slog.LevelInfo, commandEvents[t.name], user, attrs...)
}

// applicationWait is how long a command waits for the applications to
// take their back-channel logouts: as long as a server retries them (the
// command is its own process: no server retries for it afterwards).
const applicationWait = oidc.LogoutRetryFor + 10*time.Second

// tellApplications sends the back-channel logouts of what a command
// ended, and waits until the applications took them, or gave up; after a
// couple of seconds it says it is waiting, and why.
func (t *tool) tellApplications(u *db.User, ended db.Ended) {
	if ended.Empty() || t.cfg.OIDCClients.Len() == 0 {
		return
	}
	p := oidc.New(oidc.Config{Issuer: t.cfg.BaseURL.Scheme + "://" + t.cfg.BaseURL.Host, AccessTTL: t.cfg.AccessTTL,
		IdleTTL: t.cfg.IdleTTL, MaxTTL: t.cfg.MaxTTL, Logger: t.log}, t.cfg.OIDCClients, t.Keys, t.DB, nil, t.clock, nil)
	defer p.Close()
	p.Notify(u.Handle, ended)
	quick, cancel := context.WithTimeout(t.ctx, 2*time.Second)
	n := p.WaitForLogouts(quick)
	cancel()
	if n == 0 {
		return
	}
	fmt.Fprintf(t.env.Stderr, "The change is done. Telling %d applications by back-channel logout: one has not answered yet, so it is retried for up to %s (interrupt to stop waiting; see the backchannel_logout_failed events).\n",
		n, oidc.LogoutRetryFor)
	ctx, cancel := context.WithTimeout(t.ctx, applicationWait)
	defer cancel()
	if n := p.WaitForLogouts(ctx); n > 0 {
		fmt.Fprintf(t.env.Stderr, "%d back-channel logouts could not be delivered: those applications may keep their sessions of %s until they next refresh.\n", n, u.Email)
	}
}

func (t *tool) printf(format string, args ...any) { fmt.Fprintf(t.env.Stdout, format, args...) }

// sendEmail renders and sends an email.
func (t *tool) sendEmail(to, subject string, html, text templ.Component) error {
	var h, p bytes.Buffer
	if err := html.Render(t.ctx, &h); err != nil {
		return err
	}
	if err := text.Render(t.ctx, &p); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.SMTPTimeout)
	defer cancel()
	if err := t.Mailer.Send(ctx, mail.Message{To: to, Subject: subject, Text: p.String(), HTML: h.String()}); err != nil {
		return fmt.Errorf("sending the email to %s: %w", to, err)
	}
	return nil
}

// notice emails the account holder, in their language, about what the
// operator did: subject and paragraphs are message ids.
func (t *tool) notice(u *db.User, subject string, paragraphs ...string) error {
	tr := t.catalog.T(u.Lang)
	data := []any{"Site", views.SiteName, "Host", t.cfg.BaseURL.Host, "Duration", tr.Duration(t.cfg.LinkTTL)}
	e := views.NoticeEmail{T: tr, Subject: tr.S(subject, data...), When: t.clock.Now(),
		IfNotYou: tr.S("notice.operator.if_not_you", data...), Host: t.cfg.BaseURL.Host}
	for _, p := range paragraphs {
		e.Paragraphs = append(e.Paragraphs, tr.S(p, data...))
	}
	return t.sendEmail(u.Email, e.Subject, views.NoticeEmailHTML(e), views.NoticeEmailText(e))
}

// link seals a link of kind for the account (or, for an invitation, the
// address) and returns its URL.
func (t *tool) link(kind auth.LinkKind, handle []byte, email string) (string, error) {
	token, err := t.Keys.SealLink(&auth.Link{Kind: kind, Handle: handle, Email: email, IssuedAt: t.clock.Now()}, t.cfg.LinkTTL)
	if err != nil {
		return "", err
	}
	return t.cfg.BaseURL.Scheme + "://" + t.cfg.BaseURL.Host + handlers.LinkPath(kind, token), nil
}

// listed is an account as `users --json` prints it.
type listed struct {
	ID             string     `json:"id"`
	Email          string     `json:"email"`
	Created        time.Time  `json:"created"`
	Passkeys       int        `json:"passkeys"`
	EmailSignIn    bool       `json:"email_signin"`
	LastPasskeyUse *time.Time `json:"last_passkey_use"`
	Disabled       bool       `json:"disabled"`
	RecoveryDue    *time.Time `json:"recovery_due"`
	Groups         []string   `json:"groups"`
}

func (t *tool) users(flags *flag.FlagSet, _ []string) error {
	all, err := t.DB.Users(t.ctx, flags.Lookup("search").Value.String())
	if err != nil {
		return err
	}
	out := make([]listed, len(all))
	for i, u := range all {
		out[i] = listed{ID: auth.Subject(u.Handle), Email: u.Email, Created: u.CreatedAt.UTC(), Passkeys: u.Passkeys,
			EmailSignIn: u.EmailSignIn, Disabled: u.Disabled, Groups: u.Groups}
		if out[i].Groups == nil {
			out[i].Groups = []string{}
		}
		if !u.LastPasskeyUse.IsZero() {
			last := u.LastPasskeyUse.UTC()
			out[i].LastPasskeyUse = &last
		}
		if u.RecoveryDue != 0 {
			due := time.UnixMilli(u.RecoveryDue).UTC()
			out[i].RecoveryDue = &due
		}
	}
	if flags.Lookup("json").Value.String() == "true" {
		enc := json.NewEncoder(t.env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := tabwriter.NewWriter(t.env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "EMAIL\tCREATED\tPASSKEYS\tEMAIL SIGN-IN\tLAST PASSKEY USE\tDISABLED\tGROUPS")
	for _, u := range out {
		last := "never"
		if u.LastPasskeyUse != nil {
			last = u.LastPasskeyUse.Format(time.DateTime)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", u.Email, u.Created.Format(time.DateTime), u.Passkeys,
			onOff(u.EmailSignIn), last, yesNo(u.Disabled), strings.Join(u.Groups, " "))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(t.env.Stderr, count(len(out), "account", "accounts"))
	return nil
}

// count says how many: "1 account", "2 accounts", "0 accounts".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (t *tool) show(_ *flag.FlagSet, args []string) error {
	u, err := t.account(args[0])
	if err != nil {
		return err
	}
	creds, err := t.DB.CredentialsOf(t.ctx, u.ID)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(t.env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "email\t%s\n", u.Email)
	fmt.Fprintf(w, "user id\t%s\n", auth.Subject(u.Handle))
	fmt.Fprintf(w, "created\t%s\n", u.CreatedAt.UTC().Format(time.DateTime))
	fmt.Fprintf(w, "email sign-in\t%s\n", onOff(u.EmailSignIn))
	fmt.Fprintf(w, "disabled\t%s\n", yesNo(u.Disabled))
	groups := "none"
	if len(u.Groups) > 0 {
		groups = strings.Join(u.Groups, " ")
	}
	fmt.Fprintf(w, "groups\t%s\n", groups)
	recovery := "none"
	if u.RecoveryDue != 0 {
		recovery = "pending, ready at " + time.UnixMilli(u.RecoveryDue).UTC().Format(time.DateTime)
	}
	fmt.Fprintf(w, "recovery\t%s\n", recovery)
	if u.TokensValidAfter > 0 {
		fmt.Fprintf(w, "sessions valid after\t%s\n", time.UnixMilli(u.TokensValidAfter).UTC().Format(time.DateTime))
	}
	fmt.Fprintf(w, "passkeys\t%d\n", len(creds))
	for _, c := range creds {
		provider := auth.ProviderName(c.AAGUID)
		if provider == "" {
			provider = "unknown provider"
		}
		last := "never used"
		if !c.LastUsedAt.IsZero() {
			last = "last used " + c.LastUsedAt.UTC().Format(time.DateTime)
		}
		storage := "device-bound"
		if c.BackupState {
			storage = "synced"
		}
		fmt.Fprintf(w, "  %q\t%s, %s, added %s, %s\n", c.Name, provider, storage, c.CreatedAt.UTC().Format(time.DateTime), last)
	}
	return w.Flush()
}

func (t *tool) group(_ *flag.FlagSet, args []string) error {
	u, err := t.account(args[1])
	if err != nil {
		return err
	}
	var add, remove []string
	if args[0] == "add" {
		add = args[2:]
	} else {
		remove = args[2:]
	}
	ch, err := t.DB.ChangeGroups(t.ctx, u.ID, add, remove, t.cfg.OIDCClients.Refusing)
	if errors.Is(err, db.ErrTooManyGroups) {
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%s would be in more than %d groups: nothing was changed", u.Email, db.MaxGroups)}
	}
	if err != nil {
		return err
	}
	if len(ch.Added) > 0 {
		events.Log(t.ctx, t.log, slog.LevelInfo, events.AdminGroupAdd, auth.Subject(u.Handle), slog.String("groups", strings.Join(ch.Added, " ")))
	}
	if len(ch.Removed) > 0 {
		events.Log(t.ctx, t.log, slog.LevelInfo, events.AdminGroupRemove, auth.Subject(u.Handle), slog.String("groups", strings.Join(ch.Removed, " ")))
	}
	t.tellApplications(u, ch.Ended)
	now := "no group"
	if len(ch.Groups) > 0 {
		now = strings.Join(ch.Groups, " ")
	}
	switch {
	case len(ch.Added)+len(ch.Removed) == 0 && args[0] == "add":
		t.printf("%s was in those groups already; its groups: %s.\n", u.Email, now)
	case len(ch.Added)+len(ch.Removed) == 0:
		t.printf("%s was in none of those groups; its groups: %s.\n", u.Email, now)
	default:
		t.printf("%s is now in: %s.\n", u.Email, now)
	}
	return nil
}

func (t *tool) groups(_ *flag.FlagSet, args []string) error {
	if len(args) == 1 {
		members, err := t.DB.GroupMembers(t.ctx, args[0])
		if err != nil {
			return err
		}
		for _, u := range members {
			t.printf("%s\n", u.Email)
		}
		fmt.Fprintf(t.env.Stderr, "%s in %s\n", count(len(members), "account", "accounts"), args[0])
		return nil
	}
	all, err := t.DB.GroupCounts(t.ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(t.env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "GROUP\tACCOUNTS")
	for _, g := range all {
		fmt.Fprintf(w, "%s\t%d\n", g.Group, g.Members)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(t.env.Stderr, count(len(all), "group", "groups"))
	return nil
}

func (t *tool) recoveryLink(_ *flag.FlagSet, args []string) error {
	u, err := t.account(args[0])
	if err != nil {
		return err
	}
	if u.Disabled {
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("the account of %s is disabled: enable it first (latchkey admin enable %s)", u.Email, u.Email)}
	}
	link, err := t.link(auth.LinkOperator, u.Handle, u.Email)
	if err != nil {
		return err
	}
	// Told first: if the notice cannot go out, no link is printed.
	if err := t.notice(u, "notice.operator_link.subject", "notice.operator_link", "notice.operator_link.once"); err != nil {
		return err
	}
	t.event(u)
	fmt.Fprintf(t.env.Stderr, "A one-time recovery link for %s, valid for %s. Give it only to the person, after checking who they are:\n", u.Email, t.cfg.LinkTTL)
	t.printf("%s\n", link)
	return nil
}

func (t *tool) signOut(_ *flag.FlagSet, args []string) error {
	u, err := t.account(args[0])
	if err != nil {
		return err
	}
	_, ended, err := t.DB.EndAllSessions(t.ctx, u.Handle, t.clock.Now())
	if err != nil {
		return err
	}
	t.event(u)
	t.tellApplications(u, ended)
	t.printf("Every session of %s has ended (on every instance within a second).\n", u.Email)
	return nil
}

func (t *tool) disable(_ *flag.FlagSet, args []string) error { return t.setDisabled(args[0], true) }
func (t *tool) enable(_ *flag.FlagSet, args []string) error  { return t.setDisabled(args[0], false) }

func (t *tool) setDisabled(email string, disabled bool) error {
	u, err := t.account(email)
	if err != nil {
		return err
	}
	_, ended, changed, err := t.DB.SetDisabled(t.ctx, u.Handle, disabled, t.clock.Now())
	if err != nil {
		return err
	}
	state := "enabled"
	if disabled {
		state = "disabled"
	}
	if !changed {
		t.printf("The account of %s was already %s.\n", u.Email, state)
		return nil
	}
	t.event(u)
	t.tellApplications(u, ended)
	if disabled {
		t.printf("The account of %s is disabled: it cannot sign in, its sessions end within a second on every instance, and its links and any recovery are void.\n", u.Email)
	} else {
		t.printf("The account of %s is enabled again: it can sign in.\n", u.Email)
	}
	return nil
}

func (t *tool) delete(flags *flag.FlagSet, args []string) error {
	u, err := t.account(args[0])
	if err != nil {
		return err
	}
	if flags.Lookup("yes").Value.String() != "true" {
		fmt.Fprintf(t.env.Stderr, "Delete the account of %s and its %s? This can't be undone.\nType the address to confirm: ", u.Email, count(u.Passkeys, "passkey", "passkeys"))
		line, _ := bufio.NewReader(t.env.Stdin).ReadString('\n')
		if strings.ToLower(strings.TrimSpace(line)) != u.Email {
			return &ExitError{Code: ExitFailure, Err: errors.New("not confirmed: nothing was deleted")}
		}
	}
	_, ended, err := t.DB.DeleteUser(t.ctx, u.Handle, t.clock.Now())
	if err != nil {
		return err
	}
	t.event(u)
	t.tellApplications(u, ended)
	if err := t.notice(u, "notice.deleted.subject", "notice.operator_deleted"); err != nil {
		fmt.Fprintf(t.env.Stderr, "The account was deleted, but the notice could not be sent: %v\n", err)
	}
	t.printf("The account of %s and its passkeys are deleted; every session ends within a second on every instance.\n", u.Email)
	return nil
}

func (t *tool) invite(flags *flag.FlagSet, args []string) error {
	email := args[0]
	lang := flags.Lookup("lang").Value.String()
	if !t.catalog.Supported(lang) {
		var tags []string
		for _, l := range t.catalog.Languages() {
			tags = append(tags, l.Tag)
		}
		return usage("--lang %q: not one of the languages (%s)", lang, strings.Join(tags, ", "))
	}
	if _, err := t.DB.UserByEmail(t.ctx, email); err == nil {
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%s already has an account", email)}
	} else if errs.Code(err) != errs.NotFound {
		return err
	}
	link, err := t.link(auth.LinkInvite, nil, email)
	if err != nil {
		return err
	}
	e := views.LinkEmail{T: t.catalog.T(lang), Link: link, Email: email, Host: t.cfg.BaseURL.Host, TTL: t.cfg.LinkTTL, Purpose: "invite"}
	if err := t.sendEmail(email, e.Subject(), views.LinkEmailHTML(e), views.LinkEmailText(e)); err != nil {
		return err
	}
	t.event(nil, slog.String("email_domain", email[strings.LastIndexByte(email, '@')+1:]))
	if t.cfg.SMTP == nil {
		t.printf("SMTP_URL is empty, so the invitation to %s was not sent: it was written to the log (standard error) instead. Its link works once, for %s.\n", email, t.cfg.LinkTTL)
		return nil
	}
	t.printf("Invitation sent to %s; its link works once, for %s.\n", email, t.cfg.LinkTTL)
	return nil
}
