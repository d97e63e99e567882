//! `helpdesk.toml`: what the operator configures, parsed once at start.
//!
//! Every key has a default, so an empty file (or none) is a valid
//! configuration for the embedded SQLite default. Secrets never live in the
//! file: it names the environment variable that holds them, and the value is
//! kept in a [`Secret`] whose `Debug` and `Display` print `[redacted]`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::limits::{Limits, Protection};
use crate::domain::secret::MissingSecret;
use crate::platforms::mastodon::config::MastodonConfig;
use crate::platforms::x::config::TokenStore;
use crate::platforms::x::config::XConfig;

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
    #[error(transparent)]
    MissingSecret(#[from] MissingSecret),
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
    use crate::domain::secret::Secret;
    use crate::platforms::x::config::TokenStore;

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
