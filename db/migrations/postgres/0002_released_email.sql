-- An address an account gave up, and when: see migrations/sqlite/0002.
ALTER TABLE users ADD COLUMN released_email TEXT;
ALTER TABLE users ADD COLUMN released_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX users_released_email ON users (released_email) WHERE released_email IS NOT NULL;
