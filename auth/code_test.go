package auth

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestCodesAreUniformOverTheAlphabet(t *testing.T) {
	seen := map[rune]int{}
	const n = 120000
	for range n / CodeLength {
		c := NewCode()
		if len(c) != CodeLength {
			t.Fatalf("code %q", c)
		}
		for _, r := range c {
			if !strings.ContainsRune(CodeAlphabet, r) {
				t.Fatalf("code %q has %q, not in the alphabet", c, r)
			}
			seen[r]++
		}
	}
	if len(seen) != len(CodeAlphabet) {
		t.Errorf("%d of %d characters used", len(seen), len(CodeAlphabet))
	}
	// Each character about n/30 = 4000 times (±63 by chance); a biased
	// draw (a byte modulo 30, without rejecting 240 to 255) would give the
	// first 16 characters 4500.
	for r, k := range seen {
		if k < 3700 || k > 4300 {
			t.Errorf("%q drawn %d times of %d, want about %d", r, k, n, n/len(CodeAlphabet))
		}
	}
	for _, ambiguous := range "01OIL" {
		if strings.ContainsRune(CodeAlphabet, ambiguous) {
			t.Errorf("the alphabet has %q", ambiguous)
		}
	}
}

func TestCodesAreReadAsTyped(t *testing.T) {
	for typed, want := range map[string]string{
		"ABCD-EFGH": "ABCDEFGH", "abcd-efgh": "ABCDEFGH", " ab cd\tef gh ": "ABCDEFGH", "AbCdEfGh": "ABCDEFGH",
		"ABCD–EFGH": "ABCDEFGH", "2345-6789": "23456789",
	} {
		if got, ok := NormalizeCode(typed); !ok || got != want {
			t.Errorf("NormalizeCode(%q) = %q, %v; want %q", typed, got, ok, want)
		}
	}
	for _, typed := range []string{"", "ABCD-EFG", "ABCD-EFGHJ", "ABCD-EFG0", "ABCD-EFGO", "ABCD-EFGI", "ÄBCD-EFGH",
		"ABCD\x00EFGH", strings.Repeat("A", 100), "ABCD EFGH ABCD EFGH ABCD EFGH AB"} {
		if got, ok := NormalizeCode(typed); ok {
			t.Errorf("NormalizeCode(%q) = %q, want refused", typed, got)
		}
	}
	if FormatCode("ABCDEFGH") != "ABCD-EFGH" {
		t.Errorf("FormatCode: %q", FormatCode("ABCDEFGH"))
	}
}

func TestLinkRequestCookie(t *testing.T) {
	k := mustKeys(t, newSecret(t))
	now := time.Now()
	id := bytes.Repeat([]byte{7}, RequestIDLength)
	account := &Link{Kind: LinkSignIn, IssuedAt: now, Handle: bytes.Repeat([]byte{1}, 16), Email: "a@example.com", Next: "/x", RequestID: id}
	newcomer := &Link{Kind: LinkSignUp, IssuedAt: now, Email: "b@example.com", Next: "/x", RequestID: id}
	code := NewCode()
	mac := k.CodeMAC(account, code)
	sealed := k.SealLinkRequest(&LinkRequest{ID: id, Link: account, CodeMAC: mac, Tries: 3}, now.Add(time.Minute))
	got, err := k.OpenLinkRequest(sealed, now)
	if err != nil || !bytes.Equal(got.ID, id) || got.Tries != 3 || got.Link.Email != account.Email ||
		!bytes.Equal(got.Link.Handle, account.Handle) || !got.Link.IssuedAt.Equal(account.IssuedAt.Truncate(time.Microsecond)) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if !k.CheckCode(got.Link, got.CodeMAC, code) {
		t.Error("the right code is refused")
	}
	if k.CheckCode(got.Link, got.CodeMAC, NewCode()) {
		t.Error("another code is taken (one in 6.6e11: rerun)")
	}
	other := *got.Link
	other.RequestID = bytes.Repeat([]byte{8}, RequestIDLength)
	if k.CheckCode(&other, got.CodeMAC, code) {
		t.Error("the code of one request works for another")
	}
	// The cookie is as long for an account as for a new address.
	signup := k.SealLinkRequest(&LinkRequest{ID: id, Link: newcomer, CodeMAC: k.CodeMAC(newcomer, code)}, now.Add(time.Minute))
	if len(signup) != len(sealed) {
		t.Errorf("the cookie is %d characters for a new address, %d for an account: its length tells them apart", len(signup), len(sealed))
	}
	if got, err := k.OpenLinkRequest(signup, now); err != nil || len(got.Link.Handle) != 0 {
		t.Errorf("a sign-up request reads back as %+v, %v", got, err)
	}
	// A cookie of before codes: the id alone.
	if got, err := k.OpenLinkRequest(k.Seal(PurposeLinkRequest, id, now.Add(time.Minute)), now); err != nil || got.Link != nil || !bytes.Equal(got.ID, id) {
		t.Errorf("an old cookie reads as %+v, %v", got, err)
	}
	if _, err := k.OpenLinkRequest(sealed, now.Add(time.Minute)); err == nil {
		t.Error("an expired cookie opens")
	}
	if _, err := k.OpenLinkRequest(k.Seal(PurposeLinkRequest, []byte{2, 1, 2}, now.Add(time.Minute)), now); err == nil {
		t.Error("a truncated cookie opens")
	}
}
