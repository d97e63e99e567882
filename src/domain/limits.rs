//! Reply budgets and loop protection: the numbers the operator sets in
//! `[limits]` and `[protection]`, read by the pipeline and the sender and
//! offered by each platform for its own posting limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Queue;

/// A number of replies per window of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// How many replies…
    pub replies: u32,
    /// …per this many seconds.
    pub per_secs: u64,
}

impl Budget {
    /// The window as a duration.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.per_secs)
    }

    /// The slower of the two: `self` unless `other` allows fewer replies
    /// a second (a platform's own posting limit below the configured one).
    pub fn slower(self, other: Budget) -> Budget {
        let rate = |b: Budget| f64::from(b.replies) / b.per_secs.max(1) as f64;
        if rate(other) < rate(self) {
            other
        } else {
            self
        }
    }
}

/// Reply budgets, in the spirit of Zammad's auto-response caps.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// All automatic and agent replies of this bot together, per platform.
    pub global: Budget,
    /// Replies to one customer.
    pub per_customer: Budget,
    /// Automatic replies in one conversation; the next message that would
    /// get one is escalated to a human instead.
    pub per_conversation: u32,
    /// The queue such an escalation lands in (checked as the file is read).
    pub conversation_cap_queue: Queue,
    /// A reply still queued after this long is expired, not sent.
    pub reply_max_age_secs: u64,
    /// Attempts for a reply that keeps failing with 5xx or timeouts.
    pub max_attempts: u32,
    /// The same text to the same customer within this window is suppressed.
    pub same_reply_window_secs: u64,
    /// A reply `sending` for longer than this counts as interrupted (the
    /// sender died) and is recovered. Longer than an HTTP call with its timeout.
    pub lease_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            global: Budget {
                replies: 60,
                per_secs: 900,
            },
            per_customer: Budget {
                replies: 3,
                per_secs: 3600,
            },
            per_conversation: 3,
            conversation_cap_queue: Queue::parse("general").expect("a valid queue name"),
            reply_max_age_secs: 3600,
            max_attempts: 8,
            same_reply_window_secs: 24 * 3600,
            lease_secs: 120,
        }
    }
}

/// Loop protection: who and what the bot never answers automatically.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protection {
    /// Handles of other bots (without `@`), compared case-insensitively.
    pub bots: Vec<String>,
    /// A message that says only one of these (punctuation, handles and case
    /// aside) opts its author out of automatic replies.
    pub stop_words: Vec<String>,
    /// Messages written up to this long before the first start still count as new.
    pub backlog_grace_secs: u64,
}

impl Default for Protection {
    fn default() -> Self {
        Protection {
            bots: Vec::new(),
            stop_words: [
                "stop",
                "stop please",
                "please stop",
                "unsubscribe",
                "arrête",
                "arrêtez",
                "stop svp",
                "stop merci",
                "désabonner",
                "désinscription",
            ]
            .map(String::from)
            .to_vec(),
            backlog_grace_secs: 300,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slower_budget_is_the_one_with_fewer_replies_a_second() {
        let b = |replies, per_secs| Budget { replies, per_secs };
        // The default global budget against Mastodon's 300 per 3 hours.
        assert_eq!(b(60, 900).slower(b(300, 10_800)), b(300, 10_800));
        assert_eq!(b(1, 900).slower(b(300, 10_800)), b(1, 900));
        assert_eq!(
            b(4, 60).slower(b(240, 3_600)),
            b(4, 60),
            "equal rates keep self"
        );
    }
}
