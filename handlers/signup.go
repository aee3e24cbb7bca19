package handlers

import (
	"errors"
	"slices"
	"strings"
)

// SignUpPolicy says which new addresses may create an account (SIGNUP):
// anyone (open), nobody but people an operator invites, or addresses in
// some domains.
type SignUpPolicy struct {
	InviteOnly bool
	Domains    []string // lowercase; empty: any
}

// ParseSignUp reads SIGNUP: "open", "invite", or a comma-separated list
// of email domains.
func ParseSignUp(s string) (SignUpPolicy, error) {
	switch s = strings.ToLower(strings.TrimSpace(s)); s {
	case "", "open":
		return SignUpPolicy{}, nil
	case "invite":
		return SignUpPolicy{InviteOnly: true}, nil
	}
	var p SignUpPolicy
	for _, d := range strings.Split(s, ",") {
		d = strings.TrimPrefix(strings.TrimSpace(d), "@")
		if d == "" || strings.ContainsAny(d, "@ /") || !strings.Contains(d, ".") {
			return SignUpPolicy{}, errors.New(`want open, invite, or email domains such as "example.com,example.org"`)
		}
		p.Domains = append(p.Domains, d)
	}
	return p, nil
}

// Allows reports whether email may sign up on its own (an operator's
// invitation always may).
func (p SignUpPolicy) Allows(email string) bool {
	if p.InviteOnly {
		return false
	}
	if len(p.Domains) == 0 {
		return true
	}
	_, domain, _ := strings.Cut(email, "@")
	return slices.Contains(p.Domains, domain)
}
