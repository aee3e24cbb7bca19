-- Devices (#18). Every entry of refresh_sessions also says how and where
-- its session signed in, for the account page's "Where you're signed in":
-- "sid.gen.rotated_ms.expires_ms.auth_time_s.method.browser.system.replaces",
-- method p (passkey), l (link) or c (code), browser and system words such
-- as Firefox and Linux, replaces the session this browser held before it
-- signed in again. Every sign-in now lists its session in the write that
-- records it. Entries written before say nothing of it (empty fields),
-- until their next refresh fills in what it can.
UPDATE users SET refresh_sessions = replace(refresh_sessions, ',', '....,') || '....'
	WHERE refresh_sessions <> '';
-- The one-time code in sign-in emails: wrong codes counted for the newest
-- link tried (code_link, its issue time in Unix µs); at 5 its code, and
-- those of older links, are void.
ALTER TABLE users ADD COLUMN code_link INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN code_failures INTEGER NOT NULL DEFAULT 0;
