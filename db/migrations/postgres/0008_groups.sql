-- As migrations/sqlite/0008_groups.sql. The console's search compares
-- addresses byte by byte (COLLATE "C"): a prefix is then one range of an
-- index whatever the database's collation.
ALTER TABLE users ADD COLUMN group_names TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN signed_in_at BIGINT NOT NULL DEFAULT 0;
UPDATE users SET signed_in_at = GREATEST(link_used_at,
	COALESCE((SELECT max(last_used_at) FROM credentials WHERE credentials.user_id = users.id), 0)) / 1000
	WHERE deleted_at IS NULL;
CREATE INDEX users_email_c ON users (email COLLATE "C");
CREATE INDEX users_email_domain ON users ((substr(email, strpos(email, '@'))) COLLATE "C");
-- A revocation of the whole account ends its applications' sessions: it
-- empties oidc_sessions and keeps what it ended here, for the statement
-- itself to return (an UPDATE returns the new values), so that each is
-- told once and never again by a later revocation.
ALTER TABLE users ADD COLUMN oidc_sessions_ended TEXT NOT NULL DEFAULT '';
