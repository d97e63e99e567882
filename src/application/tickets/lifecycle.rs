//! The ticket lifecycle: which status a ticket moves to, and why a move is
//! refused. Pure: no database, no clock.
//!
//! ```text
//! new ──claim/assign/reply──► open ◄──customer writes── pending
//!  │                           │  ──pending──────────────► │
//!  └──────────solve────────────┴──────────solve────────────┴──► solved ──N days──► closed
//!                                  open ◄──reopen / customer writes within N days──┘
//! ```
//!
//! Every status the bot writes comes from [`transition`] (an agent's
//! command, the solved period running out) or [`customer_wrote`] (a
//! customer's message); `storage::tickets::set_status` is the only code
//! that writes it.

use serde::Deserialize;

use crate::domain::clock::Millis;
use crate::domain::language::{Lang, LocalizedText};
use crate::domain::states::{TicketStatus, Verb};
use crate::domain::{Priority, TicketRef};

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
        self.verb().as_str()
    }

    /// The verb without its argument.
    pub fn verb(&self) -> Verb {
        match self {
            Command::Claim => Verb::Claim,
            Command::Assign(_) => Verb::Assign,
            Command::Note(_) => Verb::Note,
            Command::Reply { dm: false, .. } => Verb::Reply,
            Command::Reply { dm: true, .. } => Verb::ReplyDm,
            Command::Pending => Verb::Pending,
            Command::Solve => Verb::Solve,
            Command::Close => Verb::Close,
            Command::Reopen => Verb::Reopen,
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
        let verb: Verb = action
            .parse()
            .map_err(|_| format!("unknown action `{action}`"))?;
        Ok(match verb {
            Verb::Claim => Command::Claim,
            Verb::Assign => Command::Assign(arg()?),
            Verb::Note => Command::Note(arg()?),
            Verb::Reply => Command::Reply {
                text: arg()?,
                dm: false,
            },
            Verb::ReplyDm => Command::Reply {
                text: arg()?,
                dm: true,
            },
            Verb::Pending => Command::Pending,
            Verb::Solve => Command::Solve,
            Verb::Close => Command::Close,
            Verb::Reopen => Command::Reopen,
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
    pub from: TicketStatus,
    /// What to do instead.
    pub hint: &'static str,
}

/// The status after `cmd` on a ticket in `from`, or why not. Pure.
pub fn transition(from: TicketStatus, cmd: &Command) -> Result<TicketStatus, TransitionError> {
    use TicketStatus::*;
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

/// The status after a customer writes on a ticket in `from`: a ticket
/// waiting on them, or solved within its period, goes back to work.
/// `None`: unchanged.
pub fn customer_wrote(from: TicketStatus) -> Option<TicketStatus> {
    match from {
        TicketStatus::Pending | TicketStatus::Solved => Some(TicketStatus::Open),
        TicketStatus::New | TicketStatus::Open | TicketStatus::Closed => None,
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
    /// The satisfaction question, sent by DM when a ticket is solved: a
    /// text, or one per language (the ticket's language picks it).
    pub survey: LocalizedText,
    /// `[replies] signature`, which the survey ends with like every
    /// automatic reply; not a `[tickets]` key: `Config::ticket_policy`
    /// puts it here.
    #[serde(skip)]
    pub signature: Option<LocalizedText>,
    /// `[language] default`: the language of a customer whose language is
    /// not known; not a `[tickets]` key either.
    #[serde(skip)]
    pub default_lang: Option<crate::domain::language::Lang>,
    /// `[hours]`: the SLA runs only while the team is in; not a
    /// `[tickets]` key either.
    #[serde(skip)]
    pub hours: Option<crate::domain::hours::BusinessHours>,
    /// `[limits]`: an incident's closing notices go out at the global
    /// budget's pace; not a `[tickets]` key either.
    #[serde(skip)]
    pub limits: crate::domain::limits::Limits,
    /// `[incidents]`: closing an incident's ticket closes the incident,
    /// with its alert; not a `[tickets]` key either.
    #[serde(skip)]
    pub incidents: crate::application::incidents::IncidentPolicy,
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
            survey: LocalizedText::any(
                "Comment avons-nous fait ? Répondez par un chiffre de 1 à 5. How did we do? Reply with a number from 1 to 5.",
            ),
            signature: None,
            default_lang: None,
            hours: None,
            limits: Default::default(),
            incidents: Default::default(),
        }
    }
}

impl TicketPolicy {
    /// The survey for ticket `id`, whose customer reads `lang`, signed.
    pub fn survey_text(&self, id: TicketRef, lang: Option<Lang>) -> String {
        let mut text = format!("{} ({id})", self.survey.pick(lang, self.default_lang));
        if let Some(s) = &self.signature {
            text.push_str(s.pick(lang, self.default_lang));
        }
        text
    }

    /// Whether the brand speaks several languages (a `[language]`
    /// default, or a signature or survey per language), so that each
    /// customer's language is read.
    pub fn speaks_languages(&self) -> bool {
        self.default_lang.is_some()
            || self.survey.is_table()
            || self.signature.as_ref().is_some_and(LocalizedText::is_table)
    }

    /// When the first response to a new ticket of `priority` is due: so
    /// many hours after `created`, counting only open hours when
    /// `[hours]` is set (a ticket of Friday night is due on Monday).
    pub fn first_response_due(&self, priority: Priority, created: Millis) -> Millis {
        let h = match priority {
            Priority::Urgent => self.sla_hours.urgent,
            Priority::High => self.sla_hours.high,
            Priority::Normal => self.sla_hours.normal,
            Priority::Low => self.sla_hours.low,
        };
        let duration = h as Millis * 3_600_000;
        match &self.hours {
            Some(hours) => hours.add_open(created, duration),
            None => created + duration,
        }
    }

    /// How long a solved ticket stays reopenable, in ms.
    pub fn solved_window_ms(&self) -> Millis {
        self.solved_days as Millis * 86_400_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_allows_what_it_should_and_says_why_not() {
        use TicketStatus::*;
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
