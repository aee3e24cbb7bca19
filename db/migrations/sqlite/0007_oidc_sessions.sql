-- Authorization codes are numbered per account in the order the database
-- issues them (oidc_code_seq), and oidc_codes now lists the numbers of the
-- codes redeemed among the newest few: a code redeems once whatever the
-- clocks of the instances that issue, redeem and prune (no expiry time
-- decides what is forgotten): "number.session" entries, the session being
-- the application session (below) its redemption started, which a code
-- presented twice ends. oidc_code_window and oidc_code_count count
-- the codes issued in the current minute (Unix ms of its start), so the
-- per-account limit is refused where the code would be issued.
ALTER TABLE users ADD COLUMN oidc_code_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN oidc_code_window INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN oidc_code_count INTEGER NOT NULL DEFAULT 0;
UPDATE users SET oidc_codes = '';
-- Applications signed in through each Latchkey session:
-- "id|client|sid|gen|rotated_ms|expires_ms|auth_time_s" entries,
-- comma-separated, bounded. An entry with a generation (0 and up) is an
-- application's refresh token, rotated on every use; one with gen -1 only
-- remembers that the session signed the application in (back-channel
-- logout tells it when the session ends).
ALTER TABLE users ADD COLUMN oidc_sessions TEXT NOT NULL DEFAULT '';
