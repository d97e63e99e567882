//! The `outbox` table: every reply the bot will send, is sending, or sent,
//! and every statement on it. The state machine these statements move a
//! row through is documented in `application::sending`.
//!
//! Every update made after a send is fenced on `status = 'sending'`: a
//! send that outlived its lease leaves the row to the instance that
//! recovered it.

use sqlx::{AnyConnection, Row as _};

use super::{Backend, Store, StoreError, decode, dialect};
use crate::domain::clock::Millis;
use crate::domain::states::{Origin, OutboxStatus};
use crate::domain::{Channel, Platform, TicketRef};
use crate::platforms::ReplyKind;

/// A reply to queue.
#[derive(Debug, Clone)]
pub struct NewRow<'a> {
    /// Where it goes.
    pub platform: Platform,
    /// Public or DM.
    pub kind: ReplyKind,
    /// The rules or an agent.
    pub origin: Origin,
    /// The ticket it belongs to.
    pub ticket: Option<TicketRef>,
    /// The customer's platform user id.
    pub customer_id: &'a str,
    /// Their handle.
    pub handle: &'a str,
    /// The conversation.
    pub conversation: &'a str,
    /// The platform id of the message it answers.
    pub in_reply_to: &'a str,
    /// The text, final.
    pub text: &'a str,
}

/// Queues one reply; its id. `message_id` stays NULL: an agent's reply or
/// the survey answers a ticket, not one message.
pub async fn insert(
    conn: &mut AnyConnection,
    r: &NewRow<'_>,
    now: Millis,
) -> Result<i64, StoreError> {
    insert_due(conn, r, now, now).await
}

/// [`insert`] for a reply not to be sent before `due` (an incident's
/// closing notices, spread out): its age, which `reply_max_age_secs`
/// limits, counts from then.
pub async fn insert_due(
    conn: &mut AnyConnection,
    r: &NewRow<'_>,
    now: Millis,
    due: Millis,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query(
        "INSERT INTO outbox (platform, kind, origin, message_id, ticket_id, customer_id, \
         customer_handle, conversation_id, in_reply_to, text, status, created_at, \
         next_attempt_at, updated_at) \
         VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12) RETURNING id",
    )
    .bind(r.platform.as_str())
    .bind(r.kind.as_str())
    .bind(r.origin.as_str())
    .bind(r.ticket.map(|t| t.0))
    .bind(r.customer_id)
    .bind(r.handle)
    .bind(r.conversation)
    .bind(r.in_reply_to)
    .bind(r.text)
    .bind(OutboxStatus::Queued.as_str())
    .bind(due)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    Ok(id)
}

/// Queues the automatic replies of a batch, 100 to a statement (fewer on
/// PostgreSQL: [`dialect::statement_bytes`]), each with
/// the row id of the message it answers (known from the messages' insert:
/// no look-up per row).
pub async fn insert_automatic(
    conn: &mut AnyConnection,
    backend: Backend,
    rows: &[(i64, NewRow<'_>)],
    now: Millis,
) -> Result<(), StoreError> {
    let anonymous = dialect::anonymous_parameters(backend);
    let t = dialect::text_bytes;
    let size = |(_, r): &(i64, NewRow<'_>)| {
        t(r.customer_id) + t(r.handle) + t(r.conversation) + t(r.in_reply_to) + t(r.text) + 7 * 12
    };
    for chunk in dialect::chunks(rows, 100, dialect::statement_bytes(backend), 12, size) {
        let sql = format!(
            "INSERT INTO outbox (platform, kind, origin, message_id, ticket_id, customer_id, \
             customer_handle, conversation_id, in_reply_to, text, status, created_at, \
             next_attempt_at, updated_at) VALUES {}",
            dialect::values_list(chunk.len(), 12, 0, anonymous, |p| format!(
                "({}, {}, '{auto}', {}, '{queued}', {})",
                p[0],
                p[1],
                p[2..9].join(", "),
                p[9..].join(", "),
                auto = Origin::Auto,
                queued = OutboxStatus::Queued,
            ))
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (message, r) in chunk {
            q = q
                .bind(r.platform.as_str())
                .bind(r.kind.as_str())
                .bind(*message)
                .bind(r.ticket.map(|t| t.0))
                .bind(r.customer_id)
                .bind(r.handle)
                .bind(r.conversation)
                .bind(r.in_reply_to)
                .bind(r.text)
                .bind(now)
                .bind(now)
                .bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// One outbox row, as the sender needs it.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its id.
    pub id: i64,
    /// Where it goes.
    pub platform: Platform,
    /// Public or DM.
    pub kind: ReplyKind,
    /// Its ticket.
    pub ticket: Option<TicketRef>,
    /// The customer's platform user id.
    pub customer_id: String,
    /// Their handle.
    pub customer_handle: String,
    /// The conversation.
    pub conversation_id: String,
    /// The message it answers.
    pub in_reply_to: String,
    /// The text.
    pub text: String,
    /// Attempts so far (a lease counts one).
    pub attempts: i64,
    /// Its text was varied after a "duplicate content" refusal.
    pub varied: bool,
    /// The outcome of an earlier attempt is unknown: settle before resending.
    pub in_doubt: bool,
    /// When the first attempt in doubt started.
    pub doubt_since: Option<Millis>,
    /// When the latest attempt in doubt started.
    pub doubt_last: Option<Millis>,
    /// When it was queued.
    pub created_at: Millis,
    /// Who wrote it.
    pub origin: Origin,
    /// The channel of the message it answers (`None`: not an answer to one
    /// message, such as an agent's reply on a ticket).
    pub answers: Option<Channel>,
}

const ROW_COLUMNS: &str = "id, platform, kind, ticket_id, customer_id, customer_handle, \
    conversation_id, in_reply_to, text, attempts, varied, in_doubt, doubt_since, doubt_last, \
    updated_at, created_at, origin, \
    (SELECT m.channel FROM messages m WHERE m.id = outbox.message_id)";

fn parse_row(r: &sqlx::any::AnyRow) -> Result<Row, StoreError> {
    let kind: String = r.try_get(2)?;
    Ok(Row {
        id: r.try_get(0)?,
        platform: decode(r.try_get::<String, _>(1)?)?,
        kind: ReplyKind::parse(&kind).ok_or_else(|| {
            StoreError::Query(sqlx::Error::Decode(
                format!("outbox row has an unknown kind `{kind}`").into(),
            ))
        })?,
        ticket: r.try_get::<Option<i64>, _>(3)?.map(TicketRef),
        customer_id: r.try_get(4)?,
        customer_handle: r.try_get(5)?,
        conversation_id: r.try_get(6)?,
        in_reply_to: r.try_get(7)?,
        text: r.try_get(8)?,
        attempts: r.try_get(9)?,
        varied: r.try_get::<i64, _>(10)? != 0,
        in_doubt: r.try_get::<i64, _>(11)? != 0,
        doubt_since: r.try_get::<Option<i64>, _>(12)?,
        doubt_last: r.try_get::<Option<i64>, _>(13)?,
        created_at: r.try_get(15)?,
        origin: decode(r.try_get::<String, _>(16)?)?,
        answers: r
            .try_get::<Option<String>, _>(17)?
            .map(decode)
            .transpose()?,
    })
}

/// Queued rows due by `now`, oldest due first, at most `limit`.
pub async fn due(store: &Store, now: Millis, limit: i64) -> Result<Vec<Row>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM outbox WHERE status = $1 AND next_attempt_at <= $2 \
         ORDER BY next_attempt_at, id LIMIT {limit}"
    )))
    .bind(OutboxStatus::Queued.as_str())
    .bind(now)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(parse_row).collect()
}

/// Queued rows created before `cutoff`, at most `limit`: too old to send.
pub async fn queued_before(
    store: &Store,
    cutoff: Millis,
    limit: i64,
) -> Result<Vec<Row>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM outbox WHERE status = $1 AND created_at < $2 LIMIT {limit}"
    )))
    .bind(OutboxStatus::Queued.as_str())
    .bind(cutoff)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(parse_row).collect()
}

/// Rows `sending` whose lease ran out before `now` (the sender died
/// mid-send), with when they were leased, at most `limit`.
pub async fn lease_expired(
    store: &Store,
    now: Millis,
    limit: i64,
) -> Result<Vec<(Row, Millis)>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM outbox WHERE status = $1 AND lease_until < $2 LIMIT {limit}"
    )))
    .bind(OutboxStatus::Sending.as_str())
    .bind(now)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((parse_row(r)?, r.try_get(14)?)))
        .collect()
}

/// When the next queued row is due (Unix ms), if any.
pub async fn next_due(store: &Store) -> Result<Option<Millis>, StoreError> {
    let r = sqlx::query("SELECT MIN(next_attempt_at) FROM outbox WHERE status = $1")
        .bind(OutboxStatus::Queued.as_str())
        .fetch_one(store.pool())
        .await?;
    Ok(r.try_get::<Option<i64>, _>(0)?)
}

/// Replies sent on `platform` since `since`.
pub async fn sent_since(
    store: &Store,
    platform: Platform,
    since: Millis,
) -> Result<i64, StoreError> {
    let n = sqlx::query(
        "SELECT COUNT(*) FROM outbox WHERE platform = $1 AND status = $2 AND sent_at >= $3",
    )
    .bind(platform.as_str())
    .bind(OutboxStatus::Sent.as_str())
    .bind(since)
    .fetch_one(store.pool())
    .await?
    .try_get(0)?;
    Ok(n)
}

/// Replies sent since `since`, per platform and customer. Rows of a
/// platform this version does not know are left out.
pub async fn sent_per_customer_since(
    store: &Store,
    since: Millis,
) -> Result<Vec<(Platform, String, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT platform, customer_id, COUNT(*) FROM outbox WHERE status = $1 AND sent_at >= $2 \
         GROUP BY platform, customer_id",
    )
    .bind(OutboxStatus::Sent.as_str())
    .bind(since)
    .fetch_all(store.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        if let Ok(p) = r.try_get::<String, _>(0)?.parse::<Platform>() {
            out.push((p, r.try_get(1)?, r.try_get(2)?));
        }
    }
    Ok(out)
}

/// Moves a queued row's next attempt to `at`, saying why.
pub async fn postpone(
    store: &Store,
    id: i64,
    at: Millis,
    why: &str,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET next_attempt_at = $1, reason = $2, updated_at = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(at)
    .bind(why)
    .bind(now)
    .bind(id)
    .bind(OutboxStatus::Queued.as_str())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Leases a queued row for sending until `until` (compare-and-set: false
/// when another instance took it). Counts an attempt.
pub async fn lease(store: &Store, id: i64, until: Millis, now: Millis) -> Result<bool, StoreError> {
    // PostgreSQL: skip a row another instance is claiming right now rather
    // than wait for it; the compare-and-set does the rest.
    let sql = match store.backend() {
        Backend::Postgres => {
            "UPDATE outbox SET status = $1, lease_until = $2, attempts = attempts + 1, \
             updated_at = $3 WHERE id = (SELECT id FROM outbox WHERE id = $4 AND status = $5 \
             FOR UPDATE SKIP LOCKED)"
        }
        Backend::Sqlite => {
            "UPDATE outbox SET status = $1, lease_until = $2, attempts = attempts + 1, \
             updated_at = $3 WHERE id = $4 AND status = $5"
        }
    };
    let done = sqlx::query(sql)
        .bind(OutboxStatus::Sending.as_str())
        .bind(until)
        .bind(now)
        .bind(id)
        .bind(OutboxStatus::Queued.as_str())
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a row other than `id` already claims the post `sent_id`.
pub async fn claimed_by_another(
    store: &Store,
    platform: Platform,
    sent_id: &str,
    id: i64,
) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) FROM outbox WHERE platform = $1 AND sent_id = $2 AND id <> $3",
    )
    .bind(platform.as_str())
    .bind(sent_id)
    .bind(id)
    .fetch_one(store.pool())
    .await?
    .try_get(0)?;
    Ok(n > 0)
}

/// Whether another reply of ours changed since `since` has `text` and may
/// be on the platform (sent, sending, or in doubt).
pub async fn has_twin(
    store: &Store,
    platform: Platform,
    text: &str,
    id: i64,
    since: Millis,
) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) FROM outbox WHERE platform = $1 AND text = $2 AND id <> $3 \
         AND (status IN ($5, $6) OR (status = $7 AND in_doubt = 1)) AND updated_at > $4",
    )
    .bind(platform.as_str())
    .bind(text)
    .bind(id)
    .bind(since)
    .bind(OutboxStatus::Sent.as_str())
    .bind(OutboxStatus::Sending.as_str())
    .bind(OutboxStatus::Queued.as_str())
    .fetch_one(store.pool())
    .await?
    .try_get(0)?;
    Ok(n > 0)
}

/// Marks a row we hold the lease of as sent (`sent_id`: where, when
/// known). False when the lease was lost meanwhile.
pub async fn mark_sent(
    conn: &mut AnyConnection,
    id: i64,
    sent_id: Option<&str>,
    reason: Option<&str>,
    now: Millis,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE outbox SET status = $1, sent_id = $2, sent_at = $3, lease_until = NULL, \
         reason = $4, in_doubt = 0, updated_at = $3 WHERE id = $5 AND status = $6",
    )
    .bind(OutboxStatus::Sent.as_str())
    .bind(sent_id)
    .bind(now)
    .bind(reason)
    .bind(id)
    .bind(OutboxStatus::Sending.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Back to `queued`, in doubt (`started`: when the attempt began): the
/// next attempt settles before it sends.
pub async fn mark_in_doubt(
    store: &Store,
    id: i64,
    (started, at): (Millis, Millis),
    why: &str,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET status = $1, lease_until = NULL, in_doubt = 1, \
         doubt_since = COALESCE(doubt_since, $2), doubt_last = $2, next_attempt_at = $3, \
         reason = $4, updated_at = $5 \
         WHERE id = $6 AND status = $7",
    )
    .bind(OutboxStatus::Queued.as_str())
    .bind(started)
    .bind(at)
    .bind(why)
    .bind(now)
    .bind(id)
    .bind(OutboxStatus::Sending.as_str())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Back to `queued` for another attempt at `at`; `refund_attempt` when
/// this one does not count (a 429, a look-up).
pub async fn requeue(
    store: &Store,
    id: i64,
    at: Millis,
    why: &str,
    refund_attempt: bool,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET status = $1, lease_until = NULL, next_attempt_at = $2, reason = $3, \
         attempts = attempts - $4, updated_at = $5 WHERE id = $6 AND status = $7",
    )
    .bind(OutboxStatus::Queued.as_str())
    .bind(at)
    .bind(why)
    .bind(i64::from(refund_attempt))
    .bind(now)
    .bind(id)
    .bind(OutboxStatus::Sending.as_str())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Back to `queued` as a public reply, due now, the attempt not counted
/// (a DM the customer does not accept).
pub async fn requeue_public(
    store: &Store,
    id: i64,
    why: &str,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET status = $1, kind = $2, lease_until = NULL, next_attempt_at = $3, \
         reason = $4, attempts = attempts - 1, updated_at = $3 WHERE id = $5 AND status = $6",
    )
    .bind(OutboxStatus::Queued.as_str())
    .bind(ReplyKind::Public.as_str())
    .bind(now)
    .bind(why)
    .bind(id)
    .bind(OutboxStatus::Sending.as_str())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Back to `queued` with a varied text, once (after "duplicate content").
pub async fn requeue_varied(
    store: &Store,
    id: i64,
    text: &str,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET status = $1, lease_until = NULL, text = $2, varied = 1, \
         reason = 'varied after duplicate content', next_attempt_at = $3, updated_at = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(OutboxStatus::Queued.as_str())
    .bind(text)
    .bind(now)
    .bind(id)
    .bind(OutboxStatus::Sending.as_str())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Ends a row in state `from` with `to` (failed, expired, needs_review);
/// false when it moved on meanwhile (left to whoever moved it).
pub async fn end(
    conn: &mut AnyConnection,
    id: i64,
    (from, to): (OutboxStatus, OutboxStatus),
    why: &str,
    now: Millis,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE outbox SET status = $1, lease_until = NULL, reason = $2, updated_at = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(to.as_str())
    .bind(why)
    .bind(now)
    .bind(id)
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Expires the automatic replies to messages of `ticket` still waiting
/// (never one being sent or in doubt): an incident's, once it is over,
/// when "our teams are on it" would arrive after, or beside, "it is
/// fixed". How many.
pub async fn expire_waiting_automatic(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    now: Millis,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE outbox SET status = $1, reason = $2, updated_at = $3 \
         WHERE ticket_id = $4 AND status = $5 AND origin = $6 AND in_doubt = 0 AND message_id IS NOT NULL",
    )
    .bind(OutboxStatus::Expired.as_str())
    .bind("the incident closed before it was sent: the customer gets the closing notice instead")
    .bind(now)
    .bind(ticket.0)
    .bind(OutboxStatus::Queued.as_str())
    .bind(Origin::Auto.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Attaches a row to the ticket opened for it (an agent finds a reply in
/// doubt from its ticket).
pub async fn attach_ticket(
    conn: &mut AnyConnection,
    id: i64,
    ticket: TicketRef,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET ticket_id = $1 WHERE id = $2")
        .bind(ticket.0)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A row whose lease ran out (leased at `leased_at`) back to `queued`, in
/// doubt; false when another instance recovered it first.
pub async fn recover(
    store: &Store,
    id: i64,
    leased_at: Millis,
    now: Millis,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE outbox SET status = $1, lease_until = NULL, in_doubt = 1, \
         doubt_since = COALESCE(doubt_since, $2), doubt_last = $2, \
         reason = 'interrupted while sending: to be settled before any resend', \
         next_attempt_at = $3, updated_at = $3 WHERE id = $4 AND status = $5",
    )
    .bind(OutboxStatus::Queued.as_str())
    .bind(leased_at)
    .bind(now)
    .bind(id)
    .bind(OutboxStatus::Sending.as_str())
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}
