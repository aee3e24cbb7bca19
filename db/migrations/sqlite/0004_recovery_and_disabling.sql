-- When an operator disabled the account (Unix ms); NULL while it may sign
-- in. A disabled account cannot sign in by any means, and disabling it
-- voids its tokens and links like a revocation.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
-- A pending account recovery: when (Unix ms) a link sign-in starts to
-- count as fresh enough to add a passkey and delete the old ones; 0 when
-- there is none. A self-service recovery sets it RECOVERY_DELAY after it
-- starts; an operator's recovery link sets it to the moment it is used.
-- Any passkey sign-in, adding a passkey, or the owner cancelling ends it.
ALTER TABLE users ADD COLUMN recovery_due_at INTEGER NOT NULL DEFAULT 0;
