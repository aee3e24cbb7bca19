package auth

import (
	_ "embed"
	"encoding/hex"
	"encoding/json"
)

// authenticatorsJSON maps AAGUIDs of well-known passkey providers to their
// names (from the community list at
// github.com/passkeydeveloper/passkey-authenticator-aaguids). It names
// passkeys for people; it is never used for a security decision.
//
//go:embed authenticators.json
var authenticatorsJSON []byte

var authenticatorNames = func() map[string]string {
	m := map[string]string{}
	if err := json.Unmarshal(authenticatorsJSON, &m); err != nil {
		panic("auth/authenticators.json: " + err.Error())
	}
	return m
}()

// ProviderName returns the name of the passkey provider with this AAGUID,
// or "" when it is not a well-known one.
func ProviderName(aaguid []byte) string {
	if len(aaguid) != 16 {
		return ""
	}
	h := hex.EncodeToString(aaguid)
	return authenticatorNames[h[0:8]+"-"+h[8:12]+"-"+h[12:16]+"-"+h[16:20]+"-"+h[20:32]]
}
