-- The agents' browser console (issue #19).

-- Signed-in sessions: the cookie carries a random token, only its SHA-256
-- is kept here, so a copy of the database signs no one in. The CSRF token
-- every form of the session must carry. Several instances on one database
-- share them.
CREATE TABLE console_sessions (
    token_hash TEXT    PRIMARY KEY CHECK (length(token_hash) = 64),
    agent      TEXT    NOT NULL REFERENCES agents (name),
    csrf       TEXT    NOT NULL CHECK (length(csrf) >= 32),
    created_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);

-- Who has a ticket open, and whether they are writing a reply in it (the
-- collision warning); refreshed every few seconds by the page, stale after
-- a minute.
CREATE TABLE console_presence (
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    agent     TEXT    NOT NULL CHECK (agent <> ''),
    state     TEXT    NOT NULL CHECK (state IN ('viewing', 'replying')),
    at        INTEGER NOT NULL,
    PRIMARY KEY (ticket_id, agent)
);

-- When each agent last opened each ticket: a ticket changed since is unread.
CREATE TABLE console_reads (
    agent     TEXT    NOT NULL CHECK (agent <> ''),
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    seen_at   INTEGER NOT NULL,
    PRIMARY KEY (agent, ticket_id)
);

-- The inbox's order: the first-response due time while there has been no
-- first response, else last (storage/console.rs, DUE_KEY: the same
-- expression, or the planner cannot use these). The tickets being worked,
-- all and by queue, and any one status.
CREATE INDEX tickets_inbox ON tickets ((COALESCE(CASE WHEN first_response_at IS NULL THEN first_response_due END, 9223372036854775807)), id)
    WHERE status IN ('new', 'open', 'pending');
CREATE INDEX tickets_inbox_by_queue ON tickets (queue, (COALESCE(CASE WHEN first_response_at IS NULL THEN first_response_due END, 9223372036854775807)), id)
    WHERE status IN ('new', 'open', 'pending');
CREATE INDEX tickets_by_status_due ON tickets (status, (COALESCE(CASE WHEN first_response_at IS NULL THEN first_response_due END, 9223372036854775807)), id);
