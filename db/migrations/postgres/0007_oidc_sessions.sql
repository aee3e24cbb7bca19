-- As migrations/sqlite/0007_oidc_sessions.sql, with BIGINT numbers and times.
ALTER TABLE users ADD COLUMN oidc_code_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN oidc_code_window BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN oidc_code_count INTEGER NOT NULL DEFAULT 0;
UPDATE users SET oidc_codes = '';
ALTER TABLE users ADD COLUMN oidc_sessions TEXT NOT NULL DEFAULT '';
