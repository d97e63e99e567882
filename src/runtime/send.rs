//! The sender task: drives `Sender::drain_once` on the instance that holds
//! the `send` role, woken early when new rows are queued.
//!
//! One sender for all instances, so the budgets hold across them. On stop
//! a round already running is asked to stop before its next send (the
//! send in flight finishes and is recorded); unsent rows stay `queued` for
//! the next start.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::application::sending::{DrainReport, Sender};
use crate::domain::clock::{Clock, Millis};
use crate::runtime::health::Health;
use crate::runtime::ownership::Roles;
use crate::runtime::shutdown::Shutdown;

/// The longest pause between two rounds, and the pause after a failed one.
const IDLE_MS: Millis = 5_000;

/// What the sender task needs.
pub struct Sending {
    pub(super) sender: Arc<Sender>,
    /// Rung by ingest and maintenance when they queue rows.
    pub(super) wake: Arc<Notify>,
    pub(super) health: Arc<Health>,
    pub(super) clock: Clock,
}

impl Sending {
    /// Spawns the sender task, and the one that stops a round in progress
    /// when the signal comes.
    pub fn start(self: &Arc<Self>, roles: Arc<Roles>, shutdown: &Shutdown) {
        shutdown.spawn(self.clone().run(roles, shutdown.clone()));
        let (sender, signal) = (self.sender.clone(), shutdown.clone());
        shutdown.spawn(async move {
            signal.stopped().await;
            sender.stop();
        });
    }

    async fn run(self: Arc<Self>, roles: Arc<Roles>, shutdown: Shutdown) {
        let mut primed = false;
        while !shutdown.is_stopping() {
            if !roles.wait_for("send", &shutdown).await {
                primed = false;
                continue;
            }
            if !primed {
                // Taking over: spend what the previous owner already sent.
                match self.sender.prime().await {
                    Ok(()) => primed = true,
                    Err(e) => tracing::warn!(error = %e, "cannot read recent replies; retrying"),
                }
            }
            let wait = Duration::from_millis(self.round().await as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.stopped() => {}
            }
        }
    }

    /// One round; returns how long to wait before the next (ms).
    async fn round(&self) -> Millis {
        match self.sender.drain_once().await {
            Ok(r) => {
                self.health.note_database(true);
                log_round(&r);
                match self.sender.next_due().await {
                    Ok(Some(t)) => (t - self.clock.now_ms()).clamp(50, IDLE_MS),
                    _ => IDLE_MS,
                }
            }
            Err(e) => {
                self.health.note_database(false);
                tracing::error!(error = %e, "outbox round failed; the rows stay queued");
                IDLE_MS
            }
        }
    }
}

fn log_round(r: &DrainReport) {
    if r.progressed() {
        tracing::debug!(
            sent = r.sent,
            held = r.held,
            retried = r.retried,
            failed = r.failed,
            expired = r.expired,
            needs_review = r.needs_review,
            "outbox round"
        );
    }
}
