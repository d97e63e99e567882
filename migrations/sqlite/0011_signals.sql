-- Signals (issue #18): the `[signals]` a message carries, and those its
-- ticket has gathered, as space-separated names (`churn legal`, or the
-- bot's own `repeated`), so `tickets list --signal` and `report` can use
-- them. NULL: none.
ALTER TABLE messages ADD COLUMN signals TEXT;
ALTER TABLE tickets ADD COLUMN signals TEXT;
