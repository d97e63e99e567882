-- Agents working tickets: assignment, SLA, CSAT, the event log, and the
-- one supported way for an external tool to act (agent_actions).

ALTER TABLE tickets ADD COLUMN assignee TEXT CHECK (assignee IS NULL OR assignee <> '');
ALTER TABLE tickets ADD COLUMN first_response_due INTEGER;
ALTER TABLE tickets ADD COLUMN first_response_at INTEGER;
ALTER TABLE tickets ADD COLUMN solved_at INTEGER;
ALTER TABLE tickets ADD COLUMN closed_at INTEGER;
ALTER TABLE tickets ADD COLUMN survey_sent_at INTEGER;
ALTER TABLE tickets ADD COLUMN survey_answered_at INTEGER;
ALTER TABLE tickets ADD COLUMN csat INTEGER CHECK (csat IS NULL OR csat BETWEEN 1 AND 5);
ALTER TABLE tickets ADD COLUMN last_sent_id TEXT;
CREATE INDEX tickets_by_status ON tickets (status, queue);

-- Every change to a ticket: who, when, what, from -> to.
CREATE TABLE ticket_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL CHECK (actor <> ''),
    kind       TEXT    NOT NULL CHECK (kind IN ('created', 'status', 'assign', 'note', 'reply',
                                                'survey', 'csat', 'system')),
    from_value TEXT,
    to_value   TEXT,
    body       TEXT
);
CREATE INDEX ticket_events_by_ticket ON ticket_events (ticket_id, at);

-- Closed is final: no write, from any tool, brings a closed ticket back.
CREATE TRIGGER tickets_closed_is_final
BEFORE UPDATE OF status ON tickets
WHEN OLD.status = 'closed' AND NEW.status <> 'closed'
BEGIN
    SELECT RAISE(ABORT, 'closed tickets are final: a new message from the customer opens a new ticket');
END;

-- External tools act by inserting here; the bot applies each row within
-- two seconds (status new -> done or refused, with the result).
CREATE TABLE agent_actions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    agent      TEXT    NOT NULL CHECK (agent <> ''),
    action     TEXT    NOT NULL CHECK (action IN ('claim', 'assign', 'note', 'reply', 'reply_dm',
                                                  'pending', 'solve', 'close', 'reopen')),
    argument   TEXT,
    created_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    status     TEXT    NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'done', 'refused')),
    result     TEXT,
    applied_at INTEGER,
    CHECK (action NOT IN ('assign', 'note', 'reply', 'reply_dm') OR (argument IS NOT NULL AND argument <> ''))
);
CREATE INDEX agent_actions_new ON agent_actions (status, id);
