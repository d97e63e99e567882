//! The decision on one inbound message, apart from its effects: given the
//! rules' routing and what the database (and the batch so far) knows of
//! the customer, which action, which ticket step, which reply, and why.
//! Pure: no database, no clock, so every protection is testable alone.

use std::collections::HashSet;

use crate::domain::clock::Millis;
use crate::domain::limits::Limits;
use crate::domain::states::{Action, TicketStatus};
use crate::domain::{Channel, IncidentRef, Priority, Queue, TicketRef};
use crate::platforms::{Account, Event};
use crate::rules::normalize::normalize;
use crate::rules::{Decision, Localized, Outcome, Via};
use crate::storage::tickets::Latest;

use super::Reply;
use crate::application::tickets::customer_wrote;

/// The protections and policies the decision applies, compiled from the
/// configuration once.
#[derive(Debug, Clone)]
pub(super) struct Policy {
    /// Handles of other bots, lower-cased, without `@`.
    pub bots: HashSet<String>,
    /// Stop words in [`stop_form`].
    pub stop_words: HashSet<String>,
    /// `[limits]`.
    pub limits: Limits,
    /// Where a conversation over its automatic replies is escalated.
    pub cap_queue: Queue,
    /// Answer messages written before the first start.
    pub answer_backlog: bool,
    /// Messages this much older than the first start still count as new.
    pub backlog_grace_ms: Millis,
    /// How long a solved ticket stays reopenable.
    pub solved_window_ms: Millis,
}

/// What is known of a message's customer and conversation when it is
/// decided: the database before the batch, plus the batch's earlier
/// messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    /// The customer opted out of automatic replies.
    pub opted_out: bool,
    /// Automatic replies already in the conversation.
    pub auto_replies: i64,
    /// The same reply went to the customer within the window.
    pub same_text: bool,
    /// The customer's most recent ticket that is not closed.
    pub latest: Option<Latest>,
    /// This is exactly their [`REPEATED_AFTER`]th message received within
    /// [`REPEATED_WINDOW_MS`] with no human answer: the `repeated` signal
    /// (once per run of unanswered messages, not on every later one).
    pub repeated: bool,
    /// The open incident of the message's rule, if there is one.
    pub incident: Option<InIncident>,
}

/// The open incident a message of its rule joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InIncident {
    /// The incident.
    pub id: IncidentRef,
    /// Its ticket.
    pub ticket: TicketRef,
    /// That ticket's status.
    pub status: TicketStatus,
    /// The customer is one of its customers already (answered then, or
    /// given the usual answer before it opened): no second answer.
    pub member: bool,
}

/// Repeated contact: a customer's third message…
pub(super) const REPEATED_AFTER: i64 = 3;
/// …within 24 hours, with no agent's answer in between, is a signal.
pub(super) const REPEATED_WINDOW_MS: Millis = 86_400_000;

/// What to do about the message's ticket.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TicketStep<'r> {
    /// No ticket.
    None,
    /// The message joins this ticket; `reopen`: the status it moves to.
    Join {
        /// The ticket.
        id: TicketRef,
        /// Its status now.
        status: TicketStatus,
        /// The status the customer's message moves it to, if any.
        reopen: Option<TicketStatus>,
    },
    /// A new ticket, with the acknowledgement to send (if one is due).
    Open {
        /// Its queue.
        queue: Queue,
        /// Its priority.
        priority: Priority,
        /// The acknowledgement and its route.
        ack: Option<(&'r Localized, Via)>,
    },
}

/// The decision on one message.
#[derive(Debug, Clone)]
pub(super) struct Plan<'r> {
    /// What is recorded as done.
    pub action: Action,
    /// Why, when a protection, a ticket or a cap decided.
    pub reason: Option<String>,
    /// The ticket step.
    pub ticket: TicketStep<'r>,
    /// The rules' automatic reply, rendered, and its route.
    pub reply: Option<(String, Via)>,
    /// What becomes of the automatic reply (queued once written).
    pub auto_reply: Reply,
    /// The customer asked to stop automatic replies.
    pub stop: bool,
    /// A satisfaction answer: the ticket and the rating.
    pub rating: Option<(TicketRef, i64)>,
    /// The survey of this ticket is answered by this message (the next DM).
    pub survey_answered: Option<TicketRef>,
    /// The incident the message joins.
    pub incident: Option<IncidentRef>,
}

/// Normalises a whole message or stop word for comparison: the rules'
/// normalisation (case, accents, handles and URLs masked), then
/// punctuation trimmed at both ends.
pub(super) fn stop_form(s: &str) -> String {
    let n = normalize(s, true);
    n.text
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_owned()
}

/// The recorded action of a rules outcome.
pub(super) fn action_of(outcome: Outcome<'_>) -> Action {
    match outcome {
        Outcome::Reply(..) => Action::Reply,
        Outcome::Escalate(..) => Action::Escalate,
        Outcome::Ignore => Action::Ignore,
        Outcome::None => Action::None,
    }
}

/// Whether the rules asked for an automatic message to the customer.
fn wanted_reply(outcome: Outcome<'_>, closed: bool) -> bool {
    match outcome {
        Outcome::Reply(..) => true,
        Outcome::Escalate(e, _) => e.ack_for(closed).is_some(),
        Outcome::Ignore | Outcome::None => false,
    }
}

/// The priority of the ticket `esc` opens for a message: one step up when
/// it carries a signal, repeated contact included (one step whatever the
/// number of signals).
fn priority_of(decision: &Decision<'_>, esc: &crate::rules::Escalation, seen: &Seen) -> Priority {
    if seen.repeated && decision.signals.is_empty() {
        esc.priority.raised()
    } else {
        decision.priority_of(esc)
    }
}

/// The first digit of a survey answer, when it is 1 to 5.
pub(super) fn survey_rating(text: &str) -> Option<i64> {
    let d = text.chars().find(|c| c.is_ascii_digit())?;
    let n = d.to_digit(10)? as i64;
    (1..=5).contains(&n).then_some(n)
}

impl Policy {
    /// Why an event must never get an automatic answer, if it must not.
    fn protected(&self, me: &Account, first_start: Millis, e: &Event) -> Option<&'static str> {
        if e.author.id == me.id
            || e.author
                .handle
                .as_str()
                .eq_ignore_ascii_case(me.handle.as_str())
        {
            Some("the bot's own account")
        } else if e.is_repost {
            Some("a retweet or boost")
        } else if self.bots.contains(&e.author.handle.as_str().to_lowercase()) {
            Some("an account on the bot list")
        } else if !self.answer_backlog && e.at < first_start - self.backlog_grace_ms {
            Some("written before the bot's first start")
        } else {
            None
        }
    }

    /// Whether `e` may be answered at all: no protection holds it and it
    /// is not a stop word.
    pub(super) fn answerable(&self, (me, first_start): (&Account, Millis), e: &Event) -> bool {
        self.protected(me, first_start, e).is_none()
            && !self.stop_words.contains(&stop_form(&e.text))
    }

    /// Decides what to do with `e`, routed to `decision` whose reply (if
    /// any) renders as `reply_text` and `incident_reply` as
    /// `incident_text`, at `now`; `closed`: the team is away (`[hours]`),
    /// so an escalation acknowledges with `ack_closed`.
    pub(super) fn decide<'r>(
        &self,
        (me, first_start): (&Account, Millis),
        e: &Event,
        (decision, reply_text, incident_text): (&Decision<'r>, &str, Option<&str>),
        seen: &Seen,
        (now, closed): (Millis, bool),
    ) -> Plan<'r> {
        let outcome = decision.outcome();
        let mut plan = Plan {
            action: action_of(outcome),
            reason: None,
            ticket: TicketStep::None,
            reply: None,
            auto_reply: Reply::None,
            stop: false,
            rating: None,
            // The survey asks about the next DM only.
            survey_answered: seen
                .latest
                .as_ref()
                .filter(|t| t.awaits_survey() && e.channel == Channel::Dm)
                .map(|t| t.id),
            incident: None,
        };
        if let Some(why) = self.protected(me, first_start, e) {
            // Recorded with the rule that matched, but nothing is done.
            plan.action = Action::Ignore;
            plan.reason = Some(format!("not answered: {why}"));
        } else if self.stop_words.contains(&stop_form(&e.text)) {
            plan.action = Action::Ignore;
            plan.reason = Some("the customer asked to stop automatic replies".into());
            plan.stop = true;
        } else if let Some(inc) = seen.incident {
            self.incident(inc, outcome, incident_text, seen, &mut plan);
        } else if !self.follow_up(e, outcome, seen, now, &mut plan) {
            self.route(decision, reply_text, seen, closed, &mut plan);
        }
        plan.auto_reply = self.auto_reply(outcome, closed, &plan);
        plan
    }

    /// A message of a rule whose incident is open: it joins the incident's
    /// ticket (never one of its own), and the customer gets the rule's
    /// `incident_reply` once, whatever the rule's usual action.
    fn incident(
        &self,
        inc: InIncident,
        outcome: Outcome<'_>,
        text: Option<&str>,
        seen: &Seen,
        plan: &mut Plan<'_>,
    ) {
        plan.action = Action::Escalate;
        plan.ticket = TicketStep::Join {
            id: inc.ticket,
            status: inc.status,
            reopen: None,
        };
        plan.incident = Some(inc.id);
        let via = match outcome {
            Outcome::Reply(_, via) | Outcome::Escalate(_, via) => via,
            Outcome::Ignore | Outcome::None => Via::Same,
        };
        let id = inc.id;
        plan.reason = Some(match text {
            _ if inc.member => format!("incident {id}: the customer was answered about it already"),
            None => format!("incident {id}: the rule has no incident_reply"),
            Some(_) if seen.opted_out => {
                format!("incident {id}: the customer opted out of automatic replies")
            }
            Some(_) if seen.auto_replies >= self.limits.per_conversation as i64 => format!(
                "incident {id}: {} automatic replies in this conversation already",
                seen.auto_replies
            ),
            Some(t) => {
                plan.reply = Some((t.to_owned(), via));
                format!("incident {id}: answered with the rule's incident_reply")
            }
        });
    }

    /// A message on a ticket the customer already has: added to it, no FAQ
    /// answer (they talk to a human), or a satisfaction answer. False when
    /// the message starts afresh.
    fn follow_up(
        &self,
        e: &Event,
        outcome: Outcome<'_>,
        seen: &Seen,
        now: Millis,
        plan: &mut Plan<'_>,
    ) -> bool {
        let Some(t) = seen.latest.as_ref() else {
            return false;
        };
        let joinable = !matches!(outcome, Outcome::Ignore);
        let join = |plan: &mut Plan<'_>| {
            plan.action = Action::Escalate;
            plan.ticket = TicketStep::Join {
                id: t.id,
                status: t.status,
                reopen: customer_wrote(t.status),
            };
        };
        if t.status.is_active() && joinable {
            join(plan);
            plan.reason = Some(format!(
                "follow-up added to {}: no automatic reply while the ticket is {}",
                t.id, t.status
            ));
        } else if let Some(rating) =
            survey_rating(&e.text).filter(|_| t.awaits_survey() && e.channel == Channel::Dm)
        {
            plan.action = Action::Ignore;
            plan.reason = Some(format!("satisfaction answer {rating}/5 for {}", t.id));
            plan.rating = Some((t.id, rating));
            plan.ticket = TicketStep::Join {
                id: t.id,
                status: TicketStatus::Solved,
                reopen: None,
            };
        } else if t.status == TicketStatus::Solved
            && joinable
            && t.solved_at
                .is_some_and(|s| now - s <= self.solved_window_ms)
        {
            join(plan);
            plan.reason = Some(format!("{} reopened: the customer wrote again", t.id));
        } else {
            return false;
        }
        true
    }

    /// A message that starts afresh: the rules' outcome, under the caps and
    /// the customer's opt-out.
    fn route<'r>(
        &self,
        decision: &Decision<'r>,
        reply_text: &str,
        seen: &Seen,
        closed: bool,
        plan: &mut Plan<'r>,
    ) {
        let capped = seen.auto_replies >= self.limits.per_conversation as i64;
        match decision.outcome() {
            Outcome::Reply(_, via) => {
                if capped {
                    plan.action = Action::Escalate;
                    plan.reason = Some(format!(
                        "{} automatic replies in this conversation already: escalated instead",
                        seen.auto_replies
                    ));
                    plan.ticket = TicketStep::Open {
                        queue: self.cap_queue.clone(),
                        priority: Priority::Normal,
                        ack: None,
                    };
                } else if seen.opted_out {
                    plan.reason = Some("the customer opted out of automatic replies".into());
                } else if seen.same_text {
                    plan.reason = Some("the same reply went to this customer within 24 h".into());
                } else {
                    plan.reply = Some((reply_text.to_owned(), via));
                }
            }
            Outcome::Escalate(esc, via) => {
                let ack = esc.ack_for(closed).filter(|_| {
                    if seen.opted_out {
                        plan.reason = Some("the customer opted out of automatic replies".into());
                    } else if capped {
                        plan.reason = Some(format!(
                            "{} automatic replies in this conversation already: no acknowledgement",
                            seen.auto_replies
                        ));
                    }
                    !seen.opted_out && !capped
                });
                plan.ticket = TicketStep::Open {
                    queue: esc.queue.clone(),
                    priority: priority_of(decision, esc, seen),
                    ack: ack.map(|a| (a, via)),
                };
            }
            // Repeated contact is a signal of its own: a message no rule
            // matched is escalated for it, as for a `[signals]` list: onto
            // the customer's active ticket when they have one (a
            // `[default] ignore` keeps `follow_up` from adding it there).
            Outcome::Ignore | Outcome::None if seen.repeated && decision.winner.is_none() => {
                if let Some(t) = seen.latest.as_ref().filter(|t| t.status.is_active()) {
                    plan.action = Action::Escalate;
                    plan.reason = Some(format!("repeated contact: added to {}", t.id));
                    plan.ticket = TicketStep::Join {
                        id: t.id,
                        status: t.status,
                        reopen: customer_wrote(t.status),
                    };
                } else if let Some(esc) = decision.unmatched_escalation {
                    plan.action = Action::Escalate;
                    plan.reason = Some(format!(
                        "repeated contact ({} messages in 24 h with no human answer): escalated",
                        REPEATED_AFTER
                    ));
                    plan.ticket = TicketStep::Open {
                        queue: esc.queue.clone(),
                        priority: esc.priority.raised(),
                        ack: esc
                            .ack_for(closed)
                            .filter(|_| !seen.opted_out && !capped)
                            .map(|a| (a, Via::Same)),
                    };
                }
            }
            Outcome::Ignore | Outcome::None => {}
        }
    }

    /// What becomes of the automatic reply the rules asked for.
    fn auto_reply(&self, outcome: Outcome<'_>, closed: bool, plan: &Plan<'_>) -> Reply {
        let ack = matches!(plan.ticket, TicketStep::Open { ack: Some(_), .. });
        let follow_up = matches!(plan.ticket, TicketStep::Join { .. });
        match &plan.reason {
            _ if plan.reply.is_some() || ack => Reply::Queued,
            Some(r) if wanted_reply(outcome, closed) && !follow_up => Reply::Suppressed(r.clone()),
            _ => Reply::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survey_answers_read_the_first_digit() {
        assert_eq!(survey_rating("5"), Some(5));
        assert_eq!(survey_rating("je mets 4/5, merci"), Some(4));
        assert_eq!(survey_rating("0"), None);
        assert_eq!(survey_rating("9 !"), None);
        assert_eq!(survey_rating("super"), None);
    }
}
