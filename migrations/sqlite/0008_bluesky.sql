-- Bluesky joins the platforms. Its session (an app password exchanged
-- once for tokens, refreshed every two hours) lives in oauth_tokens like
-- X's shared login: sealed, one row, renewed by one instance at a time.
INSERT INTO platforms (name) VALUES ('bluesky');
