//! Flags that several commands take, each defined once and flattened where
//! it is used (as ripgrep does), so that a name, a default or an
//! environment variable cannot drift from one command to another.
//!
//! A command that reads something particular through a shared flag says so
//! in its own help with [`adjust`]; the definition stays here.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Arg, Args};

use crate::domain::AgentName;
use crate::runtime::config::Config;
use crate::storage::Store;

/// For `#[command(mut_args(…))]`: changes the flag `id` with `f`, how a
/// command gives a shared flag its own help. `mut_arg` would do the same
/// but move the flag last, which reorders the completion scripts.
pub fn adjust(id: &'static str, f: impl Fn(Arg) -> Arg) -> impl FnMut(Arg) -> Arg {
    move |a| if a.get_id() == id { f(a) } else { a }
}

/// `--config`: which configuration file to read.
#[derive(Debug, Clone, Args)]
pub struct ConfigFile {
    /// The configuration file.
    #[arg(
        long = "config",
        id = "config",
        value_name = "CONFIG",
        default_value = "helpdesk.toml",
        env = "HELPDESK_CONFIG"
    )]
    pub path: PathBuf,
}

/// `--rules`: the folder of rule files, for the commands that read rules
/// without a configuration.
#[derive(Debug, Clone, Args)]
pub struct RulesFolder {
    /// The folder of rule files.
    #[arg(
        long = "rules",
        id = "rules",
        value_name = "RULES",
        default_value = "rules"
    )]
    pub path: PathBuf,
}

/// `--json`: output for programs rather than people. What it prints is
/// each command's own, so each says so in its help.
#[derive(Debug, Clone, Copy, Args)]
pub struct Json {
    /// As JSON.
    #[arg(long = "json", id = "json")]
    pub on: bool,
}

/// `--threads`: how many threads route messages in the bulk commands (and
/// check a large rule file before).
#[derive(Debug, Clone, Copy, Args)]
pub struct Threads {
    /// Threads that route messages, and check a file of thousands of rules [default: one per core; at most four per core]; the output is the same with any number.
    #[arg(long = "threads", id = "threads", value_name = "N")]
    pub n: Option<std::num::NonZeroUsize>,
}

impl Threads {
    /// The number of routing threads: the flag's, or one per core.
    pub fn get(self) -> usize {
        super::parallel::workers(self.n)
    }
}

/// The agents' flags: where the database is (through the configuration)
/// and who is acting. `report` takes them too, so that an agent's
/// environment works for both.
#[derive(Debug, Clone, Args)]
#[command(mut_args(adjust("config", |a| a
    .global(true)
    .help("The configuration file (its database_url; HELPDESK_DATABASE_URL wins)"))))]
pub struct AgentArgs {
    /// Where the database is.
    #[command(flatten)]
    pub config: ConfigFile,
    /// Who is acting: 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
    #[arg(long, global = true, env = "HELPDESK_AGENT")]
    pub agent: Option<AgentName>,
}

impl AgentArgs {
    /// The configuration and its database, opened (and migrated if needed).
    pub async fn open_store(&self) -> Result<(Config, Store)> {
        let config = Config::load(&self.config.path, true)?;
        let store = Store::open(&config.database_url).await?;
        Ok((config, store))
    }

    /// The acting agent, for the commands that change a ticket.
    pub fn agent(&self) -> Result<String> {
        match &self.agent {
            Some(a) => Ok(a.as_str().to_owned()),
            None => bail!("who is acting? pass --agent NAME or set HELPDESK_AGENT"),
        }
    }
}
