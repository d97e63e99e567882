//! The `ticket_messages` table: a ticket's conversation (the customer's
//! messages join it by a trigger of migration 0003; replies are added
//! when they are sent).

use sqlx::{AnyConnection, Row};

use super::{Store, StoreError, decode, tickets};
use crate::domain::TicketRef;
use crate::domain::clock::Millis;
use crate::domain::states::{Direction, Origin};

/// Adds an entry to a ticket's conversation and touches the ticket.
pub async fn append(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    direction: Direction,
    (message_id, outbox_id): (Option<i64>, Option<i64>),
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
    tickets::touch(conn, ticket, now).await
}

/// An entry of a ticket's conversation, with who wrote it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its row id: orders entries of the same millisecond.
    pub id: i64,
    /// When.
    pub at: Millis,
    /// In or out.
    pub direction: Direction,
    /// The text.
    pub body: Option<String>,
    /// For a customer's message: their handle.
    pub author_handle: Option<String>,
    /// For a reply: who wrote it.
    pub origin: Option<Origin>,
    /// The platform's id of the post: the customer's message, or the reply
    /// once sent.
    pub post_id: Option<String>,
}

/// A ticket's whole conversation, in no particular order.
pub async fn of_ticket(store: &Store, t: TicketRef) -> Result<Vec<Entry>, StoreError> {
    let rows = sqlx::query(
        "SELECT tm.at, tm.id, tm.direction, tm.body, m.author_handle, o.origin, \
                COALESCE(m.platform_message_id, o.sent_id) \
         FROM ticket_messages tm LEFT JOIN messages m ON m.id = tm.message_id \
         LEFT JOIN outbox o ON o.id = tm.outbox_id WHERE tm.ticket_id = $1",
    )
    .bind(t.0)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Entry {
                at: r.try_get(0)?,
                id: r.try_get(1)?,
                direction: decode(r.try_get::<String, _>(2)?)?,
                body: r.try_get(3)?,
                author_handle: r.try_get(4)?,
                origin: r.try_get::<Option<String>, _>(5)?.map(decode).transpose()?,
                post_id: r.try_get(6)?,
            })
        })
        .collect()
}
