package admin

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/latchkey/latchkey/oidc"
)

// uris collects a repeated flag.
type uris []string

func (u *uris) String() string     { return strings.Join(*u, " ") }
func (u *uris) Set(s string) error { *u = append(*u, s); return nil }

func oidcClientFlags(f *flag.FlagSet) {
	f.String("id", "", "the client id (letters, digits, . _ ~ -)")
	f.String("name", "", "the name people see on the consent page")
	f.Var(&uris{}, "redirect-uri", "a redirect URI, exactly as the application sends it (repeat for more)")
	f.Var(&uris{}, "post-logout-uri", "where the application may send people after signing out (repeat for more)")
	f.Bool("public", false, "a public client (a single-page or mobile app): no secret, PKCE required")
	f.Bool("trusted", false, "a first-party application: no consent page")
	f.String("scopes", "openid,email,profile", "the scopes it may ask for, comma-separated (openid, email, profile, offline_access)")
}

// oidcClient prints a client entry for OIDC_CLIENTS_FILE, with a fresh
// secret (shown once, on its own) and only its hash in the entry. The
// entry is checked as the server checks the file.
func oidcClient(flags *flag.FlagSet, env Env) error {
	get := func(name string) string { return flags.Lookup(name).Value.String() }
	c := map[string]any{
		"id":                        get("id"),
		"name":                      get("name"),
		"redirect_uris":             []string(*flags.Lookup("redirect-uri").Value.(*uris)),
		"post_logout_redirect_uris": []string(*flags.Lookup("post-logout-uri").Value.(*uris)),
		"public":                    get("public") == "true",
		"trusted":                   get("trusted") == "true",
		"scopes":                    strings.Split(get("scopes"), ","),
	}
	secret := ""
	if get("public") != "true" {
		b := make([]byte, 32)
		rand.Read(b)
		secret = base64.RawURLEncoding.EncodeToString(b)
		c["secret_hash"] = oidc.HashSecret(secret)
	}
	entry, _ := json.MarshalIndent(c, "    ", "  ")
	file, _ := json.Marshal(map[string]any{"clients": []any{c}})
	if _, err := oidc.ParseClients(file); err != nil {
		return usage("%v", err)
	}
	fmt.Fprintf(env.Stdout, "Add this entry to the \"clients\" list of OIDC_CLIENTS_FILE:\n\n    %s\n\n", entry)
	if secret != "" {
		fmt.Fprintf(env.Stdout, "The client secret (give it to the application; it is shown only now, and the file keeps only its hash):\n\n%s\n", secret)
	}
	return nil
}
