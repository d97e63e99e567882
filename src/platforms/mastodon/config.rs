//! `[mastodon]` in `helpdesk.toml`: the Mastodon account, beside the connector that reads it.

use serde::{Deserialize, Serialize};

/// `[mastodon]`: a Mastodon account.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MastodonConfig {
    /// The instance, such as `https://mastodon.social`.
    pub base_url: String,
    /// The environment variable with the access token.
    pub access_token_env: String,
    /// The shortest pause between two polls.
    pub min_poll_interval_ms: u64,
    /// The pause when the server sends no rate-limit headers.
    pub poll_interval_ms: u64,
    /// Hold the streaming API open for new mentions as they happen
    /// (polling takes over whenever the stream is down).
    pub streaming: bool,
    /// Where the streaming API lives; by default the instance says
    /// (`configuration.urls.streaming`), else `base_url`.
    pub streaming_url: Option<String>,
    /// While the stream is up, the pause between the polls that keep the
    /// cursor moving and catch anything the stream missed.
    pub stream_poll_interval_ms: u64,
    /// A stream silent this long (no event, no heartbeat) is dead: the
    /// bot polls and reconnects. Mastodon sends a heartbeat every 15 s.
    pub stream_idle_timeout_ms: u64,
}

impl Default for MastodonConfig {
    fn default() -> Self {
        MastodonConfig {
            base_url: "https://mastodon.social".into(),
            access_token_env: "HELPDESK_MASTODON_TOKEN".into(),
            min_poll_interval_ms: 1000,
            poll_interval_ms: 30_000,
            streaming: true,
            streaming_url: None,
            stream_poll_interval_ms: 60_000,
            stream_idle_timeout_ms: 45_000,
        }
    }
}
