//! The maintenance task: applies the rows external tools put in
//! `agent_actions`, and closes tickets solved long enough ago, on the
//! instance that holds the `maintenance` role.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::application::tickets::{self, TicketPolicy};
use crate::domain::clock::Clock;
use crate::runtime::ownership::Roles;
use crate::runtime::shutdown::Shutdown;
use crate::storage::{Store, StoreError};

/// `agent_actions` are applied within 2 s: looked at this often, on both
/// backends.
const ROUND: Duration = Duration::from_millis(500);
/// Solved tickets are looked at every this many rounds (a minute).
const CLOSE_EVERY: u64 = 120;

/// What the maintenance task needs.
pub struct Maintenance {
    pub(super) store: Store,
    pub(super) tickets: TicketPolicy,
    /// Accounts known to be bots (`[protection] bots`), which agents'
    /// replies never address.
    pub(super) bots: Vec<String>,
    pub(super) clock: Clock,
    /// Rung when an action queued a reply.
    pub(super) wake: Arc<Notify>,
}

impl Maintenance {
    /// Applies new agent actions and, when `close`, closes tickets solved
    /// long enough ago. Returns the actions applied.
    pub async fn once(&self, close: bool) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let n = tickets::apply_agent_actions(&self.store, &self.tickets, &self.bots, now).await?;
        if n > 0 {
            self.wake.notify_one();
        }
        if close {
            let closed = tickets::auto_close(&self.store, &self.tickets, now).await?;
            if closed > 0 {
                tracing::info!(closed, "tickets closed after their solved period");
            }
        }
        Ok(n)
    }

    /// Spawns the maintenance task.
    pub fn start(self: &Arc<Self>, roles: Arc<Roles>, shutdown: &Shutdown) {
        shutdown.spawn(self.clone().run(roles, shutdown.clone()));
    }

    async fn run(self: Arc<Self>, roles: Arc<Roles>, shutdown: Shutdown) {
        let mut round: u64 = 0;
        while !shutdown.is_stopping() {
            if !roles.wait_for("maintenance", &shutdown).await {
                continue;
            }
            if let Err(e) = self.once(round.is_multiple_of(CLOSE_EVERY)).await {
                tracing::error!(error = %e, "agent actions round failed; retrying");
            }
            round += 1;
            shutdown.sleep(ROUND).await;
        }
    }
}
