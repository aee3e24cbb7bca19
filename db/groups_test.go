package db

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestGroups: an account joins and leaves groups in one write, at most
// MaxGroups; counts and members are by exact name (a "_" in a name is no
// wildcard).
func TestGroups(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		ann, bob := signUp(t, d, "ann@example.com"), signUp(t, d, "bob@example.com")
		ch, err := d.ChangeGroups(ctx, ann.ID, []string{"ops", "a_b", "admin", "ops"}, nil, nil)
		if err != nil || !slices.Equal(ch.Groups, []string{"a_b", "admin", "ops"}) || len(ch.Added) != 3 {
			t.Fatalf("add: %+v %v", ch, err)
		}
		d.ChangeGroups(ctx, bob.ID, []string{"axb", "ops"}, nil, nil)
		ch, err = d.ChangeGroups(ctx, ann.ID, nil, []string{"admin", "nothere"}, nil)
		if err != nil || !slices.Equal(ch.Groups, []string{"a_b", "ops"}) || !slices.Equal(ch.Removed, []string{"admin"}) {
			t.Fatalf("remove: %+v %v", ch, err)
		}
		if u, _ := d.UserByHandle(ctx, ann.Handle); !slices.Equal(u.Groups, []string{"a_b", "ops"}) || !u.InGroup("ops") || u.InGroup("admin") {
			t.Errorf("the row says %v", u.Groups)
		}
		counts, err := d.GroupCounts(ctx)
		if err != nil || fmt.Sprint(counts) != "[{a_b 1} {axb 1} {ops 2}]" {
			t.Errorf("counts %v %v", counts, err)
		}
		members, err := d.GroupMembers(ctx, "a_b")
		if err != nil || len(members) != 1 || members[0].Email != "ann@example.com" {
			t.Errorf("members of a_b: %v %v", members, err)
		}
		many := make([]string, MaxGroups)
		for i := range many {
			many[i] = fmt.Sprintf("g%02d", i)
		}
		if _, err := d.ChangeGroups(ctx, bob.ID, many, nil, nil); !errors.Is(err, ErrTooManyGroups) {
			t.Errorf("%d groups: %v, want ErrTooManyGroups", MaxGroups+2, err)
		}
		if u, _ := d.UserByHandle(ctx, bob.Handle); len(u.Groups) != 2 {
			t.Errorf("a refused change changed %v", u.Groups)
		}
	})
}

// TestAccountsPages: newest first, pages of AccountsPageSize by key, and
// the search by the start of the address or of its domain.
func TestAccountsPages(t *testing.T) {
	eachEngine(t, func(t *testing.T, cfg Config) {
		d := MustOpen(t, cfg)
		for i := range 120 {
			domain := "example.com"
			if i%3 == 0 {
				domain = "corp.example"
			}
			signUp(t, d, fmt.Sprintf("user%03d@%s", i, domain))
		}
		var seen []string
		before := int64(0)
		for page := 0; ; page++ {
			p, err := d.Accounts(ctx, "", before)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range p.Accounts {
				seen = append(seen, u.Email)
			}
			if p.Next == 0 {
				if page != 2 {
					t.Errorf("%d pages, want 3", page+1)
				}
				break
			}
			before = p.Next
		}
		if len(seen) != 120 || seen[0] != "user119@example.com" || seen[119] != "user000@corp.example" {
			t.Errorf("%d accounts from %s to %s", len(seen), seen[0], seen[len(seen)-1])
		}
		for search, want := range map[string]int{"user11": 10, "User11": 10, "@corp": 40, "corp": 40, "user119@e": 1, "nobody": 0,
			"user0%": 0, "example.com": 80} {
			p, err := d.Accounts(ctx, search, 0)
			got := len(p.Accounts)
			if p.Next != 0 {
				got = -1
			}
			if err != nil || got != min(want, AccountsPageSize) && !(want > AccountsPageSize && got == -1) {
				t.Errorf("search %q: %d (next %d) %v, want %d", search, len(p.Accounts), p.Next, err, want)
			}
		}
	})
}
