-- no-transaction
-- (sqlx runs this file as it is: SQLite ignores PRAGMA foreign_keys inside
-- a transaction, and the rebuild below must run with foreign keys off, or
-- dropping a table that others reference would count as deleting its rows.
-- The transaction is ours, below.)
--
-- The platforms the bot serves become rows of a table instead of a list
-- repeated in a CHECK on six tables: adding a platform is then one
-- migration, `INSERT INTO platforms (name) VALUES ('bluesky');`, on both
-- databases. SQLite cannot drop a CHECK, so each of those tables is rebuilt
-- by SQLite's documented procedure (https://sqlite.org/lang_altertable.html,
-- "Making Other Kinds Of Table Schema Changes"): create the new table, copy
-- the rows, drop the old one, rename the new one, recreate its indexes and
-- triggers. Columns, order, defaults and every other constraint are those
-- the table had after migrations 0001 to 0006. AUTOINCREMENT counters are
-- carried over, so ticket numbers never go back (and stay above 1000).
--
-- Safe to run again after a crash between our COMMIT and sqlx's record of
-- this migration: every step either exists already or redoes the same.

PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE IF NOT EXISTS platforms (
    name TEXT PRIMARY KEY
);
INSERT OR IGNORE INTO platforms (name) VALUES ('x'), ('mastodon');

-- Triggers that name a rebuilt table: a dropped table takes its own
-- triggers with it, and renaming a table fails while another trigger names
-- a table that is momentarily gone. All three are recreated at the end.
DROP TRIGGER IF EXISTS tickets_closed_is_final;
DROP TRIGGER IF EXISTS tickets_created_event;
DROP TRIGGER IF EXISTS messages_join_ticket;

-- cursors ----------------------------------------------------------------
CREATE TABLE cursors_rebuilt (
    platform   TEXT    NOT NULL REFERENCES platforms (name),
    stream     TEXT    NOT NULL CHECK (stream IN ('mentions', 'dms', 'search')),
    cursor     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (platform, stream)
);
INSERT INTO cursors_rebuilt (platform, stream, cursor, updated_at)
    SELECT platform, stream, cursor, updated_at FROM cursors;
DROP TABLE cursors;
ALTER TABLE cursors_rebuilt RENAME TO cursors;

-- tickets ----------------------------------------------------------------
CREATE TABLE tickets_rebuilt (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    queue              TEXT    NOT NULL CHECK (queue <> ''),
    priority           TEXT    NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status             TEXT    NOT NULL DEFAULT 'new'
                               CHECK (status IN ('new', 'open', 'pending', 'solved', 'closed')),
    platform           TEXT    NOT NULL REFERENCES platforms (name),
    customer_id        TEXT    NOT NULL,
    customer_handle    TEXT    NOT NULL,
    conversation_id    TEXT    NOT NULL,
    rule_id            TEXT,
    note               TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    assignee           TEXT    CHECK (assignee IS NULL OR assignee <> ''),
    first_response_due INTEGER,
    first_response_at  INTEGER,
    solved_at          INTEGER,
    closed_at          INTEGER,
    survey_sent_at     INTEGER,
    survey_answered_at INTEGER,
    csat               INTEGER CHECK (csat IS NULL OR csat BETWEEN 1 AND 5),
    last_sent_id       TEXT
);
INSERT INTO tickets_rebuilt (id, queue, priority, status, platform, customer_id,
        customer_handle, conversation_id, rule_id, note, created_at, updated_at,
        assignee, first_response_due, first_response_at, solved_at, closed_at,
        survey_sent_at, survey_answered_at, csat, last_sent_id)
    SELECT id, queue, priority, status, platform, customer_id,
        customer_handle, conversation_id, rule_id, note, created_at, updated_at,
        assignee, first_response_due, first_response_at, solved_at, closed_at,
        survey_sent_at, survey_answered_at, csat, last_sent_id
    FROM tickets;
-- The counter, not the largest id: a deleted last ticket keeps its number.
DELETE FROM sqlite_sequence WHERE name = 'tickets_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'tickets_rebuilt', seq FROM sqlite_sequence WHERE name = 'tickets';
DROP TABLE tickets;
ALTER TABLE tickets_rebuilt RENAME TO tickets;
CREATE INDEX tickets_by_customer ON tickets (platform, customer_id, status);
CREATE INDEX tickets_by_status ON tickets (status, queue);

-- messages ---------------------------------------------------------------
CREATE TABLE messages_rebuilt (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    platform            TEXT    NOT NULL REFERENCES platforms (name),
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
    mentioned_ids       TEXT,
    UNIQUE (platform, platform_message_id)
);
INSERT INTO messages_rebuilt (id, platform, platform_message_id, channel, conversation_id,
        author_id, author_handle, author_name, text, in_reply_to, written_at, received_at,
        rule_id, keyword, action, auto_reply, reason, ticket_id, mentioned_ids)
    SELECT id, platform, platform_message_id, channel, conversation_id,
        author_id, author_handle, author_name, text, in_reply_to, written_at, received_at,
        rule_id, keyword, action, auto_reply, reason, ticket_id, mentioned_ids
    FROM messages;
DELETE FROM sqlite_sequence WHERE name = 'messages_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'messages_rebuilt', seq FROM sqlite_sequence WHERE name = 'messages';
DROP TABLE messages;
ALTER TABLE messages_rebuilt RENAME TO messages;
CREATE INDEX messages_by_ticket ON messages (ticket_id);

-- outbox -----------------------------------------------------------------
CREATE TABLE outbox_rebuilt (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    platform        TEXT    NOT NULL REFERENCES platforms (name),
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
    in_doubt        INTEGER NOT NULL DEFAULT 0 CHECK (in_doubt IN (0, 1)),
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    reason          TEXT,
    sent_id         TEXT,
    sent_at         INTEGER,
    updated_at      INTEGER NOT NULL,
    doubt_since     INTEGER,
    doubt_last      INTEGER,
    CHECK (status <> 'sending' OR lease_until IS NOT NULL)
);
INSERT INTO outbox_rebuilt (id, platform, kind, origin, message_id, ticket_id, customer_id,
        customer_handle, conversation_id, in_reply_to, text, status, attempts, varied,
        in_doubt, created_at, next_attempt_at, lease_until, reason, sent_id, sent_at,
        updated_at, doubt_since, doubt_last)
    SELECT id, platform, kind, origin, message_id, ticket_id, customer_id,
        customer_handle, conversation_id, in_reply_to, text, status, attempts, varied,
        in_doubt, created_at, next_attempt_at, lease_until, reason, sent_id, sent_at,
        updated_at, doubt_since, doubt_last
    FROM outbox;
DELETE FROM sqlite_sequence WHERE name = 'outbox_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'outbox_rebuilt', seq FROM sqlite_sequence WHERE name = 'outbox';
DROP TABLE outbox;
ALTER TABLE outbox_rebuilt RENAME TO outbox;
CREATE UNIQUE INDEX outbox_one_auto_reply ON outbox (message_id) WHERE origin = 'auto';
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_customer ON outbox (platform, customer_id, created_at);
CREATE INDEX outbox_by_conversation ON outbox (platform, conversation_id, origin);

-- opt_outs ---------------------------------------------------------------
CREATE TABLE opt_outs_rebuilt (
    platform    TEXT    NOT NULL REFERENCES platforms (name),
    customer_id TEXT    NOT NULL,
    message_id  INTEGER REFERENCES messages (id),
    at          INTEGER NOT NULL,
    PRIMARY KEY (platform, customer_id)
);
INSERT INTO opt_outs_rebuilt (platform, customer_id, message_id, at)
    SELECT platform, customer_id, message_id, at FROM opt_outs;
DROP TABLE opt_outs;
ALTER TABLE opt_outs_rebuilt RENAME TO opt_outs;

-- oauth_tokens -----------------------------------------------------------
CREATE TABLE oauth_tokens_rebuilt (
    platform     TEXT    PRIMARY KEY REFERENCES platforms (name),
    key_id       TEXT    NOT NULL,
    nonce        TEXT    NOT NULL,
    sealed       TEXT    NOT NULL,
    expires_at   BIGINT,
    updated_at   BIGINT  NOT NULL,
    refreshed_by TEXT    NOT NULL
);
INSERT INTO oauth_tokens_rebuilt (platform, key_id, nonce, sealed, expires_at, updated_at,
        refreshed_by)
    SELECT platform, key_id, nonce, sealed, expires_at, updated_at, refreshed_by
    FROM oauth_tokens;
DROP TABLE oauth_tokens;
ALTER TABLE oauth_tokens_rebuilt RENAME TO oauth_tokens;

-- The triggers, as migrations 0002 and 0003 made them -----------------------
CREATE TRIGGER tickets_closed_is_final
BEFORE UPDATE OF status ON tickets
WHEN OLD.status = 'closed' AND NEW.status <> 'closed'
BEGIN
    SELECT RAISE(ABORT, 'closed tickets are final: a new message from the customer opens a new ticket');
END;

CREATE TRIGGER tickets_created_event AFTER INSERT ON tickets
BEGIN
    INSERT INTO ticket_events (ticket_id, at, actor, kind, to_value, body)
    VALUES (NEW.id, NEW.created_at, 'bot', 'created', NEW.status, NEW.note);
END;

CREATE TRIGGER messages_join_ticket AFTER INSERT ON messages
WHEN NEW.ticket_id IS NOT NULL
BEGIN
    INSERT INTO ticket_messages (ticket_id, direction, message_id, body, at)
    VALUES (NEW.ticket_id, 'in', NEW.id, NEW.text, NEW.received_at);
    UPDATE tickets SET updated_at = NEW.received_at
    WHERE id = NEW.ticket_id AND updated_at < NEW.received_at;
END;

-- Step 10 of the procedure: the new foreign keys hold for every row copied.
-- A CHECK turns a violation into an error: the migration stops before
-- COMMIT and nothing of it is kept. Only the new keys are checked: a row
-- an external tool wrote with foreign keys off (the sqlite3 shell's
-- default) is not this migration's business and must not stop the upgrade.
CREATE TEMP TABLE platforms_migration_check (
    violations INTEGER NOT NULL CHECK (violations = 0)
);
INSERT INTO platforms_migration_check (violations)
    SELECT COUNT(*) FROM pragma_foreign_key_check WHERE parent = 'platforms';
DROP TABLE platforms_migration_check;

COMMIT;
PRAGMA foreign_keys = ON;
