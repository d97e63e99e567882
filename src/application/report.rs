//! `helpdesk report`: what reached the brand, what the bot did with it, how
//! the agents did, and what the rules are missing.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::domain::clock::Millis;
use crate::domain::money::{Usd, utc_day};
use crate::rules::normalize::normalize;
use crate::storage::views::{self, Activity};
use crate::storage::{Store, StoreError, x_spend};

/// Parses `7d`, `24h`, `30m` or `2w` into milliseconds.
pub fn parse_since(s: &str) -> Result<Millis, String> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write for example 7d, 24h, 30m or 2w"))?;
    let ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" | "" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(format!("unknown unit in `{s}`: use m, h, d or w")),
    };
    Ok(n * ms)
}

/// The report, ready to print or serialise.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Start of the period (Unix ms).
    pub since: Millis,
    /// Messages per `platform/channel`.
    pub messages: BTreeMap<String, i64>,
    /// Messages per action (reply, escalate, ignore, none).
    pub by_action: BTreeMap<String, i64>,
    /// Messages per winning rule (`(default)` when none won).
    pub by_rule: BTreeMap<String, i64>,
    /// Messages per customer language (ISO 639-1; `unknown` when it was
    /// not read or could not be told).
    pub by_language: BTreeMap<String, i64>,
    /// Tickets opened per customer language, likewise.
    pub tickets_by_language: BTreeMap<String, i64>,
    /// Messages that carried each signal, per UTC day (`YYYY-MM-DD`).
    pub signals_per_day: BTreeMap<String, BTreeMap<String, i64>>,
    /// Automatic replies actually sent.
    pub answered_automatically: i64,
    /// Tickets opened in the period.
    pub tickets_opened: i64,
    /// Tickets solved in the period.
    pub tickets_solved: i64,
    /// Median time to the first human response, in minutes.
    pub first_response_median_min: Option<f64>,
    /// 90th percentile of the same.
    pub first_response_p90_min: Option<f64>,
    /// Tickets whose first response came late or not at all by its due time.
    pub sla_breaches: i64,
    /// Average satisfaction, 1 to 5.
    pub csat_average: Option<f64>,
    /// Answers to the survey.
    pub csat_answers: i64,
    /// The most frequent words in messages no rule matched.
    pub unmatched_top_words: Vec<(String, i64)>,
    /// What X's pay-per-use API charged over the UTC days the period
    /// touches, in dollars.
    pub x_cost_usd: f64,
    /// The same, per endpoint, then per unit of X's price list.
    pub x_cost: BTreeMap<String, BTreeMap<String, Cost>>,
}

/// What one unit of X's price list cost on one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cost {
    /// How many were billed (posts, users, DM events, requests).
    pub units: i64,
    /// What they cost, in dollars.
    pub usd: f64,
}

/// Words too common to say anything about what the rules miss.
const STOP: &[&str] = &[
    "the", "and", "for", "you", "your", "are", "not", "with", "this", "that", "have", "has", "was",
    "but", "can", "our", "les", "des", "une", "est", "pas", "pour", "que", "qui", "vous", "mon",
    "mes", "sur", "dans", "avec", "plus", "par", "suis", "bonjour", "hello", "merci", "thanks",
];

/// Builds the report for the messages and tickets since `now - period`.
pub async fn build(store: &Store, now: Millis, period: Millis) -> Result<Report, StoreError> {
    let since = now - period;
    let mut report = summarize(since, views::activity(store, since, now).await?);
    let spend = x_spend::breakdown(store, utc_day(since)).await?;
    let total = spend
        .iter()
        .fold(Usd::ZERO, |a, (_, _, _, usd)| a.plus(*usd));
    report.x_cost_usd = total.dollars();
    for (endpoint, unit, units, usd) in spend {
        let cost = Cost {
            units,
            usd: usd.dollars(),
        };
        report
            .x_cost
            .entry(endpoint)
            .or_default()
            .insert(unit, cost);
    }
    Ok(report)
}

/// The report from the period's raw figures: medians, averages and the
/// words the rules miss are worked out here, away from the database.
pub fn summarize(since: Millis, a: Activity) -> Report {
    let mut waits = a.first_response_waits;
    waits.sort_unstable();
    let minutes = |p: f64| percentile(&waits, p).map(|ms| ms as f64 / 60_000.0);
    Report {
        since,
        first_response_median_min: minutes(0.5),
        first_response_p90_min: minutes(0.9),
        csat_average: (!a.csat.is_empty())
            .then(|| a.csat.iter().sum::<i64>() as f64 / a.csat.len() as f64),
        csat_answers: a.csat.len() as i64,
        unmatched_top_words: top_words(&a.unmatched_texts, 15),
        messages: a.messages_per_channel,
        by_action: a.messages_per_action,
        by_rule: a.messages_per_rule,
        by_language: a.messages_per_language,
        signals_per_day: signals_per_day(&a.signalled),
        tickets_by_language: a.tickets_per_language,
        answered_automatically: a.auto_replies_sent,
        tickets_opened: a.tickets_opened,
        tickets_solved: a.tickets_solved,
        sla_breaches: a.sla_breaches,
        x_cost_usd: 0.0,
        x_cost: BTreeMap::new(),
    }
}

/// How many messages carried each signal, per UTC day.
fn signals_per_day(signalled: &[(Millis, String)]) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (at, names) in signalled {
        let day = crate::domain::money::day_name(crate::domain::money::utc_day(*at));
        let per = out.entry(day).or_default();
        for n in names.split_whitespace() {
            *per.entry(n.to_owned()).or_default() += 1;
        }
    }
    out
}

/// The value at rank `p` (0 to 1) of `sorted`, the nearest rank rounded;
/// none for an empty list.
fn percentile(sorted: &[Millis], p: f64) -> Option<Millis> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

/// The `n` most frequent words of three letters or more in `texts`, once
/// normalised, the stop words left out; ties in alphabetical order.
fn top_words(texts: &[String], n: usize) -> Vec<(String, i64)> {
    let mut words: HashMap<String, i64> = HashMap::new();
    for text in texts {
        let normalized = normalize(text, true);
        for w in normalized
            .text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 3 && !STOP.contains(w))
        {
            *words.entry(w.to_owned()).or_default() += 1;
        }
    }
    let mut top: Vec<(String, i64)> = words.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(n);
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse() {
        assert_eq!(parse_since("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_since("24h"), Ok(86_400_000));
        assert_eq!(parse_since("2w"), Ok(14 * 86_400_000));
        assert!(parse_since("soon").is_err());
        assert!(parse_since("3y").is_err());
    }

    #[test]
    fn figures_become_minutes_averages_and_missed_words() {
        let a = Activity {
            first_response_waits: vec![30 * 60_000, 10 * 60_000, 20 * 60_000],
            csat: vec![5, 4],
            unmatched_texts: vec![
                "Le débit de la fibre".into(),
                "fibre lente, the fibre".into(),
            ],
            tickets_opened: 3,
            ..Activity::default()
        };
        let r = summarize(1_000, a);
        assert_eq!(r.since, 1_000);
        assert_eq!(r.first_response_median_min, Some(20.0));
        assert_eq!(r.first_response_p90_min, Some(30.0));
        assert_eq!(r.csat_average, Some(4.5));
        assert_eq!(r.csat_answers, 2);
        assert_eq!(r.tickets_opened, 3);
        assert_eq!(
            r.unmatched_top_words,
            vec![
                ("fibre".to_owned(), 3),
                ("debit".to_owned(), 1),
                ("lente".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn an_empty_period_has_no_median_and_no_average() {
        let r = summarize(0, Activity::default());
        assert_eq!(r.first_response_median_min, None);
        assert_eq!(r.csat_average, None);
        assert!(r.unmatched_top_words.is_empty());
    }
}
