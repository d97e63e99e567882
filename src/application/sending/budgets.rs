//! The reply budgets: in memory, one global per platform (the configured
//! one, or the platform's own posting limit when slower) and one per
//! customer, as governor quotas on the shared clock; and in the database,
//! the platform's money budget per UTC day where it bills per call (X's
//! `max_usd_per_day`), shared by every instance.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::domain::Platform;
use crate::domain::clock::{Clock, Millis};
use crate::domain::limits::{Budget, Limits};
use crate::domain::money::{Ask, Day, Grant, Usd};
use crate::platforms::x::cost::{Charge, Unit};
use crate::platforms::{Connector, ReplyKind};
use crate::storage::{Store, StoreError, x_spend};

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
    connectors
        .iter()
        .map(|c| {
            let b = match c.posting_budget() {
                Some(own) => limits.global.slower(own),
                None => limits.global,
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

/// What the money budget said to one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Money {
    /// The platform has no money budget.
    Unmetered,
    /// Its price is reserved on this day until the send is over.
    Reserved(Day, Usd),
    /// The day's budget cannot pay for it: it waits until the next day's
    /// opens, at this time.
    Held(Millis),
}

/// Reserves the price of a `kind` reply with `text` on the platform's
/// money budget, if it has one. The decision is the pure
/// [`crate::domain::money::grant`], made by storage under the day row's
/// lock, so that the reads of the ingest instance and the replies of the
/// sender never spend the same cent.
pub(super) async fn reserve_money(
    store: &Store,
    conn: &dyn Connector,
    (kind, text): (ReplyKind, &str),
    now: Millis,
) -> Result<Money, StoreError> {
    let Some(m) = conn.money_budget(kind, text) else {
        return Ok(Money::Unmetered);
    };
    Ok(
        match x_spend::reserve(store, Ask::one(m.price), m.cap, now).await? {
            (Grant::Units(_), today) => Money::Reserved(today.day, m.price),
            (Grant::NotUntil(at), _) => Money::Held(at),
        },
    )
}

/// Gives back what [`reserve_money`] reserved for a reply that did not
/// leave, or that left and was charged by the connector itself.
pub(super) async fn release_money(store: &Store, money: Money) -> Result<(), StoreError> {
    if let Money::Reserved(day, usd) = money {
        x_spend::settle(store, day, usd, &[]).await?;
    }
    Ok(())
}

/// Counts what [`reserve_money`] reserved as spent, for a `kind` reply
/// with `text` whose outcome is unknown: X may have billed it. Counting
/// it keeps the cap safe and frees the reservation, which would otherwise
/// hold the day's budget until midnight (the look-up that settles the row
/// reserves nothing; a resend is charged on its own).
pub(super) async fn spend_money_in_doubt(
    store: &Store,
    money: Money,
    (kind, text): (ReplyKind, &str),
) -> Result<(), StoreError> {
    if let Money::Reserved(day, usd) = money {
        let charge = Charge {
            endpoint: "reply_in_doubt",
            unit: Unit::of_reply(kind, text),
            units: 1,
            usd,
        };
        x_spend::settle(store, day, usd, &[charge]).await?;
    }
    Ok(())
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
