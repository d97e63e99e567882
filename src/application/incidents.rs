//! Incidents: a surge of one rule's matches becomes one incident, one
//! ticket in queue `incidents`, one answer per customer and one closing
//! notice each.
//!
//! A rule is watched when it has `incident_reply` or `incident_resolved`
//! (a rule with neither, such as a refund FAQ during a sale, never opens
//! one). Detection runs in the pipeline's transaction, message by message
//! ([`crate::application::pipeline`]): the decision is [`crosses`] (pure),
//! on counts the store gives (distinct customers of the rule written
//! within `window_mins`; the same at the same time in the four weeks
//! before, [`Baseline`]). Closing ([`close`]) queues the notices, spread
//! at the global budget's pace, and the `closed` alert. Alerts are
//! documents queued with the change; the runtime posts them with
//! retries ([`next_attempt`]).

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::domain::clock::{Millis, rfc3339};
use crate::domain::limits::Limits;
use crate::domain::secret::Secret;
use crate::domain::states::{AlertKind, EventKind, IncidentStatus, Origin, TicketStatus};
use crate::domain::{IncidentRef, Platform};
use crate::platforms::chat::{self, AlertEvent, AlertSample, IncidentAlert};
use crate::storage::incidents::{self, Row, Sample};
use crate::storage::ticket_events::{self, NewEvent};
use crate::storage::{Backend, Store, StoreError, outbox, tickets};

/// `[incidents]` in the configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentPolicy {
    /// At least this many distinct customers within the window…
    pub min_customers: u32,
    /// …of this many minutes…
    pub window_mins: u32,
    /// …and at least this many times the usual count for such a window at
    /// this time of the week.
    pub over_baseline: f64,
    /// The environment variable holding the URL of a Slack or Mattermost
    /// incoming webhook (a secret: never in the file); absent: no alerts.
    pub alert_url_env: Option<String>,
    /// A link to a ticket for the alerts, `{ticket}` standing for `T-1042`.
    pub ticket_url: Option<String>,
    /// The webhook's URL, read from the variable `alert_url_env` names by
    /// the bot as it starts (agents' commands never need it; tests set it).
    #[serde(skip)]
    pub alert_url: Option<Secret>,
}

impl Default for IncidentPolicy {
    fn default() -> Self {
        IncidentPolicy {
            min_customers: 20,
            window_mins: 10,
            over_baseline: 3.0,
            alert_url_env: None,
            ticket_url: None,
            alert_url: None,
        }
    }
}

impl IncidentPolicy {
    /// The window in milliseconds.
    pub fn window_ms(&self) -> Millis {
        self.window_mins as Millis * 60_000
    }

    /// Why the values cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.min_customers < 2 {
            return Err(format!(
                "incidents.min_customers = {} is below 2: one customer is not a surge; set it to 2 or more (default 20)",
                self.min_customers
            ));
        }
        if !(1..=1440).contains(&self.window_mins) {
            return Err(format!(
                "incidents.window_mins = {} is out of range: set 1 to 1440 minutes (default 10)",
                self.window_mins
            ));
        }
        if !self.over_baseline.is_finite() || self.over_baseline < 1.0 {
            return Err(format!(
                "incidents.over_baseline = {} must be a number of at least 1 (default 3.0): a surge is more than the usual",
                self.over_baseline
            ));
        }
        if let Some(u) = &self.ticket_url
            && (!u.contains("{ticket}") || !(u.starts_with("https://") || u.starts_with("http://")))
        {
            return Err(format!(
                "incidents.ticket_url `{u}` must be an http(s) URL with {{ticket}} where the reference goes, such as https://helpdesk.example.com/tickets/{{ticket}}"
            ));
        }
        if let Some(v) = &self.alert_url_env
            && (v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(format!(
                "incidents.alert_url_env `{v}` is not a variable name: name the environment variable that holds the webhook URL, such as HELPDESK_ALERT_URL"
            ));
        }
        Ok(())
    }

    /// Reads the alert URL from the variable `alert_url_env` names, through
    /// `env`; an error says what is wrong.
    pub fn read_alert_url(
        &mut self,
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<(), String> {
        let Some(var) = &self.alert_url_env else {
            return Ok(());
        };
        let url = env(var)
            .and_then(|v| v.into_string().ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("the environment variable {var} is not set: export it with the URL of the Slack or Mattermost incoming webhook that [incidents] alert_url_env names, or remove alert_url_env"))?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "the environment variable {var} does not hold an http:// or https:// URL: set it to the incoming webhook's URL"
            ));
        }
        self.alert_url = Some(Secret::new(url));
        Ok(())
    }

    /// Whether alerts are on: a URL is configured (the bot that posts
    /// them reads it; an agent's command only queues them).
    pub fn alerts_on(&self) -> bool {
        self.alert_url_env.is_some() || self.alert_url.is_some()
    }

    /// The link to `ticket`, when configured.
    fn link(&self, ticket: &str) -> Option<String> {
        self.ticket_url
            .as_ref()
            .map(|u| u.replace("{ticket}", ticket))
    }
}

/// The usual count for a window at this time of the week, from the four
/// weeks before: for each week the rule was already matching, the larger
/// of the distinct customers in the same window a week earlier and the
/// hour around it scaled to the window, then their mean. No history: 0.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Baseline {
    sum: f64,
    weeks: u32,
}

/// A week, in milliseconds.
pub const WEEK_MS: Millis = 7 * 86_400_000;
/// Weeks of history the baseline reads.
pub const BASELINE_WEEKS: i64 = 4;

impl Baseline {
    /// Adds a week: `aligned`, the customers in the same window then;
    /// `hour`, those in the 60 minutes around it.
    pub fn add_week(&mut self, aligned: i64, hour: i64, window_mins: u32) {
        let scaled = hour as f64 * window_mins as f64 / 60.0;
        self.sum += (aligned as f64).max(scaled);
        self.weeks += 1;
    }

    /// The mean over the weeks added; 0 without any.
    pub fn value(&self) -> f64 {
        if self.weeks == 0 {
            0.0
        } else {
            self.sum / self.weeks as f64
        }
    }
}

/// Whether `customers` distinct customers in the window open an incident
/// over `baseline`. Pure.
pub fn crosses(customers: usize, baseline: f64, p: &IncidentPolicy) -> bool {
    customers >= p.min_customers as usize && customers as f64 >= p.over_baseline * baseline
}

/// Reads the baseline of `rule` at `now` from the stored messages.
pub async fn baseline(
    conn: &mut AnyConnection,
    rule: &str,
    now: Millis,
    p: &IncidentPolicy,
) -> Result<f64, StoreError> {
    let Some(first) = incidents::first_match(conn, rule).await? else {
        return Ok(0.0);
    };
    let mut b = Baseline::default();
    for k in 1..=BASELINE_WEEKS {
        let then = now - k * WEEK_MS;
        let hour = (then - 1_800_000, then + 1_800_000);
        if first > hour.0 {
            break;
        }
        let aligned =
            incidents::customers_between(conn, rule, (then - p.window_ms(), then)).await?;
        let around = incidents::customers_between(conn, rule, hour).await?;
        b.add_week(aligned, around, p.window_mins);
    }
    Ok(b.value())
}

/// When an alert that failed `attempts` times (this one included) is
/// tried again: 10 s after the first failure, doubling, at most 15
/// minutes apart; `None` after 12 attempts (some two hours), when it is
/// given up.
pub fn next_attempt(attempts: i64, now: Millis) -> Option<Millis> {
    if attempts >= 12 {
        return None;
    }
    let wait = (10_000i64 << (attempts - 1).clamp(0, 20)).min(900_000);
    Some(now + wait)
}

/// The alert about `row` as posted: its facts and latest messages.
pub fn alert(
    event: AlertEvent,
    row: &Row,
    samples: &[Sample],
    notices: Option<i64>,
    p: &IncidentPolicy,
) -> String {
    let ticket = row.ticket.map(|t| t.to_string());
    let minutes = ((row.last_message_at - row.first_message_at) as f64 / 60_000.0).max(1.0);
    IncidentAlert {
        event,
        id: row.id.to_string(),
        rule: row.rule.clone(),
        status: row.status.to_string(),
        customers: row.customers,
        messages: row.messages,
        window_mins: p.window_mins,
        window_customers: row.window_customers,
        baseline: (row.baseline * 10.0).round() / 10.0,
        rate_per_min: (row.customers as f64 / minutes * 10.0).round() / 10.0,
        opened_at: rfc3339(row.opened_at),
        first_message_at: rfc3339(row.first_message_at),
        last_message_at: rfc3339(row.last_message_at),
        closed_at: row.closed_at.map(rfc3339),
        closed_by: row.closed_by.clone(),
        ticket_url: ticket.as_deref().and_then(|t| p.link(t)),
        ticket,
        notices,
        samples: samples
            .iter()
            .map(|s| AlertSample {
                platform: s.platform.to_string(),
                handle: chat::for_chat(&format!("@{}", s.handle)),
                text: chat::for_chat(&s.text),
            })
            .collect(),
    }
    .document()
    .to_string()
}

/// Queues an alert about incident `id` as it stands in `conn`'s
/// transaction, when alerts are on.
pub async fn queue_alert(
    conn: &mut AnyConnection,
    backend: Backend,
    (id, event): (IncidentRef, AlertEvent),
    notices: Option<i64>,
    p: &IncidentPolicy,
    now: Millis,
) -> Result<(), StoreError> {
    if !p.alerts_on() {
        return Ok(());
    }
    let Some(row) = incidents::lock(conn, backend, id).await? else {
        return Ok(());
    };
    // Read under the lock: an incident closed, or no larger, since it was
    // listed as growing is not announced as growing.
    if event == AlertEvent::Growing
        && (row.status != IncidentStatus::Open || row.customers <= row.alerted_customers)
    {
        return Ok(());
    }
    let samples = incidents::samples(conn, &row.rule, row.last_message_at, 3).await?;
    let kind = match event {
        AlertEvent::Opened => AlertKind::Opened,
        AlertEvent::Growing => AlertKind::Growing,
        AlertEvent::Closed => AlertKind::Closed,
    };
    let body = alert(event, &row, &samples, notices, p);
    incidents::queue_alert(conn, id, (kind, &body), row.customers, now).await
}

/// Why an incident could not be closed.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    /// No such incident.
    #[error("no incident {0}: `helpdesk incidents list --all` shows the ones that exist")]
    NotFound(IncidentRef),
    /// It is closed already.
    #[error("{0} is closed already; its customers were sent the closing notice then")]
    Closed(IncidentRef),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What closing an incident did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The incident.
    pub id: IncidentRef,
    /// Closing notices queued.
    pub notices: i64,
}

/// Closes incident `id` on behalf of `agent` in one transaction.
pub async fn close(
    store: &Store,
    id: IncidentRef,
    agent: &str,
    (limits, p): (&Limits, &IncidentPolicy),
    now: Millis,
) -> Result<Closed, CloseError> {
    let mut tx = store.begin().await?;
    let closed = close_in(&mut tx, store.backend(), id, agent, (limits, p), now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(closed)
}

/// [`close`] inside the caller's transaction (an agent closing the
/// incident's ticket does it this way): the incident and its ticket
/// closed, every customer's notice queued once, at the global budget's
/// pace per platform (a notice's age, for `reply_max_age_secs`, counts
/// from its turn), and the `closed` alert.
pub async fn close_in(
    conn: &mut AnyConnection,
    backend: Backend,
    id: IncidentRef,
    agent: &str,
    (limits, p): (&Limits, &IncidentPolicy),
    now: Millis,
) -> Result<Closed, CloseError> {
    let row = incidents::lock(conn, backend, id)
        .await?
        .ok_or(CloseError::NotFound(id))?;
    if !incidents::close(conn, id, agent, now).await? {
        return Err(CloseError::Closed(id));
    }
    // "Our teams are on it" still waiting would now come after, or beside,
    // "it is fixed", and spend the budget the notices need.
    if let Some(t) = row.ticket {
        outbox::expire_waiting_automatic(conn, t, now).await?;
    }
    let pace = limits.global.per_secs as Millis * 1000 / limits.global.replies.max(1) as Millis;
    let mut turn: std::collections::HashMap<Platform, Millis> = Default::default();
    let notices = incidents::notices(conn, id).await?;
    for n in &notices {
        let t = turn.entry(n.platform).or_insert(0);
        let due = now + *t * pace;
        *t += 1;
        let row = outbox::NewRow {
            platform: n.platform,
            kind: n.kind,
            origin: Origin::Auto,
            ticket: row.ticket,
            customer_id: &n.customer_id,
            handle: &n.handle,
            conversation: &n.conversation,
            in_reply_to: &n.in_reply_to,
            text: &n.text,
        };
        let out = outbox::insert_due(conn, &row, now, due).await?;
        incidents::notice_queued(conn, id, (n.platform, &n.customer_id), out).await?;
    }
    let count = notices.len() as i64;
    if let Some(t) = row.ticket {
        let note = format!(
            "incident {id} closed by {agent}: {count} closing notices queued to {} customers",
            row.customers
        );
        // Locked after the incident, as every path does: an agent's claim
        // of the ticket meanwhile cannot leave it open for good.
        if let Some(locked) = tickets::lock(conn, backend, t).await?
            && locked.status != TicketStatus::Closed
            && !tickets::set_status(
                conn,
                t,
                agent,
                (locked.status, TicketStatus::Closed),
                None,
                now,
            )
            .await?
        {
            return Err(
                StoreError::Inconsistent("the incident's ticket changed under its lock").into(),
            );
        }
        ticket_events::insert(
            conn,
            &NewEvent::new(t, "bot", EventKind::System).body(&note),
            now,
        )
        .await?;
    }
    queue_alert(conn, backend, (id, AlertEvent::Closed), Some(count), p, now).await?;
    tracing::info!(incident = %id, rule = %row.rule, customers = row.customers, notices = count, "incident closed");
    Ok(Closed { id, notices: count })
}

/// Queues a `growing` alert for each open incident that gained customers
/// since its last alert, at most every 15 minutes; how many.
pub async fn alert_growth(
    store: &Store,
    p: &IncidentPolicy,
    now: Millis,
) -> Result<usize, StoreError> {
    if !p.alerts_on() {
        return Ok(0);
    }
    let grown = incidents::grown_since_alert(store, now - GROWING_EVERY_MS).await?;
    for row in &grown {
        let mut tx = store.begin().await?;
        queue_alert(
            &mut tx,
            store.backend(),
            (row.id, AlertEvent::Growing),
            None,
            p,
            now,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(incident = %row.id, rule = %row.rule, customers = row.customers, "incident growing");
    }
    Ok(grown.len())
}

/// An open incident that grows is announced again after this long.
pub const GROWING_EVERY_MS: Millis = 15 * 60_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_surge_must_pass_both_thresholds() {
        let p = IncidentPolicy::default();
        assert!(!crosses(19, 0.0, &p));
        assert!(crosses(20, 0.0, &p));
        // Usually 10 in such a window: 30 is needed.
        assert!(!crosses(29, 10.0, &p));
        assert!(crosses(30, 10.0, &p));
    }

    #[test]
    fn the_baseline_is_the_mean_of_the_weeks_seen() {
        assert_eq!(Baseline::default().value(), 0.0);
        let mut b = Baseline::default();
        // 60 in the same window; 60 in the hour (10 per 10 min): 60.
        b.add_week(60, 60, 10);
        // 0 in the window, 120 in the hour: 20.
        b.add_week(0, 120, 10);
        assert_eq!(b.value(), 40.0);
    }

    #[test]
    fn alerts_back_off_then_give_up() {
        assert_eq!(next_attempt(1, 0), Some(10_000));
        assert_eq!(next_attempt(2, 0), Some(20_000));
        assert_eq!(next_attempt(10, 0), Some(900_000));
        assert_eq!(next_attempt(12, 0), None);
    }

    #[test]
    fn settings_are_checked() {
        let ok = IncidentPolicy::default();
        assert!(ok.check().is_ok());
        for bad in [
            IncidentPolicy {
                min_customers: 1,
                ..ok.clone()
            },
            IncidentPolicy {
                window_mins: 0,
                ..ok.clone()
            },
            IncidentPolicy {
                over_baseline: 0.5,
                ..ok.clone()
            },
            IncidentPolicy {
                over_baseline: f64::NAN,
                ..ok.clone()
            },
            IncidentPolicy {
                ticket_url: Some("https://x/".into()),
                ..ok.clone()
            },
            IncidentPolicy {
                alert_url_env: Some("A-B".into()),
                ..ok.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
