//! `helpdesk config check`: everything `helpdesk run` would read, checked
//! without starting the bot, and the effective configuration shown.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::commands::args::ConfigFile;
use crate::platforms::x::config::{TokenStore, XConfig};
use crate::rules::{LoadOptions, RuleSet};
use crate::runtime::config::Config;
use crate::storage::redact_url;

/// `helpdesk config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate everything (the rules and their examples included) and print
    /// the effective configuration, secrets redacted; exit 1 on a problem.
    Check {
        /// Which file.
        #[command(flatten)]
        config: ConfigFile,
    },
}

/// Runs a `config` command on stdout; returns the exit code.
pub fn execute(cmd: ConfigCommand) -> Result<i32> {
    match cmd {
        ConfigCommand::Check { config } => {
            let stdout = std::io::stdout();
            check(&config.path, &mut stdout.lock())
        }
    }
}

/// Validates the configuration and the rules (examples included), and
/// prints the effective configuration with secrets redacted. Returns the
/// exit code.
pub fn check(path: &Path, out: &mut dyn Write) -> Result<i32> {
    let mut config = Config::load(path, true)?;
    let rules_ok = check_rules(&config, out)?;
    let x_ok = match &config.x {
        Some(x) => Some(check_x(x, out)?),
        None => None,
    };
    let mastodon_ok = match &config.mastodon {
        Some(m) => Some(check_secret(&m.access_token_env, out)?),
        None => None,
    };
    let bluesky_ok = match &config.bluesky {
        Some(b) => Some(check_secret(&b.app_password_env, out)?),
        None => None,
    };
    let platforms_ok = match (x_ok, mastodon_ok, bluesky_ok) {
        (None, None, None) => {
            writeln!(
                out,
                "# no [x], [mastodon] or [bluesky] section: `helpdesk run` has no platform to serve"
            )?;
            false
        }
        (x, m, b) => x.unwrap_or(true) && m.unwrap_or(true) && b.unwrap_or(true),
    };
    config.database_url = redact_url(&config.database_url);
    writeln!(
        out,
        "# effective configuration (file, then HELPDESK_* overrides):"
    )?;
    let text = toml::to_string_pretty(&config).context("cannot print the configuration")?;
    writeln!(out, "{text}")?;
    Ok(if rules_ok && platforms_ok { 0 } else { 1 })
}

/// Loads the rules with their examples: a line on stdout, the errors in
/// full on stderr. Whether they load.
fn check_rules(config: &Config, out: &mut dyn Write) -> Result<bool> {
    let opts = LoadOptions {
        signature: config.replies.signature.clone(),
        ..LoadOptions::default()
    };
    match RuleSet::load_dir(&config.rules, &opts) {
        Ok(r) => {
            let s = r.stats();
            writeln!(
                out,
                "# rules: ok, {} rules in {} files, every example passes",
                r.rules().len(),
                s.files
            )?;
            Ok(true)
        }
        Err(e) => {
            eprintln!("{}", e.render());
            writeln!(out, "# rules: {} errors (on stderr)", e.diagnostics.len())?;
            Ok(false)
        }
    }
}

/// Whether `[x]` can start: its token file exists and every secret it
/// names is set, each said on a line.
fn check_x(x: &XConfig, out: &mut dyn Write) -> Result<bool> {
    let mut ok = true;
    if x.token_store == TokenStore::File
        && let Some(f) = &x.token_file
        && !f.exists()
    {
        ok = false;
        writeln!(
            out,
            "# x.token_file {} does not exist: run `helpdesk x login`",
            f.display()
        )?;
    }
    for v in required_secrets(x) {
        ok &= check_secret(v, out)?;
    }
    Ok(ok)
}

/// Whether the environment variable `var` holds a secret; one line says so.
fn check_secret(var: &str, out: &mut dyn Write) -> Result<bool> {
    let set = std::env::var(var).is_ok_and(|s| !s.trim().is_empty());
    writeln!(
        out,
        "# secret {var}: {}",
        if set { "set" } else { "NOT SET" }
    )?;
    Ok(set)
}

/// The environment variables `[x]` needs set, for the way it logs in.
fn required_secrets(x: &XConfig) -> Vec<&str> {
    let mut vars = vec![];
    let refreshing = x.token_store == TokenStore::Database || x.token_file.is_some();
    if refreshing {
        vars.push(x.client_id_env.as_str());
        vars.extend(x.client_secret_env.as_deref());
    } else {
        vars.push(x.access_token_env.as_str());
    }
    // Whether a login shared in the database is there is only known with
    // the database and the key: `helpdesk run` says so at start.
    if x.token_store == TokenStore::Database {
        vars.push(x.token_key_env.as_str());
    }
    if let Some(w) = &x.webhook {
        vars.push(w.consumer_secret_env.as_str());
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_way_of_logging_in_needs_its_own_secrets() {
        let fixed = XConfig::default();
        assert_eq!(
            required_secrets(&fixed),
            vec![fixed.access_token_env.as_str()]
        );
        let file = XConfig {
            token_file: Some("x-token.json".into()),
            client_secret_env: Some("X_SECRET".into()),
            ..XConfig::default()
        };
        assert_eq!(
            required_secrets(&file),
            vec![file.client_id_env.as_str(), "X_SECRET"]
        );
        let shared = XConfig {
            token_store: TokenStore::Database,
            ..XConfig::default()
        };
        assert_eq!(
            required_secrets(&shared),
            vec![shared.client_id_env.as_str(), shared.token_key_env.as_str()]
        );
    }
}
