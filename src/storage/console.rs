//! The console's tables: `console_sessions` (who is signed in),
//! `console_presence` (who has which ticket open, and is writing in it) and
//! `console_reads` (when each agent last opened each ticket). Also the
//! inbox's reads, which join these to `tickets`.
//!
//! Sessions are found by the SHA-256 of the cookie's token, never by the
//! token; a session of an agent disabled since is no session.

use sqlx::Row as _;

use super::{Store, StoreError, decode, dialect};
use crate::domain::clock::Millis;
use crate::domain::states::TicketStatus;
use crate::domain::{Platform, Priority, TicketRef};

/// A session as read back for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The agent signed in.
    pub agent: String,
    /// The token every form of the session carries.
    pub csrf: String,
    /// When it was last used.
    pub seen_at: Millis,
    /// When it ends, however busy.
    pub expires_at: Millis,
}

/// A new session's row.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// SHA-256 of the cookie's token, hex.
    pub token_hash: &'a str,
    /// Who signed in.
    pub agent: &'a str,
    /// Its CSRF token.
    pub csrf: &'a str,
    /// When it ends, however busy.
    pub expires_at: Millis,
}

/// Records a sign-in.
pub async fn open_session(
    store: &Store,
    s: &NewSession<'_>,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO console_sessions (token_hash, agent, csrf, created_at, seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(s.token_hash)
    .bind(s.agent)
    .bind(s.csrf)
    .bind(now)
    .bind(s.expires_at)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The session of a token's hash, if it exists and its agent may still
/// sign in (expiry is the caller's decision).
pub async fn session(store: &Store, token_hash: &str) -> Result<Option<Session>, StoreError> {
    let row = sqlx::query(
        "SELECT s.agent, s.csrf, s.seen_at, s.expires_at FROM console_sessions s \
         JOIN agents a ON a.name = s.agent AND a.disabled_at IS NULL \
         WHERE s.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(store.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(Session {
        agent: r.try_get(0)?,
        csrf: r.try_get(1)?,
        seen_at: r.try_get(2)?,
        expires_at: r.try_get(3)?,
    }))
}

/// Notes that a session was used now.
pub async fn touch_session(store: &Store, token_hash: &str, now: Millis) -> Result<(), StoreError> {
    sqlx::query("UPDATE console_sessions SET seen_at = $1 WHERE token_hash = $2")
        .bind(now)
        .bind(token_hash)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Ends a session (signing out, or found expired).
pub async fn end_session(store: &Store, token_hash: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Ends every session of `agent` (a new password, a disabled account).
pub async fn end_sessions_of(
    conn: &mut sqlx::AnyConnection,
    agent: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM console_sessions WHERE agent = $1")
        .bind(agent)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the sessions past their end or idle since before `idle_cutoff`,
/// presence older than `presence_cutoff` and the read marks of closed
/// tickets; how many sessions went.
pub async fn sweep(
    store: &Store,
    now: Millis,
    idle_cutoff: Millis,
    presence_cutoff: Millis,
) -> Result<u64, StoreError> {
    let gone = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1 OR seen_at < $2")
        .bind(now)
        .bind(idle_cutoff)
        .execute(store.pool())
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM console_presence WHERE at < $1")
        .bind(presence_cutoff)
        .execute(store.pool())
        .await?;
    // A closed ticket is never unread again: its marks would only grow.
    sqlx::query(
        "DELETE FROM console_reads WHERE EXISTS \
         (SELECT 1 FROM tickets t WHERE t.id = console_reads.ticket_id AND t.status = 'closed')",
    )
    .execute(store.pool())
    .await?;
    Ok(gone)
}

/// What an agent is doing on a ticket's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doing {
    /// The page is open.
    Viewing,
    /// The reply box holds an unsent draft.
    Replying,
}

impl Doing {
    fn as_str(self) -> &'static str {
        match self {
            Doing::Viewing => "viewing",
            Doing::Replying => "replying",
        }
    }
}

/// One agent's presence on a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// Who.
    pub agent: String,
    /// Doing what.
    pub doing: Doing,
    /// When last said.
    pub at: Millis,
}

/// Says that `agent` is on ticket `t`, doing `doing`, now.
pub async fn be_present(
    store: &Store,
    t: TicketRef,
    agent: &str,
    doing: Doing,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO console_presence (ticket_id, agent, state, at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (ticket_id, agent) DO UPDATE SET state = excluded.state, at = excluded.at",
    )
    .bind(t.0)
    .bind(agent)
    .bind(doing.as_str())
    .bind(now)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Says that `agent` left ticket `t`'s page.
pub async fn leave(store: &Store, t: TicketRef, agent: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM console_presence WHERE ticket_id = $1 AND agent = $2")
        .bind(t.0)
        .bind(agent)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Who else said they were on ticket `t` since `since`, by name.
pub async fn others_present(
    store: &Store,
    t: TicketRef,
    me: &str,
    since: Millis,
) -> Result<Vec<Presence>, StoreError> {
    let rows = sqlx::query(
        "SELECT agent, state, at FROM console_presence \
         WHERE ticket_id = $1 AND agent <> $2 AND at >= $3 ORDER BY agent",
    )
    .bind(t.0)
    .bind(me)
    .bind(since)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let doing = match r.try_get::<String, _>(1)?.as_str() {
                "replying" => Doing::Replying,
                _ => Doing::Viewing,
            };
            Ok(Presence {
                agent: r.try_get(0)?,
                doing,
                at: r.try_get(2)?,
            })
        })
        .collect()
}

/// Notes that `agent` saw ticket `t` in the version last changed at
/// `shown` (its own `updated_at`, not this machine's clock, so that a
/// console on another machine whose clock runs ahead cannot hide a later
/// message), with its queue and status, which the unread counts read. If
/// the ticket has changed since, nothing is written: the agent has not
/// seen it as it is. The mark lives until the ticket changes (the trigger
/// of migration `inbox_counts`, sqlite 0016, postgres 0015). On PostgreSQL
/// the ticket's row is share-locked while the mark is written, so that a
/// change committed meanwhile either waits for the mark and deletes it or
/// comes first and leaves nothing to mark.
pub async fn mark_read(
    store: &Store,
    agent: &str,
    t: TicketRef,
    shown: Millis,
) -> Result<(), StoreError> {
    let sql = format!(
        "WITH seen AS (SELECT id, updated_at, queue, status FROM tickets \
                       WHERE id = $2 AND updated_at = $3{}) \
         INSERT INTO console_reads (agent, ticket_id, seen_at, queue, status) \
         SELECT $1, id, updated_at, queue, status FROM seen WHERE true \
         ON CONFLICT (agent, ticket_id) DO UPDATE \
         SET seen_at = excluded.seen_at, queue = excluded.queue, status = excluded.status",
        dialect::for_share(store.backend())
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(agent)
        .bind(t.0)
        .bind(shown)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Which tickets the inbox lists.
#[derive(Debug, Clone, Default)]
pub struct InboxQuery<'a> {
    /// The agent looking (for `unread` and `mine`).
    pub agent: &'a str,
    /// One status, or the active ones.
    pub status: Option<TicketStatus>,
    /// One queue, or all.
    pub queue: Option<&'a str>,
    /// Only the agent's own.
    pub mine: bool,
    /// Only those past their first-response time without one (as of `now`).
    pub overdue: bool,
    /// Now, for `overdue`.
    pub now: Millis,
    /// At most this many.
    pub limit: i64,
    /// After skipping this many.
    pub offset: i64,
}

/// One line of the inbox.
#[derive(Debug, Clone)]
pub struct InboxRow {
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
    /// First response due, while none was given.
    pub due: Option<Millis>,
    /// Last changed.
    pub updated_at: Millis,
    /// The signals its messages carried.
    pub signals: Vec<String>,
    /// Changed since the agent last opened it (or never opened).
    pub unread: bool,
}

/// The inbox's order: a ticket's first-response due time while it has had
/// no first response, else last; the generated column of migration
/// `inbox_counts` (sqlite 0016, postgres 0015), which the inbox's indexes
/// lead with.
const DUE_KEY: &str = "t.inbox_due";

/// The tickets being worked, written as the indexes' partial predicate is,
/// so that the planner may use them (a bound parameter would not do).
const BEING_WORKED: &str = "t.status IN ('new', 'open', 'pending')";

/// A statement's parameters as they are added, numbered in order.
#[derive(Default)]
struct Params {
    values: Vec<Param>,
}

enum Param {
    Text(String),
    Int(i64),
}

impl Params {
    /// `$n` for a new parameter.
    fn add(&mut self, p: Param) -> String {
        self.values.push(p);
        format!("${}", self.values.len())
    }

    fn bind<'q>(
        &self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        for v in &self.values {
            query = match v {
                Param::Text(s) => query.bind(s.clone()),
                Param::Int(n) => query.bind(*n),
            };
        }
        query
    }
}

/// The `WHERE` of an inbox query, its parameters added to `p`.
fn inbox_where(q: &InboxQuery<'_>, p: &mut Params) -> String {
    let mut w = match q.status {
        None => BEING_WORKED.to_owned(),
        Some(s) => format!("t.status = {}", p.add(Param::Text(s.as_str().into()))),
    };
    if let Some(queue) = q.queue {
        w += &format!(" AND t.queue = {}", p.add(Param::Text(queue.into())));
    }
    if q.mine {
        w += &format!(" AND t.assignee = {}", p.add(Param::Text(q.agent.into())));
    }
    if q.overdue {
        let now = p.add(Param::Int(q.now));
        w += &format!(" AND {BEING_WORKED} AND {DUE_KEY} < {now}");
    }
    w
}

/// The index that lists what `q` selects in the inbox's order (migration
/// `inbox_counts`): by its status if it names one, else the agent's own,
/// else its queue, else all the tickets being worked. Each leads with that
/// filter's column and goes on with the due key, so a page is a walk down
/// one index, never a sort; the other filters are checked on the way.
fn inbox_index(q: &InboxQuery<'_>) -> &'static str {
    if q.status.is_some() {
        "tickets_by_status_due"
    } else if q.mine {
        "tickets_inbox_by_assignee"
    } else if q.queue.is_some() {
        "tickets_inbox_by_queue"
    } else {
        "tickets_inbox"
    }
}

/// The inbox's page: the tickets `q` selects, the first response due
/// soonest first (those answered after), then oldest.
///
/// The page's ids are found first, from the index alone, and only those 50
/// are joined to the agent's read marks: the OFFSET of a late page then
/// skips index entries, not joined rows.
pub async fn inbox(store: &Store, q: &InboxQuery<'_>) -> Result<Vec<InboxRow>, StoreError> {
    let index = dialect::indexed_by(store.backend(), inbox_index(q));
    let mut p = Params::default();
    let filter = inbox_where(q, &mut p);
    let (limit, offset) = (p.add(Param::Int(q.limit)), p.add(Param::Int(q.offset)));
    let agent = p.add(Param::Text(q.agent.into()));
    let sql = format!(
        "WITH page AS (SELECT t.id FROM tickets t{index} WHERE {filter} \
                       ORDER BY {DUE_KEY}, t.id LIMIT {limit} OFFSET {offset}) \
         SELECT t.id, t.status, t.priority, t.queue, t.platform, t.customer_handle, t.assignee, \
                CASE WHEN t.first_response_at IS NULL THEN t.first_response_due END, \
                t.updated_at, t.signals, \
                CASE WHEN r.seen_at IS NULL OR r.seen_at < t.updated_at THEN 1 ELSE 0 END \
         FROM page JOIN tickets t ON t.id = page.id \
         LEFT JOIN console_reads r ON r.ticket_id = t.id AND r.agent = {agent} \
         ORDER BY {DUE_KEY}, t.id"
    );
    let rows = p
        .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(InboxRow {
                id: TicketRef(r.try_get(0)?),
                status: decode(r.try_get::<String, _>(1)?)?,
                priority: decode(r.try_get::<String, _>(2)?)?,
                queue: r.try_get(3)?,
                platform: decode(r.try_get::<String, _>(4)?)?,
                customer: r.try_get(5)?,
                assignee: r.try_get(6)?,
                due: r.try_get(7)?,
                updated_at: r.try_get(8)?,
                signals: super::tickets::signals_at(r, 9)?,
                unread: r.try_get::<i64, _>(10)? != 0,
            })
        })
        .collect()
}

/// How many tickets `q` selects in all (its limit and offset aside).
pub async fn inbox_total(store: &Store, q: &InboxQuery<'_>) -> Result<i64, StoreError> {
    let mut p = Params::default();
    let sql = format!(
        "SELECT COUNT(*) FROM tickets t{} WHERE {}",
        dialect::indexed_by(store.backend(), inbox_index(q)),
        inbox_where(q, &mut p)
    );
    Ok(p.bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .fetch_one(store.pool())
        .await?
        .try_get(0)?)
}

/// Per queue of the tickets being worked: how many, how many unread by
/// `agent`, how many overdue at `now`; by queue name.
///
/// Unread is the queue's tickets less those the agent has a read mark on:
/// a mark lives only while its ticket is unchanged and carries the ticket's
/// queue and status (see [`mark_read`]), so counting them needs no join.
/// One statement, so both counts are of the same moment.
pub async fn queue_counts(
    store: &Store,
    agent: &str,
    now: Millis,
) -> Result<Vec<QueueCount>, StoreError> {
    let index = dialect::indexed_by(store.backend(), "tickets_inbox_counts");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT t.queue, COUNT(*), SUM(CASE WHEN {DUE_KEY} < $1 THEN 1 ELSE 0 END), \
                (SELECT COUNT(*) FROM console_reads r WHERE r.agent = $2 AND r.queue = t.queue \
                 AND r.status IN ('new', 'open', 'pending')) \
         FROM tickets t{index} WHERE {BEING_WORKED} GROUP BY t.queue ORDER BY t.queue"
    )))
    .bind(now)
    .bind(agent)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let total: i64 = r.try_get(1)?;
            Ok(QueueCount {
                queue: r.try_get(0)?,
                total,
                overdue: r.try_get::<Option<i64>, _>(2)?.unwrap_or(0),
                unread: total - r.try_get::<i64, _>(3)?,
            })
        })
        .collect()
}

/// Whether the queues' counts ([`queue_counts`]) already say how many
/// tickets `q` selects: when it narrows the tickets being worked by queue
/// and overdue only.
pub fn counts_say_total(q: &InboxQuery<'_>) -> bool {
    q.status.is_none() && !q.mine
}

/// How many tickets `q` selects, from the queues' counts; only when
/// [`counts_say_total`].
pub fn total_from_counts(q: &InboxQuery<'_>, counts: &[QueueCount]) -> i64 {
    counts
        .iter()
        .filter(|c| q.queue.is_none_or(|name| c.queue == name))
        .map(|c| if q.overdue { c.overdue } else { c.total })
        .sum()
}

/// One queue's counts in the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCount {
    /// The queue.
    pub queue: String,
    /// Tickets being worked.
    pub total: i64,
    /// Of which changed since the agent last opened them.
    pub unread: i64,
    /// Of which past their first-response time.
    pub overdue: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queues_counts_give_the_total_of_a_queue_or_overdue_list() {
        let counts =
            [("billing", 10, 4, 2), ("tech", 5, 5, 0)].map(|(q, total, unread, overdue)| {
                QueueCount {
                    queue: q.into(),
                    total,
                    unread,
                    overdue,
                }
            });
        let q = InboxQuery::default();
        assert!(counts_say_total(&q));
        assert_eq!(total_from_counts(&q, &counts), 15);
        let billing = InboxQuery {
            queue: Some("billing"),
            ..InboxQuery::default()
        };
        assert_eq!(total_from_counts(&billing, &counts), 10);
        let overdue = InboxQuery {
            overdue: true,
            ..billing.clone()
        };
        assert_eq!(total_from_counts(&overdue, &counts), 2);
        let nowhere = InboxQuery {
            queue: Some("legal"),
            ..InboxQuery::default()
        };
        assert_eq!(total_from_counts(&nowhere, &counts), 0);
        // A status or "mine" narrows beyond what the counts know.
        for q in [
            InboxQuery {
                mine: true,
                ..InboxQuery::default()
            },
            InboxQuery {
                status: Some(TicketStatus::Open),
                ..InboxQuery::default()
            },
        ] {
            assert!(!counts_say_total(&q));
        }
    }
}
