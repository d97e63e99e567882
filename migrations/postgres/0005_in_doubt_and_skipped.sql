-- A send whose outcome is unknown (a cut connection, a 5xx from an endpoint
-- that may have acted, a crash mid-send) is "in doubt": it is settled
-- (looked up on the platform, or resent where the platform refuses a second
-- copy) before anything is resent. The flag was first used for crashes only.
ALTER TABLE outbox RENAME COLUMN recovering TO in_doubt;
-- When the first attempt whose outcome is unknown started (Unix ms): the
-- look-up searches from there, and a resend is safe only within the
-- platform's own guard window from there.
ALTER TABLE outbox ADD COLUMN doubt_since BIGINT;
-- When the latest attempt whose outcome is unknown started: a look-up
-- that does not find the post is believed only once that attempt is old
-- enough for the platform to show what it did.
ALTER TABLE outbox ADD COLUMN doubt_last BIGINT;

-- The accounts a message mentions, by id, space-separated (X only): a public
-- reply to it leaves them out of its thread, so that a customer cannot make
-- the brand's reply notify whoever they named.
ALTER TABLE messages ADD COLUMN mentioned_ids TEXT;

-- Items of a polled page that could not be decoded (a lone surrogate in a
-- name, a field of the wrong type): skipped so that the rest of the page
-- and the stream go on, and kept here so that nothing is skipped silently.
-- The error says where decoding failed, never what the item said.
CREATE TABLE skipped_items (
    platform   TEXT    NOT NULL,
    stream     TEXT    NOT NULL,
    item_id    TEXT    NOT NULL,
    error      TEXT    NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (platform, stream, item_id)
);
