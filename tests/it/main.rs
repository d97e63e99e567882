//! The integration tests, in one binary: one module per subject, the
//! helpers they share in `common`, and the fake platforms (the X sandbox,
//! the fake Mastodon) in the library under `helpdesk::platforms::*::fake`.
//!
//! One binary links the crate once instead of once per file. Run a subject
//! with a filter on its module, e.g. `cargo test --test it -- chaos::`;
//! scenarios on both databases are `MODULE::sqlite::NAME` and
//! `MODULE::postgres::NAME`.
//!
//! Every test shares this process: none may set an environment variable,
//! change the working directory or install a global (a tracing subscriber,
//! a metrics recorder). Values go to the code under test as arguments, and
//! to a `helpdesk` process through `Command::env` / `current_dir`.

#[macro_use]
mod common;

mod agents;
mod architecture;
mod batching;
mod bluesky;
mod bot_loop;
mod browser;
mod chaos;
mod commands;
mod console;
mod fuzz;
mod hostile;
mod in_doubt;
mod incidents;
mod language;
mod length_conformance;
mod mastodon;
mod outage;
mod replay;
mod rules_bulk;
mod rules_errors;
mod rules_matching;
mod runtime_tasks;
mod server;
mod x_connector;
mod x_shared_login;
mod x_spend;
