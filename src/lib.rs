//! helpdesk: a customer-relations bot for brands on X and Mastodon.
//!
//! # Layout
//!
//! Six layers, one folder each; a module uses its own layer and those
//! below it, never one above (`tests/it/architecture.rs` checks it):
//!
//! - [`commands`]: one file per command of the `helpdesk` binary.
//! - [`runtime`]: the running bot: its tasks under one `Shutdown`, the
//!   configuration, the HTTP endpoints, hot reload, roles across instances.
//! - [`application`]: what the bot does: the pipeline (decide, then act),
//!   tickets, the sender (the only code that sends), the report.
//! - [`storage`]: the database; one module per table owns its statements.
//! - [`rules`]: rule files → a compiled rule set → a routing decision. Pure.
//! - [`platforms`]: the `Connector` trait, one folder per platform (client,
//!   JSON, auth, config section, fake server), and the registry.
//! - [`domain`]: ids, platforms, streams, budgets, secrets, every state and
//!   action as an enum with its SQL spelling; the clock, post lengths,
//!   customer text made inert. No IO.
//!
//! `ARCHITECTURE.md` at the repository root has the bird's-eye view.

pub mod application;
pub mod commands;
pub mod domain;
pub mod platforms;
pub mod rules;
pub mod runtime;
pub mod storage;
