-- Incidents (issue #18): a surge of one rule's matches becomes one
-- incident, with one ticket in queue `incidents` that its messages join.
-- The reference shown to people is 'I-' || id. docs/schema.md explains
-- every column.
CREATE TABLE incidents (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id           TEXT    NOT NULL CHECK (rule_id <> ''),
    ticket_id         INTEGER UNIQUE REFERENCES tickets (id),
    status            TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    customers         INTEGER NOT NULL DEFAULT 0 CHECK (customers >= 0),
    messages          INTEGER NOT NULL DEFAULT 0 CHECK (messages >= 0),
    window_customers  INTEGER NOT NULL CHECK (window_customers >= 0),
    baseline          REAL    NOT NULL CHECK (baseline >= 0),
    first_message_at  INTEGER NOT NULL,
    last_message_at   INTEGER NOT NULL,
    opened_at         INTEGER NOT NULL,
    alerted_at        INTEGER,
    alerted_customers INTEGER NOT NULL DEFAULT 0,
    closed_at         INTEGER,
    closed_by         TEXT,
    CHECK (status <> 'closed' OR closed_at IS NOT NULL)
);
-- One open incident per rule, whichever instance opens it: a second
-- instance's insert fails and its batch is retried, seeing the first.
CREATE UNIQUE INDEX incidents_one_open_per_rule ON incidents (rule_id) WHERE status = 'open';

-- The customers who wrote about an incident, once each: where their
-- closing notice goes, and its text, rendered in their language when they
-- joined (NULL: the rule has no incident_resolved).
CREATE TABLE incident_customers (
    incident_id     INTEGER NOT NULL REFERENCES incidents (id),
    platform        TEXT    NOT NULL REFERENCES platforms (name),
    customer_id     TEXT    NOT NULL,
    customer_handle TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    in_reply_to     TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('public', 'dm')),
    lang            TEXT,
    joined_at       INTEGER NOT NULL,
    resolved_text   TEXT,
    notice_outbox_id INTEGER REFERENCES outbox (id),
    PRIMARY KEY (incident_id, platform, customer_id)
);

-- The alerts to the team's chat (`[incidents] alert_url_env`): queued in
-- the transaction that changes the incident, posted by the maintenance
-- task with retries.
CREATE TABLE incident_alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id     INTEGER NOT NULL REFERENCES incidents (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('opened', 'growing', 'closed')),
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    reason          TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX incident_alerts_due ON incident_alerts (status, next_attempt_at);

-- Detection counts a rule's distinct customers over the last minutes, and
-- its usual count at the same time in earlier weeks.
CREATE INDEX messages_by_rule ON messages (rule_id, written_at);
