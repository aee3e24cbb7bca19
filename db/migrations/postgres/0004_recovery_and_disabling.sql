-- As migrations/sqlite/0004_recovery_and_disabling.sql, with BIGINT times.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
ALTER TABLE users ADD COLUMN recovery_due_at BIGINT NOT NULL DEFAULT 0;
