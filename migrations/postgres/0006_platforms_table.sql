-- The platforms the bot serves become rows of a table instead of a list
-- repeated in a CHECK on six tables: adding a platform is then one
-- migration, `INSERT INTO platforms (name) VALUES ('bluesky');`, on both
-- databases. The CHECKs carry PostgreSQL's default names
-- (<table>_<column>_check); each gives way to a foreign key, checked
-- against every row already there as it is added.
CREATE TABLE platforms (
    name TEXT PRIMARY KEY
);
INSERT INTO platforms (name) VALUES ('x'), ('mastodon');

ALTER TABLE cursors
    DROP CONSTRAINT cursors_platform_check,
    ADD CONSTRAINT cursors_platform_fkey FOREIGN KEY (platform) REFERENCES platforms (name);
ALTER TABLE tickets
    DROP CONSTRAINT tickets_platform_check,
    ADD CONSTRAINT tickets_platform_fkey FOREIGN KEY (platform) REFERENCES platforms (name);
ALTER TABLE messages
    DROP CONSTRAINT messages_platform_check,
    ADD CONSTRAINT messages_platform_fkey FOREIGN KEY (platform) REFERENCES platforms (name);
ALTER TABLE outbox
    DROP CONSTRAINT outbox_platform_check,
    ADD CONSTRAINT outbox_platform_fkey FOREIGN KEY (platform) REFERENCES platforms (name);
ALTER TABLE opt_outs
    DROP CONSTRAINT opt_outs_platform_check,
    ADD CONSTRAINT opt_outs_platform_fkey FOREIGN KEY (platform) REFERENCES platforms (name);
ALTER TABLE oauth_tokens
    DROP CONSTRAINT oauth_tokens_platform_check,
    ADD CONSTRAINT oauth_tokens_platform_fkey FOREIGN KEY (platform) REFERENCES platforms (name);
