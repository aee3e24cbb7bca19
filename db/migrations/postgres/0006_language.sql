-- The language the person chose on a page's language switcher ('' when
-- they never did): their emails go out in it, and a new browser they sign
-- in on takes it up.
ALTER TABLE users ADD COLUMN lang TEXT NOT NULL DEFAULT '';
