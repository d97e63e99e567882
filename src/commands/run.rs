//! `helpdesk run`: the long-running bot, from a configuration file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::commands::args::{ConfigFile, adjust};
use crate::commands::process::{LogFormat, block_on};
use crate::domain::clock::Clock;
use crate::domain::secret::Secret;
use crate::platforms::Connector;
use crate::platforms::bluesky::config::BlueskyConfig;
use crate::platforms::bluesky::session::SessionHome;
use crate::platforms::registry::{self, Homes, Sections};
use crate::platforms::x::auth::{AuthError, SharedLogin};
use crate::platforms::x::config::XConfig;
use crate::rules::{LoadOptions, RuleSet};
use crate::runtime::bot::Bot;
use crate::runtime::config::Config;
use crate::runtime::console::Console;
use crate::runtime::shutdown::Shutdown;
use crate::storage::oauth_tokens::bluesky::BlueskySession;
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

/// Builds the connectors the configuration asks for (through the
/// platforms' registry). `store` is where a login shared by several
/// instances lives (`token_store = "database"`).
pub async fn connectors(
    config: &Config,
    clock: &Clock,
    store: &Store,
) -> anyhow::Result<Vec<Arc<dyn Connector>>> {
    let sections = Sections {
        x: config.x.as_ref(),
        mastodon: config.mastodon.as_ref(),
        bluesky: config.bluesky.as_ref(),
    };
    let shared_login = |x: &XConfig| -> Result<Arc<dyn SharedLogin>, AuthError> {
        let key = TokenKey::from_env(&x.token_key_env)?;
        Ok(Arc::new(SharedTokens::x(store.clone(), key)))
    };
    let bluesky_session = |b: &BlueskyConfig, password: &Secret| -> Arc<dyn SessionHome> {
        let identifier = b.identifier.as_ref().map_or("", |i| i.as_str());
        Arc::new(BlueskySession::new(
            store.clone(),
            identifier,
            password,
            clock.clone(),
        ))
    };
    let homes = Homes {
        x_login: &shared_login,
        bluesky_session: &bluesky_session,
    };
    Ok(registry::connectors(sections, clock, &homes).await?)
}

/// Runs the bot until Ctrl-C or SIGTERM.
pub async fn run(config_path: &Path, answer_backlog: bool) -> anyhow::Result<()> {
    let mut config = Config::load(config_path, true)?;
    config.answer_backlog |= answer_backlog;
    let clock = Clock::new();
    // The database first: a login shared by several instances lives there.
    let store = Store::open_patiently(&config.database_url).await?;
    tracing::info!(database = %redact_url(&config.database_url), "database ready");
    let connectors = connectors(&config, &clock, &store).await?;
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
    let shutdown = Shutdown::new();
    start_admin(&config, &bot, metrics, &shutdown).await?;
    start_console(&config, &bot, &clock, &shutdown).await?;
    shutdown.spawn(crate::runtime::reload::watch_rules(
        bot.rules(),
        config.rules.clone(),
        opts,
        clock,
        shutdown.clone(),
    ));
    shutdown.stop_on(crate::runtime::shutdown::signal());
    let deadline = Duration::from_secs(config.shutdown_deadline_secs);
    bot.run(shutdown, Some(deadline)).await?;
    Ok(())
}

/// The rules, checked against the length each platform really allows (a
/// Mastodon instance says its own); the options are kept for reloads.
async fn load_rules(
    config: &Config,
    connectors: &[Arc<dyn Connector>],
) -> anyhow::Result<(RuleSet, LoadOptions)> {
    let mut opts = LoadOptions {
        signature: config.replies.signature.clone(),
        ..LoadOptions::default()
    };
    opts.limits.clear();
    for c in connectors {
        opts.limits.push(c.length_limit().await);
    }
    let rules =
        RuleSet::load_dir(&config.rules, &opts).map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    // Before the loop starts: the models must not load inside a batch.
    crate::rules::language::Detector::warm_for(&rules, &opts);
    tracing::info!(rules = rules.rules().len(), folder = %config.rules.display(), "rules loaded");
    Ok((rules, opts))
}

/// The admin endpoint (/metrics, /healthz, /readyz), unless `admin_listen`
/// is empty.
async fn start_admin(
    config: &Config,
    bot: &Arc<Bot>,
    metrics: Option<PrometheusHandle>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    if config.admin_listen.is_empty() {
        return Ok(());
    }
    let addr = crate::runtime::admin::serve(
        &config.admin_listen,
        bot.clone(),
        metrics,
        config.http.clone(),
        shutdown,
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

/// The agents' console, unless `[console] listen` is empty.
async fn start_console(
    config: &Config,
    bot: &Arc<Bot>,
    clock: &Clock,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    if config.console.listen.is_empty() {
        return Ok(());
    }
    let console = Console::new(config, bot.store().clone(), bot.rules(), clock.clone());
    crate::commands::console::serve(config, console, shutdown).await
}
