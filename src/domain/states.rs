//! Every state and action the bot stores, as an enum with its one SQL
//! spelling.
//!
//! The strings exist only here and at the SQL boundary (the storage
//! modules bind `as_str()` and parse what they read back); the rest of the
//! crate matches on the enums. A test in `storage` holds each enum to the
//! `CHECK (… IN (…))` list of its column in the migrations, so a new
//! variant without a migration, or a migration without a variant, fails.

use std::fmt;
use std::str::FromStr;

use super::UnknownName;

/// Defines an enum whose variants are stored as fixed lowercase names:
/// `as_str`, `ALL`, `Display` and a `FromStr` whose error lists the names.
macro_rules! sql_enum {
    (@join $first:literal $(, $rest:literal)*) => { concat!($first $(, ", ", $rest)*) };
    (
        $(#[$meta:meta])*
        pub enum $name:ident as $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $sql:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $sql)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored in the database and shown to people.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $sql, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $sql => Ok($name::$variant), )+
                    _ => Err(UnknownName {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: sql_enum!(@join $($sql),+),
                    }),
                }
            }
        }
    };
}

sql_enum! {
    /// Where a ticket is in its life (`tickets.status`).
    ///
    /// ```text
    /// new ──claim/assign/reply──► open ◄──customer writes── pending
    ///  │                           │  ──pending──────────────► │
    ///  └──────────solve────────────┴──────────solve────────────┴──► solved ──N days──► closed
    ///                                  open ◄──reopen / customer writes within N days──┘
    /// ```
    pub enum TicketStatus as "status" {
        /// Opened by the bot, nobody on it yet.
        New = "new",
        /// An agent is on it.
        Open = "open",
        /// Waiting on the customer.
        Pending = "pending",
        /// Answered; closes by itself after a few days.
        Solved = "solved",
        /// Final.
        Closed = "closed",
    }
}

impl TicketStatus {
    /// The statuses of a ticket still being worked.
    pub const ACTIVE: [TicketStatus; 3] =
        [TicketStatus::New, TicketStatus::Open, TicketStatus::Pending];

    /// Still being worked (new, open or pending).
    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }
}

sql_enum! {
    /// Where an outbox row is (`outbox.status`); the state machine is in
    /// `application::sending`.
    pub enum OutboxStatus as "outbox status" {
        /// Waiting to be sent (or to be settled, when in doubt).
        Queued = "queued",
        /// Leased by one sender, the HTTP call under way.
        Sending = "sending",
        /// The platform has it; `sent_id` says where.
        Sent = "sent",
        /// The platform refused it for good.
        Failed = "failed",
        /// Queued longer than `reply_max_age_secs`: not sent.
        Expired = "expired",
        /// Nobody can tell whether it went out: an agent decides.
        NeedsReview = "needs_review",
    }
}

sql_enum! {
    /// Who wrote an outbox row (`outbox.origin`).
    pub enum Origin as "origin" {
        /// The rules (an FAQ answer, an acknowledgement, the survey).
        Auto = "auto",
        /// An agent, from the CLI or `agent_actions`.
        Agent = "agent",
    }
}

sql_enum! {
    /// What the bot did with an inbound message (`messages.action`), after
    /// its protections: the rules' outcome, or `ignore`/`escalate` when a
    /// protection or an open ticket decided otherwise.
    pub enum Action as "action" {
        /// Answered automatically.
        Reply = "reply",
        /// Given to a human (a ticket opened or joined).
        Escalate = "escalate",
        /// Recorded, nothing done.
        Ignore = "ignore",
        /// No rule matched and no default applies.
        None = "none",
    }
}

sql_enum! {
    /// What happened to a message's automatic reply (`messages.auto_reply`).
    pub enum AutoReply as "auto_reply" {
        /// Queued in the outbox.
        Queued = "queued",
        /// The rules asked for one, a protection said no (`messages.reason`).
        Suppressed = "suppressed",
        /// The rules asked for none.
        None = "none",
    }
}

sql_enum! {
    /// Which way an entry of a ticket's conversation goes
    /// (`ticket_messages.direction`).
    pub enum Direction as "direction" {
        /// From the customer.
        In = "in",
        /// To the customer.
        Out = "out",
        /// A change, shown in the conversation.
        Event = "event",
    }
}

sql_enum! {
    /// A line of a ticket's history (`ticket_events.kind`).
    pub enum EventKind as "event kind" {
        /// Opened (written by a trigger).
        Created = "created",
        /// Its status changed.
        Status = "status",
        /// Given to an agent.
        Assign = "assign",
        /// An agent's internal note.
        Note = "note",
        /// An agent's reply.
        Reply = "reply",
        /// The satisfaction survey went out.
        Survey = "survey",
        /// The customer rated the help.
        Csat = "csat",
        /// A note from the bot itself.
        System = "system",
    }
}

sql_enum! {
    /// What an agent asks of a ticket through `agent_actions.action` or
    /// the CLI, without its argument.
    pub enum Verb as "action" {
        /// Take it.
        Claim = "claim",
        /// Give it to an agent.
        Assign = "assign",
        /// An internal note.
        Note = "note",
        /// A public reply.
        Reply = "reply",
        /// A reply by direct message.
        ReplyDm = "reply_dm",
        /// Waiting on the customer.
        Pending = "pending",
        /// Done.
        Solve = "solve",
        /// Final.
        Close = "close",
        /// Back to work.
        Reopen = "reopen",
    }
}

sql_enum! {
    /// Where a row of `agent_actions` is.
    pub enum ActionStatus as "agent action status" {
        /// Waiting for the bot.
        New = "new",
        /// Applied.
        Done = "done",
        /// Refused; `result` says why.
        Refused = "refused",
    }
}

sql_enum! {
    /// Where an incident is (`incidents.status`): open while its rule's
    /// messages join it, closed once an agent says it is over.
    pub enum IncidentStatus as "incident status" {
        /// Matching messages join it and get the rule's `incident_reply`.
        Open = "open",
        /// Over: its customers were sent `incident_resolved`.
        Closed = "closed",
    }
}

sql_enum! {
    /// Why an alert goes to the team's chat (`incident_alerts.kind`).
    pub enum AlertKind as "alert kind" {
        /// The incident opened.
        Opened = "opened",
        /// It grew since the last alert (at most every 15 minutes).
        Growing = "growing",
        /// An agent closed it.
        Closed = "closed",
    }
}

sql_enum! {
    /// Where an alert is (`incident_alerts.status`).
    pub enum AlertStatus as "alert status" {
        /// Waiting for its (next) attempt.
        Queued = "queued",
        /// The endpoint took it.
        Sent = "sent",
        /// Given up after its attempts; `reason` says why.
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_choices() {
        for s in OutboxStatus::ALL {
            assert_eq!(s.as_str().parse::<OutboxStatus>(), Ok(*s));
        }
        for s in TicketStatus::ALL {
            assert_eq!(s.to_string().parse::<TicketStatus>(), Ok(*s));
        }
        let e = "opened".parse::<TicketStatus>().unwrap_err();
        assert_eq!(e.expected, "new, open, pending, solved, closed");
        assert!(TicketStatus::Pending.is_active() && !TicketStatus::Solved.is_active());
    }
}
