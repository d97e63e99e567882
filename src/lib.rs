//! helpdesk: a customer-relations bot for brands on X and Mastodon.
//!
//! # Layout
//!
//! - [`domain`]: the newtypes and enums every other module speaks in.
//! - [`rules`]: rule files → a compiled rule set → a routing decision. Pure.
//! - [`text`]: post length as X and Mastodon count it. Pure.
//!
//! `ARCHITECTURE.md` at the repository root has the bird's-eye view.

pub mod cli;
pub mod domain;
pub mod rules;
pub mod text;
