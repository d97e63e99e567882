//! `helpdesk.toml`: what the operator configures, parsed once at start.
//!
//! Every key has a default, so an empty file (or none) is a valid
//! configuration for the embedded SQLite default. Secrets never live in the
//! file: it names the environment variable that holds them, and the value is
//! kept in a [`Secret`] whose `Debug` and `Display` print `[redacted]`.
//!
//! One order, one check: the file over the defaults (its relative paths
//! made relative to it), then every `HELPDESK_*` override of
//! [`Config::ENV_OVERRIDES`], then one validation of the result into typed
//! values. A value is checked the same wherever it came from, and an
//! override that cannot be read is an error naming its variable.
//!
//! [`Secret`]: crate::domain::secret::Secret

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::application::console::SessionPolicy;
use crate::domain::limits::{Limits, Protection};
use crate::domain::secret::MissingSecret;
use crate::platforms::bluesky::config::BlueskyConfig;
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
    /// The Bluesky account, when the bot serves Bluesky.
    pub bluesky: Option<BlueskyConfig>,
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
    /// `[replies]`: what every automatic reply carries.
    pub replies: Replies,
    /// `[language]`: the language of a customer whose language is not known.
    pub language: LanguageSettings,
    /// `[hours]`: when the team is in. Absent: always, as far as the
    /// acknowledgements and the SLA are concerned.
    pub hours: Option<crate::domain::hours::BusinessHours>,
    /// `[incidents]`: when a surge of one rule's matches is an incident,
    /// and where the team's chat is alerted.
    pub incidents: crate::application::incidents::IncidentPolicy,
    /// `[console]`: the agents' web console.
    pub console: ConsoleSettings,
}

/// `[language]`: how a text is chosen from a rule's language table.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LanguageSettings {
    /// The language of a customer whose message is too short or too mixed
    /// to tell (and whose platform does not say): a table's text in it,
    /// else the table's first. Without it, the table's first.
    pub default: Option<crate::domain::language::Lang>,
}

/// `[replies]`: what every automatic reply carries.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Replies {
    /// Appended to every automatic reply (an FAQ answer, an
    /// acknowledgement, the survey), never to an agent's, so that the
    /// brand never passes a machine off as a person: a text, or one per
    /// language. The rules' length check counts it.
    pub signature: Option<crate::domain::language::LocalizedText>,
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
            bluesky: None,
            tickets: crate::application::tickets::TicketPolicy::default(),
            admin_listen: "127.0.0.1:9898".into(),
            shutdown_deadline_secs: 20,
            stream_failing_secs: 300,
            http: HttpLimits::default(),
            replies: Replies::default(),
            language: LanguageSettings::default(),
            hours: None,
            incidents: Default::default(),
            console: Default::default(),
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
    /// A value of the file is out of range.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A `HELPDESK_*` override cannot be read as its setting, or gives it a
    /// value the file could not have either.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A secret's environment variable is not set.
    #[error(transparent)]
    MissingSecret(#[from] MissingSecret),
}

/// One `HELPDESK_*` variable that overrides a setting of the file: the one
/// definition of both the variable's name and how its text is read.
#[derive(Debug)]
pub struct EnvOverride {
    /// The variable.
    pub var: &'static str,
    /// The setting it overrides, as the file writes it.
    pub key: &'static str,
    /// Reads the variable's text into the setting; the error says what
    /// text was expected.
    apply: fn(&mut Config, &str) -> Result<(), String>,
}

/// A setting that fails its check, named so that the error can blame the
/// file or the variable that set it.
struct Invalid {
    key: &'static str,
    message: String,
}

impl Invalid {
    fn new(key: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            key,
            message: message.into(),
        }
    }

    /// The error for this problem: the variable's when one of `overridden`
    /// set the key, else the file's.
    fn blame(self, path: &Path, overridden: &[&EnvOverride]) -> ConfigError {
        match overridden.iter().find(|o| o.key == self.key) {
            Some(o) => ConfigError::Env {
                var: o.var,
                message: self.message,
            },
            None => ConfigError::Invalid {
                path: path.to_owned(),
                message: self.message,
            },
        }
    }
}

impl Config {
    /// Reads `path` (a missing file is the defaults when `optional` is
    /// true), applies the `HELPDESK_*` overrides of [`Config::ENV_OVERRIDES`],
    /// then validates the result.
    pub fn load(path: &Path, optional: bool) -> Result<Config, ConfigError> {
        Config::load_with_env(path, optional, |var| std::env::var_os(var))
    }

    /// [`Config::load`] with the environment read through `env`, so tests
    /// need not change the process's own.
    ///
    /// The order is file, then environment, then one validation: a value
    /// is checked the same wherever it came from, and an override can
    /// never skip a check or be dropped.
    pub fn load_with_env(
        path: &Path,
        optional: bool,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::read(path, optional)?;
        let overridden = config.apply_env(env)?;
        config.validate().map_err(|e| e.blame(path, &overridden))?;
        Ok(config)
    }

    /// `[tickets]` as the application uses it: with `[replies] signature`,
    /// which the survey and every automatic reply end with.
    pub fn ticket_policy(&self) -> crate::application::tickets::TicketPolicy {
        crate::application::tickets::TicketPolicy {
            signature: self.replies.signature.clone(),
            default_lang: self.language.default,
            hours: self.hours.clone(),
            limits: self.limits.clone(),
            incidents: self.incidents.clone(),
            ..self.tickets.clone()
        }
    }

    /// The file's settings over the defaults, their types checked but not
    /// yet their values, with its relative paths made relative to it.
    fn read(path: &Path, optional: bool) -> Result<Config, ConfigError> {
        let mut config = match std::fs::read_to_string(path) {
            Ok(src) => Config::from_toml(&src, path)?,
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            config.make_relative_to(dir);
        }
        Ok(config)
    }

    /// Relative paths in the file are relative to the file, so a bot
    /// started from another directory finds its rules. (Environment values
    /// are applied after this: they are relative to the working directory.)
    fn make_relative_to(&mut self, dir: &Path) {
        if self.rules.is_relative() {
            self.rules = dir.join(&self.rules);
        }
        // A SQLite file named relative to the configuration lives beside it.
        if let Some(file) = self.database_url.strip_prefix("sqlite://")
            && !file.starts_with('/')
            && !file.starts_with(':')
            && !file.is_empty()
        {
            self.database_url = format!("sqlite://{}", dir.join(file).display());
        }
        if let Some(x) = self.x.as_mut()
            && let Some(f) = x.token_file.as_mut()
            && f.is_relative()
        {
            *f = dir.join(&*f);
        }
    }

    /// The `HELPDESK_*` environment overrides, applied over the file in
    /// this order. An unset or empty variable overrides nothing.
    pub const ENV_OVERRIDES: &'static [EnvOverride] = &[
        EnvOverride {
            var: "HELPDESK_DATABASE_URL",
            key: "database_url",
            apply: |c, v| {
                c.database_url = v.to_owned();
                Ok(())
            },
        },
        EnvOverride {
            var: "HELPDESK_RULES",
            key: "rules",
            apply: |c, v| {
                c.rules = PathBuf::from(v);
                Ok(())
            },
        },
        EnvOverride {
            var: "HELPDESK_ANSWER_BACKLOG",
            key: "answer_backlog",
            apply: |c, v| {
                c.answer_backlog = parse_flag(v)?;
                Ok(())
            },
        },
        EnvOverride {
            var: "HELPDESK_ADMIN_LISTEN",
            key: "admin_listen",
            apply: |c, v| {
                c.admin_listen = v.to_owned();
                Ok(())
            },
        },
        EnvOverride {
            var: "HELPDESK_CONSOLE_LISTEN",
            key: "console.listen",
            apply: |c, v| {
                c.console.listen = v.to_owned();
                Ok(())
            },
        },
        EnvOverride {
            var: "HELPDESK_SHUTDOWN_DEADLINE_SECS",
            key: "shutdown_deadline_secs",
            apply: |c, v| {
                c.shutdown_deadline_secs = v.parse().map_err(|_| {
                    format!("`{v}` is not a whole number of seconds: set it to one, such as 20, or unset it to keep the file's value")
                })?;
                Ok(())
            },
        },
        EnvOverride {
            var: "HELPDESK_X_BASE_URL",
            key: "x.base_url",
            apply: |c, v| {
                c.x.get_or_insert_with(XConfig::default).base_url = v.to_owned();
                Ok(())
            },
        },
        EnvOverride {
            var: "HELPDESK_MASTODON_BASE_URL",
            key: "mastodon.base_url",
            apply: |c, v| {
                c.mastodon
                    .get_or_insert_with(MastodonConfig::default)
                    .base_url = v.to_owned();
                Ok(())
            },
        },
        EnvOverride {
            var: "HELPDESK_BLUESKY_SERVICE",
            key: "bluesky.service",
            apply: |c, v| {
                c.bluesky.get_or_insert_with(BlueskyConfig::default).service = v.to_owned();
                Ok(())
            },
        },
        EnvOverride {
            var: "HELPDESK_BLUESKY_IDENTIFIER",
            key: "bluesky.identifier",
            apply: |c, v| {
                c.bluesky
                    .get_or_insert_with(BlueskyConfig::default)
                    .identifier = Some(v.to_owned().try_into()?);
                Ok(())
            },
        },
    ];

    /// Applies every set override; the ones applied, so that a value they
    /// make invalid is blamed on its variable.
    fn apply_env(
        &mut self,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Vec<&'static EnvOverride>, ConfigError> {
        let mut applied = Vec::new();
        for o in Config::ENV_OVERRIDES {
            let Some(raw) = env(o.var) else { continue };
            let fail = |message: String| ConfigError::Env {
                var: o.var,
                message,
            };
            let value = raw.to_str().ok_or_else(|| {
                fail("is not valid UTF-8: set it to UTF-8 text, or unset it".into())
            })?;
            // Empty is unset, so `VAR=` in a unit file clears an override.
            if value.is_empty() {
                continue;
            }
            (o.apply)(self, value).map_err(fail)?;
            applied.push(o);
        }
        Ok(applied)
    }

    /// Parses and validates the text of a configuration file, without the
    /// environment.
    pub fn parse(src: &str, path: &Path) -> Result<Config, ConfigError> {
        let config = Config::from_toml(src, path)?;
        config.validate().map_err(|e| e.blame(path, &[]))?;
        Ok(config)
    }

    /// The file's text as typed settings (a queue name is parsed as a
    /// [`crate::domain::Queue`] here), not yet validated as a whole.
    fn from_toml(src: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(src).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// The checks beyond each value's type: ranges, URL schemes, settings
    /// that exclude each other. Runs once, on the merged configuration.
    fn validate(&self) -> Result<(), Invalid> {
        self.console
            .check()
            .map_err(|m| Invalid::new("console", m))?;
        self.incidents
            .check()
            .map_err(|m| Invalid::new("incidents", m))?;
        for (key, b) in [
            ("limits.global", self.limits.global),
            ("limits.per_customer", self.limits.per_customer),
        ] {
            if b.replies == 0 || b.per_secs == 0 {
                return Err(Invalid::new(
                    key,
                    format!(
                        "{key} needs replies >= 1 and per_secs >= 1 (to stop replying, remove the reply rules instead)"
                    ),
                ));
            }
        }
        if self.limits.max_attempts == 0 {
            return Err(Invalid::new(
                "limits.max_attempts",
                "limits.max_attempts must be at least 1",
            ));
        }
        self.survey_fits()?;
        if let Some(x) = &self.x {
            http_url("x.base_url", &x.base_url)?;
            if x.token_store == TokenStore::Database && x.token_file.is_some() {
                // Two homes for one single-use refresh token would drift apart.
                return Err(Invalid::new(
                    "x.token_file",
                    "x.token_store = \"database\" keeps the tokens in the database: remove x.token_file (and run `helpdesk x login` once to store the login there)",
                ));
            }
        }
        if let Some(m) = &self.mastodon {
            http_url("mastodon.base_url", &m.base_url)?;
        }
        if let Some(b) = &self.bluesky {
            http_url("bluesky.service", &b.service)?;
            if b.identifier.is_none() {
                return Err(Invalid::new(
                    "bluesky.identifier",
                    "[bluesky] needs identifier: the account's handle (such as acme.bsky.social) or its DID",
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Whether every text of `[tickets] survey`, with the longest ticket
    /// reference and signature after it, fits a DM on every platform: the
    /// survey leaves when an agent solves a ticket, too late to shorten.
    fn survey_fits(&self) -> Result<(), Invalid> {
        use crate::domain::text::LengthLimit;
        let signatures: Vec<&str> = match &self.replies.signature {
            Some(s) => s.variants().map(|(_, t)| t).collect(),
            None => vec![""],
        };
        for (lang, survey) in self.tickets.survey.variants() {
            for sig in &signatures {
                let text = format!("{survey} ({}){sig}", crate::domain::TicketRef::WORST_CASE);
                for limit in [LengthLimit::X, LengthLimit::MASTODON, LengthLimit::BLUESKY] {
                    let dm = limit.for_dm();
                    let n = dm.count(&text);
                    if n > dm.max {
                        let which = lang.map(|l| format!(".{l}")).unwrap_or_default();
                        return Err(Invalid::new(
                            "tickets.survey",
                            format!(
                                "tickets.survey{which} is too long for a direct message on {}: {n} of {} with the ticket reference and the signature; shorten it by {}",
                                dm.platform,
                                dm.max,
                                n - dm.max
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// An API root must be reached over HTTP(S): anything else is a typo that
/// would only show at the first request.
fn http_url(key: &'static str, url: &str) -> Result<(), Invalid> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(Invalid::new(
            key,
            format!("{key} `{url}` must start with http:// or https://"),
        ))
    }
}

/// A yes-or-no override: `true`, `1`, `yes` or `false`, `0`, `no`.
fn parse_flag(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!(
            "`{v}` is not true or false: set it to true or false, or unset it to keep the file's value"
        )),
    }
}

/// `[console]`: where the agents' console listens and how its sign-ins
/// behave (`runtime::console` serves it).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// Where the console listens (`127.0.0.1:8080`); empty: not served.
    pub listen: String,
    /// Mark the session cookie `Secure`: set it when agents reach the
    /// console over HTTPS (a reverse proxy that terminates TLS).
    pub secure_cookies: bool,
    /// A header that a reverse proxy which authenticates agents sets to the
    /// agent's name (`X-Forwarded-User`); off by default. Only believed
    /// from `trusted_proxies`, and only for agents who exist and are not
    /// disabled.
    pub trusted_header: Option<String>,
    /// The addresses `trusted_header` is believed from (the proxy's own,
    /// as the console sees it; none by default, so that setting the header
    /// alone trusts no one, not even another program on this machine).
    /// Behind them, `X-Forwarded-For`'s last address is the client's for
    /// the sign-in limit.
    pub trusted_proxies: Vec<IpAddr>,
    /// Without a request for this long, a session ends.
    pub session_idle_mins: u64,
    /// However busy, a session ends this long after sign-in.
    pub session_max_hours: u64,
    /// How often the inbox and an open ticket refresh themselves.
    pub refresh_secs: u64,
    /// Sign-in attempts allowed a minute, per agent name and per address.
    pub login_attempts_per_min: u32,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            listen: String::new(),
            secure_cookies: false,
            trusted_header: None,
            trusted_proxies: Vec::new(),
            session_idle_mins: 120,
            session_max_hours: 12,
            refresh_secs: 5,
            login_attempts_per_min: 10,
        }
    }
}

impl ConsoleSettings {
    /// The checks beyond each value's type.
    pub fn check(&self) -> Result<(), String> {
        if self.session_idle_mins == 0 || self.session_max_hours == 0 {
            return Err(
                "console.session_idle_mins and console.session_max_hours must be at least 1".into(),
            );
        }
        if !(1..=300).contains(&self.refresh_secs) {
            return Err("console.refresh_secs must be between 1 and 300".into());
        }
        if self.login_attempts_per_min == 0 {
            return Err("console.login_attempts_per_min must be at least 1".into());
        }
        if self.trusted_header.is_some() && self.trusted_proxies.is_empty() {
            return Err(
                "console.trusted_header needs console.trusted_proxies: the addresses of the proxy that sets it (such as [\"127.0.0.1\"])".into(),
            );
        }
        if let Some(h) = &self.trusted_header
            && (h.is_empty() || axum::http::HeaderName::from_bytes(h.as_bytes()).is_err())
        {
            return Err(format!(
                "console.trusted_header `{}` is not a header name: write one such as X-Forwarded-User, or remove the key",
                h.escape_debug()
            ));
        }
        Ok(())
    }

    /// How long sessions last, in the application's terms.
    pub fn sessions(&self) -> SessionPolicy {
        SessionPolicy {
            idle_ms: self.session_idle_mins.saturating_mul(60_000) as i64,
            max_ms: self.session_max_hours.saturating_mul(3_600_000) as i64,
        }
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

    /// An environment of its own for each test: the process's is shared by
    /// every test thread.
    fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn load(file: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("helpdesk.toml");
        std::fs::write(&path, file).unwrap();
        Config::load_with_env(&path, false, env(vars))
    }

    #[test]
    fn a_malformed_override_is_refused_with_its_variable() {
        for (var, value) in [
            ("HELPDESK_SHUTDOWN_DEADLINE_SECS", "soon"),
            ("HELPDESK_ANSWER_BACKLOG", "maybe"),
        ] {
            let e = load("", &[(var, value)]).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("environment variable {var}: `{value}` is not")),
                "{e}"
            );
        }
    }

    #[test]
    fn an_override_is_validated_like_the_file_value() {
        let check = "x.base_url `ftp://api.example` must start with http:// or https://";
        let from_file = load("[x]\nbase_url = \"ftp://api.example\"\n", &[]).unwrap_err();
        assert!(
            from_file
                .to_string()
                .ends_with(&format!("helpdesk.toml: {check}"))
        );
        let from_env = load("", &[("HELPDESK_X_BASE_URL", "ftp://api.example")]).unwrap_err();
        assert_eq!(
            from_env.to_string(),
            format!("environment variable HELPDESK_X_BASE_URL: {check}")
        );
        // Merged before the check: a good override mends a bad file value.
        let c = load(
            "[x]\nbase_url = \"ftp://typo\"\n",
            &[("HELPDESK_X_BASE_URL", "https://api.x.com")],
        )
        .unwrap();
        assert_eq!(c.x.unwrap().base_url, "https://api.x.com");
    }

    #[test]
    fn overrides_win_over_the_file_and_empty_ones_are_unset() {
        let file = "shutdown_deadline_secs = 5\nanswer_backlog = true\n";
        let c = load(
            file,
            &[
                ("HELPDESK_SHUTDOWN_DEADLINE_SECS", "30"),
                ("HELPDESK_ANSWER_BACKLOG", "no"),
                ("HELPDESK_RULES", ""),
            ],
        )
        .unwrap();
        assert_eq!(c.shutdown_deadline_secs, 30);
        assert!(!c.answer_backlog);
        // Empty is unset: the file's (default) rules folder, beside the file.
        assert!(
            c.rules.is_absolute() && c.rules.ends_with("rules"),
            "{:?}",
            c.rules
        );
    }

    #[test]
    fn a_survey_too_long_for_a_dm_is_refused_at_load() {
        let long = "x".repeat(480);
        let src = format!(
            "[tickets]\nsurvey = {{ en = \"How did we do?\", fr = \"{long}\" }}\n[replies]\nsignature = \" · automated reply\"\n"
        );
        let e = Config::parse(&src, Path::new("h.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tickets.survey.fr is too long for a direct message on x: 513 of 280"),
            "{e}"
        );
        let ok = "[tickets]\nsurvey = { en = \"How did we do?\", fr = \"Votre avis ?\" }\n";
        assert!(Config::parse(ok, Path::new("h.toml")).is_ok());
    }

    #[test]
    fn the_cap_queue_is_a_queue_checked_at_its_line() {
        let e = Config::parse(
            "[limits]\nconversation_cap_queue = \"Billing Team\"\n",
            Path::new("h.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 2") && e.contains("queue `Billing Team` must be"),
            "{e}"
        );
        let c = Config::parse(
            "[limits]\nconversation_cap_queue = \"vip\"\n",
            Path::new("h.toml"),
        )
        .unwrap();
        assert_eq!(c.limits.conversation_cap_queue.as_str(), "vip");
    }

    #[test]
    fn the_readme_names_every_override_and_its_example_is_valid() {
        let readme = include_str!("../../README.md");
        let start = readme.find("\n## Configuration\n").expect("the section");
        let section = &readme[start + 1..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        for o in Config::ENV_OVERRIDES {
            assert!(
                section.contains(&format!("`{}`", o.var)),
                "README's Configuration does not name {}",
                o.var
            );
        }
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|s| s.split("```").next())
            .expect("a toml example");
        Config::parse(example, Path::new("README.md")).unwrap();
    }

    #[test]
    fn console_settings_are_checked() {
        assert!(ConsoleSettings::default().check().is_ok());
        let bad = |f: fn(&mut ConsoleSettings)| {
            let mut s = ConsoleSettings::default();
            f(&mut s);
            s.check().unwrap_err()
        };
        assert!(bad(|s| s.refresh_secs = 0).contains("refresh_secs"));
        assert!(bad(|s| s.session_idle_mins = 0).contains("session"));
        assert!(bad(|s| s.login_attempts_per_min = 0).contains("login"));
        assert!(bad(|s| s.trusted_header = Some("X-User".into())).contains("trusted_proxies"));
        assert!(
            bad(|s| {
                s.trusted_header = Some("X User".into());
                s.trusted_proxies = vec![IpAddr::from([127, 0, 0, 1])];
            })
            .contains("not a header")
        );
        let p = ConsoleSettings::default().sessions();
        assert_eq!(p.idle_ms, 7_200_000);
        assert_eq!(p.max_ms, 43_200_000);
    }
}
