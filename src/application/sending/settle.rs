//! What to do with a reply whose send is in doubt, once the platform was
//! asked; and the pauses between attempts. Pure (but for jitter).

use std::time::Duration;

use rand::Rng;

use crate::platforms::Lookup;

/// How old an attempt in doubt must be before a look-up that does not
/// find it is believed: the timeline and the DM list can lag the post.
pub(super) const NOT_FOUND_BELIEVED_AFTER: Duration = Duration::from_secs(30);

/// What to do with a reply in doubt, once the platform was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Settle {
    /// It went out, with this id.
    Sent(String),
    /// It did not go out, or the platform refuses a second copy: send.
    /// `twin`: another reply of ours has the same text, so a "duplicate"
    /// answer to the resend would not say whether this row went out.
    Resend {
        /// Another recent reply of ours has the same text.
        twin: bool,
    },
    /// Not found yet, but too soon to believe it: look again later.
    LookAgain,
    /// Nobody can tell: an agent decides.
    Review(&'static str),
}

/// The decision for a reply in doubt. `unclaimed`: a post the look-up
/// found that no other row claims. `guarded`: the platform refuses or
/// absorbs a second copy for long enough (Mastodon's idempotency key).
/// `twin`: another reply of ours has the same text. `young`: the attempt
/// in doubt is too recent for "not found" to be believed.
pub(super) fn settle(
    lookup: &Lookup,
    unclaimed: Option<String>,
    guarded: bool,
    twin: bool,
    young: bool,
) -> Settle {
    match (lookup, unclaimed) {
        (_, Some(id)) => Settle::Sent(id),
        (Lookup::Found(_) | Lookup::NotFound, None) if young => Settle::LookAgain,
        (Lookup::Found(_) | Lookup::NotFound, None) => Settle::Resend { twin },
        // Platforms without a look-up guard a resend by the row's own
        // key (Mastodon's Idempotency-Key): another row's text is no matter.
        (Lookup::Unsupported, None) if guarded => Settle::Resend { twin },
        (Lookup::Unsupported, None) => Settle::Review(
            "the bot lost track of this reply while sending it; it may or may not have gone out and the platform cannot say: check the conversation, then resend or drop it",
        ),
    }
}

/// When to look again after a look-up failed: 5 s, ±25 %. Reads are cheap
/// and the row is waiting on them, so no exponential growth.
pub(super) fn settle_retry() -> Duration {
    let jitter = rand::rng().random_range(0.75..1.25);
    Duration::from_millis((5_000.0 * jitter) as u64)
}

/// Exponential backoff with jitter: 2 s, 4 s, 8 s… up to 15 min, ±25 %.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = 2_000u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let capped = base.min(15 * 60 * 1000);
    let jitter = rand::rng().random_range(0.75..1.25);
    Duration::from_millis((capped as f64 * jitter) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_in_doubt_is_settled_never_varied() {
        let sent = |id: &str| crate::platforms::Sent { id: id.into() };
        let found = Lookup::Found(vec![sent("9")]);
        let resend = |twin| Settle::Resend { twin };
        assert_eq!(
            settle(&found, Some("9".into()), false, false, false),
            Settle::Sent("9".into())
        );
        // Found, but every post is another row's: as if not found.
        assert_eq!(settle(&found, None, false, false, false), resend(false));
        assert_eq!(
            settle(&Lookup::NotFound, None, false, false, false),
            resend(false)
        );
        assert_eq!(
            settle(&Lookup::NotFound, None, false, true, false),
            resend(true)
        );
        // Too soon to believe "not found".
        assert_eq!(
            settle(&Lookup::NotFound, None, false, false, true),
            Settle::LookAgain
        );
        assert_eq!(
            settle(&Lookup::Unsupported, None, true, false, true),
            resend(false)
        );
        assert_eq!(
            settle(&Lookup::Unsupported, None, true, true, false),
            resend(true)
        );
        assert!(matches!(
            settle(&Lookup::Unsupported, None, false, false, false),
            Settle::Review(_)
        ));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(2500));
        assert!(backoff(4) >= Duration::from_millis(12_000));
        assert!(backoff(30) <= Duration::from_secs(15 * 60 * 5 / 4));
    }
}
