-- Users and their passkeys: the only two kinds of record Latchkey keeps.
-- The same schema as migrations/sqlite/0001_init.sql, in PostgreSQL's
-- types: every time is a BIGINT (Unix milliseconds, or microseconds for
-- link_used_at and last_used_at; INTEGER is 32 bits here), flags are
-- BOOLEAN, bytes are BYTEA. The comments there say what each column is for.

CREATE TABLE users (
	id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	handle             BYTEA   NOT NULL UNIQUE CHECK (length(handle) = 16),
	email              TEXT    UNIQUE CHECK (email IS NULL OR length(email) BETWEEN 3 AND 254),
	email_signin       BOOLEAN NOT NULL DEFAULT TRUE,
	created_at         BIGINT  NOT NULL,
	link_used_at       BIGINT  NOT NULL DEFAULT 0,
	tokens_valid_after BIGINT  NOT NULL DEFAULT 0,
	revoked_sessions   TEXT    NOT NULL DEFAULT '',
	revoked_at         BIGINT  NOT NULL DEFAULT 0,
	deleted_at         BIGINT,
	CHECK (email IS NOT NULL OR deleted_at IS NOT NULL)
);

CREATE INDEX users_revoked_at ON users (revoked_at);
CREATE INDEX users_deleted_at ON users (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE credentials (
	id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	user_id            BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	credential_id      BYTEA   NOT NULL UNIQUE CHECK (length(credential_id) BETWEEN 1 AND 1023),
	public_key         BYTEA   NOT NULL,
	attestation_type   TEXT    NOT NULL DEFAULT '',
	attestation_format TEXT    NOT NULL DEFAULT '',
	aaguid             BYTEA   NOT NULL DEFAULT '\x',
	transports         TEXT    NOT NULL DEFAULT '',
	attachment         TEXT    NOT NULL DEFAULT '',
	sign_count         BIGINT  NOT NULL DEFAULT 0,
	user_present       BOOLEAN NOT NULL DEFAULT FALSE,
	user_verified      BOOLEAN NOT NULL DEFAULT FALSE,
	backup_eligible    BOOLEAN NOT NULL DEFAULT FALSE,
	backup_state       BOOLEAN NOT NULL DEFAULT FALSE,
	name               TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
	created_at         BIGINT  NOT NULL,
	last_used_at       BIGINT  NOT NULL DEFAULT 0
);

CREATE INDEX credentials_user_id ON credentials (user_id);
