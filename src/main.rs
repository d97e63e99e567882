//! The `helpdesk` binary: parse the command line, run, turn errors into an exit code.

use clap::Parser;
use helpdesk::commands::output::{is_broken_pipe, render_error};
use helpdesk::commands::{Cli, dispatch};

fn main() {
    match dispatch(Cli::parse()) {
        Ok(code) => std::process::exit(code),
        // Rust ignores SIGPIPE, so a closed pipe comes back as an error:
        // end quietly, like a tool killed by SIGPIPE but with status 0.
        Err(e) if is_broken_pipe(&e) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {}", render_error(&e));
            std::process::exit(2);
        }
    }
}
