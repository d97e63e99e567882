//! Read models: read-only queries shaped for one reader (the report, the
//! demo's table, the admin gauges), often over several tables, each
//! returning typed rows so that no caller above storage holds SQL.
//!
//! A statement that changes a table, or a read that serves that table's own
//! logic, belongs to the module that owns the table, not here.

use std::collections::BTreeMap;

use sqlx::{AnyPool, Row};

use crate::domain::TicketRef;
use crate::domain::clock::Millis;
use crate::domain::states::{OutboxStatus, TicketStatus};
use crate::storage::{Store, StoreError};

/// One recorded message and what became of its automatic reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageOutcome {
    /// The platform's id of the message.
    pub platform_message_id: String,
    /// mention, dm or search.
    pub channel: String,
    /// The customer's handle.
    pub author_handle: String,
    /// The message as received.
    pub text: String,
    /// The rule that won, if one did.
    pub rule_id: Option<String>,
    /// reply, escalate, ignore or none.
    pub action: String,
    /// What the pipeline decided about an automatic reply when the message
    /// arrived (queued, suppressed, none…).
    pub auto_reply: String,
    /// Where the automatic reply's outbox row is now, if one was queued:
    /// later news than `auto_reply`.
    pub outbox_status: Option<String>,
    /// The ticket the message opened or joined.
    pub ticket: Option<TicketRef>,
    /// Why, when there is something to explain: the outbox's reason first,
    /// as it is the later one.
    pub reason: Option<String>,
}

impl MessageOutcome {
    /// The latest word on the automatic reply: the outbox's status when one
    /// was queued (sent, expired, failed…), else the pipeline's decision.
    pub fn reply_status(&self) -> &str {
        self.outbox_status.as_deref().unwrap_or(&self.auto_reply)
    }
}

/// Every recorded message with its outcome, in arrival order.
pub async fn message_outcomes(store: &Store) -> Result<Vec<MessageOutcome>, StoreError> {
    // 'auto' is the outbox origin of the pipeline's own replies.
    let rows = sqlx::query(
        "SELECT m.platform_message_id, m.channel, m.author_handle, m.text, m.rule_id, m.action, \
                m.auto_reply, o.status, m.ticket_id, COALESCE(o.reason, m.reason) \
         FROM messages m LEFT JOIN outbox o ON o.message_id = m.id AND o.origin = 'auto' \
         ORDER BY m.id",
    )
    .fetch_all(store.pool())
    .await?;
    let outcome = |r: &sqlx::any::AnyRow| -> Result<MessageOutcome, sqlx::Error> {
        Ok(MessageOutcome {
            platform_message_id: r.try_get(0)?,
            channel: r.try_get(1)?,
            author_handle: r.try_get(2)?,
            text: r.try_get(3)?,
            rule_id: r.try_get(4)?,
            action: r.try_get(5)?,
            auto_reply: r.try_get(6)?,
            outbox_status: r.try_get(7)?,
            ticket: r.try_get::<Option<i64>, _>(8)?.map(TicketRef),
            reason: r.try_get(9)?,
        })
    };
    Ok(rows.iter().map(outcome).collect::<Result<_, _>>()?)
}

/// What happened since a moment, as `helpdesk report` sums it up: the raw
/// figures, before any median or average is taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    /// Messages per `platform/channel`.
    pub messages_per_channel: BTreeMap<String, i64>,
    /// Messages per action (reply, escalate, ignore, none).
    pub messages_per_action: BTreeMap<String, i64>,
    /// Messages per winning rule, `(default)` when none won.
    pub messages_per_rule: BTreeMap<String, i64>,
    /// Messages per customer language (`unknown` when it was not read).
    pub messages_per_language: BTreeMap<String, i64>,
    /// Tickets opened per customer language.
    pub tickets_per_language: BTreeMap<String, i64>,
    /// For each message that carried signals: when it arrived, and their
    /// names, space-separated.
    pub signalled: Vec<(Millis, String)>,
    /// Automatic replies to a message that were sent.
    pub auto_replies_sent: i64,
    /// Tickets opened.
    pub tickets_opened: i64,
    /// Tickets solved.
    pub tickets_solved: i64,
    /// Tickets opened whose first response came after its due time, or has
    /// not come and is past due.
    pub sla_breaches: i64,
    /// For each ticket opened that has had a first response: how long it
    /// took (ms), in no particular order.
    pub first_response_waits: Vec<Millis>,
    /// The satisfaction ratings (1 to 5) given.
    pub csat: Vec<i64>,
    /// The texts of the messages no rule matched and nothing held back.
    pub unmatched_texts: Vec<String>,
}

/// The figures for everything received or opened since `since`; `now`
/// decides which unanswered tickets are already late.
pub async fn activity(store: &Store, since: Millis, now: Millis) -> Result<Activity, StoreError> {
    let pool = store.pool();
    Ok(Activity {
        messages_per_channel: counts_by(
            pool,
            "SELECT platform || '/' || channel, COUNT(*) FROM messages WHERE received_at >= $1 GROUP BY platform, channel",
            since,
        )
        .await?,
        messages_per_action: counts_by(
            pool,
            "SELECT action, COUNT(*) FROM messages WHERE received_at >= $1 GROUP BY action",
            since,
        )
        .await?,
        messages_per_rule: counts_by(
            pool,
            "SELECT COALESCE(rule_id, '(default)'), COUNT(*) FROM messages WHERE received_at >= $1 GROUP BY COALESCE(rule_id, '(default)')",
            since,
        )
        .await?,
        messages_per_language: counts_by(
            pool,
            "SELECT COALESCE(lang, 'unknown'), COUNT(*) FROM messages WHERE received_at >= $1 GROUP BY COALESCE(lang, 'unknown')",
            since,
        )
        .await?,
        tickets_per_language: counts_by(
            pool,
            "SELECT COALESCE(lang, 'unknown'), COUNT(*) FROM tickets WHERE created_at >= $1 GROUP BY COALESCE(lang, 'unknown')",
            since,
        )
        .await?,
        signalled: {
            let rows = sqlx::query(
                "SELECT received_at, signals FROM messages WHERE received_at >= $1 AND signals IS NOT NULL",
            )
            .bind(since)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()?
        },
        auto_replies_sent: count(
            pool,
            "SELECT COUNT(*) FROM outbox WHERE origin = 'auto' AND message_id IS NOT NULL AND status = 'sent' AND created_at >= $1",
            since,
        )
        .await?,
        tickets_opened: count(pool, "SELECT COUNT(*) FROM tickets WHERE created_at >= $1", since)
            .await?,
        tickets_solved: count(pool, "SELECT COUNT(*) FROM tickets WHERE solved_at >= $1", since)
            .await?,
        sla_breaches: sla_breaches(pool, since, now).await?,
        first_response_waits: column(
            pool,
            "SELECT first_response_at - created_at FROM tickets WHERE created_at >= $1 AND first_response_at IS NOT NULL",
            since,
        )
        .await?,
        csat: column(
            pool,
            "SELECT csat FROM tickets WHERE csat IS NOT NULL AND updated_at >= $1",
            since,
        )
        .await?,
        unmatched_texts: column(
            pool,
            "SELECT text FROM messages WHERE received_at >= $1 AND rule_id IS NULL AND reason IS NULL",
            since,
        )
        .await?,
    })
}

async fn sla_breaches(pool: &AnyPool, since: Millis, now: Millis) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "SELECT COUNT(*) FROM tickets WHERE created_at >= $1 AND first_response_due IS NOT NULL \
         AND ((first_response_at IS NOT NULL AND first_response_at > first_response_due) \
           OR (first_response_at IS NULL AND first_response_due < $2))",
    )
    .bind(since)
    .bind(now)
    .fetch_one(pool)
    .await?
    .try_get(0)
}

/// A `SELECT key, COUNT(*) … GROUP BY key` bound to `since`.
async fn counts_by(
    pool: &AnyPool,
    sql: &'static str,
    since: Millis,
) -> Result<BTreeMap<String, i64>, sqlx::Error> {
    let rows = sqlx::query(sql).bind(since).fetch_all(pool).await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
        .collect()
}

/// A `SELECT COUNT(*)` bound to `since`.
async fn count(pool: &AnyPool, sql: &'static str, since: Millis) -> Result<i64, sqlx::Error> {
    sqlx::query(sql)
        .bind(since)
        .fetch_one(pool)
        .await?
        .try_get(0)
}

/// The first column of every row of a query bound to `since`.
async fn column<T>(pool: &AnyPool, sql: &'static str, since: Millis) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    let rows = sqlx::query(sql).bind(since).fetch_all(pool).await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// What the admin endpoint exports about the work waiting, read at each
/// scrape so that it is right after a restart or on another instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Outbox rows waiting to be sent.
    pub outbox_depth: i64,
    /// When the oldest of them was queued.
    pub oldest_queued_at: Option<Millis>,
    /// Tickets being worked (new, open, pending) per queue; a queue with
    /// none is absent.
    pub open_tickets_per_queue: Vec<(String, i64)>,
    /// Tickets being worked with no first response and past their due time.
    pub overdue_open_tickets: i64,
}

/// The backlog as it stands; `now` decides which tickets are overdue.
pub async fn backlog(store: &Store, now: Millis) -> Result<Backlog, StoreError> {
    let pool = store.pool();
    let outbox = sqlx::query("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = $1")
        .bind(OutboxStatus::Queued.as_str())
        .fetch_one(pool)
        .await?;
    let [new, open, pending] = TicketStatus::ACTIVE.map(TicketStatus::as_str);
    let per_queue = sqlx::query(
        "SELECT queue, COUNT(*) FROM tickets WHERE status IN ($1, $2, $3) GROUP BY queue",
    )
    .bind(new)
    .bind(open)
    .bind(pending)
    .fetch_all(pool)
    .await?;
    let overdue = sqlx::query(
        "SELECT COUNT(*) FROM tickets WHERE status IN ($2, $3, $4) \
         AND first_response_at IS NULL AND first_response_due < $1",
    )
    .bind(now)
    .bind(new)
    .bind(open)
    .bind(pending)
    .fetch_one(pool)
    .await?;
    Ok(Backlog {
        outbox_depth: outbox.try_get(0)?,
        oldest_queued_at: outbox.try_get(1)?,
        open_tickets_per_queue: per_queue
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?,
        overdue_open_tickets: overdue.try_get(0)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The statements are checked at run time only: this runs each one
    // against a freshly migrated database.
    #[tokio::test]
    async fn every_view_reads_an_empty_database() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("views.db").display());
        let store = Store::open(&url).await.unwrap();
        assert_eq!(message_outcomes(&store).await.unwrap(), vec![]);
        assert_eq!(activity(&store, 0, 1).await.unwrap(), Activity::default());
        assert_eq!(backlog(&store, 1).await.unwrap(), Backlog::default());
    }
}
