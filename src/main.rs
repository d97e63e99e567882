//! The `helpdesk` binary: parse the command line, run, turn errors into an exit code.

use clap::Parser;

fn main() {
    let cli = helpdesk::cli::Cli::parse();
    match helpdesk::cli::dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
