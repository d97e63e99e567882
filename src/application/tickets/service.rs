//! What agents do to tickets, each command in one transaction: the
//! lifecycle decides, the storage modules write, the event log records
//! who did what. Also the bot's own upkeep of tickets: applying
//! `agent_actions` and closing solved tickets whose period ran out.

use sqlx::AnyConnection;

use super::lifecycle::{Command, TicketPolicy, TransitionError, transition};
use crate::application::incidents::{self, CloseError};
use crate::domain::clock::Millis;
use crate::domain::states::{ActionStatus, EventKind, Origin, TicketStatus, Verb};
use crate::domain::{AgentName, IncidentRef, Platform, TicketRef};
use crate::platforms::ReplyKind;
use crate::storage::Store;
use crate::storage::ticket_events::{self, NewEvent};
use crate::storage::tickets::{self, Locked};
use crate::storage::{StoreError, agent_actions, length_limit, messages, outbox};

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
    /// An incident's ticket has no one customer to answer.
    #[error(
        "{0} is incident {1}'s ticket: it has no one customer to answer; `helpdesk incidents close {1}` sends each of its customers the rule's incident_resolved, or answer a customer on their own ticket"
    )]
    IncidentTicket(TicketRef, IncidentRef),
    /// Closing the incident of the ticket failed.
    #[error(transparent)]
    Incident(CloseError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TicketError {
    fn from(e: sqlx::Error) -> Self {
        TicketError::Store(StoreError::Query(e))
    }
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The ticket.
    pub ticket: TicketRef,
    /// Its status before.
    pub from: TicketStatus,
    /// Its status after.
    pub to: TicketStatus,
    /// The outbox row queued (a reply or the survey), if any.
    pub queued: Option<i64>,
}

/// What a command acts with: the locked ticket and who acts.
struct Acting<'a> {
    id: TicketRef,
    ticket: &'a Locked,
    agent: &'a str,
    policy: &'a TicketPolicy,
    protected_handles: &'a [String],
    now: Millis,
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
    let mut tx = store.begin().await?;
    // An incident's ticket: before the ticket's lock, for closing takes the
    // incident's lock first, as the pipeline does (one order, no deadlock).
    if matches!(cmd, Command::Reply { .. } | Command::Solve | Command::Close)
        && let Some(incident) = crate::storage::incidents::of_ticket(&mut tx, ticket).await?
    {
        let from = tickets::status_of(&mut tx, ticket)
            .await?
            .ok_or(TicketError::NotFound(ticket))?;
        if from == TicketStatus::Closed {
            let source = transition(from, cmd).expect_err("closed tickets are final");
            return Err(TicketError::Transition { ticket, source });
        }
        if let Command::Reply { .. } = cmd {
            return Err(TicketError::IncidentTicket(ticket, incident));
        }
        // Solved or closed, an incident is over: its customers hear it.
        let limits = (&policy.limits, &policy.incidents);
        incidents::close_in(&mut tx, store.backend(), incident, agent, limits, now)
            .await
            .map_err(|e| match e {
                CloseError::Store(s) => TicketError::Store(s),
                other => TicketError::Incident(other),
            })?;
        tx.commit().await.map_err(StoreError::from)?;
        return Ok(Applied {
            ticket,
            from,
            to: TicketStatus::Closed,
            queued: None,
        });
    }
    let locked = tickets::lock(&mut tx, store.backend(), ticket)
        .await?
        .ok_or(TicketError::NotFound(ticket))?;
    let from = locked.status;
    let to = transition(from, cmd).map_err(|source| TicketError::Transition { ticket, source })?;
    let acting = Acting {
        id: ticket,
        ticket: &locked,
        agent,
        policy,
        protected_handles,
        now,
    };
    let queued = act(&mut tx, &acting, cmd).await?;
    tickets::set_status(&mut tx, ticket, agent, (from, to), None, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Applied {
        ticket,
        from,
        to,
        queued,
    })
}

/// The writes of `cmd` besides the status; the outbox row it queued.
async fn act(
    conn: &mut AnyConnection,
    a: &Acting<'_>,
    cmd: &Command,
) -> Result<Option<i64>, TicketError> {
    match cmd {
        Command::Claim | Command::Assign(_) => {
            let who = match cmd {
                Command::Assign(name) => name.as_str(),
                _ => a.agent,
            };
            let before = a.ticket.assignee.as_deref();
            tickets::assign(conn, a.id, a.agent, (before, who), a.now).await?;
            Ok(None)
        }
        Command::Note(text) => {
            let event = NewEvent::new(a.id, a.agent, EventKind::Note).body(text);
            ticket_events::insert(conn, &event, a.now).await?;
            Ok(None)
        }
        Command::Reply { text, dm } => reply(conn, a, text, *dm).await.map(Some),
        Command::Solve if !a.ticket.survey_sent => survey(conn, a).await,
        _ => Ok(None),
    }
}

/// Queues an agent's reply after the checks the platform and the
/// protections impose.
async fn reply(
    conn: &mut AnyConnection,
    a: &Acting<'_>,
    text: &str,
    dm: bool,
) -> Result<i64, TicketError> {
    let platform = a.ticket.platform;
    let limit = match dm {
        true => length_limit(conn, platform).await?.for_dm(),
        false => length_limit(conn, platform).await?,
    };
    let count = limit.count(text);
    if count > limit.max {
        return Err(TicketError::TooLong {
            count,
            max: limit.max,
            platform,
        });
    }
    let handle = &a.ticket.customer_handle;
    if a.protected_handles
        .iter()
        .any(|b| b.trim_start_matches('@').eq_ignore_ascii_case(handle))
    {
        return Err(TicketError::Protected(a.id, "on the bot list".into()));
    }
    let in_reply_to = messages::last_of_ticket(conn, a.id)
        .await?
        .ok_or(TicketError::NothingToAnswer(a.id))?;
    let kind = if dm { ReplyKind::Dm } else { ReplyKind::Public };
    let id = queue(conn, a, kind, Origin::Agent, &in_reply_to, text).await?;
    tickets::responded(conn, a.id, a.now).await?;
    let mut event = NewEvent::new(a.id, a.agent, EventKind::Reply).body(text);
    event.to = Some(kind.as_str());
    ticket_events::insert(conn, &event, a.now).await?;
    Ok(id)
}

/// Queues the satisfaction survey by DM when a ticket is solved, if the
/// customer wrote anything to answer under.
async fn survey(conn: &mut AnyConnection, a: &Acting<'_>) -> Result<Option<i64>, TicketError> {
    let Some(in_reply_to) = messages::last_of_ticket(conn, a.id).await? else {
        return Ok(None);
    };
    let text = a.policy.survey_text(a.id, a.ticket.lang);
    let id = queue(conn, a, ReplyKind::Dm, Origin::Auto, &in_reply_to, &text).await?;
    tickets::survey_sent(conn, a.id, a.now).await?;
    let event = NewEvent::new(a.id, "bot", EventKind::Survey).body(&text);
    ticket_events::insert(conn, &event, a.now).await?;
    Ok(Some(id))
}

async fn queue(
    conn: &mut AnyConnection,
    a: &Acting<'_>,
    kind: ReplyKind,
    origin: Origin,
    in_reply_to: &str,
    text: &str,
) -> Result<i64, StoreError> {
    let row = outbox::NewRow {
        platform: a.ticket.platform,
        kind,
        origin,
        ticket: Some(a.id),
        customer_id: &a.ticket.customer_id,
        handle: &a.ticket.customer_handle,
        conversation: &a.ticket.conversation_id,
        in_reply_to,
        text,
    };
    outbox::insert(conn, &row, a.now).await
}

/// Closes the tickets solved more than `solved_days` ago; returns how many
/// were looked at.
pub async fn auto_close(
    store: &Store,
    policy: &TicketPolicy,
    now: Millis,
) -> Result<usize, StoreError> {
    let due = tickets::solved_before(store, now - policy.solved_window_ms()).await?;
    let to = transition(TicketStatus::Solved, &Command::Close)
        .expect("the lifecycle closes solved tickets");
    for id in &due {
        let mut tx = store.begin().await?;
        // Fenced on `solved`: a ticket reopened meanwhile stays open.
        tickets::set_status(
            &mut tx,
            *id,
            "bot",
            (TicketStatus::Solved, to),
            Some("closed automatically after the solved period"),
            now,
        )
        .await?;
        tx.commit().await?;
    }
    Ok(due.len())
}

/// Applies the pending rows of `agent_actions` (the external tools' way in);
/// returns how many were handled.
pub async fn apply_agent_actions(
    store: &Store,
    policy: &TicketPolicy,
    protected_handles: &[String],
    now: Millis,
) -> Result<usize, StoreError> {
    let rows = agent_actions::pending(store).await?;
    for r in &rows {
        let outcome = match checked_command(r) {
            Ok(cmd) => apply(
                store,
                policy,
                protected_handles,
                r.ticket,
                &r.agent,
                &cmd,
                now,
            )
            .await
            .map(|a| format!("{} {} → {}", a.ticket, a.from, a.to))
            .map_err(|e| match e {
                TicketError::Store(s) => Err(s),
                other => Ok(other.to_string()),
            }),
            Err(refusal) => Err(Ok(refusal)),
        };
        let (status, result) = match outcome {
            Ok(done) => (ActionStatus::Done, done),
            Err(Ok(refusal)) => (ActionStatus::Refused, refusal),
            Err(Err(store_error)) => return Err(store_error),
        };
        agent_actions::finish(store, r.id, status, &result, now).await?;
        tracing::info!(action = %r.action, ticket = %r.ticket, agent = ?r.agent.chars().take(64).collect::<String>(),
            status = status.as_str(), result = %result, "agent action applied");
    }
    Ok(rows.len())
}

/// The command a row of `agent_actions` asks for, or why it is refused.
/// The acting agent, and the one a ticket is assigned to, are names shown
/// in histories and logs: checked like the CLI's.
fn checked_command(r: &agent_actions::Pending) -> Result<Command, String> {
    AgentName::parse(&r.agent).map_err(|e| e.to_string())?;
    if r.action == Verb::Assign.as_str() {
        AgentName::parse(r.argument.as_deref().unwrap_or("")).map_err(|e| e.to_string())?;
    }
    Command::from_action(&r.action, r.argument.as_deref())
}
