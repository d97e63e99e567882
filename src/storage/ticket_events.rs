//! The `ticket_events` table: a ticket's history (who, when, what, from →
//! to). Rows are only ever added.

use sqlx::{AnyConnection, Row};

use super::{Backend, Store, StoreError, decode, dialect};
use crate::domain::TicketRef;
use crate::domain::clock::Millis;
use crate::domain::states::EventKind;

/// A line to add to a ticket's history.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// The ticket.
    pub ticket: TicketRef,
    /// An agent's name, `bot` or `customer`.
    pub actor: &'a str,
    /// What happened.
    pub kind: EventKind,
    /// For changes: the value before.
    pub from: Option<&'a str>,
    /// For changes: the value after.
    pub to: Option<&'a str>,
    /// A text (a note, a reply, a reason).
    pub body: Option<&'a str>,
}

impl<'a> NewEvent<'a> {
    /// An event with no values and no text.
    pub fn new(ticket: TicketRef, actor: &'a str, kind: EventKind) -> Self {
        NewEvent {
            ticket,
            actor,
            kind,
            from: None,
            to: None,
            body: None,
        }
    }

    /// With the value before and after.
    pub fn change(mut self, from: &'a str, to: &'a str) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }

    /// With a text.
    pub fn body(mut self, body: &'a str) -> Self {
        self.body = Some(body);
        self
    }
}

/// Adds `e` to its ticket's history.
pub async fn insert(
    conn: &mut AnyConnection,
    e: &NewEvent<'_>,
    now: Millis,
) -> Result<(), StoreError> {
    insert_cut_at(conn, std::slice::from_ref(e), usize::MAX, now).await
}

/// Adds `events` to their tickets' histories, in order, in one statement
/// per 100 (or per [`dialect::statement_bytes`]).
pub async fn insert_many(
    conn: &mut AnyConnection,
    backend: Backend,
    events: &[NewEvent<'_>],
    now: Millis,
) -> Result<(), StoreError> {
    insert_cut_at(conn, events, dialect::statement_bytes(backend), now).await
}

/// [`insert_many`], statements cut at `max_bytes`. Numbered parameters,
/// which both databases take.
async fn insert_cut_at(
    conn: &mut AnyConnection,
    events: &[NewEvent<'_>],
    max_bytes: usize,
    now: Millis,
) -> Result<(), StoreError> {
    let t = |v: Option<&str>| v.map_or(0, dialect::text_bytes);
    let size =
        |e: &NewEvent<'_>| dialect::text_bytes(e.actor) + t(e.from) + t(e.to) + t(e.body) + 24;
    for chunk in dialect::chunks(events, 100, max_bytes, 7, size) {
        let sql = format!(
            "INSERT INTO ticket_events (ticket_id, at, actor, kind, from_value, to_value, body) \
             VALUES {}",
            dialect::values_list(chunk.len(), 7, 0, false, |p| format!("({})", p.join(", ")))
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            q = q
                .bind(e.ticket.0)
                .bind(now)
                .bind(e.actor)
                .bind(e.kind.as_str())
                .bind(e.from)
                .bind(e.to)
                .bind(e.body);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A stored line of a ticket's history.
#[derive(Debug, Clone)]
pub struct Event {
    /// Its row id: orders events of the same millisecond.
    pub id: i64,
    /// When.
    pub at: Millis,
    /// Who.
    pub actor: String,
    /// What.
    pub kind: EventKind,
    /// Before.
    pub from: Option<String>,
    /// After.
    pub to: Option<String>,
    /// The text.
    pub body: Option<String>,
}

/// A ticket's whole history, in no particular order.
pub async fn of_ticket(store: &Store, t: TicketRef) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, id, actor, kind, from_value, to_value, body FROM ticket_events WHERE ticket_id = $1",
    )
    .bind(t.0)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Event {
                at: r.try_get(0)?,
                id: r.try_get(1)?,
                actor: r.try_get(2)?,
                kind: decode(r.try_get::<String, _>(3)?)?,
                from: r.try_get(4)?,
                to: r.try_get(5)?,
                body: r.try_get(6)?,
            })
        })
        .collect()
}
