-- agent_actions.created_at defaulted to unixepoch('subsec'), which is NULL
-- before SQLite 3.42 (Debian 12's sqlite3 shell is 3.40), so the INSERT
-- documented in docs/schema.md failed there. julianday('now') gives the
-- same milliseconds on every SQLite since 3.0. SQLite cannot change a
-- column's default in place: the table is rebuilt, rows and ids kept.
CREATE TABLE agent_actions_rebuilt (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    agent      TEXT    NOT NULL CHECK (agent <> ''),
    action     TEXT    NOT NULL CHECK (action IN ('claim', 'assign', 'note', 'reply', 'reply_dm',
                                                  'pending', 'solve', 'close', 'reopen')),
    argument   TEXT,
    created_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    status     TEXT    NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'done', 'refused')),
    result     TEXT,
    applied_at INTEGER,
    CHECK (action NOT IN ('assign', 'note', 'reply', 'reply_dm') OR (argument IS NOT NULL AND argument <> ''))
);
INSERT INTO agent_actions_rebuilt (id, ticket_id, agent, action, argument, created_at, status, result, applied_at)
    SELECT id, ticket_id, agent, action, argument, created_at, status, result, applied_at FROM agent_actions;
DROP TABLE agent_actions;
ALTER TABLE agent_actions_rebuilt RENAME TO agent_actions;
CREATE INDEX agent_actions_new ON agent_actions (status, id);
