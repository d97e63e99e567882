-- The repeated-contact signal (issue #18) counts a customer's messages of
-- the last 24 hours for each message a batch holds: by author, in time.
CREATE INDEX messages_by_author ON messages (platform, author_id, received_at);
