// Package events names every security event Latchkey logs, and writes
// them: one log line each, msg="security event", with an event name and
// the account's opaque id first. A Name can only be made here, so All is
// every event the code can log, and docs/operating.md's table is checked
// against it.
package events

import (
	"context"
	"log/slog"
)

// Name is a security event's name.
type Name struct{ s string }

// String returns the name as logged.
func (n Name) String() string { return n.s }

var all []Name

func name(s string) Name {
	n := Name{s}
	all = append(all, n)
	return n
}

// All returns every event name, in the order declared.
func All() []Name { return append([]Name(nil), all...) }

// Sign-in, sessions and the account.
var (
	SignUp            = name("signup")
	SignIn            = name("signin")
	SignInFailed      = name("signin_failed")
	SignOut           = name("signout")
	SignOutEverywhere = name("signout_everywhere")
	SignOutSession    = name("signout_session")
	RefreshRefused    = name("refresh_refused")
	RefreshReplayed   = name("refresh_replayed")
	PasskeyAdded      = name("passkey_added")
	PasskeyRenamed    = name("passkey_renamed")
	PasskeyRemoved    = name("passkey_removed")
	PasskeyFlags      = name("passkey_flags_changed")
	EmailSignInOff    = name("email_signin_off")
	EmailSignInOn     = name("email_signin_on")
	EmailChangeStart  = name("email_change_started")
	EmailChanged      = name("email_change_confirmed")
	RecoveryStarted   = name("recovery_started")
	RecoveryCancelled = name("recovery_cancelled")
	RecoveryCompleted = name("recovery_completed")
	AccountDeleted    = name("account_deleted")
	ClockSkew         = name("clock_skew")
)

// Applications (OpenID Connect). Each carries the application's id in
// the field "app" (the field "client" is the address, as everywhere).
var (
	ApplicationGranted         = name("application_granted")
	ApplicationDenied          = name("application_denied")
	ApplicationSignIn          = name("application_signin")
	ApplicationToken           = name("application_token")
	ApplicationRefreshReplay   = name("application_refresh_replayed")
	ApplicationCodeReplayed    = name("application_code_replayed")
	ApplicationRevoked         = name("application_revoked")
	ApplicationClientFailed    = name("application_client_auth_failed")
	ApplicationRefused         = name("application_refused")
	BackChannelLogoutFailed    = name("backchannel_logout_failed")
	BackChannelLogoutAbandoned = name("backchannel_logout_abandoned")
)

// The operator's command (latchkey admin), one per command that changes
// something.
var (
	AdminRecoveryLink  = name("admin_recovery_link")
	AdminSignOut       = name("admin_signout")
	AdminDisable       = name("admin_disable")
	AdminEnable        = name("admin_enable")
	AdminDelete        = name("admin_delete")
	AdminInvite        = name("admin_invite")
	AdminGroupAdd      = name("admin_group_add")
	AdminGroupRemove   = name("admin_group_remove")
	AdminPasskeyDelete = name("admin_passkey_delete")
)

// Log writes one security event line at level: event, user (an opaque
// id, "" when unknown), then attrs. Never a token, a link or a code.
func Log(ctx context.Context, log *slog.Logger, level slog.Level, n Name, user string, attrs ...slog.Attr) {
	log.LogAttrs(ctx, level, "security event",
		append([]slog.Attr{slog.String("event", n.s), slog.String("user", user)}, attrs...)...)
}
