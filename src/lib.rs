//! helpdesk: a customer-relations bot for brands on X and Mastodon.
//!
//! # Layout
//!
//! - [`domain`]: the newtypes and enums every other module speaks in.
//! - [`rules`]: rule files → a compiled rule set → a routing decision. Pure.
//! - [`text`]: post length as X and Mastodon count it. Pure.
//! - [`clock`]: the one time source, movable in tests.
//! - [`config`]: `helpdesk.toml`, and secrets that never print.
//! - [`platform`]: the `Connector` trait, the X client and the sandbox X API.
//! - [`store`]: the database (SQLite or PostgreSQL), migrations, cursors.
//! - [`pipeline`]: event → decision → one transaction (message, ticket, outbox row).
//! - [`tickets`]: opening tickets and adding to their conversation.
//! - [`outbox`]: the only code that sends: budgets, 429, retries, recovery.
//! - [`schedule`]: when to poll each stream, from the platform's budgets.
//! - [`bot`]: the event loop and its shutdown.
//! - [`report`]: the support lead's figures.
//! - [`demo`], [`run`], [`agent_cli`], [`cli`]: the commands.
//!
//! `ARCHITECTURE.md` at the repository root has the bird's-eye view.

pub mod agent_cli;
pub mod bot;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod outbox;
pub mod pipeline;
pub mod platform;
pub mod report;
pub mod rules;
pub mod run;
pub mod schedule;
pub mod store;
pub mod text;
pub mod tickets;
