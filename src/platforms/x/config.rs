//! `[x]` in `helpdesk.toml`: the X account, beside the connector that reads it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::Stream;
use crate::domain::money::Usd;

/// `[x]`: the X API v2 account.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct XConfig {
    /// The API root: the real API, or a sandbox in tests.
    pub base_url: String,
    /// The environment variable that holds the OAuth 2.0 user token.
    pub access_token_env: String,
    /// The shortest pause between two polls of one stream.
    pub min_poll_interval_ms: u64,
    /// The pause when the API sends no rate-limit headers.
    pub poll_interval_ms: u64,
    /// Brand monitoring: poll the recent search (channel `search`).
    pub search: bool,
    /// Its query; by default the account's handle, minus its own posts and
    /// retweets (`lumio -from:lumio -is:retweet`).
    pub search_query: Option<String>,
    /// Poll direct messages.
    pub dms: bool,
    /// The order in which due streams are polled.
    pub priority: Vec<Stream>,
    /// OAuth 2.0 tokens that refresh themselves, written by `helpdesk x
    /// login` (instead of `access_token_env`).
    pub token_file: Option<PathBuf>,
    /// Where those tokens live: `file` (`token_file`, one instance) or
    /// `database` (the `oauth_tokens` table, shared by every instance on
    /// `database_url`, sealed with the key in `token_key_env`).
    pub token_store: TokenStore,
    /// The environment variable with the base64 32-byte key that seals the
    /// tokens in the database (`openssl rand -base64 32`; the same on
    /// every instance).
    pub token_key_env: String,
    /// The environment variable with the OAuth 2.0 client id.
    pub client_id_env: String,
    /// The environment variable with the client secret (confidential clients only).
    pub client_secret_env: Option<String>,
    /// Account Activity webhooks, for accounts that have them.
    pub webhook: Option<WebhookConfig>,
    /// The most the bot may spend on X's pay-per-use API per UTC day, in
    /// dollars; absent: no money budget (the spend is still counted).
    pub max_usd_per_day: Option<Usd>,
    /// What X charges for each call (`[x.prices]`).
    pub prices: XPrices,
}

/// `[x.prices]`: X's pay-per-use prices in dollars, per resource a read
/// returns and per request a write makes. The defaults are the prices X
/// published, read on 2026-11-30 (X's developer documentation, "X API
/// pay-per-usage pricing"); the Developer Console shows the current ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct XPrices {
    /// Posts: Read, per post returned (0.005).
    pub post_read: Usd,
    /// User: Read, per user returned, expansions such as `author_id`
    /// included (0.010).
    pub user_read: Usd,
    /// DM Event: Read, per event returned (0.010).
    pub dm_event_read: Usd,
    /// Content: Create, per post (0.015).
    pub content_create: Usd,
    /// Content: Create, per post with a link in it (0.200).
    pub content_create_with_url: Usd,
    /// DM Interaction: Create, per direct message (0.015).
    pub dm_interaction_create: Usd,
    /// User Interaction: Create, per request (0.015; the bot makes none).
    pub user_interaction_create: Usd,
    /// Interaction: Delete, per request (0.010; the bot makes none).
    pub interaction_delete: Usd,
}

impl Default for XPrices {
    fn default() -> Self {
        let usd = Usd::from_micros;
        XPrices {
            post_read: usd(5_000),
            user_read: usd(10_000),
            dm_event_read: usd(10_000),
            content_create: usd(15_000),
            content_create_with_url: usd(200_000),
            dm_interaction_create: usd(15_000),
            user_interaction_create: usd(15_000),
            interaction_delete: usd(10_000),
        }
    }
}

/// Where OAuth 2.0 tokens that refresh themselves are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStore {
    /// `token_file`, for a single instance.
    #[default]
    File,
    /// The database, so several instances share one login.
    Database,
}

/// `[x.webhook]`: push ingest through X's Account Activity API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Address to listen on, such as `0.0.0.0:8443` (behind TLS termination).
    pub listen: String,
    /// The URL path X calls.
    #[serde(default = "default_webhook_path")]
    pub path: String,
    /// The environment variable with the app's consumer secret.
    pub consumer_secret_env: String,
}

fn default_webhook_path() -> String {
    "/webhooks/x".into()
}

impl Default for XConfig {
    fn default() -> Self {
        XConfig {
            base_url: "https://api.x.com".into(),
            access_token_env: "HELPDESK_X_TOKEN".into(),
            min_poll_interval_ms: 1000,
            poll_interval_ms: 60_000,
            search: true,
            search_query: None,
            dms: true,
            priority: vec![Stream::Dms, Stream::Mentions, Stream::Search],
            token_file: None,
            token_store: TokenStore::File,
            token_key_env: "HELPDESK_X_TOKEN_KEY".into(),
            client_id_env: "HELPDESK_X_CLIENT_ID".into(),
            client_secret_env: None,
            webhook: None,
            max_usd_per_day: None,
            prices: XPrices::default(),
        }
    }
}
