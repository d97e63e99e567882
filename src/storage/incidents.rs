//! The `incidents`, `incident_customers` and `incident_alerts` tables:
//! every statement that writes them, and the reads of their own logic
//! (what detection counts in `messages`, the list agents read).
//!
//! One open incident per rule is kept by a unique index (migration 0013 /
//! 0012), whichever instance opens it: a second instance's insert fails,
//! its batch is retried one message at a time, and then sees the first.

use std::collections::HashSet;

use sqlx::{AnyConnection, Row as _};

use super::tickets::{self, NewTicket};
use super::{Backend, Store, StoreError, decode, dialect};
use crate::domain::clock::Millis;
use crate::domain::language::Lang;
use crate::domain::states::{AlertKind, AlertStatus, IncidentStatus, OutboxStatus, TicketStatus};
use crate::domain::{Channel, IncidentRef, Platform, Priority, Queue, TicketRef};
use crate::platforms::ReplyKind;

/// An open incident, as a batch's messages see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The incident.
    pub id: IncidentRef,
    /// Its rule.
    pub rule: String,
    /// Its ticket, which the rule's messages join.
    pub ticket: TicketRef,
    /// That ticket's status now.
    pub ticket_status: TicketStatus,
}

/// The open incidents of `rules`, locked until the transaction ends (on
/// PostgreSQL `FOR UPDATE OF i`; on SQLite the write transaction is the
/// lock): a batch that joins an incident and an agent who closes it, or
/// two batches on the same incident, take turns, so no customer joins a
/// closed incident nor is answered twice.
pub async fn open_for_rules(
    conn: &mut AnyConnection,
    backend: Backend,
    rules: &[&str],
) -> Result<Vec<Open>, StoreError> {
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT i.id, i.rule_id, t.id, t.status FROM incidents i JOIN tickets t ON t.id = i.ticket_id \
         WHERE i.status = 'open' AND i.rule_id IN ({}) ORDER BY i.id{}",
        placeholders(1, rules.len()),
        match backend {
            Backend::Postgres => " FOR UPDATE OF i",
            Backend::Sqlite => "",
        }
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for r in rules {
        q = q.bind(*r);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            Ok(Open {
                id: IncidentRef(r.try_get(0)?),
                rule: r.try_get(1)?,
                ticket: TicketRef(r.try_get(2)?),
                ticket_status: decode(r.try_get(3)?)?,
            })
        })
        .collect()
}

/// Which of `customers` (of `platform`) are in incident `id` already.
pub async fn members(
    conn: &mut AnyConnection,
    id: IncidentRef,
    platform: Platform,
    customers: &[&str],
) -> Result<HashSet<String>, StoreError> {
    let mut found = HashSet::new();
    for chunk in customers.chunks(100) {
        let sql = format!(
            "SELECT customer_id FROM incident_customers WHERE incident_id = $1 AND platform = $2 \
             AND customer_id IN ({})",
            placeholders(3, chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .bind(platform.as_str());
        for c in chunk {
            q = q.bind(*c);
        }
        for r in q.fetch_all(&mut *conn).await? {
            found.insert(r.try_get(0)?);
        }
    }
    Ok(found)
}

/// A message of a rule within the detection window.
#[derive(Debug, Clone)]
pub struct WindowRow {
    /// Where.
    pub platform: Platform,
    /// The customer.
    pub author_id: String,
    /// Their handle.
    pub handle: String,
    /// Their display name.
    pub name: String,
    /// The conversation.
    pub conversation: String,
    /// The platform's id of the message.
    pub message_id: String,
    /// Its channel.
    pub channel: Channel,
    /// Its text (for the alert's samples).
    pub text: String,
    /// The customer's language, as recorded.
    pub lang: Option<Lang>,
    /// When it was written.
    pub written_at: Millis,
}

/// The messages routed to `rule` written since `since` that the bot acted
/// on (not a protection's or a stop word's `ignore`: the bot's own
/// account, reposts, listed bots, the backlog are never an incident's
/// customers), oldest first.
pub async fn window(
    conn: &mut AnyConnection,
    rule: &str,
    since: Millis,
) -> Result<Vec<WindowRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT platform, author_id, author_handle, author_name, conversation_id, \
         platform_message_id, channel, text, lang, written_at FROM messages \
         WHERE rule_id = $1 AND written_at >= $2 AND action <> $3 ORDER BY written_at, id",
    )
    .bind(rule)
    .bind(since)
    .bind(crate::domain::states::Action::Ignore.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(WindowRow {
                platform: decode(r.try_get(0)?)?,
                author_id: r.try_get(1)?,
                handle: r.try_get(2)?,
                name: r.try_get(3)?,
                conversation: r.try_get(4)?,
                message_id: r.try_get(5)?,
                channel: decode(r.try_get(6)?)?,
                text: r.try_get(7)?,
                lang: r
                    .try_get::<Option<String>, _>(8)?
                    .and_then(|l| Lang::parse(&l).ok()),
                written_at: r.try_get(9)?,
            })
        })
        .collect()
}

/// How many distinct customers wrote messages routed to `rule` in
/// `[from, to)`.
pub async fn customers_between(
    conn: &mut AnyConnection,
    rule: &str,
    (from, to): (Millis, Millis),
) -> Result<i64, StoreError> {
    let n: i64 = sqlx::query(
        "SELECT COUNT(DISTINCT platform || ' ' || author_id) FROM messages \
         WHERE rule_id = $1 AND written_at >= $2 AND written_at < $3",
    )
    .bind(rule)
    .bind(from)
    .bind(to)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    Ok(n)
}

/// When `rule` first matched a message (its history starts there).
pub async fn first_match(
    conn: &mut AnyConnection,
    rule: &str,
) -> Result<Option<Millis>, StoreError> {
    time_of_rule(
        conn,
        "SELECT MIN(written_at) FROM messages WHERE rule_id = $1",
        rule,
    )
    .await
}

/// When the last incident of `rule` closed: messages before it belong
/// to that incident, and do not count towards a new one.
pub async fn last_closed(
    conn: &mut AnyConnection,
    rule: &str,
) -> Result<Option<Millis>, StoreError> {
    time_of_rule(
        conn,
        "SELECT MAX(closed_at) FROM incidents WHERE rule_id = $1",
        rule,
    )
    .await
}

/// The one time `sql` (an aggregate bound to a rule) reads, if any.
async fn time_of_rule(
    conn: &mut AnyConnection,
    sql: &'static str,
    rule: &str,
) -> Result<Option<Millis>, StoreError> {
    let at: Option<i64> = sqlx::query(sql)
        .bind(rule)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    Ok(at)
}

/// A new incident: what detection saw when it crossed the thresholds.
#[derive(Debug, Clone)]
pub struct NewIncident<'a> {
    /// The rule.
    pub rule: &'a str,
    /// Where the message that crossed came from (the ticket's platform).
    pub platform: Platform,
    /// Distinct customers in the window.
    pub window_customers: i64,
    /// The usual count for such a window at this time of the week.
    pub baseline: f64,
    /// The window's first message.
    pub first_message_at: Millis,
    /// Its last.
    pub last_message_at: Millis,
    /// The ticket's first-response due time.
    pub due: Millis,
    /// The ticket's note: why it opened.
    pub note: &'a str,
}

/// The queue of incident tickets.
pub const QUEUE: &str = "incidents";

/// Opens an incident and its ticket (queue `incidents`, urgent). The
/// ticket's customer columns name the incident (`incident:I-3`, handle
/// `I-3`): its customers are in `incident_customers`.
pub async fn open(
    conn: &mut AnyConnection,
    backend: Backend,
    n: &NewIncident<'_>,
    now: Millis,
) -> Result<(IncidentRef, TicketRef), StoreError> {
    let id = IncidentRef(
        sqlx::query(
            "INSERT INTO incidents (rule_id, status, window_customers, baseline, \
             first_message_at, last_message_at, opened_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(n.rule)
        .bind(IncidentStatus::Open.as_str())
        .bind(n.window_customers)
        .bind(n.baseline)
        .bind(n.first_message_at)
        .bind(n.last_message_at)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?,
    );
    let queue = Queue::parse(QUEUE).expect("a valid queue name");
    let customer = format!("incident:{id}");
    let handle = id.to_string();
    let ticket = tickets::open(
        conn,
        backend,
        &NewTicket {
            queue: &queue,
            priority: Priority::Urgent,
            platform: n.platform,
            customer_id: &customer,
            customer_handle: &handle,
            conversation_id: &customer,
            rule_id: Some(n.rule),
            note: Some(n.note),
            first_response_due: n.due,
            lang: None,
        },
        now,
    )
    .await?;
    sqlx::query("UPDATE incidents SET ticket_id = $1 WHERE id = $2")
        .bind(ticket.0)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok((id, ticket))
}

/// A customer of an incident, with their latest message about it.
#[derive(Debug, Clone)]
pub struct Member {
    /// The incident.
    pub incident: IncidentRef,
    /// Where.
    pub platform: Platform,
    /// Who.
    pub customer_id: String,
    /// Their handle.
    pub handle: String,
    /// The conversation of their latest message about it.
    pub conversation: String,
    /// That message's platform id: the closing notice answers it.
    pub in_reply_to: String,
    /// How the notice goes (the rule's `via`).
    pub kind: ReplyKind,
    /// Their language.
    pub lang: Option<Lang>,
    /// The rule's `incident_resolved` for them, rendered and signed.
    pub resolved_text: Option<String>,
    /// When their message was written.
    pub written_at: Millis,
}

/// Adds customers to their incidents (or moves a known one's notice to
/// their latest message), then recounts each incident touched:
/// `messages` grows by the messages given.
pub async fn join(
    conn: &mut AnyConnection,
    members: &[Member],
    now: Millis,
) -> Result<(), StoreError> {
    for m in members {
        sqlx::query(
            "INSERT INTO incident_customers (incident_id, platform, customer_id, customer_handle, \
             conversation_id, in_reply_to, kind, lang, joined_at, resolved_text) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (incident_id, platform, customer_id) DO UPDATE SET \
             customer_handle = excluded.customer_handle, conversation_id = excluded.conversation_id, \
             in_reply_to = excluded.in_reply_to, kind = excluded.kind, lang = excluded.lang, \
             resolved_text = excluded.resolved_text",
        )
        .bind(m.incident.0)
        .bind(m.platform.as_str())
        .bind(&m.customer_id)
        .bind(&m.handle)
        .bind(&m.conversation)
        .bind(&m.in_reply_to)
        .bind(m.kind.as_str())
        .bind(m.lang.map(String::from))
        .bind(now)
        .bind(m.resolved_text.as_deref())
        .execute(&mut *conn)
        .await?;
    }
    let mut touched: Vec<IncidentRef> = members.iter().map(|m| m.incident).collect();
    touched.sort();
    touched.dedup();
    for id in touched {
        let of = members.iter().filter(|m| m.incident == id);
        let n = of.clone().count() as i64;
        let last = of.map(|m| m.written_at).max().unwrap_or(now);
        sqlx::query(
            "UPDATE incidents SET messages = messages + $1, \
             last_message_at = CASE WHEN last_message_at < $2 THEN $2 ELSE last_message_at END, \
             customers = (SELECT COUNT(*) FROM incident_customers WHERE incident_id = $3) \
             WHERE id = $3",
        )
        .bind(n)
        .bind(last)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// An incident as agents and alerts see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The incident.
    pub id: IncidentRef,
    /// Its rule.
    pub rule: String,
    /// Its ticket.
    pub ticket: Option<TicketRef>,
    /// Open or closed.
    pub status: IncidentStatus,
    /// Distinct customers who wrote about it.
    pub customers: i64,
    /// Their messages.
    pub messages: i64,
    /// Distinct customers in the window when it opened.
    pub window_customers: i64,
    /// The usual count for that window then.
    pub baseline: f64,
    /// Its first message.
    pub first_message_at: Millis,
    /// Its latest.
    pub last_message_at: Millis,
    /// When it opened.
    pub opened_at: Millis,
    /// When the last alert about it was queued.
    pub alerted_at: Option<Millis>,
    /// Its customers then.
    pub alerted_customers: i64,
    /// When it closed.
    pub closed_at: Option<Millis>,
    /// Who closed it.
    pub closed_by: Option<String>,
}

const COLUMNS: &str = "id, rule_id, ticket_id, status, customers, messages, window_customers, \
    baseline, first_message_at, last_message_at, opened_at, alerted_at, alerted_customers, \
    closed_at, closed_by";

fn parse_row(r: &sqlx::any::AnyRow) -> Result<Row, StoreError> {
    Ok(Row {
        id: IncidentRef(r.try_get(0)?),
        rule: r.try_get(1)?,
        ticket: r.try_get::<Option<i64>, _>(2)?.map(TicketRef),
        status: decode(r.try_get(3)?)?,
        customers: r.try_get(4)?,
        messages: r.try_get(5)?,
        window_customers: r.try_get(6)?,
        baseline: r.try_get(7)?,
        first_message_at: r.try_get(8)?,
        last_message_at: r.try_get(9)?,
        opened_at: r.try_get(10)?,
        alerted_at: r.try_get(11)?,
        alerted_customers: r.try_get(12)?,
        closed_at: r.try_get(13)?,
        closed_by: r.try_get(14)?,
    })
}

/// Incidents, newest first: the open ones, or all with `all`.
pub async fn list(store: &Store, all: bool) -> Result<Vec<Row>, StoreError> {
    let filter = if all { "" } else { "WHERE status = 'open'" };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM incidents {filter} ORDER BY id DESC"
    )))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(parse_row).collect()
}

/// Incident `id`, locked until the transaction ends (PostgreSQL; on
/// SQLite the write transaction is the lock).
pub async fn lock(
    conn: &mut AnyConnection,
    backend: Backend,
    id: IncidentRef,
) -> Result<Option<Row>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM incidents WHERE id = $1{}",
        dialect::for_update(backend)
    )))
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(parse_row).transpose()
}

/// The incident whose ticket is `ticket`, if it is one's.
pub async fn of_ticket(
    conn: &mut AnyConnection,
    ticket: TicketRef,
) -> Result<Option<IncidentRef>, StoreError> {
    let id: Option<i64> = sqlx::query("SELECT id FROM incidents WHERE ticket_id = $1")
        .bind(ticket.0)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(id.map(IncidentRef))
}

/// The incident whose ticket is `ticket`, as agents see it.
pub async fn of_ticket_row(store: &Store, ticket: TicketRef) -> Result<Option<Row>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM incidents WHERE ticket_id = $1"
    )))
    .bind(ticket.0)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(parse_row).transpose()
}

/// Whether `ticket` is the ticket of an incident that is closed.
pub async fn closed_with_ticket(store: &Store, ticket: TicketRef) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM incidents WHERE ticket_id = $1 AND status = $2")
        .bind(ticket.0)
        .bind(IncidentStatus::Closed.as_str())
        .fetch_one(store.pool())
        .await?
        .try_get(0)?;
    Ok(n > 0)
}

/// Marks an open incident closed by `agent`; false when it was not open.
pub async fn close(
    conn: &mut AnyConnection,
    id: IncidentRef,
    agent: &str,
    now: Millis,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE incidents SET status = $1, closed_at = $2, closed_by = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(IncidentStatus::Closed.as_str())
    .bind(now)
    .bind(agent)
    .bind(id.0)
    .bind(IncidentStatus::Open.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A closing notice to send.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Where.
    pub platform: Platform,
    /// Who.
    pub customer_id: String,
    /// Their handle.
    pub handle: String,
    /// The conversation.
    pub conversation: String,
    /// The message it answers.
    pub in_reply_to: String,
    /// Public or DM.
    pub kind: ReplyKind,
    /// The text, final.
    pub text: String,
}

/// The closing notices of incident `id` not yet queued: its customers
/// with a text, but those who opted out of automatic replies since.
pub async fn notices(conn: &mut AnyConnection, id: IncidentRef) -> Result<Vec<Notice>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.platform, c.customer_id, c.customer_handle, c.conversation_id, c.in_reply_to, \
         c.kind, c.resolved_text FROM incident_customers c \
         LEFT JOIN opt_outs o ON o.platform = c.platform AND o.customer_id = c.customer_id \
         WHERE c.incident_id = $1 AND c.resolved_text IS NOT NULL AND c.notice_outbox_id IS NULL \
         AND o.customer_id IS NULL ORDER BY c.platform, c.joined_at, c.customer_id",
    )
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get(5)?;
            Ok(Notice {
                platform: decode(r.try_get(0)?)?,
                customer_id: r.try_get(1)?,
                handle: r.try_get(2)?,
                conversation: r.try_get(3)?,
                in_reply_to: r.try_get(4)?,
                kind: ReplyKind::parse(&kind).ok_or(StoreError::Inconsistent(
                    "an incident notice of unknown kind",
                ))?,
                text: r.try_get(6)?,
            })
        })
        .collect()
}

/// Records the outbox row of a customer's closing notice.
pub async fn notice_queued(
    conn: &mut AnyConnection,
    id: IncidentRef,
    (platform, customer): (Platform, &str),
    outbox_id: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE incident_customers SET notice_outbox_id = $1 \
         WHERE incident_id = $2 AND platform = $3 AND customer_id = $4",
    )
    .bind(outbox_id)
    .bind(id.0)
    .bind(platform.as_str())
    .bind(customer)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// How the closing notices of incident `id` went so far: sent, and all.
pub async fn notices_sent(store: &Store, id: IncidentRef) -> Result<(i64, i64), StoreError> {
    let r = sqlx::query(
        "SELECT COUNT(o.id), COUNT(CASE WHEN o.status = $2 THEN 1 END) FROM incident_customers c \
         JOIN outbox o ON o.id = c.notice_outbox_id WHERE c.incident_id = $1",
    )
    .bind(id.0)
    .bind(OutboxStatus::Sent.as_str())
    .fetch_one(store.pool())
    .await?;
    Ok((r.try_get(1)?, r.try_get(0)?))
}

/// A message of the incident, for an alert: where, who, what.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Where.
    pub platform: Platform,
    /// The customer's handle.
    pub handle: String,
    /// The text as written.
    pub text: String,
}

/// The latest `n` public messages routed to `rule` and acted on, written
/// until `until` (a DM is private: it never goes to the team's chat).
pub async fn samples(
    conn: &mut AnyConnection,
    rule: &str,
    until: Millis,
    n: i64,
) -> Result<Vec<Sample>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT platform, author_handle, text FROM messages WHERE rule_id = $1 AND written_at <= $2 \
         AND channel <> $3 AND action <> $4 ORDER BY written_at DESC, id DESC LIMIT {n}"
    )))
    .bind(rule)
    .bind(until)
    .bind(Channel::Dm.as_str())
    .bind(crate::domain::states::Action::Ignore.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Sample {
                platform: decode(r.try_get(0)?)?,
                handle: r.try_get(1)?,
                text: r.try_get(2)?,
            })
        })
        .collect()
}

/// Queues an alert about incident `id`; its body is the JSON to post.
/// `customers`: the incident's count it reports, remembered so that the
/// next "growing" alert waits for more.
pub async fn queue_alert(
    conn: &mut AnyConnection,
    id: IncidentRef,
    (kind, body): (AlertKind, &str),
    customers: i64,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO incident_alerts (incident_id, kind, body, status, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(id.0)
    .bind(kind.as_str())
    .bind(body)
    .bind(AlertStatus::Queued.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE incidents SET alerted_at = $1, alerted_customers = $2 WHERE id = $3")
        .bind(now)
        .bind(customers)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Open incidents that grew since their last alert, queued before
/// `cutoff`.
pub async fn grown_since_alert(store: &Store, cutoff: Millis) -> Result<Vec<Row>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM incidents WHERE status = 'open' AND customers > alerted_customers \
         AND (alerted_at IS NULL OR alerted_at <= $1) ORDER BY id"
    )))
    .bind(cutoff)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(parse_row).collect()
}

/// An alert due to be posted.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Its row.
    pub id: i64,
    /// Why.
    pub kind: AlertKind,
    /// The JSON to post.
    pub body: String,
    /// Attempts so far.
    pub attempts: i64,
}

/// Alerts due at `now`, oldest first.
pub async fn due_alerts(store: &Store, now: Millis) -> Result<Vec<Alert>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, kind, body, attempts FROM incident_alerts \
         WHERE status = $1 AND next_attempt_at <= $2 ORDER BY id LIMIT 20",
    )
    .bind(AlertStatus::Queued.as_str())
    .bind(now)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Alert {
                id: r.try_get(0)?,
                kind: decode(r.try_get(1)?)?,
                body: r.try_get(2)?,
                attempts: r.try_get(3)?,
            })
        })
        .collect()
}

/// Records an attempt: `status` sent, failed, or queued again at `next`.
pub async fn alert_attempted(
    store: &Store,
    id: i64,
    (status, next): (AlertStatus, Millis),
    reason: Option<&str>,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE incident_alerts SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
         reason = $3, sent_at = CASE WHEN $1 = 'sent' THEN $4 ELSE sent_at END WHERE id = $5",
    )
    .bind(status.as_str())
    .bind(next)
    .bind(reason)
    .bind(now)
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Counts of alerts by status, for tests and the operator.
pub async fn alerts_of(
    store: &Store,
    id: IncidentRef,
) -> Result<Vec<(AlertKind, AlertStatus)>, StoreError> {
    let rows =
        sqlx::query("SELECT kind, status FROM incident_alerts WHERE incident_id = $1 ORDER BY id")
            .bind(id.0)
            .fetch_all(store.pool())
            .await?;
    rows.iter()
        .map(|r| Ok((decode(r.try_get(0)?)?, decode(r.try_get(1)?)?)))
        .collect()
}

/// How many incidents are open.
pub async fn open_count(store: &Store) -> Result<i64, StoreError> {
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM incidents WHERE status = 'open'")
        .fetch_one(store.pool())
        .await?
        .try_get(0)?;
    Ok(n)
}

/// `$from, $from+1, …`: `n` parameters.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
