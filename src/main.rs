//! The `helpdesk` binary: parse the command line, run, turn errors into an exit code.

use clap::Parser;

fn main() {
    let cli = helpdesk::cli::Cli::parse();
    match helpdesk::cli::dispatch(cli) {
        Ok(code) => std::process::exit(code),
        // Rust ignores SIGPIPE, so a closed pipe comes back as an error:
        // end quietly, like a tool killed by SIGPIPE but with status 0.
        Err(e) if helpdesk::cli::is_broken_pipe(&e) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {}", helpdesk::cli::render_error(&e));
            std::process::exit(2);
        }
    }
}
