//! Escalation tickets: the lifecycle state machine (pure), and the commands
//! agents run on tickets (in one transaction each, with an event log).
//!
//! ```text
//! new ──claim/assign/reply──► open ◄──customer writes── pending
//!  │                           │  ──pending──────────────► │
//!  └──────────solve────────────┴──────────solve────────────┴──► solved ──N days──► closed
//!                                  open ◄──reopen / customer writes within N days──┘
//! ```
//!
//! Closed is final (a database trigger enforces it for every tool). Every
//! change is a row in `ticket_events`: who, when, what, from → to.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use sqlx::{AnyConnection, Row};

use crate::domain::clock::Millis;
use crate::domain::text::LengthLimit;
use crate::domain::{Platform, Priority, Queue, TicketRef};
use crate::storage::{Backend, Store, StoreError};

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Opened by the bot, nobody on it yet.
    New,
    /// An agent is on it.
    Open,
    /// Waiting on the customer.
    Pending,
    /// Answered; closes by itself after a few days.
    Solved,
    /// Final.
    Closed,
}

impl Status {
    /// The name used in the database and on screen.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::Pending => "pending",
            Status::Solved => "solved",
            Status::Closed => "closed",
        }
    }

    /// Still being worked (new, open or pending).
    pub fn is_active(self) -> bool {
        matches!(self, Status::New | Status::Open | Status::Pending)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = crate::domain::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "new" => Status::New,
            "open" => Status::Open,
            "pending" => Status::Pending,
            "solved" => Status::Solved,
            "closed" => Status::Closed,
            _ => {
                return Err(crate::domain::UnknownName {
                    kind: "status",
                    value: s.to_owned(),
                    expected: "new, open, pending, solved, closed",
                });
            }
        })
    }
}

/// What an agent does to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Take it (assign to oneself).
    Claim,
    /// Give it to an agent.
    Assign(String),
    /// An internal note, never sent.
    Note(String),
    /// A reply to the customer, public or by DM.
    Reply {
        /// The text, sent as written.
        text: String,
        /// By direct message rather than in the thread.
        dm: bool,
    },
    /// Waiting on the customer.
    Pending,
    /// Done: the customer gets the satisfaction survey.
    Solve,
    /// Final.
    Close,
    /// Back to work.
    Reopen,
}

impl Command {
    /// The verb, as the CLI and `agent_actions.action` spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Claim => "claim",
            Command::Assign(_) => "assign",
            Command::Note(_) => "note",
            Command::Reply { dm: false, .. } => "reply",
            Command::Reply { dm: true, .. } => "reply_dm",
            Command::Pending => "pending",
            Command::Solve => "solve",
            Command::Close => "close",
            Command::Reopen => "reopen",
        }
    }

    /// Builds a command from `agent_actions` (action, argument).
    pub fn from_action(action: &str, argument: Option<&str>) -> Result<Command, String> {
        let arg = || {
            argument
                .filter(|a| !a.trim().is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("`{action}` needs an argument"))
        };
        Ok(match action {
            "claim" => Command::Claim,
            "assign" => Command::Assign(arg()?),
            "note" => Command::Note(arg()?),
            "reply" => Command::Reply {
                text: arg()?,
                dm: false,
            },
            "reply_dm" => Command::Reply {
                text: arg()?,
                dm: true,
            },
            "pending" => Command::Pending,
            "solve" => Command::Solve,
            "close" => Command::Close,
            "reopen" => Command::Reopen,
            other => return Err(format!("unknown action `{other}`")),
        })
    }
}

/// A command that the ticket's status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action}: the ticket is {from}; {hint}")]
pub struct TransitionError {
    /// The verb.
    pub action: &'static str,
    /// The status it is in.
    pub from: Status,
    /// What to do instead.
    pub hint: &'static str,
}

/// The status after `cmd` on a ticket in `from`, or why not. Pure.
pub fn transition(from: Status, cmd: &Command) -> Result<Status, TransitionError> {
    use Status::*;
    let refuse = |hint| {
        Err(TransitionError {
            action: cmd.name(),
            from,
            hint,
        })
    };
    match (cmd, from) {
        (Command::Note(_), _) => Ok(from),
        (_, Closed) => {
            refuse("closed tickets are final; a new message from the customer opens a new ticket")
        }
        (Command::Claim | Command::Assign(_), New | Open) => Ok(Open),
        (Command::Claim | Command::Assign(_), Pending) => Ok(Pending),
        (Command::Claim | Command::Assign(_) | Command::Reply { .. }, Solved) => {
            refuse("reopen it first")
        }
        (Command::Reply { .. }, New) => Ok(Open),
        (Command::Reply { .. }, Open | Pending) => Ok(from),
        (Command::Pending, New | Open) => Ok(Pending),
        (Command::Pending, Pending) => refuse("it is already waiting on the customer"),
        (Command::Pending, Solved) => refuse("reopen it first"),
        (Command::Solve, New | Open | Pending) => Ok(Solved),
        (Command::Solve, Solved) => refuse("it is already solved"),
        (Command::Close, Solved) => Ok(Closed),
        (Command::Close, _) => refuse("solve it first, so the customer gets the survey"),
        (Command::Reopen, Solved) => Ok(Open),
        (Command::Reopen, _) => refuse("only a solved ticket can be reopened"),
    }
}

/// `[tickets]`: the SLA and the life after solving.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketPolicy {
    /// First-response targets in hours, per priority.
    pub sla_hours: SlaHours,
    /// A solved ticket closes after this many days; a message from the
    /// customer within them reopens it.
    pub solved_days: u32,
    /// The satisfaction question, sent by DM when a ticket is solved.
    pub survey: String,
}

/// First-response targets, in hours.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaHours {
    /// For urgent tickets.
    pub urgent: u32,
    /// For high.
    pub high: u32,
    /// For normal.
    pub normal: u32,
    /// For low.
    pub low: u32,
}

impl Default for SlaHours {
    fn default() -> Self {
        SlaHours {
            urgent: 1,
            high: 4,
            normal: 24,
            low: 72,
        }
    }
}

impl Default for TicketPolicy {
    fn default() -> Self {
        TicketPolicy {
            sla_hours: SlaHours::default(),
            solved_days: 4,
            survey: "Comment avons-nous fait ? Répondez par un chiffre de 1 à 5. How did we do? Reply with a number from 1 to 5.".into(),
        }
    }
}

impl TicketPolicy {
    /// When the first response to a new ticket of `priority` is due.
    pub fn first_response_due(&self, priority: Priority, created: Millis) -> Millis {
        let h = match priority {
            Priority::Urgent => self.sla_hours.urgent,
            Priority::High => self.sla_hours.high,
            Priority::Normal => self.sla_hours.normal,
            Priority::Low => self.sla_hours.low,
        };
        created + h as Millis * 3_600_000
    }

    /// How long a solved ticket stays reopenable, in ms.
    pub fn solved_window_ms(&self) -> Millis {
        self.solved_days as Millis * 86_400_000
    }
}

/// Why an agent's command was not applied.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// No such ticket.
    #[error("no ticket {0}: `helpdesk tickets list` shows the ones that exist")]
    NotFound(TicketRef),
    /// The status does not allow it.
    #[error("{ticket}: {source}")]
    Transition {
        /// The ticket.
        ticket: TicketRef,
        /// Why.
        source: TransitionError,
    },
    /// The reply does not fit the platform.
    #[error(
        "the reply is {count} characters as {platform} counts them, over its limit of {max}: shorten it"
    )]
    TooLong {
        /// Its length.
        count: usize,
        /// The limit.
        max: usize,
        /// Which platform.
        platform: Platform,
    },
    /// Nothing to reply to.
    #[error("{0} has no message from the customer to answer")]
    NothingToAnswer(TicketRef),
    /// The customer must not be answered (a listed bot, our own account).
    #[error("{0}: the customer is protected from replies ({1})")]
    Protected(TicketRef, String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TicketError {
    fn from(e: sqlx::Error) -> Self {
        TicketError::Store(StoreError::Query(e))
    }
}

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
}

/// Which way an entry of a ticket's conversation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the customer.
    In,
    /// To the customer.
    Out,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
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
         conversation_id, rule_id, note, created_at, updated_at, first_response_due) \
         VALUES ($1, $2, 'new', $3, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING id",
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
    .bind(t.first_response_due)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    // The 'created' event is written by a trigger (migration 0003).
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

/// Records one change in the ticket's event log.
#[allow(clippy::too_many_arguments)]
pub async fn event(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    actor: &str,
    kind: &str,
    from: Option<&str>,
    to: Option<&str>,
    body: Option<&str>,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ticket_events (ticket_id, at, actor, kind, from_value, to_value, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(ticket.0)
    .bind(now)
    .bind(actor)
    .bind(kind)
    .bind(from)
    .bind(to)
    .bind(body)
    .execute(&mut *conn)
    .await?;
    Ok(())
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
    event(conn, ticket, "bot", "system", None, None, Some(note), now).await
}

/// Moves a ticket to `to` as `actor`, with its event; sets the times that
/// go with solved and closed.
pub async fn set_status(
    conn: &mut AnyConnection,
    ticket: TicketRef,
    actor: &str,
    from: Status,
    to: Status,
    now: Millis,
) -> Result<(), StoreError> {
    if from == to {
        return Ok(());
    }
    sqlx::query(
        "UPDATE tickets SET status = $1, updated_at = $2, \
         solved_at = CASE WHEN $1 = 'solved' THEN $2 WHEN $1 = 'open' THEN NULL ELSE solved_at END, \
         closed_at = CASE WHEN $1 = 'closed' THEN $2 ELSE closed_at END \
         WHERE id = $3",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(ticket.0)
    .execute(&mut *conn)
    .await?;
    event(
        conn,
        ticket,
        actor,
        "status",
        Some(from.as_str()),
        Some(to.as_str()),
        None,
        now,
    )
    .await
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The ticket.
    pub ticket: TicketRef,
    /// Its status before.
    pub from: Status,
    /// Its status after.
    pub to: Status,
    /// The outbox row queued (a reply or the survey), if any.
    pub queued: Option<i64>,
}

/// Applies an agent's command to a ticket, in one transaction.
pub async fn apply(
    store: &Store,
    policy: &TicketPolicy,
    protected_handles: &[String],
    ticket: TicketRef,
    agent: &str,
    cmd: &Command,
    now: Millis,
) -> Result<Applied, TicketError> {
    let lock = if store.backend() == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let mut tx = store.begin().await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT status, platform, customer_id, customer_handle, conversation_id, assignee, \
         survey_sent_at FROM tickets WHERE id = $1{lock}"
    )))
    .bind(ticket.0)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(TicketError::NotFound(ticket))?;
    let status_s: String = row.try_get(0)?;
    let from: Status = status_s.parse().map_err(|e: crate::domain::UnknownName| {
        StoreError::Query(sqlx::Error::Decode(e.into()))
    })?;
    let platform_s: String = row.try_get(1)?;
    let platform: Platform = platform_s
        .parse()
        .map_err(|e: crate::domain::UnknownName| {
            StoreError::Query(sqlx::Error::Decode(e.into()))
        })?;
    let customer_id: String = row.try_get(2)?;
    let handle: String = row.try_get(3)?;
    let conversation: String = row.try_get(4)?;
    let assignee: Option<String> = row.try_get(5)?;
    let survey_sent: Option<i64> = row.try_get(6)?;
    let to = transition(from, cmd).map_err(|source| TicketError::Transition { ticket, source })?;
    let mut queued = None;
    match cmd {
        Command::Claim | Command::Assign(_) => {
            let who = match cmd {
                Command::Assign(a) => a.as_str(),
                _ => agent,
            };
            sqlx::query("UPDATE tickets SET assignee = $1, updated_at = $2 WHERE id = $3")
                .bind(who)
                .bind(now)
                .bind(ticket.0)
                .execute(&mut *tx)
                .await?;
            event(
                &mut tx,
                ticket,
                agent,
                "assign",
                assignee.as_deref(),
                Some(who),
                None,
                now,
            )
            .await?;
        }
        Command::Note(text) => {
            event(&mut tx, ticket, agent, "note", None, None, Some(text), now).await?;
        }
        Command::Reply { text, dm } => {
            let limit: LengthLimit = crate::storage::length_limit(&mut tx, platform).await?;
            let count = limit.count(text);
            if count > limit.max {
                return Err(TicketError::TooLong {
                    count,
                    max: limit.max,
                    platform,
                });
            }
            if protected_handles
                .iter()
                .any(|b| b.trim_start_matches('@').eq_ignore_ascii_case(&handle))
            {
                return Err(TicketError::Protected(ticket, "on the bot list".into()));
            }
            let in_reply_to = last_message(&mut tx, ticket)
                .await?
                .ok_or(TicketError::NothingToAnswer(ticket))?;
            let kind = if *dm { "dm" } else { "public" };
            queued = Some(
                queue_reply(
                    &mut tx,
                    QueuedReply {
                        platform,
                        kind,
                        origin: "agent",
                        ticket,
                        customer_id: &customer_id,
                        handle: &handle,
                        conversation: &conversation,
                        in_reply_to: &in_reply_to,
                        text,
                    },
                    now,
                )
                .await?,
            );
            sqlx::query(
                "UPDATE tickets SET first_response_at = COALESCE(first_response_at, $1), updated_at = $1 \
                 WHERE id = $2",
            )
            .bind(now)
            .bind(ticket.0)
            .execute(&mut *tx)
            .await?;
            event(
                &mut tx,
                ticket,
                agent,
                "reply",
                None,
                Some(kind),
                Some(text),
                now,
            )
            .await?;
        }
        Command::Solve if survey_sent.is_none() => {
            if let Some(in_reply_to) = last_message(&mut tx, ticket).await? {
                let text = format!("{} ({ticket})", policy.survey);
                queued = Some(
                    queue_reply(
                        &mut tx,
                        QueuedReply {
                            platform,
                            kind: "dm",
                            origin: "auto",
                            ticket,
                            customer_id: &customer_id,
                            handle: &handle,
                            conversation: &conversation,
                            in_reply_to: &in_reply_to,
                            text: &text,
                        },
                        now,
                    )
                    .await?,
                );
                sqlx::query("UPDATE tickets SET survey_sent_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(ticket.0)
                    .execute(&mut *tx)
                    .await?;
                event(
                    &mut tx,
                    ticket,
                    "bot",
                    "survey",
                    None,
                    None,
                    Some(&text),
                    now,
                )
                .await?;
            }
        }
        _ => {}
    }
    set_status(&mut tx, ticket, agent, from, to, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Applied {
        ticket,
        from,
        to,
        queued,
    })
}

/// The platform id of the customer's last message on `ticket`: what a
/// reply threads under.
async fn last_message(
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

/// An outbox row made by a ticket command.
struct QueuedReply<'a> {
    platform: Platform,
    kind: &'a str,
    origin: &'a str,
    ticket: TicketRef,
    customer_id: &'a str,
    handle: &'a str,
    conversation: &'a str,
    in_reply_to: &'a str,
    text: &'a str,
}

async fn queue_reply(
    conn: &mut AnyConnection,
    r: QueuedReply<'_>,
    now: Millis,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query(
        "INSERT INTO outbox (platform, kind, origin, message_id, ticket_id, customer_id, \
         customer_handle, conversation_id, in_reply_to, text, status, created_at, \
         next_attempt_at, updated_at) \
         VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8, $9, 'queued', $10, $10, $10) RETURNING id",
    )
    .bind(r.platform.as_str())
    .bind(r.kind)
    .bind(r.origin)
    .bind(r.ticket.0)
    .bind(r.customer_id)
    .bind(r.handle)
    .bind(r.conversation)
    .bind(r.in_reply_to)
    .bind(r.text)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    Ok(id)
}

/// Closes the tickets solved more than `solved_days` ago; returns how many.
pub async fn auto_close(
    store: &Store,
    policy: &TicketPolicy,
    now: Millis,
) -> Result<usize, StoreError> {
    let cutoff = now - policy.solved_window_ms();
    let ids: Vec<i64> = sqlx::query(
        "SELECT id FROM tickets WHERE status = 'solved' AND solved_at < $1 ORDER BY id LIMIT 500",
    )
    .bind(cutoff)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<Result<_, _>>()?;
    for id in &ids {
        let mut tx = store.begin().await?;
        let done = sqlx::query(
            "UPDATE tickets SET status = 'closed', closed_at = $1, updated_at = $1 \
             WHERE id = $2 AND status = 'solved'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            event(
                &mut tx,
                TicketRef(*id),
                "bot",
                "status",
                Some("solved"),
                Some("closed"),
                Some("closed automatically after the solved period"),
                now,
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(ids.len())
}

/// Applies the pending rows of `agent_actions` (the external tools' way in);
/// returns how many were handled.
pub async fn apply_agent_actions(
    store: &Store,
    policy: &TicketPolicy,
    protected_handles: &[String],
    now: Millis,
) -> Result<usize, StoreError> {
    let rows = sqlx::query(
        "SELECT id, ticket_id, agent, action, argument FROM agent_actions WHERE status = 'new' ORDER BY id LIMIT 100",
    )
    .fetch_all(store.pool())
    .await?;
    let n = rows.len();
    for r in rows {
        let id: i64 = r.try_get(0)?;
        let ticket = TicketRef(r.try_get(1)?);
        let agent: String = r.try_get(2)?;
        let action: String = r.try_get(3)?;
        let argument: Option<String> = r.try_get(4)?;
        // The acting agent, and the one a ticket is assigned to, are names
        // shown in histories and logs: checked like the CLI's.
        let names = crate::domain::AgentName::parse(&agent).and_then(|_| match action.as_str() {
            "assign" => {
                crate::domain::AgentName::parse(argument.as_deref().unwrap_or("")).map(|_| ())
            }
            _ => Ok(()),
        });
        let outcome = match names
            .map_err(|e| e.to_string())
            .and_then(|()| Command::from_action(&action, argument.as_deref()))
        {
            Ok(cmd) => apply(store, policy, protected_handles, ticket, &agent, &cmd, now)
                .await
                .map(|a| format!("{} {} → {}", a.ticket, a.from, a.to))
                .map_err(|e| match e {
                    TicketError::Store(s) => Err(s),
                    other => Ok(other.to_string()),
                }),
            Err(e) => Err(Ok(e)),
        };
        let (status, result) = match outcome {
            Ok(r) => ("done", r),
            Err(Ok(refusal)) => ("refused", refusal),
            Err(Err(store_error)) => return Err(store_error),
        };
        sqlx::query(
            "UPDATE agent_actions SET status = $1, result = $2, applied_at = $3 WHERE id = $4 AND status = 'new'",
        )
        .bind(status)
        .bind(&result)
        .bind(now)
        .bind(id)
        .execute(store.pool())
        .await?;
        tracing::info!(action = %action, ticket = %ticket, agent = ?agent.chars().take(64).collect::<String>(), status, result = %result, "agent action applied");
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_allows_what_it_should_and_says_why_not() {
        use Status::*;
        let reply = Command::Reply {
            text: "x".into(),
            dm: false,
        };
        assert_eq!(transition(New, &Command::Claim), Ok(Open));
        assert_eq!(transition(New, &reply), Ok(Open));
        assert_eq!(transition(Open, &Command::Pending), Ok(Pending));
        assert_eq!(transition(Pending, &reply), Ok(Pending));
        assert_eq!(transition(Pending, &Command::Solve), Ok(Solved));
        assert_eq!(transition(Solved, &Command::Reopen), Ok(Open));
        assert_eq!(transition(Solved, &Command::Close), Ok(Closed));
        assert_eq!(transition(Closed, &Command::Note("n".into())), Ok(Closed));
        let e = transition(Open, &Command::Close).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot close: the ticket is open; solve it first, so the customer gets the survey"
        );
        assert!(transition(Closed, &Command::Reopen).is_err());
        assert!(transition(Solved, &reply).is_err());
        assert!(transition(Solved, &Command::Solve).is_err());
    }

    #[test]
    fn sla_defaults_follow_priority() {
        let p = TicketPolicy::default();
        assert_eq!(p.first_response_due(Priority::Urgent, 0), 3_600_000);
        assert_eq!(p.first_response_due(Priority::Low, 0), 72 * 3_600_000);
    }
}

/// One line of `helpdesk tickets list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// `T-1042`.
    pub reference: String,
    /// Status.
    pub status: String,
    /// Priority.
    pub priority: String,
    /// Queue.
    pub queue: String,
    /// Platform.
    pub platform: String,
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
    /// No first response and past due, while still being worked.
    pub overdue: bool,
    /// The customer's rating, 1 to 5.
    pub csat: Option<i64>,
}

/// Which tickets `list` shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this status (default: new, open and pending).
    pub status: Option<Status>,
    /// Only those assigned to this agent.
    pub assignee: Option<String>,
    /// Only the overdue ones.
    pub overdue: bool,
}

const SUMMARY_COLUMNS: &str = "id, status, priority, queue, platform, customer_handle, assignee, \
    created_at, first_response_due, first_response_at, csat";

fn summary(r: &sqlx::any::AnyRow, now: Millis) -> Result<Summary, sqlx::Error> {
    let status: String = r.try_get(1)?;
    let due: Option<i64> = r.try_get(8)?;
    let first: Option<i64> = r.try_get(9)?;
    let active = matches!(status.as_str(), "new" | "open" | "pending");
    Ok(Summary {
        reference: TicketRef(r.try_get(0)?).to_string(),
        overdue: active && first.is_none() && due.is_some_and(|d| d < now),
        status,
        priority: r.try_get(2)?,
        queue: r.try_get(3)?,
        platform: r.try_get(4)?,
        customer: r.try_get(5)?,
        assignee: r.try_get(6)?,
        created_at: r.try_get(7)?,
        first_response_due: due,
        first_response_at: first,
        csat: r.try_get(10)?,
    })
}

/// The tickets matching `f`, most urgent first, then oldest.
pub async fn list(store: &Store, f: &Filter, now: Millis) -> Result<Vec<Summary>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM tickets \
         WHERE ($1 = '' AND status IN ('new', 'open', 'pending') OR status = $1) \
           AND ($2 = '' OR queue = $2) AND ($3 = '' OR assignee = $3) \
         ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END, id"
    )))
    .bind(f.status.map(|s| s.as_str()).unwrap_or(""))
    .bind(f.queue.as_deref().unwrap_or(""))
    .bind(f.assignee.as_deref().unwrap_or(""))
    .fetch_all(store.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let s = summary(r, now)?;
        if !f.overdue || s.overdue {
            out.push(s);
        }
    }
    Ok(out)
}

/// One entry of a ticket's timeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// When (Unix ms).
    pub at: Millis,
    /// Who: `@handle` for the customer, an agent's name, or `bot`.
    pub who: String,
    /// message, reply, note, status, assign, survey, csat, system, created.
    pub kind: String,
    /// The text, if any.
    pub text: Option<String>,
    /// For changes: from.
    pub from: Option<String>,
    /// For changes: to.
    pub to: Option<String>,
}

/// A ticket with its whole conversation and history, in time order.
pub async fn show(
    store: &Store,
    t: TicketRef,
    now: Millis,
) -> Result<(Summary, Vec<Entry>), TicketError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM tickets WHERE id = $1"
    )))
    .bind(t.0)
    .fetch_optional(store.pool())
    .await?
    .ok_or(TicketError::NotFound(t))?;
    let s = summary(&row, now)?;
    let mut entries: Vec<(Millis, i64, Entry)> = Vec::new();
    for r in sqlx::query(
        "SELECT tm.at, tm.id, tm.direction, tm.body, m.author_handle, o.origin \
         FROM ticket_messages tm LEFT JOIN messages m ON m.id = tm.message_id \
         LEFT JOIN outbox o ON o.id = tm.outbox_id WHERE tm.ticket_id = $1",
    )
    .bind(t.0)
    .fetch_all(store.pool())
    .await?
    {
        let dir: String = r.try_get(2)?;
        let handle: Option<String> = r.try_get(4)?;
        let origin: Option<String> = r.try_get(5)?;
        let (who, kind) = match dir.as_str() {
            "in" => (format!("@{}", handle.unwrap_or_default()), "message"),
            _ => (
                if origin.as_deref() == Some("agent") {
                    "agent"
                } else {
                    "bot"
                }
                .to_owned(),
                "sent",
            ),
        };
        entries.push((
            r.try_get(0)?,
            r.try_get(1)?,
            Entry {
                at: r.try_get(0)?,
                who,
                kind: kind.into(),
                text: r.try_get(3)?,
                from: None,
                to: None,
            },
        ));
    }
    for r in sqlx::query(
        "SELECT at, id, actor, kind, from_value, to_value, body FROM ticket_events WHERE ticket_id = $1",
    )
    .bind(t.0)
    .fetch_all(store.pool())
    .await?
    {
        entries.push((
            r.try_get(0)?,
            r.try_get::<i64, _>(1)? + (1 << 40),
            Entry {
                at: r.try_get(0)?,
                who: r.try_get(2)?,
                kind: r.try_get(3)?,
                from: r.try_get(4)?,
                to: r.try_get(5)?,
                text: r.try_get(6)?,
            },
        ));
    }
    entries.sort_by_key(|(at, id, _)| (*at, *id));
    Ok((s, entries.into_iter().map(|(_, _, e)| e).collect()))
}
