//! What agents read: the ticket list and one ticket's timeline (its
//! conversation and its history, merged in time order).

use crate::domain::clock::Millis;
use crate::domain::states::{Direction, Origin, TicketStatus};
use crate::domain::{Platform, Priority, TicketRef};
use crate::storage::{Store, StoreError, ticket_events, ticket_messages, tickets};

use super::service::TicketError;

/// One line of `helpdesk tickets list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// `T-1042`.
    pub reference: String,
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
    /// No first response and past due, while still being worked.
    pub overdue: bool,
    /// The customer's rating, 1 to 5.
    pub csat: Option<i64>,
    /// The customer's language (ISO 639-1), when it was read.
    pub lang: Option<String>,
    /// The signals its messages carried (`churn`, `legal`, `repeated`…).
    pub signals: Vec<String>,
    /// Last changed: the version shown, which the console marks as read.
    #[serde(skip)]
    pub updated_at: Millis,
}

impl Summary {
    /// The summary of a stored row as of `now` (for `overdue`).
    pub fn of(r: tickets::Row, now: Millis) -> Summary {
        Summary {
            reference: r.id.to_string(),
            overdue: r.status.is_active()
                && r.first_response_at.is_none()
                && r.first_response_due.is_some_and(|d| d < now),
            status: r.status,
            priority: r.priority,
            queue: r.queue,
            platform: r.platform,
            customer: r.customer,
            assignee: r.assignee,
            created_at: r.created_at,
            first_response_due: r.first_response_due,
            first_response_at: r.first_response_at,
            csat: r.csat,
            lang: r.lang,
            signals: r.signals,
            updated_at: r.updated_at,
        }
    }
}

/// Which tickets `list` shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this status (default: new, open and pending).
    pub status: Option<TicketStatus>,
    /// Only those assigned to this agent.
    pub assignee: Option<String>,
    /// Only the overdue ones.
    pub overdue: bool,
    /// Only those that carry this signal (`any`: some signal).
    pub signal: Option<String>,
    /// Those with signals first (the most first), then as usual.
    pub by_signals: bool,
}

/// The tickets matching `f`, most urgent first, then oldest.
pub async fn list(store: &Store, f: &Filter, now: Millis) -> Result<Vec<Summary>, StoreError> {
    let selection = tickets::Selection {
        status: f.status,
        queue: f.queue.as_deref(),
        assignee: f.assignee.as_deref(),
    };
    let rows = tickets::list(store, &selection).await?;
    let wanted = |s: &Summary| match f.signal.as_deref() {
        None => true,
        Some("any") => !s.signals.is_empty(),
        Some(name) => s.signals.iter().any(|n| n == name),
    };
    let mut out: Vec<Summary> = rows
        .into_iter()
        .map(|r| Summary::of(r, now))
        .filter(|s| (!f.overdue || s.overdue) && wanted(s))
        .collect();
    if f.by_signals {
        // Stable: within the same count, the usual order stays.
        out.sort_by_key(|s| std::cmp::Reverse(s.signals.len()));
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
    /// The platform's id of the post, for a message or a sent reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_id: Option<String>,
}

/// A ticket with its whole conversation and history, in time order.
pub async fn show(
    store: &Store,
    t: TicketRef,
    now: Millis,
) -> Result<(Summary, Vec<Entry>), TicketError> {
    let row = tickets::get(store, t)
        .await?
        .ok_or(TicketError::NotFound(t))?;
    let mut entries: Vec<(Millis, i64, Entry)> = Vec::new();
    for m in ticket_messages::of_ticket(store, t).await? {
        entries.push((m.at, m.id, conversation_entry(m)));
    }
    for e in ticket_events::of_ticket(store, t).await? {
        // Events sort after messages of the same millisecond.
        let order = e.id + (1 << 40);
        entries.push((e.at, order, history_entry(e)));
    }
    entries.sort_by_key(|(at, id, _)| (*at, *id));
    let timeline = entries.into_iter().map(|(_, _, e)| e).collect();
    Ok((Summary::of(row, now), timeline))
}

fn conversation_entry(m: ticket_messages::Entry) -> Entry {
    let (who, kind) = match m.direction {
        Direction::In => (
            format!("@{}", m.author_handle.unwrap_or_default()),
            "message",
        ),
        Direction::Out | Direction::Event => {
            let who = if m.origin == Some(Origin::Agent) {
                "agent"
            } else {
                "bot"
            };
            (who.to_owned(), "sent")
        }
    };
    Entry {
        at: m.at,
        who,
        kind: kind.into(),
        text: m.body,
        from: None,
        to: None,
        post_id: m.post_id,
    }
}

fn history_entry(e: ticket_events::Event) -> Entry {
    Entry {
        at: e.at,
        who: e.actor,
        kind: e.kind.as_str().to_owned(),
        from: e.from,
        to: e.to,
        text: e.body,
        post_id: None,
    }
}
