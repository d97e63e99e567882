//! helpdesk: a customer-relations bot for brands on X and Mastodon.
//!
//! # Layout
//!
//! - [`domain`]: the newtypes and enums every other module speaks in.
//! - [`rules`]: rule files → a compiled rule set → a routing decision. Pure.
//! - [`text`]: post length as X and Mastodon count it. Pure.
//! - [`inert`]: customer text made inert in the brand's posts; the last check on mentions. Pure.
//! - [`clock`]: the one time source, movable in tests.
//! - [`config`]: `helpdesk.toml`, and secrets that never print.
//! - [`platform`]: the `Connector` trait, the X client and the sandbox X API.
//! - [`store`]: the database (SQLite or PostgreSQL), migrations, cursors.
//! - [`pipeline`]: event → decision → one transaction (message, ticket, outbox row).
//! - [`tickets`]: opening tickets and adding to their conversation.
//! - [`outbox`]: the only code that sends: budgets, 429, retries, recovery.
//! - [`schedule`]: when to poll each stream, from the platform's budgets.
//! - [`ownership`]: which instance polls and sends (PostgreSQL advisory locks).
//! - [`bot`]: the event loop and its shutdown.
//! - [`reload`]: hot reload of the rules (file watcher, SIGHUP).
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`serve`]: the HTTP server of the webhook and admin endpoints, with its limits.
//! - [`report`]: the support lead's figures.
//! - [`setup`]: `init`, `config check`.
//! - [`demo`], [`run`], [`agent_cli`], [`cli`]: the commands.
//!
//! `ARCHITECTURE.md` at the repository root has the bird's-eye view.

pub mod application;
pub mod commands;
pub mod domain;
pub mod platforms;
pub mod rules;
pub mod runtime;
pub mod storage;
