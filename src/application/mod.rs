//! The application: what the bot does with an event, a ticket, a reply.

pub mod agents;
pub mod console;
pub mod incidents;
pub mod pipeline;
pub mod report;
pub mod sending;
pub mod tickets;
