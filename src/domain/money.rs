//! Money, for a platform that bills per call (X's pay-per-use): amounts in
//! whole micro-dollars (no float drift in sums), the UTC day a budget
//! belongs to, and the one decision of the money budget ([`admit`]), pure.
//!
//! The configuration writes dollars (`0.005`); they become [`Usd`] once, as
//! the file is read, and are printed as dollars again.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::clock::{Millis, from_ms};

/// Micro-dollars in one dollar.
const MICROS: u64 = 1_000_000;
/// Milliseconds in a UTC day.
const DAY_MS: Millis = 86_400_000;

/// An amount of US dollars, counted in whole micro-dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(u64);

impl Usd {
    /// Nothing.
    pub const ZERO: Usd = Usd(0);

    /// `micros` micro-dollars.
    pub const fn from_micros(micros: u64) -> Usd {
        Usd(micros)
    }

    /// The amount in micro-dollars.
    pub const fn micros(self) -> u64 {
        self.0
    }

    /// `dollars` rounded to the nearest micro-dollar; `None` for a negative
    /// or non-finite amount.
    pub fn from_dollars(dollars: f64) -> Option<Usd> {
        (0.0..1e12)
            .contains(&dollars)
            .then(|| Usd((dollars * MICROS as f64).round() as u64))
    }

    /// The amount in dollars (for metrics and JSON).
    pub fn dollars(self) -> f64 {
        self.0 as f64 / MICROS as f64
    }

    /// `self × n`.
    pub fn times(self, n: u64) -> Usd {
        Usd(self.0.saturating_mul(n))
    }

    /// `self + other`.
    pub fn plus(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }

    /// `self − other`, never below zero.
    pub fn minus(self, other: Usd) -> Usd {
        Usd(self.0.saturating_sub(other.0))
    }
}

/// Dollars with at least two decimals and no trailing zeros beyond them:
/// `0.15`, `0.005`, `12.00`.
impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cents = format!("{:06}", self.0 % MICROS);
        let trimmed = cents.trim_end_matches('0');
        let decimals = if trimmed.len() < 2 {
            &cents[..2]
        } else {
            trimmed
        };
        write!(f, "{}.{decimals}", self.0 / MICROS)
    }
}

impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.dollars())
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Usd, D::Error> {
        let dollars = f64::deserialize(d)?;
        Usd::from_dollars(dollars).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{dollars} is not an amount of dollars: write a number of 0 or more, such as 0.015"
            ))
        })
    }
}

/// A UTC day, as days since 1970-01-01.
pub type Day = i64;

/// The UTC day `at` falls on.
pub fn utc_day(at: Millis) -> Day {
    at.div_euclid(DAY_MS)
}

/// When `day` starts (UTC midnight), in Unix ms.
pub fn day_start(day: Day) -> Millis {
    day * DAY_MS
}

/// `day` as `YYYY-MM-DD`: how the database and the report name it.
pub fn day_name(day: Day) -> String {
    let t = from_ms(day_start(day));
    format!("{:04}-{:02}-{:02}", t.year(), t.month() as u8, t.day())
}

/// What a money budget holds on one UTC day: what calls cost, and the
/// worst case that calls in flight reserved before they were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaySpend {
    /// The day.
    pub day: Day,
    /// What calls of the day cost.
    pub spent: Usd,
    /// What calls in flight hold.
    pub reserved: Usd,
}

impl DaySpend {
    /// Nothing yet on `day`.
    pub fn none(day: Day) -> DaySpend {
        DaySpend {
            day,
            spent: Usd::ZERO,
            reserved: Usd::ZERO,
        }
    }

    /// Spent and reserved: what the cap is held against.
    pub fn committed(&self) -> Usd {
        self.spent.plus(self.reserved)
    }
}

/// How soon a call the reservations of calls in flight alone hold back
/// asks again (they are given back within a call's time).
pub const RESERVED_RETRY_MS: Millis = 10_000;

/// A platform's money budget as the sender sees it for one reply: what
/// the reply costs, and the most the platform may spend per UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoneyBudget {
    /// What sending this reply costs.
    pub price: Usd,
    /// The day's cap.
    pub cap: Usd,
}

/// Whether a call may be paid for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Yes: the day's budget holds it.
    Now,
    /// No: the day's budget would be exceeded; the next day's opens at
    /// this time (UTC midnight, Unix ms).
    NotUntil(Millis),
}

/// The money budget's decision: may a call that costs `price` be paid
/// now, given what `spent` committed and the day's `cap`? A spend recorded
/// on an earlier day counts nothing today (the budget is per UTC day). A
/// price that meets the cap exactly is allowed; a micro-dollar more waits
/// for the next UTC midnight. Pure: the database calls it (through
/// [`grant`]) under the day row's lock, so instances sharing the budget
/// cannot both spend the last cent.
pub fn admit(spent: DaySpend, price: Usd, cap: Usd, now: Millis) -> Admit {
    match grant(spent, Ask::one(price), cap, now) {
        Grant::Units(_) => Admit::Now,
        Grant::NotUntil(t) => Admit::NotUntil(t),
    }
}

/// What a call asks of the budget: `each` per unit, at least `min` units
/// and at most `max` (a page of posts: as many as the budget pays for,
/// down to the smallest page the endpoint serves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// The worst case of one unit.
    pub each: Usd,
    /// The fewest units worth a call.
    pub min: u64,
    /// The most a call can take.
    pub max: u64,
}

impl Ask {
    /// One call at `price`.
    pub fn one(price: Usd) -> Ask {
        Ask {
            each: price,
            min: 1,
            max: 1,
        }
    }
}

/// What the budget grants an [`Ask`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// This many units (between the ask's `min` and `max`), reserved.
    Units(u64),
    /// Not even `min` units today: the next day's budget opens at this
    /// time (UTC midnight, Unix ms).
    NotUntil(Millis),
}

/// The most units of `ask` the day's budget pays for, or when to ask
/// again (see [`admit`]): in [`RESERVED_RETRY_MS`] when only what calls
/// in flight reserved stands in the way, else at the next UTC midnight.
pub fn grant(spent: DaySpend, ask: Ask, cap: Usd, now: Millis) -> Grant {
    let today = utc_day(now);
    let day = if spent.day == today {
        spent
    } else {
        DaySpend::none(today)
    };
    let least = ask.each.times(ask.min);
    let committed = day.committed();
    let n = calls_left(committed, cap, ask.each).min(ask.max);
    if n >= ask.min && committed.plus(least) <= cap {
        Grant::Units(n)
    } else if day.reserved > Usd::ZERO && day.spent.plus(least) <= cap {
        Grant::NotUntil(now + RESERVED_RETRY_MS)
    } else {
        Grant::NotUntil(day_start(today + 1))
    }
}

/// How many calls of at most `each` the rest of the day's budget still
/// pays for (what the pollers spread over the rest of the day).
pub fn calls_left(committed: Usd, cap: Usd, each: Usd) -> u64 {
    cap.minus(committed)
        .micros()
        .checked_div(each.micros())
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T00:00:00Z.
    const MIDNIGHT: Millis = 1_795_996_800_000;

    fn usd(d: f64) -> Usd {
        Usd::from_dollars(d).unwrap()
    }

    #[test]
    fn dollars_become_micro_dollars_and_print_back() {
        assert_eq!(usd(0.005).micros(), 5_000);
        assert_eq!(usd(0.2).micros(), 200_000);
        // Ten posts and their authors: no float drift in the sum.
        let page = usd(0.005).times(10).plus(usd(0.010).times(10));
        assert_eq!(page, usd(0.15));
        assert_eq!(page.to_string(), "0.15");
        assert_eq!(usd(0.005).to_string(), "0.005");
        assert_eq!(usd(12.0).to_string(), "12.00");
        assert_eq!(Usd::ZERO.to_string(), "0.00");
        assert_eq!(Usd::from_dollars(-0.01), None);
        assert_eq!(Usd::from_dollars(f64::NAN), None);
    }

    #[test]
    fn days_are_utc_days() {
        assert_eq!(day_name(utc_day(MIDNIGHT)), "2026-11-30");
        assert_eq!(day_name(utc_day(MIDNIGHT - 1)), "2026-11-29");
        assert_eq!(day_start(utc_day(MIDNIGHT + 5)), MIDNIGHT);
    }

    #[test]
    fn the_budget_admits_up_to_the_cap_and_opens_at_utc_midnight() {
        let cap = usd(1.00);
        let today = utc_day(MIDNIGHT);
        let next = MIDNIGHT + DAY_MS;
        let at = |spent: f64, day: Day| DaySpend {
            day,
            spent: usd(spent),
            reserved: Usd::ZERO,
        };
        let noon = MIDNIGHT + DAY_MS / 2;
        let last_ms = MIDNIGHT + DAY_MS - 1;
        #[rustfmt::skip]
        let cases: &[(&str, DaySpend, f64, Millis, Admit)] = &[
            ("nothing spent",            at(0.0, today),   0.015, noon,    Admit::Now),
            ("exactly at the cap",       at(0.985, today), 0.015, noon,    Admit::Now),
            ("one cent over",            at(0.995, today), 0.015, noon,    Admit::NotUntil(next)),
            ("one micro-dollar over",    at(0.985001, today), 0.015, noon, Admit::NotUntil(next)),
            ("cap reached, free call",   at(1.0, today),   0.0,   noon,    Admit::Now),
            ("dearer than the whole cap", at(0.0, today),  1.5,   noon,    Admit::NotUntil(next)),
            ("last millisecond of the day", at(1.0, today), 0.015, last_ms, Admit::NotUntil(next)),
            ("midnight: yesterday's spend is gone", at(1.0, today), 0.015, next, Admit::Now),
            ("a stale day counts nothing", at(1.0, today - 3), 0.2, noon,  Admit::Now),
            ("held by calls in flight only", DaySpend { reserved: usd(0.5), ..at(0.4, today) }, 0.2, noon,
                Admit::NotUntil(noon + RESERVED_RETRY_MS)),
            ("over even without them", DaySpend { reserved: usd(0.5), ..at(0.9, today) }, 0.2, noon,
                Admit::NotUntil(next)),
        ];
        for (name, spent, price, now, want) in cases {
            assert_eq!(admit(*spent, usd(*price), cap, *now), *want, "{name}");
        }
    }

    #[test]
    fn a_page_is_cut_to_what_the_budget_pays_for() {
        let today = utc_day(MIDNIGHT);
        let noon = MIDNIGHT + DAY_MS / 2;
        let spent = |c: f64| DaySpend {
            spent: usd(c),
            ..DaySpend::none(today)
        };
        // A post and its author: 0.015 each; mentions serve 5 to 100.
        let page = Ask {
            each: usd(0.015),
            min: 5,
            max: 100,
        };
        let cap = usd(1.0);
        assert_eq!(grant(spent(0.0), page, cap, noon), Grant::Units(66));
        assert_eq!(grant(spent(0.925), page, cap, noon), Grant::Units(5));
        assert_eq!(
            grant(spent(0.926), page, cap, noon),
            Grant::NotUntil(MIDNIGHT + DAY_MS)
        );
        assert_eq!(grant(spent(0.0), page, usd(10.0), noon), Grant::Units(100));
    }

    #[test]
    fn calls_left_divides_what_remains() {
        assert_eq!(calls_left(usd(0.25), usd(1.0), usd(0.15)), 5);
        assert_eq!(calls_left(usd(1.0), usd(1.0), usd(0.15)), 0);
        assert_eq!(calls_left(usd(2.0), usd(1.0), usd(0.15)), 0);
        assert_eq!(calls_left(Usd::ZERO, usd(1.0), Usd::ZERO), u64::MAX);
    }
}
