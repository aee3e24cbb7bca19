-- The applications the person let sign them in (OpenID Connect grants):
-- "client_id|granted_ms|scope scope…" entries, comma-separated, bounded.
-- A refresh token an application holds is valid only while its grant, as
-- granted then, is still here: revoking it on the account page ends it.
ALTER TABLE users ADD COLUMN oidc_grants TEXT NOT NULL DEFAULT '';
-- Authorization codes already redeemed and not yet expired
-- ("code_id.expires_ms", comma-separated, bounded): a code works once,
-- and several may be in flight at once (two applications signing the
-- same person in together). No code table: a code is a sealed value.
ALTER TABLE users ADD COLUMN oidc_codes TEXT NOT NULL DEFAULT '';
