//! The command line: one file per command, holding its flags and its code;
//! this file only names the commands and hands each to its file.
//!
//! Commands print for people by default and JSON with `--json`; they return
//! an exit code rather than calling `exit`, so `main` stays the only place
//! that ends the process.

pub mod agents;
pub mod args;
pub mod completions;
pub mod config_check;
pub mod console;
pub mod demo;
pub mod incidents;
pub mod init;
pub mod output;
pub mod parallel;
pub mod process;
pub mod replay;
pub mod report;
pub mod rules;
pub mod run;
pub mod tickets;
pub mod x_login;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// helpdesk: answers customers on X and Mastodon from rule files, escalates the rest to agents.
#[derive(Debug, Parser)]
#[command(name = "helpdesk", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check or try the rule files.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Run the whole bot against a local sandbox X API and show what it did.
    Demo(demo::DemoArgs),
    /// Work escalated tickets (agents).
    Tickets(tickets::TicketsArgs),
    /// Surges of one rule turned into incidents: list them, close one.
    Incidents(incidents::IncidentsArgs),
    /// The agents who may sign in to the console: add, list, disable, passwd.
    Agents(agents::AgentsArgs),
    /// Serve the agents' web console (without the bot): [console] listen in the configuration.
    Console(console::ConsoleArgs),
    /// What reached the brand, what the bot did, how the agents did.
    Report(report::ReportArgs),
    /// X account set-up.
    #[command(subcommand)]
    X(x_login::XCommand),
    /// Write a commented helpdesk.toml and starter rules into DIR.
    Init(init::InitArgs),
    /// Check the configuration.
    #[command(subcommand)]
    Config(config_check::ConfigCommand),
    /// Print shell completions.
    Completions(completions::CompletionsArgs),
    /// Run the bot until Ctrl-C or SIGTERM.
    Run(run::RunArgs),
}

/// Runs a parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Rules(cmd) => rules::execute(cmd),
        Command::Demo(args) => demo::execute(&args),
        Command::Tickets(args) => tickets::execute(args),
        Command::Incidents(args) => incidents::execute(args),
        Command::Agents(args) => agents::execute(args),
        Command::Console(args) => console::execute(&args),
        Command::Report(args) => report::execute(&args),
        Command::X(cmd) => x_login::execute(cmd),
        Command::Init(args) => init::execute(&args),
        Command::Config(cmd) => config_check::execute(cmd),
        Command::Completions(args) => completions::execute(&args),
        Command::Run(args) => run::execute(&args),
    }
}
