-- The agents who sign in to the console (issue #19): a name as the CLI's
-- --agent and ticket_events.actor spell it, an Argon2id password hash
-- (PHC string), and whether they may still sign in.
CREATE TABLE agents (
    name          TEXT    PRIMARY KEY CHECK (name <> ''),
    password_hash TEXT    NOT NULL CHECK (password_hash LIKE '$argon2%'),
    disabled_at   BIGINT ,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
