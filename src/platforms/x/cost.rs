//! What X's pay-per-use API charges for a call, counted from what the
//! answer actually returned (reads: per post, user and DM event returned;
//! writes: per request, a post dearer when X finds a link in it), and
//! where the spend is kept ([`SpendLedger`]: the database, which storage
//! implements, so that every instance shares one day's budget).

use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::clock::Millis;
use crate::domain::money::{Ask, Day, DaySpend, Grant, Usd, grant, utc_day};
use crate::domain::text::x_has_url;
use crate::platforms::ReplyKind;
use crate::platforms::x::config::XPrices;

/// A unit of X's price list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    /// Posts: Read, per post returned.
    PostRead,
    /// User: Read, per user returned (`includes.users` too).
    UserRead,
    /// DM Event: Read, per event returned.
    DmEventRead,
    /// Content: Create, per post without a link.
    ContentCreate,
    /// Content: Create with URL, per post with a link.
    ContentCreateWithUrl,
    /// DM Interaction: Create, per direct message.
    DmInteractionCreate,
}

impl Unit {
    /// Its name in the database, the report and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::PostRead => "post_read",
            Unit::UserRead => "user_read",
            Unit::DmEventRead => "dm_event_read",
            Unit::ContentCreate => "content_create",
            Unit::ContentCreateWithUrl => "content_create_with_url",
            Unit::DmInteractionCreate => "dm_interaction_create",
        }
    }

    /// Its price in `prices`.
    pub fn price(self, prices: &XPrices) -> Usd {
        match self {
            Unit::PostRead => prices.post_read,
            Unit::UserRead => prices.user_read,
            Unit::DmEventRead => prices.dm_event_read,
            Unit::ContentCreate => prices.content_create,
            Unit::ContentCreateWithUrl => prices.content_create_with_url,
            Unit::DmInteractionCreate => prices.dm_interaction_create,
        }
    }

    /// The unit a reply is billed as: a DM, a post, or a post with a link
    /// (found as X finds links, with twitter-text).
    pub fn of_reply(kind: ReplyKind, text: &str) -> Unit {
        match kind {
            ReplyKind::Dm => Unit::DmInteractionCreate,
            ReplyKind::Public if x_has_url(text) => Unit::ContentCreateWithUrl,
            ReplyKind::Public => Unit::ContentCreate,
        }
    }
}

/// What sending a reply costs.
pub fn reply_price(prices: &XPrices, kind: ReplyKind, text: &str) -> Usd {
    Unit::of_reply(kind, text).price(prices)
}

/// What one call was charged for one unit: `units` of `unit` on `endpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// The endpoint, as the request metrics name it (`mentions`, `post_tweet`).
    pub endpoint: &'static str,
    /// What was billed.
    pub unit: Unit,
    /// How many.
    pub units: u64,
    /// `units` × the unit's price.
    pub usd: Usd,
}

impl Charge {
    /// `units` of `unit` at `prices`.
    pub fn new(endpoint: &'static str, unit: Unit, units: u64, prices: &XPrices) -> Charge {
        Charge {
            endpoint,
            unit,
            units,
            usd: unit.price(prices).times(units),
        }
    }
}

/// What a page of a read cost: its items and the users it expanded
/// (nothing for an empty page).
pub fn page_charges(
    endpoint: &'static str,
    (item, items): (Unit, usize),
    users: usize,
    prices: &XPrices,
) -> Vec<Charge> {
    [(item, items), (Unit::UserRead, users)]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(u, n)| Charge::new(endpoint, u, n as u64, prices))
        .collect()
}

/// The sum of `charges`.
pub fn total(charges: &[Charge]) -> Usd {
    charges.iter().fold(Usd::ZERO, |sum, c| sum.plus(c.usd))
}

/// The worst case of one item of a page whose authors are expanded: the
/// item and its author (X expands one user per item at most).
pub fn worst_item(item: Unit, prices: &XPrices) -> Usd {
    item.price(prices).plus(prices.user_read)
}

/// Why the spend could not be read or kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the X spend cannot be read or recorded ({0}); X calls that cost money wait until it can")]
pub struct LedgerError(pub String);

/// Where a day's spend on X is kept: the database (storage implements
/// it, so that several instances share one budget), or memory.
#[async_trait]
pub trait SpendLedger: Send + Sync {
    /// Reserves, on the UTC day of `now`, as many units of `ask` as `cap`
    /// allows (the decision is [`grant`], made under the day's lock), so
    /// that a call in flight holds its worst case. Returns the grant and
    /// what the day has committed after it.
    async fn reserve(
        &self,
        ask: Ask,
        cap: Usd,
        now: Millis,
    ) -> Result<(Grant, DaySpend), LedgerError>;

    /// Records what a call cost on `day` and gives back what was
    /// `reserved` for it; returns what the day has committed after.
    async fn settle(
        &self,
        day: Day,
        reserved: Usd,
        charges: &[Charge],
    ) -> Result<DaySpend, LedgerError>;
}

/// A ledger in memory, for a client the bot has not given the database's
/// (a test's, or before `Bot::new`): one process's budget.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    day: Mutex<Option<DaySpend>>,
}

#[async_trait]
impl SpendLedger for MemoryLedger {
    async fn reserve(
        &self,
        ask: Ask,
        cap: Usd,
        now: Millis,
    ) -> Result<(Grant, DaySpend), LedgerError> {
        let mut g = self.day.lock().expect("poisoned");
        let today = utc_day(now);
        let mut day = g
            .filter(|d| d.day == today)
            .unwrap_or(DaySpend::none(today));
        let decision = grant(day, ask, cap, now);
        if let Grant::Units(n) = decision {
            day.reserved = day.reserved.plus(ask.each.times(n));
        }
        *g = Some(day);
        Ok((decision, day))
    }

    async fn settle(
        &self,
        day: Day,
        reserved: Usd,
        charges: &[Charge],
    ) -> Result<DaySpend, LedgerError> {
        let mut g = self.day.lock().expect("poisoned");
        let mut d = g.filter(|d| d.day == day).unwrap_or(DaySpend::none(day));
        d.reserved = d.reserved.minus(reserved);
        d.spent = d.spent.plus(total(charges));
        if g.is_none_or(|g| g.day <= day) {
            *g = Some(d);
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_costs_its_posts_and_their_authors() {
        let p = XPrices::default();
        // PRICING.md: 10 mentions with their authors cost 0.15.
        let c = page_charges("mentions", (Unit::PostRead, 10), 10, &p);
        assert_eq!(total(&c).to_string(), "0.15");
        // Two posts by one author: one user returned.
        let c = page_charges("mentions", (Unit::PostRead, 2), 1, &p);
        assert_eq!(total(&c).micros(), 2 * 5_000 + 10_000);
        // DM events and their senders.
        let c = page_charges("dm_events", (Unit::DmEventRead, 3), 2, &p);
        assert_eq!(total(&c).micros(), 3 * 10_000 + 2 * 10_000);
        // An empty poll costs nothing, and records nothing.
        assert!(page_charges("mentions", (Unit::PostRead, 0), 0, &p).is_empty());
        assert_eq!(worst_item(Unit::PostRead, &p).micros(), 15_000);
    }

    #[test]
    fn a_reply_costs_by_kind_and_link() {
        let p = XPrices::default();
        let link = "Reset it here: https://help.lumio.com/wifi";
        assert_eq!(reply_price(&p, ReplyKind::Public, link).to_string(), "0.20");
        assert_eq!(
            reply_price(&p, ReplyKind::Public, "Restart it").to_string(),
            "0.015"
        );
        // A DM costs the same with or without a link.
        assert_eq!(reply_price(&p, ReplyKind::Dm, link).to_string(), "0.015");
        // "https" in words is no link.
        assert_eq!(
            reply_price(&p, ReplyKind::Public, "we use https everywhere").to_string(),
            "0.015"
        );
    }

    #[tokio::test]
    async fn the_memory_ledger_holds_the_cap_and_gives_back_reservations() {
        let l = MemoryLedger::default();
        let cap = Usd::from_micros(100_000);
        let now = 1_795_996_800_000 + 1000;
        let ask = Ask {
            each: Usd::from_micros(15_000),
            min: 1,
            max: 100,
        };
        let (g, after) = l.reserve(ask, cap, now).await.unwrap();
        assert_eq!(g, Grant::Units(6));
        assert_eq!(after.committed().micros(), 90_000);
        let p = XPrices::default();
        let charges = page_charges("mentions", (Unit::PostRead, 1), 1, &p);
        let after = l.settle(after.day, after.reserved, &charges).await.unwrap();
        assert_eq!(after.committed().micros(), 15_000);
        assert_eq!(after.reserved, Usd::ZERO);
    }
}
