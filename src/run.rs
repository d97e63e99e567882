//! `helpdesk run`: the long-running bot, from a configuration file.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use tokio::sync::watch;

use crate::bot::Bot;
use crate::clock::Clock;
use crate::config::{Config, Secret};
use crate::platform::Connector;
use crate::platform::x::XClient;
use crate::rules::{LoadOptions, RuleSet};
use crate::store::{Store, redact_url};

/// Builds the connectors the configuration asks for.
pub fn connectors(config: &Config, clock: &Clock) -> anyhow::Result<Vec<Arc<dyn Connector>>> {
    let mut out: Vec<Arc<dyn Connector>> = Vec::new();
    if let Some(x) = &config.x {
        let token = Secret::from_env(&x.access_token_env)?;
        out.push(Arc::new(XClient::new(x, token, clock.clone())));
    }
    if out.is_empty() {
        bail!(
            "no platform is configured: add an [x] section with base_url and access_token_env to the configuration"
        );
    }
    Ok(out)
}

/// Runs the bot until Ctrl-C or SIGTERM.
pub async fn run(config_path: &Path, answer_backlog: bool) -> anyhow::Result<()> {
    let mut config = Config::load(config_path, true)?;
    config.answer_backlog |= answer_backlog;
    let rules = RuleSet::load_dir(&config.rules, &LoadOptions::default())
        .map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    tracing::info!(rules = rules.rules().len(), folder = %config.rules.display(), "rules loaded");
    let clock = Clock::new();
    let connectors = connectors(&config, &clock)?;
    let store = Store::open(&config.database_url).await?;
    tracing::info!(database = %redact_url(&config.database_url), "database ready");
    let bot = Bot::new(&config, store, Arc::new(rules), connectors, clock)
        .await
        .context("the bot could not start")?;

    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: finishing what is in flight");
        let _ = tx.send(true);
    });
    bot.run(rx).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
