//! `helpdesk completions`: shell completion scripts, from the same clap
//! definitions that parse the command line, so they never lag behind.

use std::io::Write;

use anyhow::Result;
use clap::Args;

use crate::commands::Cli;

/// `helpdesk completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// Prints the script for the shell asked for.
pub fn execute(args: &CompletionsArgs) -> Result<i32> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    // Into memory first: clap_complete panics when a write fails
    // (a closed pipe); ours returns the error.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "helpdesk", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(0)
}
