-- An address an account gave up (its deletion, or an email change) and
-- when (Unix microseconds). A sign-up link to that address issued before
-- then must not create another account: it was used for (or replaced by)
-- the account that had the address, and "a link works once" must outlive
-- the address moving on. A deleted account's tombstone records its own
-- address; an email change adds a tombstone that records the old one.
-- Tombstones are kept until such a link has expired (PurgeTombstones).
ALTER TABLE users ADD COLUMN released_email TEXT;
ALTER TABLE users ADD COLUMN released_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX users_released_email ON users (released_email) WHERE released_email IS NOT NULL;
