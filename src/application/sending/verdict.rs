//! What the sender does with a row once the platform answered a send (or
//! a look-up failed): the decision, apart from its effects, so that every
//! answer's consequence is testable without a database.

use std::time::Duration;

use super::settle::{backoff, settle_retry};
use crate::domain::Channel;
use crate::domain::clock::Millis;
use crate::domain::states::Origin;
use crate::platforms::{ApiError, ReplyKind, Sent};
use crate::storage::outbox::Row;

/// After a 401, how long the platform is left alone before trying again.
pub(super) const AUTH_PAUSE: Duration = Duration::from_secs(60);

/// What happens to the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It went out: `sent`, with the platform's id when known.
    Sent {
        /// Where it is.
        id: Option<String>,
        /// Why it counts as sent without an id.
        reason: Option<&'static str>,
    },
    /// The outcome is unknown: `queued`, in doubt, looked up before any
    /// resend at `at`.
    InDoubt {
        /// The next attempt.
        at: Millis,
        /// What happened.
        why: String,
    },
    /// Nobody can tell, or it must not go out: an agent decides.
    Review(String),
    /// "Duplicate content" for a row never in doubt: once, a varied text.
    Vary,
    /// Refused for good.
    Fail(String),
    /// The platform asked us to stop: `kinds` are blocked until `until`
    /// and the row waits there, the attempt not counted.
    Pause {
        /// The endpoints blocked.
        kinds: Vec<ReplyKind>,
        /// Until when.
        until: Millis,
        /// For the row's reason.
        why: &'static str,
        /// A 401: the credentials, not the rate.
        auth: bool,
    },
    /// The customer does not take DMs from the brand: this automatic
    /// answer to a public message goes to the thread instead, now.
    GoPublic,
    /// Another attempt at `at`.
    Retry {
        /// When.
        at: Millis,
        /// For the row's reason.
        why: String,
        /// The attempt does not count (a look-up that failed).
        refund: bool,
    },
}

/// What the decision needs besides the row and the answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Facts {
    /// Now (Unix ms).
    pub now: Millis,
    /// X's "duplicate content" would prove that an earlier attempt of this
    /// row went out (it was in doubt, not found, and has no twin).
    pub duplicate_is_ours: bool,
    /// `limits.max_attempts`.
    pub max_attempts: i64,
}

/// The verdict on `row` after `result`.
pub(super) fn verdict(row: &Row, result: Result<Sent, ApiError>, f: Facts) -> Verdict {
    let now = f.now;
    let out_of_attempts = row.attempts >= f.max_attempts;
    let later = || now + backoff(row.attempts as u32).as_millis() as Millis;
    match result {
        Ok(sent) => Verdict::Sent {
            id: Some(sent.id),
            reason: None,
        },
        // An earlier attempt's outcome was unknown and X now refuses the
        // same text, which no other reply of ours has: that attempt's copy
        // went out (a look-up can lag).
        Err(ApiError::Duplicate) if f.duplicate_is_ours => Verdict::Sent {
            id: None,
            reason: Some(
                "sent by an attempt whose outcome was unknown (X reported the text as already posted)",
            ),
        },
        Err(ApiError::InDoubt(why)) if out_of_attempts => Verdict::Review(format!(
            "the outcome stayed unknown after {} attempts ({why}); it may or may not have gone out: check the conversation, then resend or drop it",
            row.attempts
        )),
        Err(ApiError::InDoubt(why)) => Verdict::InDoubt { at: later(), why },
        // Another reply of ours has this text: X's refusal may be about
        // that one. Varying could answer this customer twice.
        Err(ApiError::Duplicate) if row.in_doubt => Verdict::Review(
            "an earlier attempt's outcome is unknown and X refuses the text as a duplicate, which another reply of ours also has: check the conversation, then resend or drop it".into(),
        ),
        Err(ApiError::Duplicate) if !row.varied => Verdict::Vary,
        Err(ApiError::Duplicate) => {
            Verdict::Fail("refused as duplicate content twice, even varied".into())
        }
        Err(ApiError::RateLimited { reset_ms }) => Verdict::Pause {
            kinds: vec![row.kind],
            until: reset_ms.max(now) + 1000,
            why: "rate limited by the platform (429)",
            auth: false,
        },
        // An FAQ answer meant for DMs (`via = "dm"`) to a public message:
        // the public answer still helps. Anything else (an escalation's
        // ack, which may name a private matter; an agent's DM) is not made
        // public: it fails, and its ticket says why.
        Err(ApiError::DmClosed(_))
            if row.kind == ReplyKind::Dm
                && row.origin == Origin::Auto
                && row.ticket.is_none()
                && matches!(row.answers, Some(Channel::Mention | Channel::Search)) =>
        {
            Verdict::GoPublic
        }
        Err(ApiError::DmClosed(why)) => Verdict::Fail(format!(
            "a direct message cannot reach the customer ({why}): answer in public, or ask them to open their DMs to the brand"
        )),
        Err(ApiError::Unauthorized) => Verdict::Pause {
            kinds: vec![ReplyKind::Public, ReplyKind::Dm],
            until: now + AUTH_PAUSE.as_millis() as Millis,
            why: "the platform refused the access token (401)",
            auth: true,
        },
        // A look-up (a read) that failed, or a resend that never left:
        // nothing is known yet and nothing was posted. Not an attempt: keep
        // looking at a steady pace; a row still in doubt past
        // reply_max_age goes to an agent.
        Err(ApiError::Transient(why)) | Err(ApiError::Malformed(why)) if row.in_doubt => {
            Verdict::Retry {
                at: now + settle_retry().as_millis() as Millis,
                why: format!("in doubt, look-up failed: {why}"),
                refund: true,
            }
        }
        Err(ApiError::Transient(why)) if out_of_attempts => {
            Verdict::Fail(format!("gave up after {} attempts: {why}", row.attempts))
        }
        Err(ApiError::Transient(why)) => Verdict::Retry {
            at: later(),
            why: format!("retrying: {why}"),
            refund: false,
        },
        // A 2xx we cannot read: the reply probably left. Never resend.
        Err(ApiError::Malformed(why)) => Verdict::Review(format!(
            "the platform's answer was unreadable ({why}); check whether the reply went out"
        )),
        Err(e @ ApiError::Rejected { .. }) => Verdict::Fail(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Platform;

    fn row(attempts: i64, in_doubt: bool, varied: bool) -> Row {
        Row {
            id: 1,
            platform: Platform::X,
            kind: ReplyKind::Public,
            ticket: None,
            customer_id: "42".into(),
            customer_handle: "ana".into(),
            conversation_id: "c".into(),
            in_reply_to: "m".into(),
            text: "hello".into(),
            attempts,
            varied,
            in_doubt,
            doubt_since: None,
            doubt_last: None,
            created_at: 0,
            origin: Origin::Auto,
            answers: Some(Channel::Mention),
        }
    }

    fn facts(duplicate_is_ours: bool) -> Facts {
        Facts {
            now: 1_000_000,
            duplicate_is_ours,
            max_attempts: 3,
        }
    }

    #[test]
    fn a_duplicate_is_varied_once_never_when_in_doubt() {
        let dup = || Err(ApiError::Duplicate);
        assert_eq!(
            verdict(&row(1, false, false), dup(), facts(false)),
            Verdict::Vary
        );
        assert!(matches!(
            verdict(&row(1, false, true), dup(), facts(false)),
            Verdict::Fail(_)
        ));
        assert!(matches!(
            verdict(&row(1, true, false), dup(), facts(false)),
            Verdict::Review(_)
        ));
        assert!(matches!(
            verdict(&row(1, true, false), dup(), facts(true)),
            Verdict::Sent { id: None, .. }
        ));
    }

    #[test]
    fn unknown_outcomes_stay_in_doubt_until_the_attempts_run_out() {
        let doubt = || Err(ApiError::InDoubt("cut".into()));
        assert!(matches!(
            verdict(&row(1, false, false), doubt(), facts(false)),
            Verdict::InDoubt { .. }
        ));
        assert!(matches!(
            verdict(&row(3, true, false), doubt(), facts(false)),
            Verdict::Review(_)
        ));
    }

    #[test]
    fn a_failed_look_up_is_not_an_attempt_and_a_transient_error_is() {
        let t = || Err(ApiError::Transient("503".into()));
        assert!(matches!(
            verdict(&row(5, true, false), t(), facts(false)),
            Verdict::Retry { refund: true, .. }
        ));
        assert!(matches!(
            verdict(&row(1, false, false), t(), facts(false)),
            Verdict::Retry { refund: false, .. }
        ));
        assert!(matches!(
            verdict(&row(3, false, false), t(), facts(false)),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn a_closed_inbox_makes_an_faq_public_and_anything_else_fail() {
        let closed = || Err(ApiError::DmClosed("MessagesDisabled".into()));
        let dm = |origin, ticket: Option<i64>, answers| Row {
            kind: ReplyKind::Dm,
            origin,
            ticket: ticket.map(crate::domain::TicketRef),
            answers,
            ..row(1, false, false)
        };
        // (row, goes public)
        let cases = [
            (dm(Origin::Auto, None, Some(Channel::Mention)), true),
            (dm(Origin::Auto, None, Some(Channel::Search)), true),
            // An escalation's ack: private matter, never made public.
            (dm(Origin::Auto, Some(7), Some(Channel::Mention)), false),
            (dm(Origin::Agent, Some(7), Some(Channel::Mention)), false),
            (dm(Origin::Auto, None, Some(Channel::Dm)), false),
            (dm(Origin::Auto, None, None), false),
        ];
        for (r, public) in cases {
            let v = verdict(&r, closed(), facts(false));
            if public {
                assert_eq!(v, Verdict::GoPublic, "{r:?}");
            } else {
                assert!(
                    matches!(&v, Verdict::Fail(why) if why.contains("cannot reach the customer")),
                    "{r:?}: {v:?}"
                );
            }
        }
    }

    #[test]
    fn a_401_pauses_both_endpoints_and_a_429_its_own() {
        let v = verdict(
            &row(1, false, false),
            Err(ApiError::Unauthorized),
            facts(false),
        );
        assert!(matches!(v, Verdict::Pause { auth: true, ref kinds, .. } if kinds.len() == 2));
        let v = verdict(
            &row(1, false, false),
            Err(ApiError::RateLimited { reset_ms: 5 }),
            facts(false),
        );
        assert_eq!(
            v,
            Verdict::Pause {
                kinds: vec![ReplyKind::Public],
                until: 1_001_000,
                why: "rate limited by the platform (429)",
                auth: false
            }
        );
    }
}
