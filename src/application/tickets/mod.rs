//! Escalation tickets: the lifecycle (pure), the commands agents run on
//! tickets and the bot's upkeep of them (each in one transaction, with an
//! event log), and the views agents read.
//!
//! Closed is final (a database trigger enforces it for every tool). Every
//! change is a row in `ticket_events`: who, when, what, from → to.

pub mod lifecycle;
pub mod service;
pub mod views;

pub use lifecycle::{Command, SlaHours, TicketPolicy, TransitionError, customer_wrote, transition};
pub use service::{Applied, TicketError, apply, apply_agent_actions, auto_close};
pub use views::{Entry, Filter, Summary, list, show};
