-- Users and their passkeys: the only two kinds of record Latchkey keeps.
-- Times are Unix milliseconds (so a revocation and a sign-in one second
-- apart are never confused), except the microsecond link_used_at and
-- last_used_at.

CREATE TABLE users (
	id                 INTEGER PRIMARY KEY,
	-- Opaque random id: the WebAuthn user handle and the token subject.
	-- Never derived from the email.
	handle             BLOB    NOT NULL UNIQUE CHECK (length(handle) = 16),
	-- Normalised (trimmed, lowercased). NULL only for a deleted account's
	-- tombstone, which keeps its revocation stamp until every access token
	-- it could have had has expired.
	email              TEXT    UNIQUE CHECK (email IS NULL OR length(email) BETWEEN 3 AND 254),
	email_signin       INTEGER NOT NULL DEFAULT 1 CHECK (email_signin IN (0, 1)),
	created_at         INTEGER NOT NULL,
	-- Issue time (Unix microseconds: two links are never issued in the
	-- same one) of the newest magic link consumed (or voided) for this
	-- user: a link is accepted only if it was issued after this, and
	-- consuming one moves it, so every link is single use and voids older ones.
	link_used_at       INTEGER NOT NULL DEFAULT 0,
	-- Tokens issued at or before this instant are void (sign out everywhere,
	-- email change, account deletion).
	tokens_valid_after INTEGER NOT NULL DEFAULT 0,
	-- Sessions ended by "Sign out": "sid.expiry_ms" entries separated by
	-- commas, kept until the session's absolute expiry, bounded in length.
	revoked_sessions   TEXT    NOT NULL DEFAULT '',
	-- Last change to tokens_valid_after or revoked_sessions: every instance
	-- polls this (indexed) to keep its in-memory revocation set current.
	revoked_at         INTEGER NOT NULL DEFAULT 0,
	deleted_at         INTEGER,
	CHECK (email IS NOT NULL OR deleted_at IS NOT NULL)
);

CREATE INDEX users_revoked_at ON users (revoked_at);
CREATE INDEX users_deleted_at ON users (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE credentials (
	id                 INTEGER PRIMARY KEY,
	user_id            INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	-- WebAuthn allows credential ids up to 1023 bytes.
	credential_id      BLOB    NOT NULL UNIQUE CHECK (length(credential_id) BETWEEN 1 AND 1023),
	public_key         BLOB    NOT NULL,
	attestation_type   TEXT    NOT NULL DEFAULT '',
	attestation_format TEXT    NOT NULL DEFAULT '',
	aaguid             BLOB    NOT NULL DEFAULT x'',
	transports         TEXT    NOT NULL DEFAULT '',
	attachment         TEXT    NOT NULL DEFAULT '',
	sign_count         INTEGER NOT NULL DEFAULT 0,
	user_present       INTEGER NOT NULL DEFAULT 0,
	user_verified      INTEGER NOT NULL DEFAULT 0,
	backup_eligible    INTEGER NOT NULL DEFAULT 0,
	backup_state       INTEGER NOT NULL DEFAULT 0,
	name               TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
	created_at         INTEGER NOT NULL,
	-- Start (Unix microseconds) of the ceremony that last used this
	-- credential: an assertion is accepted only if its ceremony began
	-- after this, so a replayed ceremony cookie plus assertion fails.
	last_used_at       INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX credentials_user_id ON credentials (user_id);
