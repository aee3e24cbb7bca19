package db

import (
	"context"
	"database/sql"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/latchkey/latchkey/errs"
)

// MaxGroups is the most groups one account can be in.
const MaxGroups = 64

var groupPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidGroup reports whether name is a group name: a lowercase letter or
// digit, then up to 63 of those, ".", "_" or "-".
func ValidGroup(name string) bool { return groupPattern.MatchString(name) }

// ErrTooManyGroups refuses a change that would put an account in more
// than MaxGroups groups.
var ErrTooManyGroups = errs.E(errs.Conflict, "error.too_many_groups")

// GroupChange is what ChangeGroups did.
type GroupChange struct {
	Groups         []string // the account's groups after, sorted
	Added, Removed []string // those that actually changed
	// Ended are the account's sessions of the applications that no
	// longer admit it (their refresh tokens too), to tell them.
	Ended Ended
}

// ChangeGroups adds the account to the groups in add and removes it from
// those in remove (names checked by the caller with ValidGroup), in one
// locked write of its row. refusing names the applications that do not
// admit an account in the groups it is given (nil: none restricts by
// group): the account's sessions of those end in the same write, so it
// is out of them at once, not at their next refresh.
func (d *DB) ChangeGroups(ctx context.Context, userID int64, add, remove []string, refusing func(groups []string) []string) (GroupChange, error) {
	ctx, done := d.op(ctx, "ChangeGroups")
	defer done()
	var ch GroupChange
	err := d.inTx(ctx, func(tx *tx) error {
		ch = GroupChange{}
		var rawGroups, rawSessions string
		err := tx.row(`SELECT group_names, oidc_sessions FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`,
			userID).Scan(&rawGroups, &rawSessions)
		if errors.Is(err, sql.ErrNoRows) {
			return errAccountGone
		}
		if err != nil {
			return err
		}
		groups := strings.Fields(rawGroups)
		for _, g := range remove {
			if i := slices.Index(groups, g); i >= 0 {
				groups = slices.Delete(groups, i, i+1)
				ch.Removed = append(ch.Removed, g)
			}
		}
		for _, g := range add {
			if !slices.Contains(groups, g) {
				groups = append(groups, g)
				ch.Added = append(ch.Added, g)
			}
		}
		slices.Sort(groups)
		ch.Groups = groups
		if len(ch.Added) > 0 && len(groups) > MaxGroups {
			return ErrTooManyGroups
		}
		if len(ch.Added) == 0 && len(ch.Removed) == 0 {
			return nil
		}
		sessions := parseAppSessions(rawSessions)
		if len(ch.Removed) > 0 && refusing != nil {
			refused := refusing(groups)
			ch.Ended.Sessions, sessions = partitionAppSessions(sessions, func(s AppSession) bool { return slices.Contains(refused, s.Client) })
		}
		_, err = tx.exec(`UPDATE users SET group_names = $1, oidc_sessions = $2 WHERE id = $3`,
			strings.Join(groups, " "), formatAppSessions(sessions), userID)
		return err
	})
	if err != nil {
		return GroupChange{}, d.fail("change groups", err)
	}
	return ch, nil
}

// GroupCount is a group and how many live accounts are in it.
type GroupCount struct {
	Group   string
	Members int
}

// GroupCounts returns every group some live account is in, with its
// member count, by name. (It reads every account's groups: an operator's
// command, not a page.)
func (d *DB) GroupCounts(ctx context.Context) ([]GroupCount, error) {
	ctx, done := d.op(ctx, "GroupCounts")
	defer done()
	rows, err := d.r.query(ctx, `SELECT group_names FROM users WHERE deleted_at IS NULL AND group_names <> ''`)
	if err != nil {
		return nil, d.fail("group counts", err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, d.fail("group counts", err)
		}
		for _, g := range strings.Fields(raw) {
			counts[g]++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, d.fail("group counts", err)
	}
	out := make([]GroupCount, 0, len(counts))
	for g, n := range counts {
		out = append(out, GroupCount{g, n})
	}
	slices.SortFunc(out, func(a, b GroupCount) int { return strings.Compare(a.Group, b.Group) })
	return out, nil
}

// GroupMembers returns the live accounts in group, by address.
func (d *DB) GroupMembers(ctx context.Context, group string) ([]User, error) {
	ctx, done := d.op(ctx, "GroupMembers")
	defer done()
	rows, err := d.r.query(ctx, `SELECT `+userColumns+` FROM users
		WHERE deleted_at IS NULL AND ' ' || group_names || ' ' LIKE $1 ESCAPE '!' ORDER BY email`,
		"% "+likeEscaper.Replace(group)+" %")
	if err != nil {
		return nil, d.fail("group members", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, d.fail("group members", err)
		}
		out = append(out, *u)
	}
	return out, d.fail("group members", rows.Err())
}

var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

// AccountsPageSize is how many accounts a page of the console lists.
const AccountsPageSize = 50

// AccountsPage is one page of the console's list of accounts.
type AccountsPage struct {
	Accounts []User
	// Next is the cursor of the next page (0: this is the last).
	Next int64
}

// Accounts returns a page of live accounts, newest first, whose address
// starts with search or whose domain does (search "@example" for the
// domain only, "bob@ex" for the address only; "" lists all), before the
// cursor (0: from the newest). It pages by key (the id), never by
// offset, and counts nothing: a page costs the same with 100 000
// accounts as with 100. The search is a range of the address index
// (users_email, or users_email_c on PostgreSQL) or of the domain index
// (users_email_domain), then a sort of what matched.
func (d *DB) Accounts(ctx context.Context, search string, before int64) (AccountsPage, error) {
	ctx, done := d.op(ctx, "Accounts")
	defer done()
	const domain = `substr(email, strpos(email, '@')) COLLATE "C"`
	var (
		where = `deleted_at IS NULL`
		args  = []any{}
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if before > 0 {
		where += ` AND id < ` + arg(before)
	}
	search = strings.TrimSpace(search)
	for i := 0; i < len(search); i++ {
		if c := search[i]; c <= ' ' || c >= 0x7f {
			// Addresses are printable ASCII: nothing else can match (and
			// PostgreSQL refuses a NUL in text).
			return AccountsPage{}, nil
		}
	}
	search = strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, search)
	prefix := func(expr, p string) string {
		return expr + ` >= ` + arg(p) + ` AND ` + expr + ` < ` + arg(p+"\x7f")
	}
	switch at := strings.IndexByte(search, '@'); {
	case search == "":
	case at == 0:
		where += ` AND ` + prefix(domain, search)
	case at > 0:
		where += ` AND ` + prefix(`email COLLATE "C"`, search)
	default:
		where += ` AND ((` + prefix(`email COLLATE "C"`, search) + `) OR (` + prefix(domain, "@"+search) + `))`
	}
	rows, err := d.r.query(ctx, `SELECT `+userColumns+` FROM users WHERE `+where+`
		ORDER BY id DESC LIMIT `+arg(AccountsPageSize+1), args...)
	if err != nil {
		return AccountsPage{}, d.fail("accounts", err)
	}
	defer rows.Close()
	var page AccountsPage
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return AccountsPage{}, d.fail("accounts", err)
		}
		page.Accounts = append(page.Accounts, *u)
	}
	if err := rows.Err(); err != nil {
		return AccountsPage{}, d.fail("accounts", err)
	}
	if len(page.Accounts) > AccountsPageSize {
		page.Accounts = page.Accounts[:AccountsPageSize]
		page.Next = page.Accounts[AccountsPageSize-1].ID
	}
	return page, nil
}

// UserByID returns the live account with this id (disabled or not).
func (d *DB) UserByID(ctx context.Context, id int64) (*User, error) {
	ctx, done := d.op(ctx, "UserByID")
	defer done()
	u, err := scanUser(d.r.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1 AND deleted_at IS NULL`, id))
	if err != nil {
		return nil, d.notFound("user by id", err, "error.account_gone")
	}
	return u, nil
}
