//! The running bot: its tasks, its configuration, its endpoints.

pub mod admin;
pub mod bot;
pub mod config;
pub mod ownership;
pub mod reload;
pub mod schedule;
pub mod serve;
