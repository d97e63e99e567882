//! The running bot: its tasks, its configuration, its endpoints.
//!
//! [`bot`] assembles the parts and starts the tasks, one file each:
//! [`ingest`] (polling, and what listeners push), [`send`] (the outbox
//! sender), [`maintenance`] (agent actions, auto-close), [`alerts`] (incident
//! alerts to the team's chat). [`shutdown`]
//! carries the one stop signal and tracks every task; [`listen`] keeps a
//! platform's listener running and serves its endpoint through [`serve`].

pub mod admin;
pub mod alerts;
pub mod bot;
pub mod config;
pub mod console;
pub mod health;
pub mod ingest;
pub mod listen;
pub mod maintenance;
pub mod ownership;
pub mod reload;
pub mod schedule;
pub mod send;
pub mod serve;
pub mod shutdown;
