//! What a command gets from the process around it: logs on stderr, and an
//! async runtime for the commands that talk to a database or a platform.

use std::future::Future;

use anyhow::{Context, Result};

/// How logs are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people at a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Sends tracing output to stderr; `RUST_LOG` overrides `default`.
pub fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}

/// Runs an async command to its end, with logs in `format` at `level`
/// unless `RUST_LOG` says otherwise. A runtime is started per command so
/// that the commands that need none (rules, init, completions) stay quick.
pub fn block_on<T>(
    format: LogFormat,
    level: &str,
    command: impl Future<Output = Result<T>>,
) -> Result<T> {
    run(
        tokio::runtime::Builder::new_multi_thread(),
        format,
        level,
        command,
    )
}

/// [`block_on`] on the calling thread alone: for a command's reader
/// thread, whose cores the rest of the command uses (the routing threads
/// of `rules replay`), so that no runtime threads compete with them.
pub fn block_on_here<T>(
    format: LogFormat,
    level: &str,
    command: impl Future<Output = Result<T>>,
) -> Result<T> {
    run(
        tokio::runtime::Builder::new_current_thread(),
        format,
        level,
        command,
    )
}

fn run<T>(
    mut runtime: tokio::runtime::Builder,
    format: LogFormat,
    level: &str,
    command: impl Future<Output = Result<T>>,
) -> Result<T> {
    init_logging(format, level);
    runtime
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(command)
}
