//! The `messages` table: every inbound message with the decision taken on
//! it, written once (its unique key makes a replayed poll harmless), and
//! what the pipeline reads before a batch.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::tickets::Latest;
use super::{Backend, Store, StoreError, dialect};
use crate::domain::clock::Millis;
use crate::domain::language::Lang;
use crate::domain::states::{Action, AutoReply, Origin, OutboxStatus, TicketStatus};
use crate::domain::{Channel, Platform, TicketRef};

/// One inbound message with its decision.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Where it came from.
    pub platform: Platform,
    /// The platform's id of it.
    pub id: String,
    /// Mention, DM or search.
    pub channel: Channel,
    /// The conversation replies go to.
    pub conversation: String,
    /// The author's platform user id.
    pub author_id: String,
    /// Their handle.
    pub handle: String,
    /// Their display name, as written.
    pub name: String,
    /// The text, as written.
    pub text: String,
    /// The message it answers, if any.
    pub in_reply_to: Option<String>,
    /// When the customer wrote it.
    pub written_at: Millis,
    /// When the bot recorded it.
    pub received_at: Millis,
    /// The winning rule.
    pub rule: Option<String>,
    /// The keyword that won, as written in the rule.
    pub keyword: Option<String>,
    /// What was done.
    pub action: Action,
    /// What happened to its automatic reply.
    pub auto_reply: AutoReply,
    /// Why, when a protection or a ticket decided.
    pub reason: Option<String>,
    /// The ticket it opened or joined.
    pub ticket: Option<TicketRef>,
    /// The ids of the accounts it mentions, space-separated.
    pub mentioned: Option<String>,
    /// The customer's language, when it was read or the platform said.
    pub lang: Option<Lang>,
    /// The signals it carries, space-separated.
    pub signals: Option<String>,
}

impl NewMessage {
    /// About what its parameters weigh in a statement.
    fn bytes(&self) -> usize {
        let t = dialect::text_bytes;
        [
            &self.id,
            &self.conversation,
            &self.author_id,
            &self.handle,
            &self.name,
            &self.text,
        ]
        .iter()
        .map(|s| t(s))
        .sum::<usize>()
            + [
                &self.in_reply_to,
                &self.rule,
                &self.keyword,
                &self.reason,
                &self.mentioned,
                &self.signals,
            ]
            .iter()
            .map(|s| t(s.as_deref().unwrap_or("")))
            .sum::<usize>()
            + 8 * 12
    }
}

/// Writes a batch's messages, 100 to a statement on SQLite (a whole batch
/// of the bot's in one step; 20 parameters a row stay far under every
/// backend's limit), as many as [`dialect::statement_bytes`] lets through
/// on PostgreSQL; their row ids, in the order given, for the rows that
/// point at them (outbox, opt-outs). Each joins its ticket's conversation
/// by a trigger (migration 0003).
///
/// `RETURNING` gives the rows in no promised order, so each id is matched
/// back by the row's unique key (platform, platform id).
pub async fn insert_batch(
    conn: &mut AnyConnection,
    backend: Backend,
    messages: &[NewMessage],
) -> Result<Vec<i64>, StoreError> {
    let anonymous = dialect::anonymous_parameters(backend);
    let mut ids = Vec::with_capacity(messages.len());
    let max_bytes = dialect::statement_bytes(backend);
    for chunk in dialect::chunks(messages, 100, max_bytes, 20, NewMessage::bytes) {
        let sql = format!(
            "INSERT INTO messages (platform, platform_message_id, channel, conversation_id, author_id, \
             author_handle, author_name, text, in_reply_to, written_at, received_at, rule_id, keyword, \
             action, auto_reply, reason, ticket_id, mentioned_ids, lang, signals) VALUES {} \
             RETURNING id, platform, platform_message_id",
            dialect::values_list(chunk.len(), 20, 0, anonymous, |p| format!(
                "({})",
                p.join(", ")
            ))
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in chunk {
            q = q
                .bind(m.platform.as_str())
                .bind(m.id.as_str())
                .bind(m.channel.as_str())
                .bind(m.conversation.as_str())
                .bind(m.author_id.as_str())
                .bind(m.handle.as_str())
                .bind(m.name.as_str())
                .bind(m.text.as_str())
                .bind(m.in_reply_to.as_deref())
                .bind(m.written_at)
                .bind(m.received_at)
                .bind(m.rule.as_deref())
                .bind(m.keyword.as_deref())
                .bind(m.action.as_str())
                .bind(m.auto_reply.as_str())
                .bind(m.reason.as_deref())
                .bind(m.ticket.map(|t| t.0))
                .bind(m.mentioned.as_deref())
                .bind(m.lang.map(String::from))
                .bind(m.signals.as_deref());
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let mut by_key = HashMap::with_capacity(rows.len());
        for r in &rows {
            let key: (String, String) = (r.try_get(1)?, r.try_get(2)?);
            by_key.insert(key, r.try_get::<i64, _>(0)?);
        }
        for m in chunk {
            let key = (m.platform.as_str().to_owned(), m.id.clone());
            let id = by_key.get(&key).copied().ok_or(StoreError::Inconsistent(
                "a new message came back without its id",
            ))?;
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The platform id of the customer's last message on `ticket`: what a
/// reply threads under.
pub async fn last_of_ticket(
    conn: &mut AnyConnection,
    ticket: TicketRef,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT platform_message_id FROM messages WHERE ticket_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(ticket.0)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// The ids of the accounts a recorded message mentioned, space-separated
/// (a public reply's thread must leave them out).
pub async fn mentioned_ids(
    store: &Store,
    platform: Platform,
    message_id: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT mentioned_ids FROM messages WHERE platform = $1 AND platform_message_id = $2",
    )
    .bind(platform.as_str())
    .bind(message_id)
    .fetch_optional(store.pool())
    .await?;
    Ok(row
        .map(|r| r.try_get::<Option<String>, _>(0))
        .transpose()?
        .flatten())
}

/// An inbound message the pipeline is about to decide on.
#[derive(Debug, Clone, Copy)]
pub struct Probe<'a> {
    /// The platform's id of it.
    pub id: &'a str,
    /// Its author's platform user id.
    pub customer: &'a str,
    /// Its conversation.
    pub conversation: &'a str,
    /// The automatic reply the rules would send (empty: none).
    pub reply_text: &'a str,
}

/// What the database says about a [`Probe`] before its batch is written.
#[derive(Debug, Clone)]
pub struct Known {
    /// Already recorded.
    pub existing: bool,
    /// Its author opted out of automatic replies.
    pub opted_out: bool,
    /// Automatic replies already in its conversation.
    pub auto_replies: i64,
    /// The same reply went to its author within the window.
    pub same_text: bool,
    /// Its author's most recent ticket that is not closed.
    pub latest: Option<Latest>,
    /// Its author's messages received since `recent` (the last 24 h)
    /// after the last reply an agent wrote them, counted up to 3: enough
    /// to tell the third message from later ones (`messages_by_author`
    /// reads the customer's messages of the day; the count stops there).
    pub unanswered: i64,
}

/// Everything the decisions of a batch need from the database, in one
/// round trip per 100 messages (or per [`dialect::statement_bytes`] of
/// them on PostgreSQL): a duplicate, an opt-out, the
/// conversation's automatic replies, the same reply sent since `since`,
/// the customer's latest ticket that is not closed, and their messages
/// since `recent` that no agent answered after.
pub async fn known(
    conn: &mut AnyConnection,
    backend: Backend,
    platform: Platform,
    (since, recent): (Millis, Millis),
    probes: &[Probe<'_>],
) -> Result<Vec<Known>, StoreError> {
    let mut out = Vec::with_capacity(probes.len());
    let t = dialect::text_bytes;
    let size = |p: &Probe<'_>| t(p.id) + t(p.customer) + t(p.conversation) + t(p.reply_text) + 12;
    for chunk in dialect::chunks(probes, 100, dialect::statement_bytes(backend), 5, size) {
        let values =
            dialect::values_list(chunk.len(), 5, 3, false, |p| format!("({})", p.join(", ")));
        // Each lookup is a scalar subquery of one row, never an EXISTS:
        // PostgreSQL may turn a correlated EXISTS into a hash of every
        // row it could match (all the platform's opt-outs, all the
        // replies of the window) built at each execution, which grows
        // with the tables rather than with the batch.
        let sql = format!(
            "WITH ev (i, mid, cust, conv, txt) AS (VALUES {values}) \
             SELECT q.i, q.dup, q.opted, q.autos, q.same, t.id, t.status, t.solved_at, \
                    t.survey_sent_at, t.survey_answered_at, q.unanswered \
             FROM (SELECT ev.i, ev.cust, \
               (SELECT id FROM messages WHERE platform = $1 AND platform_message_id = ev.mid) AS dup, \
               CAST(CASE WHEN (SELECT 1 FROM opt_outs WHERE platform = $1 \
                    AND customer_id = ev.cust LIMIT 1) IS NULL THEN 0 ELSE 1 END AS BIGINT) AS opted, \
               (SELECT COUNT(*) FROM outbox WHERE platform = $1 AND conversation_id = ev.conv \
                    AND origin = '{auto}') AS autos, \
               CAST(CASE WHEN ev.txt <> '' AND (SELECT 1 FROM outbox WHERE platform = $1 \
                    AND customer_id = ev.cust AND text = ev.txt AND created_at >= $2 \
                    AND status IN ('{queued}', '{sending}', '{sent}') LIMIT 1) IS NOT NULL \
                    THEN 1 ELSE 0 END AS BIGINT) AS same, \
               {tid}\
               (SELECT COUNT(*) FROM (SELECT 1 FROM messages m WHERE m.platform = $1 \
                    AND m.author_id = ev.cust AND m.received_at >= $3 \
                    AND m.received_at > COALESCE((SELECT MAX(o.created_at) FROM outbox o \
                        WHERE o.platform = $1 AND o.customer_id = ev.cust \
                        AND o.origin = '{agent}'), 0) \
                    LIMIT 3) AS r) AS unanswered \
               FROM ev) AS q {latest} ORDER BY q.i",
            auto = Origin::Auto,
            queued = OutboxStatus::Queued,
            sending = OutboxStatus::Sending,
            sent = OutboxStatus::Sent,
            agent = Origin::Agent,
            tid = latest_ticket_id(backend),
            latest = latest_ticket_join(backend),
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(platform.as_str())
            .bind(since)
            .bind(recent);
        for (i, p) in chunk.iter().enumerate() {
            q = q
                .bind(i as i64)
                .bind(p.id)
                .bind(p.customer)
                .bind(p.conversation)
                .bind(p.reply_text);
        }
        for row in q.fetch_all(&mut *conn).await? {
            out.push(Known {
                existing: row.try_get::<Option<i64>, _>(1)?.is_some(),
                opted_out: row.try_get::<i64, _>(2)? != 0,
                auto_replies: row.try_get(3)?,
                same_text: row.try_get::<i64, _>(4)? != 0,
                latest: Latest::from_row(&row, 5)?,
                unanswered: row.try_get(10)?,
            });
        }
    }
    Ok(out)
}

/// The customer's latest ticket that is not closed, as a column of
/// [`known`]'s per-message subquery (SQLite; nothing on PostgreSQL, which
/// reads it in [`latest_ticket_join`]).
fn latest_ticket_id(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => format!(
            "(SELECT id FROM tickets WHERE platform = $1 AND customer_id = ev.cust \
             AND status <> '{closed}' ORDER BY id DESC LIMIT 1) AS tid, ",
            closed = TicketStatus::Closed
        ),
        Backend::Postgres => String::new(),
    }
}

/// Joins [`known`]'s messages to their customer's latest ticket that is
/// not closed. SQLite looks the ticket up by the id found per message.
/// PostgreSQL reads it in a lateral subquery, one index scan per message:
/// joined by id instead, its planner may hash the whole tickets table at
/// each batch when its statistics say the table is small.
fn latest_ticket_join(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => "LEFT JOIN tickets t ON t.id = q.tid".to_owned(),
        Backend::Postgres => format!(
            "LEFT JOIN LATERAL (SELECT id, status, solved_at, survey_sent_at, survey_answered_at \
             FROM tickets WHERE platform = $1 AND customer_id = q.cust AND status <> '{closed}' \
             ORDER BY id DESC LIMIT 1) AS t ON TRUE",
            closed = TicketStatus::Closed
        ),
    }
}

/// One recorded message as `rules replay` reads it, borrowed from its row
/// so that a replay of millions of messages allocates nothing per message.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    /// Where it came from (`x`, `mastodon`, `bluesky`).
    pub platform: &'a str,
    /// The platform's id of it.
    pub id: &'a str,
    /// Mention, DM or search, as stored.
    pub channel: &'a str,
    /// The text, as written.
    pub text: &'a str,
    /// When the customer wrote it.
    pub written_at: Millis,
    /// Whether the stored text was not UTF-8 (something other than
    /// helpdesk wrote the row), so `text` holds U+FFFD for the bytes that
    /// were not: the row is still replayed, and the caller says so.
    pub text_was_not_utf8: bool,
}

/// The messages a replay reads, in arrival order.
const WRITTEN_SINCE: &str = "SELECT platform, platform_message_id, channel, text, written_at, id \
     FROM messages WHERE written_at >= $1 ORDER BY id";

/// Hands every message written at or after `since` to `each`, in arrival
/// order, streamed with a cursor: one row in memory at a time, however
/// large the table. Read-only. Stops early when `each` returns `false`.
///
/// A SQLite file is read directly, on the calling thread, with rusqlite
/// (the same SQLite library sqlx links): a bulk read of millions of rows
/// would otherwise pay sqlx's hand-over of each row between threads. A
/// reader does not block the bot writing (WAL).
pub async fn for_each_written_since(
    store: &Store,
    since: Millis,
    mut each: impl FnMut(Recorded<'_>) -> bool,
) -> Result<(), StoreError> {
    use futures_util::TryStreamExt as _;
    if let Some(file) = store.sqlite_file() {
        return read_sqlite_since(file, since, each);
    }
    let mut rows = sqlx::query(WRITTEN_SINCE).bind(since).fetch(store.pool());
    while let Some(row) = rows.try_next().await.map_err(StoreError::Read)? {
        let m = Recorded {
            platform: row.try_get(0)?,
            id: row.try_get(1)?,
            channel: row.try_get(2)?,
            text: row.try_get(3)?,
            written_at: row.try_get(4)?,
            // PostgreSQL checks the encoding of what it stores.
            text_was_not_utf8: false,
        };
        if !each(m) {
            break;
        }
    }
    Ok(())
}

/// [`for_each_written_since`] on a SQLite file, read-only.
fn read_sqlite_since(
    file: &std::path::Path,
    since: Millis,
    mut each: impl FnMut(Recorded<'_>) -> bool,
) -> Result<(), StoreError> {
    use rusqlite::OpenFlags;
    use rusqlite::types::ValueRef;
    use std::borrow::Cow;
    let failed = |source| StoreError::SqliteRead {
        file: file.display().to_string(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(file, flags).map_err(failed)?;
    let mut statement = conn.prepare(WRITTEN_SINCE).map_err(failed)?;
    let mut rows = statement.query([since]).map_err(failed)?;
    while let Some(row) = rows.next().map_err(failed)? {
        let rowid: i64 = row.get(5).map_err(failed)?;
        // A row SQLite's type checks let through (a tool other than
        // helpdesk wrote it) is named, so that it can be mended.
        let bad_row = |what: String| StoreError::BadRow {
            file: file.display().to_string(),
            row: rowid,
            what,
        };
        let text = |i: usize, name: &str| -> Result<&str, StoreError> {
            row.get_ref(i)
                .map_err(failed)?
                .as_str()
                .map_err(|e| bad_row(format!("its {name} is not text ({e})")))
        };
        let (body, lossy) = match row.get_ref(3).map_err(failed)? {
            ValueRef::Text(b) | ValueRef::Blob(b) => match std::str::from_utf8(b) {
                Ok(t) => (Cow::Borrowed(t), false),
                Err(_) => (String::from_utf8_lossy(b), true),
            },
            _ => return Err(bad_row("its text is not text".to_owned())),
        };
        let m = Recorded {
            platform: text(0, "platform")?,
            id: text(1, "platform_message_id")?,
            channel: text(2, "channel")?,
            text: &body,
            written_at: row
                .get(4)
                .map_err(|e| bad_row(format!("its written_at is not a time in ms ({e})")))?,
            text_was_not_utf8: lossy,
        };
        if !each(m) {
            break;
        }
    }
    Ok(())
}
