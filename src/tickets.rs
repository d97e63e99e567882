//! Escalation tickets: opening one, adding to its conversation, and
//! leaving system notes on it.
//!
//! The bot loop only opens tickets and appends to them; the agents'
//! workflow (claim, solve, close…) builds on these tables.

use sqlx::{AnyConnection, Row};

use crate::clock::Millis;
use crate::domain::{Platform, Priority, Queue, TicketRef};
use crate::store::StoreError;

/// The statuses in which a ticket is still being worked, as SQL.
pub const OPEN_STATUSES_SQL: &str = "('new', 'open', 'pending')";

/// What a new ticket is made of.
#[derive(Debug, Clone)]
pub struct NewTicket<'a> {
    /// Its queue.
    pub queue: &'a Queue,
    /// Its priority.
    pub priority: Priority,
    /// Where the customer is.
    pub platform: Platform,
    /// Their platform user id.
    pub customer_id: &'a str,
    /// Their handle.
    pub customer_handle: &'a str,
    /// The conversation replies go to.
    pub conversation_id: &'a str,
    /// The rule that escalated, if a rule did.
    pub rule_id: Option<&'a str>,
    /// Why, when it is not the rule's own escalation.
    pub note: Option<&'a str>,
}

/// Which way an entry of a ticket's conversation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the customer.
    In,
    /// To the customer.
    Out,
    /// Something that happened to the ticket.
    Event,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Event => "event",
        }
    }
}

/// Opens a ticket.
pub async fn open(
    conn: &mut AnyConnection,
    t: &NewTicket<'_>,
    now: Millis,
) -> Result<TicketRef, StoreError> {
    let id: i64 = sqlx::query(
        "INSERT INTO tickets (queue, priority, status, platform, customer_id, customer_handle, \
         conversation_id, rule_id, note, created_at, updated_at) \
         VALUES ($1, $2, 'new', $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
    )
    .bind(t.queue.as_str())
    .bind(t.priority.as_str())
    .bind(t.platform.as_str())
    .bind(t.customer_id)
    .bind(t.customer_handle)
    .bind(t.conversation_id)
    .bind(t.rule_id)
    .bind(t.note)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    Ok(TicketRef(id))
}

/// Adds an entry to a ticket's conversation and touches the ticket.
pub async fn append(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    direction: Direction,
    message_id: Option<i64>,
    outbox_id: Option<i64>,
    body: &str,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ticket_messages (ticket_id, direction, message_id, outbox_id, body, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(ticket.0)
    .bind(direction.as_str())
    .bind(message_id)
    .bind(outbox_id)
    .bind(body)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE tickets SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(ticket.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Leaves a system note on a ticket (shown to agents), also logged as an event.
pub async fn note(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    note: &str,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET note = $1 WHERE id = $2")
        .bind(note)
        .bind(ticket.0)
        .execute(&mut *conn)
        .await?;
    append(conn, ticket, Direction::Event, None, None, note, now).await
}
