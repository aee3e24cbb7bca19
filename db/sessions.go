package db

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// How a session signed in (RefreshSession.Method).
const (
	MethodPasskey = "p" // a passkey
	MethodLink    = "l" // an emailed link (sign-in, sign-up, recovery, an operator's)
	MethodCode    = "c" // the one-time code of an email, typed in the browser that asked
)

// maxDeviceWord bounds the browser and system names kept in an entry.
const maxDeviceWord = 16

// deviceWord returns s if it can stand in the list as a browser or system
// name: 1 to maxDeviceWord ASCII letters. Anything else is "" (unknown):
// the row never holds what a User-Agent header said, only a word the code
// chose from its own list, and never anything that could break the list's
// format or grow it.
func deviceWord(s string) string {
	if len(s) > maxDeviceWord {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return ""
		}
	}
	return s
}

// validSID reports whether s can be a session id in the list: 1 to 32
// base64url characters (auth.NewSessionID makes 12).
func validSID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func validMethod(m string) bool { return m == MethodPasskey || m == MethodLink || m == MethodCode }

// SessionStart is the session a sign-in starts. The write that records
// the sign-in also records it in the account's list of sessions (see
// appendSession), so the account page lists it from its first moment,
// not only after its first refresh. The zero value records nothing.
type SessionStart struct {
	SID     string
	Method  string // MethodPasskey, MethodLink or MethodCode
	Browser string // "Firefox", "" when unknown (see deviceWord)
	System  string // "Linux", "" when unknown
	// Replaces is the session this browser held, of the same account,
	// when it signed in again (a step-up): the new one takes its place
	// in the list (see liveSessions).
	Replaces string
	// Expires is when the session ends unless it is refreshed (Unix ms).
	Expires int64
	// AuthTime is when the person proved who they are (Unix s), if not
	// at this sign-in: a session that goes on after an email change.
	AuthTime int64
}

// entry returns the list entry of s, started at now, or "" when s records
// nothing. Fields that do not fit the format are left out, never written.
func (s SessionStart) entry(now time.Time) string {
	if !validSID(s.SID) {
		return ""
	}
	e := RefreshSession{SID: s.SID, Rotated: now.UnixMilli(), Expires: s.Expires, AuthTime: now.Unix(),
		Browser: deviceWord(s.Browser), System: deviceWord(s.System)}
	if s.AuthTime != 0 {
		e.AuthTime = s.AuthTime
	}
	if validMethod(s.Method) {
		e.Method = s.Method
	}
	if validSID(s.Replaces) && s.Replaces != s.SID {
		e.Replaces = s.Replaces
	}
	return formatRefreshSessions([]RefreshSession{e})
}

// appendSession is the SQL assignment that adds the entry p (a
// parameter; an empty one adds nothing) to the account's list of
// sessions, in the statement that records a sign-in: no statement of its
// own. The list may then hold one entry past MaxRefreshSessions, until
// boundSessions trims it.
func appendSession(p string) string {
	p = `CAST(` + p + ` AS TEXT)`
	return `refresh_sessions = CASE WHEN ` + p + ` = '' THEN users.refresh_sessions
		WHEN users.refresh_sessions = '' THEN ` + p + ` ELSE users.refresh_sessions || ',' || ` + p + ` END`
}

// boundSessions returns what the account's list (as a sign-in just wrote
// it) must become when that sign-in took it past MaxRefreshSessions
// entries, with the floor it needs (see liveSessions), keeping the
// session sid just started; ok is false when the list is within bounds.
// The rewrite (boundSessionsSQL) is conditional on the list being as
// read: a write in between (a refresh, a sign-out, another sign-in)
// bounds the list itself.
func (u *User) boundSessions(sid string, now time.Time) (list string, floor int64, ok bool) {
	if u.listed == "" || strings.Count(u.listed, ",")+1 <= MaxRefreshSessions {
		return "", 0, false
	}
	kept, floor := liveSessions(parseRefreshSessions(u.listed), 0, now.UnixMilli(), sid)
	return formatRefreshSessions(kept), floor, true
}

// boundSessionsSQL rewrites a list boundSessions bounded.
const boundSessionsSQL = `UPDATE users SET refresh_sessions = $1, refresh_floor = GREATEST(refresh_floor, $2)
	WHERE id = $3 AND refresh_sessions = $4`

// liveSessions returns the sessions of list as they stand at nowMs, and
// the floor that goes with them: expired entries dropped; sessions
// replaced by a later sign-in in the same browser dropped; and, past
// MaxRefreshSessions, those refreshed least recently but keep (see
// capSessions).
// The floor rises to the sign-in time of every session dropped before its
// time, so that a token of it is not taken in again as a new session
// (see RotateRefresh). Every write of the list goes through it, so what
// a Replaces field names is gone once written, and the field is cleared.
func liveSessions(list []RefreshSession, floor, nowMs int64, keep string) ([]RefreshSession, int64) {
	replaced := map[string]bool{}
	for _, s := range list {
		if s.Expires > nowMs && s.Replaces != "" {
			replaced[s.Replaces] = true
		}
	}
	kept := make([]RefreshSession, 0, len(list))
	for _, s := range list {
		switch {
		case s.Expires <= nowMs:
		case replaced[s.SID]:
			floor = max(floor, s.AuthTime)
		default:
			s.Replaces = ""
			kept = append(kept, s)
		}
	}
	return capSessions(kept, floor, MaxRefreshSessions, keep)
}

// capSessions drops the sessions refreshed least recently until at most
// limit are left (never keep, the session being added), raising the floor
// to the sign-in time of each: those must sign in again.
func capSessions(list []RefreshSession, floor int64, limit int, keep string) ([]RefreshSession, int64) {
	for len(list) > limit {
		oldest := -1
		for j, s := range list {
			if s.SID != keep && (oldest < 0 || s.Rotated < list[oldest].Rotated) {
				oldest = j
			}
		}
		if oldest < 0 {
			break
		}
		floor = max(floor, list[oldest].AuthTime)
		list = slices.Delete(list, oldest, oldest+1)
	}
	return list, floor
}

// LiveSessions returns the account's sessions as they stand at now (see
// liveSessions): what the account page lists.
func (u *User) LiveSessions(now time.Time) []RefreshSession {
	list, _ := liveSessions(u.Sessions, 0, now.UnixMilli(), "")
	return list
}

// sessionFields is how many fields an entry has:
// sid.gen.rotated_ms.expires_ms.auth_time_s.method.browser.system.replaces.
const sessionFields = 9

func parseRefreshSessions(s string) []RefreshSession {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := make([]RefreshSession, 0, len(parts))
	for _, p := range parts {
		f := strings.Split(p, ".")
		if len(f) != sessionFields || !validSID(f[0]) {
			continue
		}
		var n [4]int64
		ok := true
		for i := range n {
			v, err := strconv.ParseInt(f[i+1], 10, 64)
			n[i], ok = v, ok && err == nil
		}
		if !ok {
			continue
		}
		e := RefreshSession{SID: f[0], Gen: n[0], Rotated: n[1], Expires: n[2], AuthTime: n[3],
			Browser: deviceWord(f[6]), System: deviceWord(f[7])}
		if validMethod(f[5]) {
			e.Method = f[5]
		}
		if validSID(f[8]) {
			e.Replaces = f[8]
		}
		out = append(out, e)
	}
	return out
}

func formatRefreshSessions(list []RefreshSession) string {
	var b strings.Builder
	for i, s := range list {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.SID)
		for _, n := range []int64{s.Gen, s.Rotated, s.Expires, s.AuthTime} {
			b.WriteByte('.')
			b.WriteString(strconv.FormatInt(n, 10))
		}
		for _, w := range []string{s.Method, s.Browser, s.System, s.Replaces} {
			b.WriteByte('.')
			b.WriteString(w)
		}
	}
	return b.String()
}
