-- Groups (#17): the names of the groups an account is in, space-separated
-- (at most 64, each matching ^[a-z0-9][a-z0-9._-]{0,63}$), part of the
-- user record like everything else about the account. Applications may
-- admit only some groups; members of ADMIN_GROUP may use the console.
ALTER TABLE users ADD COLUMN group_names TEXT NOT NULL DEFAULT '';
-- When the account last signed in (Unix ms), by link or passkey, for the
-- operator's console; set by the write that records each sign-in.
-- Existing accounts start from their last link or passkey use.
ALTER TABLE users ADD COLUMN signed_in_at INTEGER NOT NULL DEFAULT 0;
UPDATE users SET signed_in_at = max(link_used_at,
	COALESCE((SELECT max(last_used_at) FROM credentials WHERE credentials.user_id = users.id), 0)) / 1000
	WHERE deleted_at IS NULL;
-- The console's search: an address that starts with the text (the email
-- index), or whose domain does (this one: the address from its "@").
CREATE INDEX users_email_domain ON users (substr(email, instr(email, '@')));
-- A revocation of the whole account ends its applications' sessions: it
-- empties oidc_sessions and keeps what it ended here, for the statement
-- itself to return (an UPDATE returns the new values), so that each is
-- told once and never again by a later revocation.
ALTER TABLE users ADD COLUMN oidc_sessions_ended TEXT NOT NULL DEFAULT '';
