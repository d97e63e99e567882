//! Ingest: poll each platform's streams on its schedule, take what its
//! listener pushes, and hand both to the pipeline.
//!
//! One polling task per platform, on the instance that holds its
//! `ingest:<platform>` role. A platform that pushes through a stream the
//! bot opens has it held by that same task's instance, and its health sets
//! the polling pace ([`PushState`]). A platform that calls an endpoint has
//! it served, and its deliveries recorded, on every instance: the platform
//! may call any of them. Either way a pushed event never moves a cursor:
//! polling stays the ledger, and the store drops what both brought.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::application::pipeline::{Context, Pipeline, Processed};
use crate::domain::clock::{Clock, Millis};
use crate::domain::{Platform, Stream};
use crate::platforms::{
    Account, ApiError, Batch, Connector, Endpoint, Event, Listening, Pushed, Receipt,
};
use crate::runtime::config::HttpLimits;
use crate::runtime::health::Health;
use crate::runtime::listen::{self, ListenError};
use crate::runtime::ownership::Roles;
use crate::runtime::reload::SharedRules;
use crate::runtime::schedule::{Polled, Schedule};
use crate::runtime::shutdown::Shutdown;
use crate::storage::{Store, StoreError};

/// Why one poll did not complete (nothing is lost: the cursor did not move).
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The platform failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What every ingest task shares: where events go and what they are
/// checked against.
#[derive(Debug)]
pub struct Ingest {
    pub(super) store: Store,
    /// Swapped by the reloader; a batch keeps the set it started with.
    pub(super) rules: SharedRules,
    pub(super) pipeline: Pipeline,
    /// The account the bot acts as on each platform (from `whoami`).
    pub(super) accounts: HashMap<Platform, Account>,
    /// Messages written before it are recorded, not answered.
    pub(super) first_start: Millis,
    pub(super) clock: Clock,
    /// Wakes the sender when new rows are queued.
    pub(super) wake: Arc<Notify>,
    pub(super) health: Arc<Health>,
}

impl Ingest {
    /// Polls one stream once and records what it brought.
    pub async fn poll_stream(
        &self,
        connector: &dyn Connector,
        stream: Stream,
    ) -> Result<(Vec<Processed>, Option<Duration>), PollError> {
        let platform = connector.platform();
        let cursor = self.store.cursor(platform, stream).await?;
        let batch = connector.poll(stream, cursor.as_deref()).await?;
        let processed = self.record(platform, stream, &batch).await?;
        Ok((processed, batch.next_poll))
    }

    /// Records events pushed by a platform: the same pipeline and
    /// deduplication as polling, without a cursor.
    pub async fn ingest_events(
        &self,
        platform: Platform,
        mut events: Vec<Event>,
    ) -> Result<Vec<Processed>, PollError> {
        crate::platforms::sort_as_written(&mut events);
        let batch = Batch {
            events,
            cursor: None,
            next_poll: None,
            skipped: Vec::new(),
        };
        let processed = self.record(platform, Stream::Mentions, &batch).await?;
        if processed.iter().any(|p| !p.duplicate) {
            self.wake.notify_one();
        }
        Ok(processed)
    }

    async fn record(
        &self,
        platform: Platform,
        stream: Stream,
        batch: &Batch,
    ) -> Result<Vec<Processed>, StoreError> {
        let ctx = Context {
            me: &self.accounts[&platform],
            first_start: self.first_start,
            platform,
        };
        // The batch keeps the rules it started with, whatever reloads meanwhile.
        let rules = self.rules.load_full();
        self.pipeline
            .ingest(&self.store, &rules, &ctx, stream, batch)
            .await
    }

    /// A schedule for `c`'s streams, all due now.
    pub fn schedule_for(&self, c: &dyn Connector) -> Schedule {
        Schedule::new(c.streams(), self.clock.now_ms(), Duration::from_secs(60))
    }

    /// Polls the first due stream of `c`, if one is due; says which stream
    /// it polled and how many new messages that poll brought.
    pub async fn poll_due(
        &self,
        c: &dyn Connector,
        sched: &mut Schedule,
    ) -> Option<(Stream, usize)> {
        let s = sched.due(self.clock.now_ms())?;
        let mut fresh = 0;
        let outcome = match self.poll_stream(c, s).await {
            Ok((processed, next)) => {
                fresh = processed.iter().filter(|p| !p.duplicate).count();
                if fresh > 0 {
                    self.wake.notify_one();
                }
                Polled::Ok(next)
            }
            Err(PollError::Api(ApiError::RateLimited { reset_ms })) => {
                tracing::warn!(
                    stream = s.as_str(),
                    reset_ms,
                    "polling rate limited (429): no request before the reset"
                );
                Polled::RateLimited(reset_ms)
            }
            Err(e) => {
                if matches!(e, PollError::Store(_)) {
                    self.health.note_database(false);
                }
                tracing::warn!(stream = s.as_str(), error = %e, "poll failed; nothing was lost, retrying with backoff");
                Polled::Failed
            }
        };
        self.after_poll(c, s, outcome, sched);
        Some((s, fresh))
    }

    /// Records a poll's outcome in the health report and the schedule.
    fn after_poll(&self, c: &dyn Connector, s: Stream, outcome: Polled, sched: &mut Schedule) {
        if !matches!(outcome, Polled::Failed) {
            self.health.note_database(true);
        }
        self.health.note_stream(c.platform(), s, &outcome);
        sched.record(s, outcome, self.clock.now_ms());
        if sched.cycle_done()
            && let Some(line) = c.usage_line()
        {
            tracing::info!(platform = %c.platform(), "{line}");
        }
    }

    /// Records one delivery and tells the platform's listener how it went.
    async fn take_delivery(&self, platform: Platform, events: Vec<Event>, receipt: Receipt) {
        let r = self.ingest_events(platform, events).await;
        if let Err(e) = &r {
            tracing::error!(%platform, error = %e, "pushed events not recorded; the platform's retry or the next poll brings them again");
        }
        let _ = receipt.send(r.map(|_| ()).map_err(|e| e.to_string()));
    }
}

/// Starts what brings `c`'s events in until `shutdown`: the polling task
/// and, for a platform that calls an endpoint, the endpoint (bound now, so
/// a taken address stops the start) and the task taking its deliveries.
pub async fn start(
    ingest: &Arc<Ingest>,
    c: &Arc<dyn Connector>,
    roles: &Arc<Roles>,
    limits: &HttpLimits,
    shutdown: &Shutdown,
) -> Result<(), ListenError> {
    if let Some(Listening::Endpoint(ep)) = c.listening() {
        start_endpoint(ingest, c, ep, limits, shutdown).await?;
    }
    let (ingest, c, roles) = (ingest.clone(), c.clone(), roles.clone());
    shutdown.spawn(poll_loop(ingest, c, roles, shutdown.clone()));
    Ok(())
}

/// Serves `ep` and records what its listener passes on, on this instance
/// whatever its roles.
async fn start_endpoint(
    ingest: &Arc<Ingest>,
    c: &Arc<dyn Connector>,
    ep: Endpoint,
    limits: &HttpLimits,
    shutdown: &Shutdown,
) -> Result<(), ListenError> {
    listen::serve_endpoint(c.platform(), ep, limits.clone(), shutdown).await?;
    let (tx, rx) = mpsc::channel(256);
    let clock = ingest.clock.clone();
    shutdown.spawn(listen::hold(c.clone(), tx, clock, shutdown.clone()));
    let (ingest, platform) = (ingest.clone(), c.platform());
    shutdown.spawn(take_deliveries(ingest, platform, rx, shutdown.clone()));
    Ok(())
}

/// Records what an endpoint's listener passes on, until the bot stops.
async fn take_deliveries(
    ingest: Arc<Ingest>,
    platform: Platform,
    mut rx: mpsc::Receiver<Pushed>,
    shutdown: Shutdown,
) {
    loop {
        let m = tokio::select! {
            m = rx.recv() => m,
            _ = shutdown.stopped() => return,
        };
        match m {
            None => return,
            Some(Pushed::Delivered { events, receipt }) => {
                ingest.take_delivery(platform, events, receipt).await;
            }
            Some(Pushed::Event(e)) => {
                if let Err(e) = ingest.ingest_events(platform, vec![e]).await {
                    tracing::error!(%platform, error = %e, "a pushed event was not recorded; the next poll brings it");
                }
            }
            // An endpoint has no connection to speak of: polling keeps its pace.
            Some(Pushed::Connected) => {}
            Some(Pushed::Lost(reason)) => {
                tracing::debug!(%platform, %reason, "endpoint listener ended")
            }
        }
    }
}

/// Polls `c`'s streams on their schedule while this instance holds the
/// platform's ingest role, holding its push stream (if any) meanwhile.
async fn poll_loop(
    ingest: Arc<Ingest>,
    c: Arc<dyn Connector>,
    roles: Arc<Roles>,
    shutdown: Shutdown,
) {
    let mut sched = ingest.schedule_for(c.as_ref());
    let role = format!("ingest:{}", c.platform());
    let (tx, mut rx) = mpsc::channel::<Pushed>(256);
    let mut push = PushState::default();
    while !shutdown.is_stopping() {
        if !roles.wait_for(&role, &shutdown).await {
            continue;
        }
        // Only the instance that ingests holds the stream open.
        if let (Some(Listening::Stream { .. }), false) = (c.listening(), push.listening) {
            push.listening = true;
            let clock = ingest.clock.clone();
            shutdown.spawn(listen::hold(c.clone(), tx.clone(), clock, shutdown.clone()));
        }
        if let Some((stream, fresh)) = ingest.poll_due(c.as_ref(), &mut sched).await {
            let now = ingest.clock.now_ms();
            push.after_poll(c.as_ref(), stream, fresh, &mut sched, now);
            continue;
        }
        let now = ingest.clock.now_ms();
        let next = sched.next_due().unwrap_or(now + 1000);
        let wait = Duration::from_millis((next - now).clamp(10, 60_000) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            Some(m) = rx.recv() => {
                // Whatever else is already waiting goes in the same batch.
                let mut pushed = vec![m];
                while let Ok(m) = rx.try_recv() {
                    pushed.push(m);
                }
                take_pushed(&ingest, c.as_ref(), pushed, &mut push, &mut sched).await;
            }
            _ = shutdown.stopped() => {}
        }
    }
}

/// Records what a push stream brought and adjusts polling to the stream's
/// health: a poll right after every connection and every drop (so the
/// switch leaves no gap), slow safety polls while it is up.
async fn take_pushed(
    ingest: &Ingest,
    c: &dyn Connector,
    pushed: Vec<Pushed>,
    push: &mut PushState,
    sched: &mut Schedule,
) {
    let platform = c.platform();
    let now = ingest.clock.now_ms();
    let mut events = Vec::new();
    for m in pushed {
        match m {
            Pushed::Event(e) => events.push(e),
            Pushed::Delivered { events, receipt } => {
                ingest.take_delivery(platform, events, receipt).await;
            }
            Pushed::Connected => push.connected(platform, sched, now),
            Pushed::Lost(reason) => push.lost(platform, &reason, sched, now),
        }
    }
    if events.is_empty() {
        return;
    }
    metrics::counter!("helpdesk_stream_events_total", "platform" => platform.as_str())
        .increment(events.len() as u64);
    if let Err(e) = ingest.ingest_events(platform, events).await {
        // The cursor never moved for them: the next poll brings them.
        tracing::error!(%platform, error = %e, "streamed events not recorded; polling now");
        sched.poll_now(ingest.clock.now_ms());
    }
}

/// How a platform's push stream is doing, as the polling task sees it.
#[derive(Debug, Default)]
struct PushState {
    /// A listener task holds (or keeps reopening) the stream.
    listening: bool,
    /// The stream is connected.
    live: bool,
    /// No poll since it connected found a message it had missed.
    trusted: bool,
    /// The next poll is the one covering the connection itself.
    catch_up: bool,
}

impl PushState {
    /// The stream (re)connected: poll once to cover the switch.
    fn connected(&mut self, platform: Platform, sched: &mut Schedule, now: Millis) {
        tracing::info!(%platform, "stream connected; polling once to cover the switch, then every safety interval");
        metrics::gauge!("helpdesk_stream_connected", "platform" => platform.as_str()).set(1.0);
        self.live = true;
        self.trusted = true;
        self.catch_up = true;
        sched.poll_now(now);
    }

    /// The stream dropped: poll now, and at the normal pace until it is back.
    fn lost(&mut self, platform: Platform, reason: &str, sched: &mut Schedule, now: Millis) {
        // A failed reconnection changes nothing: polling already runs.
        if std::mem::take(&mut self.live) {
            tracing::warn!(%platform, %reason, "stream lost; polling until it is back");
            metrics::gauge!("helpdesk_stream_connected", "platform" => platform.as_str()).set(0.0);
            sched.poll_now(now);
        } else {
            tracing::debug!(%platform, %reason, "stream still down");
        }
    }

    /// After a poll while the stream is up: slow the next one down, unless
    /// this poll found what the stream should have brought.
    fn after_poll(
        &mut self,
        c: &dyn Connector,
        stream: Stream,
        fresh: usize,
        sched: &mut Schedule,
        now: Millis,
    ) {
        let Some(Listening::Stream { safety_poll }) = c.listening() else {
            return;
        };
        if !self.live {
            return;
        }
        if std::mem::take(&mut self.catch_up) {
            // Messages written before the stream opened: expected.
        } else if fresh > 0 && self.trusted {
            self.trusted = false;
            tracing::warn!(platform = %c.platform(), missed = fresh, "the stream missed messages that polling found; polling at the normal pace while it stays connected");
        }
        if self.trusted {
            sched.defer(stream, now + safety_poll.as_millis() as Millis);
        }
    }
}
