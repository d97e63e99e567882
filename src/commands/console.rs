//! `helpdesk console`: the agents' web console without the bot, for a
//! machine of its own on the bot's PostgreSQL (or beside a bot that does
//! not serve it). `helpdesk run` serves the same console when
//! `[console] listen` is set.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use arc_swap::ArcSwap;
use clap::Args;

use crate::commands::args::{ConfigFile, adjust};
use crate::commands::process::{LogFormat, block_on};
use crate::domain::clock::Clock;
use crate::rules::{LoadOptions, RuleSet};
use crate::runtime::config::Config;
use crate::runtime::console::Console;
use crate::runtime::shutdown::Shutdown;
use crate::storage::{Store, redact_url};

/// `helpdesk console`: which configuration, and how to log.
#[derive(Debug, Args)]
#[command(mut_args(adjust("config", |a| a.help("The configuration file: its database, rules and [console]"))))]
pub struct ConsoleArgs {
    /// Which file.
    #[command(flatten)]
    pub config: ConfigFile,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Serves the console until Ctrl-C or SIGTERM; returns the exit code.
pub fn execute(args: &ConsoleArgs) -> anyhow::Result<i32> {
    block_on(args.log_format, "info", run(args))?;
    Ok(0)
}

async fn run(args: &ConsoleArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config.path, false)?;
    if config.console.listen.is_empty() {
        bail!(
            "{} has no [console] listen: set it (such as listen = \"127.0.0.1:8080\") to serve the console",
            args.config.path.display()
        );
    }
    let clock = Clock::new();
    let store = Store::open_patiently(&config.database_url).await?;
    tracing::info!(database = %redact_url(&config.database_url), "database ready");
    // The rules give the saved replies; reloaded as the bot reloads them.
    let opts = LoadOptions {
        signature: config.replies.signature.clone(),
        ..LoadOptions::default()
    };
    let rules =
        RuleSet::load_dir(&config.rules, &opts).map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    let rules = Arc::new(ArcSwap::from_pointee(rules));
    let shutdown = Shutdown::new();
    shutdown.spawn(crate::runtime::reload::watch_rules(
        rules.clone(),
        config.rules.clone(),
        opts,
        clock.clone(),
        shutdown.clone(),
    ));
    let console = Console::new(&config, store, rules, clock);
    serve(&config, console, &shutdown).await?;
    shutdown.stop_on(crate::runtime::shutdown::signal());
    shutdown.stopped().await;
    shutdown
        .wait(Some(Duration::from_secs(config.shutdown_deadline_secs)))
        .await;
    Ok(())
}

/// Serves `console` on `[console] listen` (for `run` too).
pub async fn serve(config: &Config, console: Console, shutdown: &Shutdown) -> anyhow::Result<()> {
    let listen = config.console.listen.clone();
    let addr = crate::runtime::console::serve(Arc::new(console), config.http.clone(), shutdown)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {listen} for the console: set [console] listen (or HELPDESK_CONSOLE_LISTEN) to a free address"
            )
        })?;
    tracing::info!(%addr, "console ready: sign in at http://{addr}/login");
    Ok(())
}
