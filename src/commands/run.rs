//! `helpdesk run`: the long-running bot, from a configuration file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{mpsc, watch};

use crate::commands::args::{ConfigFile, adjust};
use crate::commands::process::{LogFormat, block_on};
use crate::domain::Platform;
use crate::domain::clock::Clock;
use crate::domain::secret::Secret;
use crate::platforms::Connector;
use crate::platforms::x::XClient;
use crate::platforms::x::auth::Credentials;
use crate::platforms::x::config::TokenStore;
use crate::platforms::x::config::WebhookConfig;
use crate::platforms::x::webhook::{self, Delivery};
use crate::rules::{LoadOptions, RuleSet};
use crate::runtime::bot::Bot;
use crate::runtime::config::Config;
use crate::storage::oauth_tokens::{SharedTokens, TokenKey};
use crate::storage::{Store, redact_url};

/// `helpdesk run`: which configuration, and how to log.
#[derive(Debug, Args)]
#[command(mut_args(adjust("config", |a| a.help("The configuration file (missing: every default)"))))]
pub struct RunArgs {
    /// Which file.
    #[command(flatten)]
    pub config: ConfigFile,
    /// Also answer messages written before the bot's first start.
    #[arg(long)]
    pub answer_backlog: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Runs the bot until it is told to stop; returns the exit code.
pub fn execute(args: &RunArgs) -> anyhow::Result<i32> {
    block_on(
        args.log_format,
        "info",
        run(&args.config.path, args.answer_backlog),
    )?;
    Ok(0)
}

/// Builds the connectors the configuration asks for. `store` is where a
/// login shared by several instances lives (`token_store = "database"`).
pub async fn build_connectors(
    config: &Config,
    clock: &Clock,
    store: &Store,
) -> anyhow::Result<Vec<Arc<dyn Connector>>> {
    let mut out: Vec<Arc<dyn Connector>> = Vec::new();
    if let Some(x) = &config.x {
        let token_url = format!("{}/2/oauth2/token", x.base_url.trim_end_matches('/'));
        let client = || -> anyhow::Result<(String, Option<Secret>)> {
            Ok((
                Secret::from_env(&x.client_id_env)?.expose().to_owned(),
                x.client_secret_env
                    .as_deref()
                    .map(Secret::from_env)
                    .transpose()?,
            ))
        };
        let credentials = match (&x.token_store, &x.token_file) {
            (TokenStore::Database, _) => {
                let key = TokenKey::from_env(&x.token_key_env)?;
                let (id, secret) = client()?;
                Credentials::shared(SharedTokens::x(store.clone(), key), id, secret, token_url)
                    .await?
            }
            (TokenStore::File, Some(file)) => {
                let (id, secret) = client()?;
                Credentials::refreshing(file.clone(), id, secret, token_url)?
            }
            (TokenStore::File, None) => Credentials::Static(Secret::from_env(&x.access_token_env)?),
        };
        out.push(Arc::new(XClient::with_credentials(
            x,
            credentials,
            clock.clone(),
        )));
    }
    if let Some(m) = &config.mastodon {
        let token = Secret::from_env(&m.access_token_env)?;
        out.push(Arc::new(crate::platforms::mastodon::MastodonClient::new(
            m,
            token,
            clock.clone(),
        )));
    }
    if out.is_empty() {
        bail!(
            "no platform is configured: add an [x] or a [mastodon] section with base_url and access_token_env to the configuration"
        );
    }
    Ok(out)
}

/// Runs the bot until Ctrl-C or SIGTERM.
pub async fn run(config_path: &Path, answer_backlog: bool) -> anyhow::Result<()> {
    let mut config = Config::load(config_path, true)?;
    config.answer_backlog |= answer_backlog;
    let clock = Clock::new();
    // The database first: a login shared by several instances lives there.
    let store = Store::open_patiently(&config.database_url).await?;
    tracing::info!(database = %redact_url(&config.database_url), "database ready");
    let connectors = build_connectors(&config, &clock, &store).await?;
    let (rules, opts) = load_rules(&config, &connectors).await?;
    let metrics = crate::runtime::admin::install_recorder();
    metrics::gauge!("helpdesk_rules_loaded").set(rules.rules().len() as f64);
    metrics::gauge!("helpdesk_rules_last_good_load_timestamp_seconds")
        .set(clock.now_ms() as f64 / 1000.0);
    let bot = Arc::new(
        Bot::new(&config, store, Arc::new(rules), connectors, clock.clone())
            .await
            .context("the bot could not start")?,
    );

    let (stop, rx) = watch::channel(false);
    let webhooks = start_webhooks(&config, &bot, &rx).await?;
    start_admin(&config, &bot, metrics, &rx).await?;
    tokio::spawn(crate::runtime::reload::watch_rules(
        bot.rules(),
        config.rules.clone(),
        opts,
        clock,
        rx.clone(),
    ));
    let stopping = stop_on_signal(stop);
    let deadline = Duration::from_secs(config.shutdown_deadline_secs);
    tokio::select! {
        r = bot.run(rx, webhooks) => r?,
        _ = deadline_after(stopping, deadline) => {
            tracing::error!(
                deadline_secs = config.shutdown_deadline_secs,
                "work in flight did not finish before the shutdown deadline; a reply being sent is recovered at the next start"
            );
        }
    }
    Ok(())
}

/// The rules, checked against the length each platform really allows (a
/// Mastodon instance says its own); the options are kept for reloads.
async fn load_rules(
    config: &Config,
    connectors: &[Arc<dyn Connector>],
) -> anyhow::Result<(RuleSet, LoadOptions)> {
    let mut opts = LoadOptions::default();
    opts.limits.clear();
    for c in connectors {
        opts.limits.push(c.length_limit().await);
    }
    let rules =
        RuleSet::load_dir(&config.rules, &opts).map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    tracing::info!(rules = rules.rules().len(), folder = %config.rules.display(), "rules loaded");
    Ok((rules, opts))
}

/// The X webhook endpoint, when `[x.webhook]` asks for one.
async fn start_webhooks(
    config: &Config,
    bot: &Bot,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Option<mpsc::Receiver<Delivery>>> {
    let Some(w) = config.x.as_ref().and_then(|x| x.webhook.as_ref()) else {
        return Ok(None);
    };
    // Only events for the brand's own account are taken: others
    // subscribed to the same X app must not be answered as the brand.
    let me = bot
        .account(Platform::X)
        .map(|a| a.id.clone())
        .context("the X account is not identified: webhooks cannot be checked")?;
    Ok(Some(
        serve_webhooks(w, me, config.http.clone(), stop.clone()).await?,
    ))
}

/// The admin endpoint (/metrics, /healthz, /readyz), unless `admin_listen`
/// is empty.
async fn start_admin(
    config: &Config,
    bot: &Arc<Bot>,
    metrics: Option<PrometheusHandle>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if config.admin_listen.is_empty() {
        return Ok(());
    }
    let addr = crate::runtime::admin::serve(
        &config.admin_listen,
        bot.clone(),
        metrics,
        config.http.clone(),
        stop.clone(),
    )
    .await
    .with_context(|| {
        format!(
            "cannot listen on {} for /metrics: set admin_listen (or HELPDESK_ADMIN_LISTEN) to a free address",
            config.admin_listen
        )
    })?;
    tracing::info!(%addr, "admin endpoint ready: /metrics /healthz /readyz");
    Ok(())
}

/// On Ctrl-C or SIGTERM, tells the bot to stop through `stop`; the
/// receiver returned turns true then too, to start the shutdown deadline.
fn stop_on_signal(stop: watch::Sender<bool>) -> watch::Receiver<bool> {
    let (stopping_tx, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: no new polls; finishing what is in flight");
        let _ = stop.send(true);
        let _ = stopping_tx.send(true);
    });
    stopping
}

/// Resolves `deadline` after the stop was asked for, never without one.
async fn deadline_after(stopping: watch::Receiver<bool>, deadline: Duration) {
    if !crate::runtime::bot::stopped(stopping).await {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(deadline).await;
}

/// Starts the Account Activity webhook endpoint; returns where its
/// deliveries arrive.
async fn serve_webhooks(
    w: &WebhookConfig,
    me: crate::domain::UserId,
    limits: crate::runtime::config::HttpLimits,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<mpsc::Receiver<Delivery>> {
    let secret = Secret::from_env(&w.consumer_secret_env)?;
    let (tx, rx) = mpsc::channel(64);
    let app = webhook::router(&w.path, &secret, me, tx);
    let listener = tokio::net::TcpListener::bind(&w.listen)
        .await
        .with_context(|| format!("cannot listen on {} for X webhooks", w.listen))?;
    tracing::info!(listen = %w.listen, path = %w.path, "X webhook endpoint ready");
    crate::runtime::serve::serve_until(listener, app, limits, "webhook", stop);
    Ok(rx)
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
