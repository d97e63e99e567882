-- The bot loop's tables. Times are Unix milliseconds (INTEGER), the same on
-- SQLite and PostgreSQL; docs/schema.md explains every column.

-- One-off facts about this bot's history, such as the time of its first start.
CREATE TABLE bot_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Where each inbound stream stopped reading (X since_id, DM event id…).
CREATE TABLE cursors (
    platform   TEXT    NOT NULL CHECK (platform IN ('x', 'mastodon')),
    stream     TEXT    NOT NULL CHECK (stream IN ('mentions', 'dms', 'search')),
    cursor     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (platform, stream)
);

-- Escalations worked by human agents. The reference shown to people is
-- 'T-' || id; ids start at 1001.
CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    queue           TEXT    NOT NULL CHECK (queue <> ''),
    priority        TEXT    NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status          TEXT    NOT NULL DEFAULT 'new'
                            CHECK (status IN ('new', 'open', 'pending', 'solved', 'closed')),
    platform        TEXT    NOT NULL CHECK (platform IN ('x', 'mastodon')),
    customer_id     TEXT    NOT NULL,
    customer_handle TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    rule_id         TEXT,
    note            TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
INSERT INTO sqlite_sequence (name, seq) VALUES ('tickets', 1000);
CREATE INDEX tickets_by_customer ON tickets (platform, customer_id, status);

-- Every inbound message, once (unique on platform + platform id), with the
-- routing decision and, when no automatic reply was queued although the
-- rules asked for one, the reason.
CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    platform            TEXT    NOT NULL CHECK (platform IN ('x', 'mastodon')),
    platform_message_id TEXT    NOT NULL,
    channel             TEXT    NOT NULL CHECK (channel IN ('mention', 'dm', 'search')),
    conversation_id     TEXT    NOT NULL,
    author_id           TEXT    NOT NULL,
    author_handle       TEXT    NOT NULL,
    author_name         TEXT    NOT NULL,
    text                TEXT    NOT NULL,
    in_reply_to         TEXT,
    written_at          INTEGER NOT NULL,
    received_at         INTEGER NOT NULL,
    rule_id             TEXT,
    keyword             TEXT,
    action              TEXT    NOT NULL CHECK (action IN ('reply', 'escalate', 'ignore', 'none')),
    auto_reply          TEXT    NOT NULL DEFAULT 'none'
                                CHECK (auto_reply IN ('queued', 'suppressed', 'none')),
    reason              TEXT,
    ticket_id           INTEGER REFERENCES tickets (id),
    UNIQUE (platform, platform_message_id)
);
CREATE INDEX messages_by_ticket ON messages (ticket_id);

-- The transactional outbox: every reply, automatic or from an agent.
-- queued -> sending -> sent; failed, expired and needs_review are ends.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    platform        TEXT    NOT NULL CHECK (platform IN ('x', 'mastodon')),
    kind            TEXT    NOT NULL CHECK (kind IN ('public', 'dm')),
    origin          TEXT    NOT NULL CHECK (origin IN ('auto', 'agent')),
    message_id      INTEGER REFERENCES messages (id),
    ticket_id       INTEGER REFERENCES tickets (id),
    customer_id     TEXT    NOT NULL,
    customer_handle TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    in_reply_to     TEXT    NOT NULL,
    text            TEXT    NOT NULL CHECK (text <> ''),
    status          TEXT    NOT NULL DEFAULT 'queued'
                            CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'expired', 'needs_review')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    varied          INTEGER NOT NULL DEFAULT 0 CHECK (varied IN (0, 1)),
    recovering      INTEGER NOT NULL DEFAULT 0 CHECK (recovering IN (0, 1)),
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    reason          TEXT,
    sent_id         TEXT,
    sent_at         INTEGER,
    updated_at      INTEGER NOT NULL,
    CHECK (status <> 'sending' OR lease_until IS NOT NULL)
);
-- At most one automatic reply per inbound message.
CREATE UNIQUE INDEX outbox_one_auto_reply ON outbox (message_id) WHERE origin = 'auto';
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_customer ON outbox (platform, customer_id, created_at);
CREATE INDEX outbox_by_conversation ON outbox (platform, conversation_id, origin);

-- A ticket's conversation: inbound messages, replies, and system events.
CREATE TABLE ticket_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    direction  TEXT    NOT NULL CHECK (direction IN ('in', 'out', 'event')),
    message_id INTEGER REFERENCES messages (id),
    outbox_id  INTEGER REFERENCES outbox (id),
    body       TEXT    NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX ticket_messages_by_ticket ON ticket_messages (ticket_id, at);

-- Customers who wrote a stop word: no more automatic replies.
CREATE TABLE opt_outs (
    platform    TEXT    NOT NULL CHECK (platform IN ('x', 'mastodon')),
    customer_id TEXT    NOT NULL,
    message_id  INTEGER REFERENCES messages (id),
    at          INTEGER NOT NULL,
    PRIMARY KEY (platform, customer_id)
);
