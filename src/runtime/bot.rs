//! The bot: its parts assembled, the tasks that run them started, and what
//! `/readyz` reads.
//!
//! The tasks, one file each: [`ingest`](crate::runtime::ingest) (polling
//! each platform and taking what its listener pushes),
//! [`send`](crate::runtime::send) (the outbox sender) and
//! [`maintenance`](crate::runtime::maintenance) (agent actions,
//! auto-close). Every one is spawned through one [`Shutdown`]: they look at
//! its signal only between units of work, so an HTTP poll and the
//! transaction that records it always finish, and a reply being sent is
//! marked before the sender stops; [`Bot::run`] returns once all of them
//! have ended, or the deadline has passed. Unsent rows stay `queued` for
//! the next start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::application::pipeline::{Pipeline, Processed};
use crate::application::sending::{DrainReport, Sender};
use crate::domain::clock::{Clock, Millis};
use crate::domain::{Platform, Stream};
use crate::platforms::{Account, ApiError, Connector, Event};
use crate::rules::RuleSet;
use crate::runtime::alerts::Alerts;
use crate::runtime::config::{Config, HttpLimits};
use crate::runtime::health::Health;
use crate::runtime::ingest::{self, Ingest};
use crate::runtime::listen::ListenError;
use crate::runtime::maintenance::Maintenance;
use crate::runtime::ownership::Roles;
use crate::runtime::reload::SharedRules;
use crate::runtime::schedule::Schedule;
use crate::runtime::send::Sending;
use crate::runtime::shutdown::Shutdown;
use crate::storage::x_spend::XSpend;
use crate::storage::{Store, StoreError};

pub use crate::runtime::ingest::PollError;

/// Identifies the account, waiting out what is only temporary (5xx,
/// timeouts, refused connections, a 429, an unreadable answer) with
/// backoff, so that a platform having a bad minute does not stop a bot
/// that systemd would only restart into the same minute. A refusal (401,
/// 403, any other 4xx) is definitive: the configuration must change.
async fn whoami_at_start(c: &dyn Connector, clock: &Clock) -> Result<Account, ApiError> {
    let mut wait = Duration::from_secs(1);
    loop {
        let why = match c.whoami().await {
            Ok(me) => return Ok(me),
            Err(e) if !temporary_at_start(&e) => return Err(e),
            Err(ApiError::RateLimited { reset_ms }) => {
                let until = (reset_ms - clock.now_ms()).max(1000) as u64;
                wait = wait.max(Duration::from_millis(until.min(15 * 60 * 1000)));
                "rate limited (429)".to_owned()
            }
            Err(e) => e.to_string(),
        };
        tracing::warn!(platform = %c.platform(), error = %why, retry_in_secs = wait.as_secs(),
            "cannot identify the account yet; retrying (a temporary failure)");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

/// Whether an error at start-up is worth waiting out.
fn temporary_at_start(e: &ApiError) -> bool {
    match e {
        ApiError::Transient(_)
        | ApiError::InDoubt(_)
        | ApiError::Malformed(_)
        | ApiError::RateLimited { .. } => true,
        ApiError::Unauthorized
        | ApiError::Duplicate
        | ApiError::Rejected { .. }
        | ApiError::DmClosed(_) => false,
    }
}

/// Who each connector's account is, in configuration order.
async fn identify(
    connectors: &[Arc<dyn Connector>],
    clock: &Clock,
) -> Result<HashMap<Platform, Account>, BotError> {
    let mut accounts = HashMap::new();
    for c in connectors {
        let me = whoami_at_start(c.as_ref(), clock)
            .await
            .map_err(|source| BotError::Whoami {
                platform: c.platform(),
                source,
            })?;
        tracing::info!(platform = %c.platform(), handle = %me.handle, "signed in");
        accounts.insert(c.platform(), me);
    }
    Ok(accounts)
}

/// Records what this start tells the database: each platform's length
/// limit today (agents' replies, from the CLI or SQL, are checked against
/// it, not a default) and, the first time, the first start. Returns the
/// first start.
async fn record_start(
    store: &Store,
    connectors: &[Arc<dyn Connector>],
    clock: &Clock,
) -> Result<Millis, StoreError> {
    for c in connectors {
        store.set_length_limit(c.length_limit().await).await?;
    }
    store.first_start(clock.now_ms()).await
}

/// Why the bot cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A platform refused to say who we are.
    #[error("cannot identify the {platform} account: {source}")]
    Whoami {
        /// Which platform.
        platform: Platform,
        /// What it said.
        source: ApiError,
    },
    /// The endpoint a platform pushes to cannot be served.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// `[incidents] alert_url_env` names no usable URL.
    #[error("{0}")]
    AlertUrl(String),
}

/// A bot assembled from its parts, ready to poll and send.
pub struct Bot {
    ingest: Arc<Ingest>,
    sending: Arc<Sending>,
    maintenance: Arc<Maintenance>,
    alerts: Arc<Alerts>,
    connectors: Vec<Arc<dyn Connector>>,
    roles: Arc<Roles>,
    health: Arc<Health>,
    /// The limits of every endpoint the bot serves.
    http: HttpLimits,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot")
            .field("accounts", &self.ingest.accounts)
            .finish_non_exhaustive()
    }
}

impl Bot {
    /// Identifies each account and records the first start.
    pub async fn new(
        config: &Config,
        store: Store,
        rules: Arc<RuleSet>,
        connectors: Vec<Arc<dyn Connector>>,
        clock: Clock,
    ) -> Result<Bot, BotError> {
        let alerts = Alerts::new(store.clone(), &config.incidents, clock.clone())
            .map_err(BotError::AlertUrl)?;
        // What X's calls cost is kept in the database from the first one on.
        for c in &connectors {
            c.keep_spend_in(Arc::new(XSpend::new(store.clone())));
        }
        let accounts = identify(&connectors, &clock).await?;
        let first_start = record_start(&store, &connectors, &clock).await?;
        let sender = Sender::new(
            store.clone(),
            connectors.clone(),
            config.limits.clone(),
            clock.clone(),
        );
        sender.prime().await?;
        let wake = Arc::new(Notify::new());
        let failing_after = Duration::from_secs(config.stream_failing_secs);
        let health = Arc::new(Health::new(clock.clone(), failing_after));
        let ingest = Ingest {
            pipeline: Pipeline::new(
                &config.limits,
                &config.protection,
                &config.ticket_policy(),
                config.answer_backlog,
                clock.clone(),
            )
            .with_incidents(&config.incidents),
            rules: Arc::new(ArcSwap::new(rules)),
            store: store.clone(),
            accounts,
            first_start,
            clock: clock.clone(),
            wake: wake.clone(),
            health: health.clone(),
        };
        let sending = Sending {
            sender: Arc::new(sender),
            wake: wake.clone(),
            health: health.clone(),
            clock: clock.clone(),
        };
        let maintenance = Maintenance {
            tickets: config.ticket_policy(),
            bots: config.protection.bots.clone(),
            store: store.clone(),
            clock,
            wake,
        };
        Ok(Bot {
            ingest: Arc::new(ingest),
            sending: Arc::new(sending),
            maintenance: Arc::new(maintenance),
            alerts: Arc::new(alerts),
            connectors,
            roles: Arc::new(Roles::for_store(&store)),
            health,
            http: config.http.clone(),
        })
    }

    /// The outbox sender (tests and the demo drive it round by round).
    pub fn sender(&self) -> &Sender {
        &self.sending.sender
    }

    /// The bot's clock.
    pub fn clock(&self) -> &Clock {
        &self.ingest.clock
    }

    /// The rule set in use; the reloader swaps it.
    pub fn rules(&self) -> SharedRules {
        self.ingest.rules.clone()
    }

    /// The connectors, in configuration order.
    pub fn connectors(&self) -> &[Arc<dyn Connector>] {
        &self.connectors
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.ingest.store
    }

    /// The account the bot acts as on `platform` (from `whoami` at start),
    /// if it serves that platform.
    pub fn account(&self, platform: Platform) -> Option<&Account> {
        self.ingest.accounts.get(&platform)
    }

    /// Polls one stream once and records what it brought.
    pub async fn poll_stream(
        &self,
        connector: &dyn Connector,
        stream: Stream,
    ) -> Result<(Vec<Processed>, Option<Duration>), PollError> {
        self.ingest.poll_stream(connector, stream).await
    }

    /// Records events pushed by a platform: the same pipeline and
    /// deduplication as polling, without a cursor.
    pub async fn ingest_events(
        &self,
        platform: Platform,
        events: Vec<Event>,
    ) -> Result<Vec<Processed>, PollError> {
        self.ingest.ingest_events(platform, events).await
    }

    /// Polls every stream of every platform once (the demo and tests).
    pub async fn poll_once(&self) -> Result<Vec<Processed>, PollError> {
        let mut all = Vec::new();
        for c in &self.connectors {
            for s in c.streams() {
                all.extend(self.poll_stream(c.as_ref(), s).await?.0);
            }
        }
        Ok(all)
    }

    /// Polls the first due stream of `c`, if one is due; returns whether it
    /// polled. Tests drive the scheduler with this and a moved clock.
    pub async fn poll_due(&self, c: &dyn Connector, sched: &mut Schedule) -> bool {
        self.ingest.poll_due(c, sched).await.is_some()
    }

    /// A schedule for `c`'s streams, all due now.
    pub fn schedule_for(&self, c: &dyn Connector) -> Schedule {
        self.ingest.schedule_for(c)
    }

    /// Applies the rows external tools put in `agent_actions`, and closes
    /// tickets solved long enough ago. Returns the actions applied.
    pub async fn maintain_once(&self, close: bool) -> Result<usize, StoreError> {
        self.maintenance.once(close).await
    }

    /// One sender round (the demo and tests).
    /// One round of the alerts task (growth, posting, the gauge): the
    /// demo and tests drive it by hand; returns the alerts posted.
    pub async fn alert_once(&self) -> Result<usize, StoreError> {
        self.alerts.once().await
    }

    pub async fn drain_once(&self) -> Result<DrainReport, StoreError> {
        self.sending.sender.drain_once().await
    }

    /// Since when the bot's own database work has been failing, if it is.
    pub fn database_failing_since(&self) -> Option<Millis> {
        self.health.database_failing_since()
    }

    /// The streams that have kept failing for longer than
    /// `stream_failing_secs`, as `platform:stream`, for `/readyz`.
    pub fn failing_streams(&self) -> Vec<String> {
        self.health.failing_streams()
    }

    /// Starts every task of the bot under `shutdown` and returns: for each
    /// platform its ingest (and the endpoint it pushes to, bound now), the
    /// sender, the maintenance. A failed start stops what had started.
    pub async fn start(&self, shutdown: &Shutdown) -> Result<(), BotError> {
        for c in &self.connectors {
            let started = ingest::start(&self.ingest, c, &self.roles, &self.http, shutdown).await;
            if let Err(e) = started {
                shutdown.stop();
                return Err(e.into());
            }
        }
        self.sending.start(self.roles.clone(), shutdown);
        self.maintenance.start(self.roles.clone(), shutdown);
        self.alerts.start(self.roles.clone(), shutdown);
        Ok(())
    }

    /// Runs until `stop` gives the signal, then waits for every task
    /// spawned under it (the bot's, and the endpoints' and watcher's the
    /// caller started there) for at most `deadline` (`None`: however long
    /// it takes). Work still running then is named in the log and left:
    /// a reply being sent is recovered at the next start.
    pub async fn run(
        self: Arc<Self>,
        shutdown: Shutdown,
        deadline: Option<Duration>,
    ) -> Result<(), BotError> {
        let started = self.start(&shutdown).await;
        shutdown.stopped().await;
        if shutdown.wait(deadline).await {
            tracing::info!("stopped; unsent replies stay queued for the next start");
        } else {
            tracing::error!(
                deadline_secs = deadline.unwrap_or_default().as_secs(),
                still_running = shutdown.running(),
                "work in flight did not finish before the shutdown deadline; a reply being sent is recovered at the next start"
            );
        }
        started
    }
}
