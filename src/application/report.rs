//! `helpdesk report`: what reached the brand, what the bot did with it, how
//! the agents did, and what the rules are missing.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::Row;

use crate::domain::clock::Millis;
use crate::rules::normalize::normalize;
use crate::storage::{Store, StoreError};

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
    let pool = store.pool();
    let pairs = |sql: &'static str| async move {
        let rows = sqlx::query(sql).bind(since).fetch_all(pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect::<Result<BTreeMap<_, _>, sqlx::Error>>()
    };
    let messages = pairs(
        "SELECT platform || '/' || channel, COUNT(*) FROM messages WHERE received_at >= $1 GROUP BY platform, channel",
    )
    .await?;
    let by_action =
        pairs("SELECT action, COUNT(*) FROM messages WHERE received_at >= $1 GROUP BY action")
            .await?;
    let by_rule = pairs(
        "SELECT COALESCE(rule_id, '(default)'), COUNT(*) FROM messages WHERE received_at >= $1 GROUP BY COALESCE(rule_id, '(default)')",
    )
    .await?;
    let one = |sql: &'static str| async move {
        sqlx::query(sql)
            .bind(since)
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>(0)
    };
    let answered_automatically = one(
        "SELECT COUNT(*) FROM outbox WHERE origin = 'auto' AND message_id IS NOT NULL AND status = 'sent' AND created_at >= $1",
    )
    .await?;
    let tickets_opened = one("SELECT COUNT(*) FROM tickets WHERE created_at >= $1").await?;
    let tickets_solved = one("SELECT COUNT(*) FROM tickets WHERE solved_at >= $1").await?;
    let breaches: i64 = sqlx::query(
        "SELECT COUNT(*) FROM tickets WHERE created_at >= $1 AND first_response_due IS NOT NULL \
         AND ((first_response_at IS NOT NULL AND first_response_at > first_response_due) \
           OR (first_response_at IS NULL AND first_response_due < $2))",
    )
    .bind(since)
    .bind(now)
    .fetch_one(pool)
    .await?
    .try_get(0)?;
    let mut waits: Vec<i64> = sqlx::query(
        "SELECT first_response_at - created_at FROM tickets WHERE created_at >= $1 AND first_response_at IS NOT NULL",
    )
    .bind(since)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<Result<_, _>>()?;
    waits.sort_unstable();
    let pct = |p: f64| {
        (!waits.is_empty()).then(|| {
            let i = ((waits.len() - 1) as f64 * p).round() as usize;
            waits[i] as f64 / 60_000.0
        })
    };
    let csat: Vec<i64> =
        sqlx::query("SELECT csat FROM tickets WHERE csat IS NOT NULL AND updated_at >= $1")
            .bind(since)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
    let mut words: HashMap<String, i64> = HashMap::new();
    for r in sqlx::query(
        "SELECT text FROM messages WHERE received_at >= $1 AND rule_id IS NULL AND reason IS NULL",
    )
    .bind(since)
    .fetch_all(pool)
    .await?
    {
        let text: String = r.try_get(0)?;
        let n = normalize(&text, true);
        for w in n
            .text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 3 && !STOP.contains(w))
        {
            *words.entry(w.to_owned()).or_default() += 1;
        }
    }
    let mut top: Vec<(String, i64)> = words.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(15);
    Ok(Report {
        since,
        messages,
        by_action,
        by_rule,
        answered_automatically,
        tickets_opened,
        tickets_solved,
        first_response_median_min: pct(0.5),
        first_response_p90_min: pct(0.9),
        sla_breaches: breaches,
        csat_average: (!csat.is_empty())
            .then(|| csat.iter().sum::<i64>() as f64 / csat.len() as f64),
        csat_answers: csat.len() as i64,
        unmatched_top_words: top,
    })
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
}
