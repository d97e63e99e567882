//! The `helpdesk` binary: parse the command line, run, turn errors into an exit code.

use clap::Parser;

fn main() {
    let cli = helpdesk::commands::Cli::parse();
    match helpdesk::commands::dispatch(cli) {
        Ok(code) => std::process::exit(code),
        // Rust ignores SIGPIPE, so a closed pipe comes back as an error:
        // end quietly, like a tool killed by SIGPIPE but with status 0.
        Err(e) if helpdesk::commands::is_broken_pipe(&e) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {}", helpdesk::commands::render_error(&e));
            std::process::exit(2);
        }
    }
}
