-- Revocations are ordered by a number the database assigns in the revoking
-- write, never by an instance's clock: every instance catches up on the
-- rows whose revocation_seq is above the last it has seen. (Polling by
-- revoked_at let one instance with a clock ahead push every other's cursor
-- past revocations written by instances with a correct clock.)
ALTER TABLE users ADD COLUMN revocation_seq INTEGER NOT NULL DEFAULT 0;
-- The newest issue time (Unix ms) of any token issued to the account. A
-- revocation stamps tokens_valid_after no earlier than this, so "Sign out
-- everywhere" voids every token issued before it even when the instance
-- that issued one has a clock ahead of the instance that revokes.
ALTER TABLE users ADD COLUMN issued_high INTEGER NOT NULL DEFAULT 0;
-- The current refresh-token generation of the account's recent sessions
-- ("sid.generation.rotated_ms.expires_ms.auth_time_s", comma-separated,
-- bounded): a refresh token of an older generation is a replay and ends
-- its session. refresh_floor is the newest sign-in time (Unix s) of a
-- session that fell out of the list; a session signed in at or before it
-- that is not listed must sign in again.
ALTER TABLE users ADD COLUMN refresh_sessions TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN refresh_floor INTEGER NOT NULL DEFAULT 0;
-- Number the revocations already recorded in the order of their times.
UPDATE users SET revocation_seq = (SELECT count(*) FROM users AS o WHERE o.revoked_at > 0
	AND (o.revoked_at < users.revoked_at OR (o.revoked_at = users.revoked_at AND o.id <= users.id)))
	WHERE revoked_at > 0;
CREATE INDEX users_revocation_seq ON users (revocation_seq);
DROP INDEX users_revoked_at;
