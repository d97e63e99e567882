//! `helpdesk agents add|list|disable|passwd`: the agents who may sign in
//! to the console (`application::agents`).
//!
//! A password comes from standard input with `--password-stdin` (one line,
//! its line ending removed), so it never shows in a shell's history or in
//! `ps`; without it, a random one is made and printed once.

use std::io::{Read, Write};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rand::Rng;

use crate::application::agents::{self, AgentError};
use crate::commands::args::{ConfigFile, Json, adjust};
use crate::commands::output::when;
use crate::commands::process::{LogFormat, block_on};
use crate::domain::AgentName;
use crate::domain::clock::Clock;
use crate::domain::secret::Secret;
use crate::runtime::config::Config;
use crate::storage::Store;

/// `helpdesk agents`: where the database is, then what to do.
#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// Where the database is.
    #[command(flatten)]
    pub config: ConfigFile,
    /// What to do.
    #[command(subcommand)]
    pub cmd: AgentsCommand,
}

/// `helpdesk agents …`
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Add an agent who may sign in to the console.
    Add {
        /// The name: 1 to 64 letters, digits, `.`, `_`, `-` or `@`, as `--agent` spells it.
        name: AgentName,
        /// Read the password (at least 12 characters) from standard input instead of making one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// The agents, and whether they may sign in.
    #[command(mut_args(adjust("json", |a| a.help("One JSON array of objects: name, disabled_at, created_at"))))]
    List {
        /// How to print.
        #[command(flatten)]
        json: Json,
    },
    /// Stop an agent from signing in (their history stays).
    Disable {
        /// The agent.
        name: AgentName,
    },
    /// Set an agent's password, which enables a disabled agent again.
    Passwd {
        /// The agent.
        name: AgentName,
        /// Read the password (at least 12 characters) from standard input instead of making one.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Runs `helpdesk agents …` on stdout; returns the exit code.
pub fn execute(args: AgentsArgs) -> Result<i32> {
    block_on(LogFormat::Text, "warn", async {
        let stdout = std::io::stdout();
        let stdin = std::io::stdin();
        agents_command(&args, &mut stdin.lock(), &mut stdout.lock()).await
    })
}

/// Runs an `agents` command; a refusal is exit code 1.
pub async fn agents_command(
    args: &AgentsArgs,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<i32> {
    let config = Config::load(&args.config.path, true)?;
    let store = Store::open(&config.database_url).await?;
    let now = Clock::new().now_ms();
    let done = match &args.cmd {
        AgentsCommand::List { json } => {
            let list = crate::storage::agents::list(&store).await?;
            if json.on {
                serde_json::to_writer_pretty(&mut *out, &list)?;
                writeln!(out)?;
            } else {
                for a in &list {
                    let state = match a.disabled_at {
                        Some(at) => format!("disabled {}", when(Some(at))),
                        None => "active".to_owned(),
                    };
                    writeln!(out, "{:<24} {:<28} added {}", a.name, state, when(Some(a.created_at)))?;
                }
                writeln!(out, "{} agents", list.len())?;
            }
            return Ok(0);
        }
        AgentsCommand::Add { name, password_stdin } => {
            let (password, made) = password(*password_stdin, input)?;
            agents::add(&store, name, &password, now)
                .await
                .map(|()| report(name, "added", made.then_some(&password)))
        }
        AgentsCommand::Passwd { name, password_stdin } => {
            let (password, made) = password(*password_stdin, input)?;
            agents::set_password(&store, name, &password, now)
                .await
                .map(|()| report(name, "has a new password", made.then_some(&password)))
        }
        AgentsCommand::Disable { name } => agents::disable(&store, name, now)
            .await
            .map(|()| format!("{name}: disabled; they can no longer sign in (`helpdesk agents passwd {name}` enables them again)")),
    };
    match done {
        Ok(line) => {
            writeln!(out, "{line}")?;
            Ok(0)
        }
        Err(AgentError::Store(e)) => Err(e.into()),
        Err(refused) => {
            eprintln!("error: {refused}");
            Ok(1)
        }
    }
}

/// What an add or a new password did, with the password when it was made
/// here (shown this once).
fn report(name: &AgentName, what: &str, made: Option<&Secret>) -> String {
    match made {
        Some(p) => format!(
            "{name}: {what}; password (shown once, give it to them privately): {}",
            p.expose()
        ),
        None => format!("{name}: {what}"),
    }
}

/// The password: read from `input` (one line), or made (20 random letters
/// and digits); whether it was made.
fn password(from_stdin: bool, input: &mut dyn Read) -> Result<(Secret, bool)> {
    if from_stdin {
        let mut text = String::new();
        input
            .read_to_string(&mut text)
            .context("cannot read the password from standard input")?;
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        return Ok((Secret::new(line), false));
    }
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let made: String = (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    Ok((Secret::new(made), true))
}
