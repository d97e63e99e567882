-- What the bot spends on X's pay-per-use API (issue #15).
--
-- One row per UTC day, in micro-dollars: what calls cost, and the worst
-- case that calls in flight reserved before they were made.
-- `max_usd_per_day` is held against their sum under the row's lock, so
-- instances sharing the database cannot both spend the last cent.
CREATE TABLE x_spend_days (
    day      TEXT   NOT NULL PRIMARY KEY,                 -- YYYY-MM-DD, UTC
    spent    BIGINT NOT NULL DEFAULT 0 CHECK (spent >= 0),
    reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0)
);

-- What X's answers were charged, per day, endpoint and unit of the price
-- list: what `helpdesk report` shows. Written with x_spend_days.spent.
CREATE TABLE x_spend (
    day        TEXT   NOT NULL,                         -- YYYY-MM-DD, UTC
    endpoint   TEXT   NOT NULL,                         -- mentions, post_tweet, webhook…
    unit       TEXT   NOT NULL CHECK (unit IN ('post_read', 'user_read', 'dm_event_read',
                          'content_create', 'content_create_with_url', 'dm_interaction_create')),
    units      BIGINT NOT NULL CHECK (units >= 0),
    usd_micros BIGINT NOT NULL CHECK (usd_micros >= 0),
    PRIMARY KEY (day, endpoint, unit)
);
