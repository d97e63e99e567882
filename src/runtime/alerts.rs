//! The alerts task: on the instance that holds the `alerts` role, every
//! 2 s, queues a `growing` alert for each open incident that gained
//! customers (at most every 15 minutes), posts the queued alerts to the
//! team's chat (`[incidents] alert_url_env`) with retries, and sets the
//! `helpdesk_incidents_open` gauge.
//!
//! A task of its own: a chat endpoint that hangs for its 10 s timeout
//! delays only the next alert, never a poll, a reply or an agent action.

use std::sync::Arc;
use std::time::Duration;

use crate::application::incidents::{self, IncidentPolicy, next_attempt};
use crate::domain::clock::Clock;
use crate::domain::secret::Secret;
use crate::domain::states::AlertStatus;
use crate::platforms::chat::{self, PostError};
use crate::runtime::ownership::Roles;
use crate::runtime::shutdown::Shutdown;
use crate::storage::incidents::{alert_attempted, due_alerts, open_count};
use crate::storage::{Store, StoreError};

/// Looked at this often.
const ROUND: Duration = Duration::from_secs(2);
/// A document the endpoint refused (a 4xx) is tried this many times.
const REFUSED_ATTEMPTS: i64 = 3;

/// What the alerts task needs.
pub struct Alerts {
    pub(super) store: Store,
    pub(super) policy: IncidentPolicy,
    /// The webhook's URL (`[incidents] alert_url_env`).
    pub(super) url: Option<Secret>,
    pub(super) client: reqwest::Client,
    pub(super) clock: Clock,
}

impl Alerts {
    /// The task for `policy`, its URL read from the variable
    /// `alert_url_env` names (unless given already); the error says what
    /// is wrong with it.
    pub fn new(store: Store, policy: &IncidentPolicy, clock: Clock) -> Result<Alerts, String> {
        let mut policy = policy.clone();
        if policy.alert_url.is_none() {
            policy.read_alert_url(|v| std::env::var_os(v))?;
        }
        Ok(Alerts {
            store,
            url: policy.alert_url.clone(),
            policy,
            client: crate::platforms::http::http_client(),
            clock,
        })
    }

    /// One round; returns the alerts posted.
    pub async fn once(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        incidents::alert_growth(&self.store, &self.policy, now).await?;
        metrics::gauge!("helpdesk_incidents_open").set(open_count(&self.store).await? as f64);
        let Some(url) = &self.url else {
            return Ok(0);
        };
        let mut posted = 0;
        for a in due_alerts(&self.store, now).await? {
            let attempts = a.attempts + 1;
            let outcome = chat::post(&self.client, url, &a.body).await;
            let now = self.clock.now_ms();
            let (status, next, why) = match outcome {
                Ok(()) => {
                    posted += 1;
                    tracing::info!(alert = a.id, kind = %a.kind, "incident alert posted");
                    (AlertStatus::Sent, now, None)
                }
                Err(e) => {
                    let retry = match &e {
                        PostError::Retry(_) => next_attempt(attempts, now),
                        PostError::Refused(_) if attempts < REFUSED_ATTEMPTS => {
                            next_attempt(attempts, now)
                        }
                        PostError::Refused(_) => None,
                    };
                    let why = e.to_string();
                    tracing::warn!(alert = a.id, kind = %a.kind, attempts, error = %why,
                        gives_up = retry.is_none(), "incident alert not posted");
                    match retry {
                        Some(next) => (AlertStatus::Queued, next, Some(why)),
                        None => (AlertStatus::Failed, now, Some(why)),
                    }
                }
            };
            alert_attempted(&self.store, a.id, (status, next), why.as_deref(), now).await?;
        }
        Ok(posted)
    }

    /// Spawns the task.
    pub fn start(self: &Arc<Self>, roles: Arc<Roles>, shutdown: &Shutdown) {
        shutdown.spawn(self.clone().run(roles, shutdown.clone()));
    }

    async fn run(self: Arc<Self>, roles: Arc<Roles>, shutdown: Shutdown) {
        while !shutdown.is_stopping() {
            if !roles.wait_for("alerts", &shutdown).await {
                continue;
            }
            if let Err(e) = self.once().await {
                tracing::error!(error = %e, "incident alerts round failed; retrying");
            }
            shutdown.sleep(ROUND).await;
        }
    }
}
