-- As migrations/sqlite/0009_devices.sql.
UPDATE users SET refresh_sessions = replace(refresh_sessions, ',', '....,') || '....'
	WHERE refresh_sessions <> '';
ALTER TABLE users ADD COLUMN code_link BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN code_failures INTEGER NOT NULL DEFAULT 0;
