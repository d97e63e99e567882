//! The `tickets` table: every statement that writes it, and the reads of
//! the agents' list.
//!
//! Status changes are written by [`set_status`] only, with the status the
//! lifecycle (`application::tickets::lifecycle`) computed; a database
//! trigger (migration 0002) also keeps closed tickets closed for every
//! other tool. Each change goes with its line in `ticket_events`.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row as _};

use super::ticket_events::{self, NewEvent};
use super::{Backend, Store, StoreError, decode, dialect};
use crate::domain::clock::Millis;
use crate::domain::language::Lang;
use crate::domain::states::{EventKind, TicketStatus};
use crate::domain::{Platform, Priority, Queue, TicketRef};

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
    /// When the first human response is due.
    pub first_response_due: Millis,
    /// The customer's language, as read on the message that opened it.
    pub lang: Option<Lang>,
}

/// Opens a ticket in status `new`. Its `created` event is written by a
/// trigger (migration 0003), whoever inserts: [`open_many`] with one.
pub async fn open(
    conn: &mut AnyConnection,
    backend: Backend,
    t: &NewTicket<'_>,
    now: Millis,
) -> Result<TicketRef, StoreError> {
    let ids = open_many(conn, backend, std::slice::from_ref(t), now).await?;
    ids.first().copied().ok_or(StoreError::Inconsistent(
        "no ticket id came back for the ticket opened",
    ))
}

/// Opens `tickets` in status `new`, in as few statements as it can (one
/// for a batch's new tickets, where one statement per ticket made most of
/// a batch's round trips on PostgreSQL; see [`dialect::statement_bytes`]);
/// their ids, in the order given.
/// Their `created` events are written by a trigger, as for [`open`].
///
/// Neither SQLite nor PostgreSQL promises the order in which `RETURNING`
/// gives a multi-row insert's rows, so each row is known by the key it was
/// inserted with, its (platform, customer): a statement never holds two
/// tickets of the same customer (a batch opens at most one per customer,
/// since the customer's later messages join it; should it not, the next
/// statement takes the second one). Statements follow the given order, and
/// both engines number a statement's rows in VALUES order (not promised;
/// `tests/it/batching.rs` compares the ids with one ticket at a time), so
/// ids grow with it as they did.
pub async fn open_many(
    conn: &mut AnyConnection,
    backend: Backend,
    tickets: &[NewTicket<'_>],
    now: Millis,
) -> Result<Vec<TicketRef>, StoreError> {
    let anonymous = dialect::anonymous_parameters(backend);
    let mut ids = Vec::with_capacity(tickets.len());
    let mut rest = tickets;
    while !rest.is_empty() {
        let first = dialect::chunks(
            rest,
            100,
            dialect::statement_bytes(backend),
            12,
            NewTicket::bytes,
        )[0];
        let chunk = &first[..distinct_customers_prefix(first)];
        rest = &rest[chunk.len()..];
        let sql = format!(
            "INSERT INTO tickets (queue, priority, status, platform, customer_id, customer_handle, \
             conversation_id, rule_id, note, created_at, updated_at, first_response_due, lang) VALUES {} \
             RETURNING id, platform, customer_id",
            dialect::values_list(chunk.len(), 12, 0, anonymous, |p| format!(
                "({}, {}, '{new}', {})",
                p[0],
                p[1],
                p[2..].join(", "),
                new = TicketStatus::New,
            ))
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for t in chunk {
            q = q
                .bind(t.queue.as_str())
                .bind(t.priority.as_str())
                .bind(t.platform.as_str())
                .bind(t.customer_id)
                .bind(t.customer_handle)
                .bind(t.conversation_id)
                .bind(t.rule_id)
                .bind(t.note)
                .bind(now)
                .bind(now)
                .bind(t.first_response_due)
                .bind(t.lang.map(String::from));
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let mut by_customer = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let key: (String, String) = (r.try_get(1)?, r.try_get(2)?);
            by_customer.insert(key, TicketRef(r.try_get(0)?));
        }
        for t in chunk {
            let key = (t.platform.as_str().to_owned(), t.customer_id.to_owned());
            let id = by_customer
                .get(&key)
                .copied()
                .ok_or(StoreError::Inconsistent(
                    "a new ticket came back without its id",
                ))?;
            ids.push(id);
        }
    }
    Ok(ids)
}

impl NewTicket<'_> {
    /// About what its parameters weigh in a statement.
    fn bytes(&self) -> usize {
        let t = dialect::text_bytes;
        t(self.queue.as_str())
            + t(self.customer_id)
            + t(self.customer_handle)
            + t(self.conversation_id)
            + t(self.rule_id.unwrap_or(""))
            + t(self.note.unwrap_or(""))
            + 6 * 12
    }
}

/// How many of the first tickets can share a statement: up to the first
/// repeated customer (see [`open_many`]).
fn distinct_customers_prefix(tickets: &[NewTicket<'_>]) -> usize {
    let mut seen = std::collections::HashSet::new();
    tickets
        .iter()
        .take_while(|t| seen.insert((t.platform, t.customer_id)))
        .count()
}

/// Marks the ticket as changed now (its conversation grew).
pub async fn touch(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(ticket.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The status of `ticket`, if it exists.
pub async fn status_of(
    conn: &mut AnyConnection,
    ticket: TicketRef,
) -> Result<Option<TicketStatus>, StoreError> {
    let row = sqlx::query("SELECT status FROM tickets WHERE id = $1")
        .bind(ticket.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| decode(r.try_get(0)?)).transpose()
}

/// Leaves a system note on a ticket (shown to agents), logged as an event.
pub async fn note(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    note: &str,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET note = $1, updated_at = $2 WHERE id = $3")
        .bind(note)
        .bind(now)
        .bind(ticket.0)
        .execute(&mut *conn)
        .await?;
    let event = NewEvent::new(ticket, "bot", EventKind::System).body(note);
    ticket_events::insert(conn, &event, now).await
}

/// The signals one customer's message carries, for its ticket.
#[derive(Debug, Clone)]
pub struct Signal {
    /// The ticket the message opened or joined.
    pub ticket: TicketRef,
    /// The signals' names, space-separated.
    pub names: String,
    /// The event's text: which signal, on which words.
    pub note: String,
    /// Whether the ticket's priority goes one step up (a ticket the
    /// message joins; one it opened was opened raised).
    pub raise: bool,
}

/// A ticket's columns that signals change.
#[derive(Debug, Clone, PartialEq)]
struct Signalled {
    priority: Priority,
    signals: Vec<String>,
    created: Millis,
    due: Option<Millis>,
    answered: bool,
}

impl Signalled {
    /// Applies one message's signal: its names join the ticket's, its
    /// priority goes up one step when `raise`, and a raised ticket no
    /// agent has answered is due by `due_for(priority, opened)` when that
    /// is sooner (an urgent ticket keeps no normal one's deadline). The
    /// priority before and after.
    fn apply(
        &mut self,
        s: &Signal,
        due_for: &(dyn Fn(Priority, Millis) -> Millis + Sync),
    ) -> (Priority, Priority) {
        for n in s.names.split_whitespace() {
            if !self.signals.iter().any(|a| a == n) {
                self.signals.push(n.to_owned());
            }
        }
        let before = self.priority;
        if s.raise {
            self.priority = before.raised();
        }
        if self.priority != before && !self.answered {
            self.due = self
                .due
                .map(|d| d.min(due_for(self.priority, self.created)));
        }
        (before, self.priority)
    }
}

/// Notes on their tickets the signals of a batch's messages, in order:
/// each one's names join the ticket's (`tickets list --signal`), its
/// priority goes one step up when it `raise`s (and an unanswered ticket's
/// deadline follows the new priority when that is sooner), and an event
/// names the signals and the words. In three statements whatever their
/// number (a read, an update and the events; more past
/// [`dialect::statement_bytes`]): one read-update-insert per message made
/// most of a batch's round trips on PostgreSQL.
pub async fn signal_many(
    conn: &mut AnyConnection,
    backend: Backend,
    signals: &[Signal],
    due_for: &(dyn Fn(Priority, Millis) -> Millis + Sync),
    now: Millis,
) -> Result<(), StoreError> {
    if signals.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<TicketRef> = signals.iter().map(|s| s.ticket).collect();
    ids.sort_by_key(|t| t.0);
    ids.dedup();
    let mut state = read_signalled(conn, &ids).await?;
    let mut changes = Vec::with_capacity(signals.len());
    for s in signals {
        let Some(t) = state.get_mut(&s.ticket) else {
            return Err(StoreError::Inconsistent(
                "a signal for a ticket that does not exist",
            ));
        };
        changes.push(t.apply(s, due_for));
    }
    write_signalled(conn, backend, &state, now).await?;
    let events: Vec<NewEvent<'_>> = signals
        .iter()
        .zip(&changes)
        .map(|(s, (before, after))| {
            let e = NewEvent::new(s.ticket, "bot", EventKind::System).body(&s.note);
            if before == after {
                e
            } else {
                e.change(before.as_str(), after.as_str())
            }
        })
        .collect();
    ticket_events::insert_many(conn, backend, &events, now).await
}

/// The signal columns of the tickets `ids` (sorted, distinct), by id in
/// id order: the update is then the same statement for the same tickets.
async fn read_signalled(
    conn: &mut AnyConnection,
    ids: &[TicketRef],
) -> Result<BTreeMap<TicketRef, Signalled>, StoreError> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(100) {
        let list = dialect::values_list(chunk.len(), 1, 0, false, |p| p[0].clone());
        let sql = format!(
            "SELECT id, priority, signals, created_at, first_response_due, first_response_at \
             FROM tickets WHERE id IN ({list})"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for t in chunk {
            q = q.bind(t.0);
        }
        for row in q.fetch_all(&mut *conn).await? {
            let signals = row.try_get::<Option<String>, _>(2)?.unwrap_or_default();
            out.insert(
                TicketRef(row.try_get(0)?),
                Signalled {
                    priority: decode(row.try_get::<String, _>(1)?)?,
                    signals: signals.split_whitespace().map(str::to_owned).collect(),
                    created: row.try_get(3)?,
                    due: row.try_get(4)?,
                    answered: row.try_get::<Option<Millis>, _>(5)?.is_some(),
                },
            );
        }
    }
    Ok(out)
}

/// Writes the signal columns of `state`'s tickets, in one statement per
/// 100 tickets.
async fn write_signalled(
    conn: &mut AnyConnection,
    backend: Backend,
    state: &BTreeMap<TicketRef, Signalled>,
    now: Millis,
) -> Result<(), StoreError> {
    let rows: Vec<(&TicketRef, String, &Signalled)> = state
        .iter()
        .map(|(t, s)| (t, s.signals.join(" "), s))
        .collect();
    let size = |(_, names, _): &(&TicketRef, String, &Signalled)| dialect::text_bytes(names) + 24;
    for chunk in dialect::chunks(&rows, 100, dialect::statement_bytes(backend), 4, size) {
        let values =
            dialect::values_list(chunk.len(), 4, 1, false, |p| format!("({})", p.join(", ")));
        let sql = format!(
            "WITH v (id, signals, priority, due) AS (VALUES {values}) \
             UPDATE tickets SET signals = v.signals, priority = v.priority, \
             first_response_due = v.due, updated_at = $1 FROM v WHERE tickets.id = v.id"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for (t, names, s) in chunk {
            q = q
                .bind(t.0)
                .bind(names.as_str())
                .bind(s.priority.as_str())
                .bind(s.due);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Moves a ticket from `from` to `to` as `actor`, with its event; sets the
/// times that go with solved and closed. Fenced on `from`: a ticket that
/// moved meanwhile is left alone (false).
pub async fn set_status(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    actor: &str,
    (from, to): (TicketStatus, TicketStatus),
    why: Option<&str>,
    now: Millis,
) -> Result<bool, StoreError> {
    if from == to {
        return Ok(true);
    }
    let done = sqlx::query(
        "UPDATE tickets SET status = $1, updated_at = $2, \
         solved_at = CASE WHEN $1 = 'solved' THEN $2 WHEN $1 = 'open' THEN NULL ELSE solved_at END, \
         closed_at = CASE WHEN $1 = 'closed' THEN $2 ELSE closed_at END \
         WHERE id = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(ticket.0)
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let mut event =
        NewEvent::new(ticket, actor, EventKind::Status).change(from.as_str(), to.as_str());
    if let Some(why) = why {
        event = event.body(why);
    }
    ticket_events::insert(conn, &event, now).await?;
    Ok(true)
}

/// Gives the ticket to `who`, logged with the previous assignee.
pub async fn assign(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    actor: &str,
    (before, who): (Option<&str>, &str),
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET assignee = $1, updated_at = $2 WHERE id = $3")
        .bind(who)
        .bind(now)
        .bind(ticket.0)
        .execute(&mut *conn)
        .await?;
    let mut event = NewEvent::new(ticket, actor, EventKind::Assign);
    event.from = before;
    event.to = Some(who);
    ticket_events::insert(conn, &event, now).await
}

/// Records the platform id of the latest reply sent on the ticket.
pub async fn last_sent(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    sent_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET last_sent_id = $1 WHERE id = $2")
        .bind(sent_id)
        .bind(ticket.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records the first human response (kept if there was one already).
pub async fn responded(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tickets SET first_response_at = COALESCE(first_response_at, $1), updated_at = $1 \
         WHERE id = $2",
    )
    .bind(now)
    .bind(ticket.0)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records that the satisfaction survey went out.
pub async fn survey_sent(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET survey_sent_at = $1 WHERE id = $2")
        .bind(now)
        .bind(ticket.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records that the customer's next DM after the survey came (the survey
/// asks about that one only).
pub async fn survey_answered(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tickets SET survey_answered_at = $1 WHERE id = $2 AND survey_answered_at IS NULL",
    )
    .bind(now)
    .bind(ticket.0)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the customer's rating, 1 to 5, with its event.
pub async fn rate(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    rating: i64,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET csat = $1, updated_at = $2 WHERE id = $3")
        .bind(rating)
        .bind(now)
        .bind(ticket.0)
        .execute(&mut *conn)
        .await?;
    let r = rating.to_string();
    let mut event = NewEvent::new(ticket, "customer", EventKind::Csat);
    event.to = Some(&r);
    ticket_events::insert(conn, &event, now).await
}

/// A ticket as an agent's command needs it, read under the row's lock.
#[derive(Debug, Clone)]
pub struct Locked {
    /// Its status.
    pub status: TicketStatus,
    /// Where the customer is.
    pub platform: Platform,
    /// Their platform user id.
    pub customer_id: String,
    /// Their handle.
    pub customer_handle: String,
    /// The conversation replies go to.
    pub conversation_id: String,
    /// The agent on it.
    pub assignee: Option<String>,
    /// Whether the survey went out.
    pub survey_sent: bool,
    /// The customer's language, as read when it was opened.
    pub lang: Option<Lang>,
}

/// Reads `ticket` and holds it until the transaction ends (`FOR UPDATE` on
/// PostgreSQL; on SQLite the transaction already holds the write lock).
pub async fn lock(
    conn: &mut AnyConnection,
    backend: Backend,
    ticket: TicketRef,
) -> Result<Option<Locked>, StoreError> {
    let sql = format!(
        "SELECT status, platform, customer_id, customer_handle, conversation_id, assignee, \
         survey_sent_at, lang FROM tickets WHERE id = $1{}",
        dialect::for_update(backend)
    );
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ticket.0)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Locked {
        status: decode(row.try_get::<String, _>(0)?)?,
        platform: decode(row.try_get::<String, _>(1)?)?,
        customer_id: row.try_get(2)?,
        customer_handle: row.try_get(3)?,
        conversation_id: row.try_get(4)?,
        assignee: row.try_get(5)?,
        survey_sent: row.try_get::<Option<i64>, _>(6)?.is_some(),
        // A code that no longer parses (written by hand) is no language.
        lang: row
            .try_get::<Option<String>, _>(7)?
            .and_then(|l| Lang::parse(&l).ok()),
    }))
}

/// Up to 500 tickets solved before `cutoff`, oldest first: those the
/// solved period has run out for.
pub async fn solved_before(store: &Store, cutoff: Millis) -> Result<Vec<TicketRef>, StoreError> {
    let rows = sqlx::query(
        "SELECT id FROM tickets WHERE status = $1 AND solved_at < $2 ORDER BY id LIMIT 500",
    )
    .bind(TicketStatus::Solved.as_str())
    .bind(cutoff)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(|r| Ok(TicketRef(r.try_get(0)?))).collect()
}

/// One line of `helpdesk tickets list`, as stored.
#[derive(Debug, Clone)]
pub struct Row {
    /// The ticket.
    pub id: TicketRef,
    /// Status.
    pub status: TicketStatus,
    /// Priority.
    pub priority: Priority,
    /// Queue.
    pub queue: String,
    /// Platform.
    pub platform: Platform,
    /// The customer's handle.
    pub customer: String,
    /// The agent on it.
    pub assignee: Option<String>,
    /// Opened (Unix ms).
    pub created_at: Millis,
    /// First response due (Unix ms).
    pub first_response_due: Option<Millis>,
    /// First human response (Unix ms).
    pub first_response_at: Option<Millis>,
    /// The customer's rating, 1 to 5.
    pub csat: Option<i64>,
    /// The customer's language, as read when it was opened.
    pub lang: Option<String>,
    /// The signals its messages carried, in the order first seen.
    pub signals: Vec<String>,
    /// Last changed (Unix ms): the version an agent is shown.
    pub updated_at: Millis,
}

const ROW_COLUMNS: &str = "id, status, priority, queue, platform, customer_handle, assignee, \
    created_at, first_response_due, first_response_at, csat, lang, signals, updated_at";

fn row(r: &sqlx::any::AnyRow) -> Result<Row, StoreError> {
    Ok(Row {
        id: TicketRef(r.try_get(0)?),
        status: decode(r.try_get::<String, _>(1)?)?,
        priority: decode(r.try_get::<String, _>(2)?)?,
        queue: r.try_get(3)?,
        platform: decode(r.try_get::<String, _>(4)?)?,
        customer: r.try_get(5)?,
        assignee: r.try_get(6)?,
        created_at: r.try_get(7)?,
        first_response_due: r.try_get(8)?,
        first_response_at: r.try_get(9)?,
        csat: r.try_get(10)?,
        lang: r.try_get(11)?,
        signals: signals_at(r, 12)?,
        updated_at: r.try_get(13)?,
    })
}

/// The `signals` column at `at` (names, space-separated; NULL: none).
pub(super) fn signals_at(r: &sqlx::any::AnyRow, at: usize) -> Result<Vec<String>, StoreError> {
    Ok(r.try_get::<Option<String>, _>(at)?
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

/// Which tickets a list shows; `None` is any.
#[derive(Debug, Clone, Default)]
pub struct Selection<'a> {
    /// These statuses only (empty: the active ones).
    pub status: Option<TicketStatus>,
    /// This queue only.
    pub queue: Option<&'a str>,
    /// Assigned to this agent only.
    pub assignee: Option<&'a str>,
}

/// The tickets `s` selects, most urgent first, then oldest.
pub async fn list(store: &Store, s: &Selection<'_>) -> Result<Vec<Row>, StoreError> {
    let statuses: Vec<TicketStatus> = match s.status {
        Some(one) => vec![one],
        None => TicketStatus::ACTIVE.to_vec(),
    };
    // At most three statuses: padded to three parameters, so one statement.
    let pick = |i: usize| statuses.get(i).unwrap_or(&statuses[0]).as_str();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM tickets \
         WHERE status IN ($1, $2, $3) AND ($4 = '' OR queue = $4) AND ($5 = '' OR assignee = $5) \
         ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END, id"
    )))
    .bind(pick(0))
    .bind(pick(1))
    .bind(pick(2))
    .bind(s.queue.unwrap_or(""))
    .bind(s.assignee.unwrap_or(""))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(row).collect()
}

/// One ticket's line, if it exists.
pub async fn get(store: &Store, t: TicketRef) -> Result<Option<Row>, StoreError> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM tickets WHERE id = $1"
    )))
    .bind(t.0)
    .fetch_optional(store.pool())
    .await?;
    r.as_ref().map(row).transpose()
}

/// A customer's most recent ticket that is not closed, as the pipeline
/// reads it before a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    /// The ticket.
    pub id: TicketRef,
    /// Its status.
    pub status: TicketStatus,
    /// When it was solved, if it is.
    pub solved_at: Option<Millis>,
    /// Whether the survey went out.
    pub survey_sent: bool,
    /// Whether the customer's next DM after the survey came.
    pub survey_answered: bool,
}

impl Latest {
    /// Solved, surveyed, and the survey not answered yet.
    pub fn awaits_survey(&self) -> bool {
        self.status == TicketStatus::Solved && self.survey_sent && !self.survey_answered
    }

    /// Reads the ticket columns starting at `at` (id, status, solved_at,
    /// survey_sent_at, survey_answered_at); none when the id is NULL.
    pub(crate) fn from_row(r: &sqlx::any::AnyRow, at: usize) -> Result<Option<Latest>, StoreError> {
        let Some(id) = r.try_get::<Option<i64>, _>(at)? else {
            return Ok(None);
        };
        Ok(Some(Latest {
            id: TicketRef(id),
            status: decode(r.try_get::<String, _>(at + 1)?)?,
            solved_at: r.try_get(at + 2)?,
            survey_sent: r.try_get::<Option<i64>, _>(at + 3)?.is_some(),
            survey_answered: r.try_get::<Option<i64>, _>(at + 4)?.is_some(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(names: &str, raise: bool) -> Signal {
        Signal {
            ticket: TicketRef(1),
            names: names.to_owned(),
            note: String::new(),
            raise,
        }
    }

    /// Due 10 h after opening when normal, 1 h when urgent, 4 h when high.
    fn due_for(p: Priority, opened: Millis) -> Millis {
        opened
            + match p {
                Priority::Urgent => 1,
                Priority::High => 4,
                Priority::Normal => 10,
                Priority::Low => 24,
            } * 3_600_000
    }

    #[test]
    fn each_signal_raises_one_step_and_brings_an_unanswered_deadline_forward() {
        let mut t = Signalled {
            priority: Priority::Normal,
            signals: vec!["churn".into()],
            created: 0,
            due: Some(10 * 3_600_000),
            answered: false,
        };
        assert_eq!(
            t.apply(&signal("legal churn", true), &due_for),
            (Priority::Normal, Priority::High)
        );
        assert_eq!(t.signals, ["churn", "legal"]);
        assert_eq!(t.due, Some(4 * 3_600_000));
        assert_eq!(
            t.apply(&signal("repeated", true), &due_for),
            (Priority::High, Priority::Urgent)
        );
        assert_eq!(t.due, Some(3_600_000));
        // Urgent stays urgent; a signal that does not raise changes no
        // deadline.
        assert_eq!(
            t.apply(&signal("churn", true), &due_for),
            (Priority::Urgent, Priority::Urgent)
        );
        assert_eq!(t.signals, ["churn", "legal", "repeated"]);
    }

    #[test]
    fn an_answered_ticket_keeps_its_deadline_and_one_opened_raised_is_not_raised_again() {
        let mut t = Signalled {
            priority: Priority::Low,
            signals: Vec::new(),
            created: 0,
            due: Some(24 * 3_600_000),
            answered: true,
        };
        t.apply(&signal("churn", true), &due_for);
        assert_eq!(
            (t.priority, t.due),
            (Priority::Normal, Some(24 * 3_600_000))
        );
        t.answered = false;
        assert_eq!(
            t.apply(&signal("legal", false), &due_for),
            (Priority::Normal, Priority::Normal)
        );
        assert_eq!(t.due, Some(24 * 3_600_000));
    }
}
