//! `helpdesk.toml`: what the operator configures, parsed once at start.
//!
//! Every key has a default, so an empty file (or none) is a valid
//! configuration for the embedded SQLite default. Secrets never live in the
//! file: it names the environment variable that holds them, and the value is
//! kept in a [`Secret`] whose `Debug` and `Display` print `[redacted]`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `sqlite://FILE` (created on first start) or `postgres://…`.
    pub database_url: String,
    /// The folder of rule files.
    pub rules: PathBuf,
    /// Answer messages written before the bot's first start (normally they
    /// are recorded and left alone).
    pub answer_backlog: bool,
    /// Reply budgets and caps.
    pub limits: Limits,
    /// Loop protection.
    pub protection: Protection,
    /// The X account, when the bot serves X.
    pub x: Option<XConfig>,
    /// The Mastodon account, when the bot serves Mastodon.
    pub mastodon: Option<MastodonConfig>,
    /// Tickets: SLA, solved period, survey.
    pub tickets: crate::application::tickets::TicketPolicy,
    /// Where `/metrics`, `/healthz` and `/readyz` listen; empty: nowhere.
    pub admin_listen: String,
    /// On SIGTERM or Ctrl-C, how long work in flight may take to finish.
    pub shutdown_deadline_secs: u64,
    /// A stream whose polls keep failing for this long makes `/readyz`
    /// answer 503 and name it.
    pub stream_failing_secs: u64,
    /// `[http]`: limits of the webhook and admin endpoints.
    pub http: HttpLimits,
}

/// `[http]`: what one peer of the webhook or admin endpoint may hold.
///
/// Both endpoints face the network; without these, a few hundred silent
/// connections or large unsigned bodies starve the process (file
/// descriptors, memory) and with it polling and sending.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// Connections served at once per endpoint; one more is closed at once.
    /// Keep the two endpoints' sum well below the process's `LimitNOFILE`
    /// so the HTTP client always has descriptors to poll and send.
    pub max_connections: usize,
    /// A request's headers must arrive within this; it also closes a
    /// keep-alive connection that stays idle this long.
    pub header_timeout_ms: u64,
    /// A whole request (body read, handling, answer) must finish within this.
    pub request_timeout_ms: u64,
    /// The largest request body read; a larger one is refused with 413
    /// while reading, before it is buffered.
    pub body_limit_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 512,
            header_timeout_ms: 5_000,
            request_timeout_ms: 20_000,
            body_limit_bytes: 512 * 1024,
        }
    }
}

impl HttpLimits {
    /// The header timeout as a `Duration`.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(1))
    }
    /// The whole-request timeout as a `Duration`.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://helpdesk.db".into(),
            rules: PathBuf::from("rules"),
            answer_backlog: false,
            limits: Limits::default(),
            protection: Protection::default(),
            x: None,
            mastodon: None,
            tickets: crate::application::tickets::TicketPolicy::default(),
            admin_listen: "127.0.0.1:9898".into(),
            shutdown_deadline_secs: 20,
            stream_failing_secs: 300,
            http: HttpLimits::default(),
        }
    }
}

/// A number of replies per window of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// How many replies…
    pub replies: u32,
    /// …per this many seconds.
    pub per_secs: u64,
}

impl Budget {
    /// The window as a duration.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.per_secs)
    }
}

/// Reply budgets, in the spirit of Zammad's auto-response caps.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// All automatic and agent replies of this bot together, per platform.
    pub global: Budget,
    /// Replies to one customer.
    pub per_customer: Budget,
    /// Automatic replies in one conversation; the next message that would
    /// get one is escalated to a human instead.
    pub per_conversation: u32,
    /// The queue such an escalation lands in.
    pub conversation_cap_queue: String,
    /// A reply still queued after this long is expired, not sent.
    pub reply_max_age_secs: u64,
    /// Attempts for a reply that keeps failing with 5xx or timeouts.
    pub max_attempts: u32,
    /// The same text to the same customer within this window is suppressed.
    pub same_reply_window_secs: u64,
    /// A reply `sending` for longer than this counts as interrupted (the
    /// sender died) and is recovered. Longer than an HTTP call with its timeout.
    pub lease_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            global: Budget {
                replies: 60,
                per_secs: 900,
            },
            per_customer: Budget {
                replies: 3,
                per_secs: 3600,
            },
            per_conversation: 3,
            conversation_cap_queue: "general".into(),
            reply_max_age_secs: 3600,
            max_attempts: 8,
            same_reply_window_secs: 24 * 3600,
            lease_secs: 120,
        }
    }
}

/// Loop protection: who and what the bot never answers automatically.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protection {
    /// Handles of other bots (without `@`), compared case-insensitively.
    pub bots: Vec<String>,
    /// A message that says only one of these (punctuation, handles and case
    /// aside) opts its author out of automatic replies.
    pub stop_words: Vec<String>,
    /// Messages written up to this long before the first start still count as new.
    pub backlog_grace_secs: u64,
}

impl Default for Protection {
    fn default() -> Self {
        Protection {
            bots: Vec::new(),
            stop_words: [
                "stop",
                "stop please",
                "please stop",
                "unsubscribe",
                "arrête",
                "arrêtez",
                "stop svp",
                "stop merci",
                "désabonner",
                "désinscription",
            ]
            .map(String::from)
            .to_vec(),
            backlog_grace_secs: 300,
        }
    }
}

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
    pub priority: Vec<crate::platforms::Stream>,
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
            priority: vec![
                crate::platforms::Stream::Dms,
                crate::platforms::Stream::Mentions,
                crate::platforms::Stream::Search,
            ],
            token_file: None,
            token_store: TokenStore::File,
            token_key_env: "HELPDESK_X_TOKEN_KEY".into(),
            client_id_env: "HELPDESK_X_CLIENT_ID".into(),
            client_secret_env: None,
            webhook: None,
        }
    }
}

/// A value that must never be printed: tokens, keys, passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from the environment variable `name`.
    pub fn from_env(name: &str) -> Result<Secret, ConfigError> {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_owned())),
            _ => Err(ConfigError::MissingSecret {
                var: name.to_owned(),
            }),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration {path}: {source}; check the path given to --config")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml and serde said, with the position.
        message: String,
    },
    /// A value is out of range.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A secret's environment variable is not set.
    #[error(
        "the environment variable {var} is not set: export it with the access token (the configuration names it in `access_token_env`)"
    )]
    MissingSecret {
        /// The variable's name.
        var: String,
    },
}

impl Config {
    /// Reads `path`; a missing file is the defaults when `optional` is true.
    /// `HELPDESK_DATABASE_URL` overrides `database_url`.
    pub fn load(path: &Path, optional: bool) -> Result<Config, ConfigError> {
        let mut config = match std::fs::read_to_string(path) {
            Ok(src) => Config::parse(&src, path)?,
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        // Relative paths in the file are relative to the file, so a bot
        // started from another directory finds its rules.
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && path.exists()
        {
            if config.rules.is_relative() {
                config.rules = dir.join(&config.rules);
            }
            // A SQLite file named relative to the configuration lives beside it.
            if let Some(file) = config.database_url.strip_prefix("sqlite://")
                && !file.starts_with('/')
                && !file.starts_with(':')
                && !file.is_empty()
            {
                config.database_url = format!("sqlite://{}", dir.join(file).display());
            }
            if let Some(x) = config.x.as_mut()
                && let Some(f) = x.token_file.as_mut()
                && f.is_relative()
            {
                *f = dir.join(&*f);
            }
        }
        // Environment values are taken as given (relative to the working directory).
        config.apply_env();
        Ok(config)
    }

    /// The `HELPDESK_*` environment overrides, applied over the file.
    pub const ENV_OVERRIDES: &'static [(&'static str, &'static str)] = &[
        ("HELPDESK_DATABASE_URL", "database_url"),
        ("HELPDESK_RULES", "rules"),
        ("HELPDESK_ANSWER_BACKLOG", "answer_backlog (true or false)"),
        ("HELPDESK_ADMIN_LISTEN", "admin_listen"),
        ("HELPDESK_SHUTDOWN_DEADLINE_SECS", "shutdown_deadline_secs"),
        ("HELPDESK_X_BASE_URL", "x.base_url"),
        ("HELPDESK_MASTODON_BASE_URL", "mastodon.base_url"),
    ];

    fn apply_env(&mut self) {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = var("HELPDESK_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = var("HELPDESK_RULES") {
            self.rules = PathBuf::from(v);
        }
        if let Some(v) = var("HELPDESK_ANSWER_BACKLOG") {
            self.answer_backlog = matches!(v.as_str(), "1" | "true" | "yes");
        }
        if let Some(v) = var("HELPDESK_ADMIN_LISTEN") {
            self.admin_listen = v;
        }
        if let Some(v) = var("HELPDESK_SHUTDOWN_DEADLINE_SECS").and_then(|v| v.parse().ok()) {
            self.shutdown_deadline_secs = v;
        }
        if let Some(v) = var("HELPDESK_X_BASE_URL") {
            self.x.get_or_insert_with(XConfig::default).base_url = v;
        }
        if let Some(v) = var("HELPDESK_MASTODON_BASE_URL") {
            self.mastodon
                .get_or_insert_with(MastodonConfig::default)
                .base_url = v;
        }
    }

    /// Parses the text of a configuration file.
    pub fn parse(src: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(src).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        for (name, b) in [
            ("limits.global", self.limits.global),
            ("limits.per_customer", self.limits.per_customer),
        ] {
            if b.replies == 0 || b.per_secs == 0 {
                return Err(invalid(format!(
                    "{name} needs replies >= 1 and per_secs >= 1 (to stop replying, remove the reply rules instead)"
                )));
            }
        }
        if crate::domain::Queue::parse(&self.limits.conversation_cap_queue).is_err() {
            return Err(invalid(format!(
                "limits.conversation_cap_queue `{}` must be a name of a-z, 0-9, `-` and `_`",
                self.limits.conversation_cap_queue
            )));
        }
        if self.limits.max_attempts == 0 {
            return Err(invalid("limits.max_attempts must be at least 1".into()));
        }
        if let Some(x) = &self.x
            && !(x.base_url.starts_with("http://") || x.base_url.starts_with("https://"))
        {
            return Err(invalid(format!(
                "x.base_url `{}` must start with http:// or https://",
                x.base_url
            )));
        }
        if let Some(x) = &self.x
            && x.token_store == TokenStore::Database
            && x.token_file.is_some()
        {
            // Two homes for one single-use refresh token would drift apart.
            return Err(invalid(
                "x.token_store = \"database\" keeps the tokens in the database: remove x.token_file (and run `helpdesk x login` once to store the login there)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        let c = Config::parse("", Path::new("h.toml")).unwrap();
        assert_eq!(c.database_url, "sqlite://helpdesk.db");
        assert!(c.x.is_none());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = Config::parse("[limits]\nglobl = 3\n", Path::new("h.toml")).unwrap_err();
        assert!(e.to_string().contains("globl"), "{e}");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("tok-123");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
    }

    #[test]
    fn x_section_takes_defaults() {
        let c = Config::parse(
            "[x]\nbase_url = \"http://127.0.0.1:9\"\n",
            Path::new("h.toml"),
        )
        .unwrap();
        let x = c.x.unwrap();
        assert_eq!(x.access_token_env, "HELPDESK_X_TOKEN");
        assert!(x.dms);
        assert_eq!(x.token_store, TokenStore::File);
    }

    #[test]
    fn the_database_token_store_excludes_a_token_file() {
        let c = Config::parse(
            "[x]\ntoken_store = \"database\"\ntoken_key_env = \"K\"\n",
            Path::new("h.toml"),
        )
        .unwrap();
        assert_eq!(c.x.unwrap().token_store, TokenStore::Database);
        let e = Config::parse(
            "[x]\ntoken_store = \"database\"\ntoken_file = \"x-token.json\"\n",
            Path::new("h.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("remove x.token_file"), "{e}");
        let e = Config::parse("[x]\ntoken_store = \"redis\"\n", Path::new("h.toml")).unwrap_err();
        assert!(e.to_string().contains("database"), "{e}");
    }
}
