//! The in-memory reply budgets: one global per platform (the configured
//! one, or the platform's own posting limit when slower) and one per
//! customer, as governor quotas on the shared clock.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::domain::Platform;
use crate::domain::clock::Clock;
use crate::domain::limits::{Budget, Limits};
use crate::platforms::Connector;

type Direct = RateLimiter<NotKeyed, InMemoryState, Clock, NoOpMiddleware<Duration>>;
type Keyed = RateLimiter<
    (Platform, String),
    HashMapStateStore<(Platform, String)>,
    Clock,
    NoOpMiddleware<Duration>,
>;

/// A budget as a governor quota: the whole budget as a burst, refilled
/// evenly over its window.
pub(super) fn quota(b: Budget) -> Quota {
    let n = NonZeroU32::new(b.replies.max(1)).expect("max(1)");
    let period = (b.window() / n.get()).max(Duration::from_millis(1));
    Quota::with_period(period)
        .expect("a non-zero period")
        .allow_burst(n)
}

/// Each platform's budget: the configured global one, or the platform's own
/// posting limit when that is slower (Mastodon: 300 statuses per 3 hours).
pub(super) fn platform_budgets(
    connectors: &[Arc<dyn Connector>],
    limits: &Limits,
) -> Vec<(Platform, Budget)> {
    let rate = |b: Budget| b.replies as f64 / b.per_secs.max(1) as f64;
    connectors
        .iter()
        .map(|c| {
            let b = match c.posting_budget() {
                Some(own) if rate(own) < rate(limits.global) => own,
                _ => limits.global,
            };
            (c.platform(), b)
        })
        .collect()
}

/// The in-memory budgets: one global per platform, one per customer.
pub(super) struct Budgets {
    pub(super) global: HashMap<Platform, Direct>,
    pub(super) per_customer: Keyed,
}

impl Budgets {
    pub(super) fn new(platforms: &[(Platform, Budget)], limits: &Limits, clock: &Clock) -> Budgets {
        Budgets {
            global: platforms
                .iter()
                .map(|(p, b)| (*p, RateLimiter::direct_with_clock(quota(*b), clock.clone())))
                .collect(),
            per_customer: RateLimiter::hashmap_with_clock(
                quota(limits.per_customer),
                clock.clone(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_allows_the_whole_budget_as_a_burst() {
        let clock = Clock::new();
        let l = RateLimiter::direct_with_clock(
            quota(Budget {
                replies: 3,
                per_secs: 3600,
            }),
            clock.clone(),
        );
        assert!((0..3).all(|_| l.check().is_ok()));
        assert!(l.check().is_err());
        clock.advance(Duration::from_secs(1200));
        assert!(l.check().is_ok());
    }
}
