-- OAuth 2.0 token sets shared by every instance on this database
-- (`[x] token_store = "database"`), so one `helpdesk x login` serves them
-- all and X's single-use refresh tokens are spent by one instance at a
-- time. The tokens are sealed with AES-256-GCM under a key that lives only
-- in the instances' environment; docs/schema.md explains every column.
CREATE TABLE oauth_tokens (
    platform     TEXT    PRIMARY KEY CHECK (platform IN ('x')),
    key_id       TEXT    NOT NULL,
    nonce        TEXT    NOT NULL,
    sealed       TEXT    NOT NULL,
    expires_at   BIGINT,
    updated_at   BIGINT  NOT NULL,
    refreshed_by TEXT    NOT NULL
);
