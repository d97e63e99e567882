-- The customer's language (ISO 639-1, such as `fr`), as the bot read it
-- (issue #17): on each message (NULL when it was not read or could not be
-- told) and on each ticket (the language of the message that opened it),
-- so the survey and `report` can use it.
ALTER TABLE messages ADD COLUMN lang TEXT;
ALTER TABLE tickets ADD COLUMN lang TEXT;
