//! The event loop: poll every stream of every platform, hand each batch to
//! the pipeline, and keep the outbox sender draining.
//!
//! Shutdown follows mini-redis: one `watch` channel tells every task to
//! stop; a task only looks at it between units of work, so an HTTP poll and
//! the transaction that records it always finish, and a reply being sent is
//! marked before the sender stops. Unsent rows stay `queued` for the next
//! start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use crate::application::pipeline::{Context, Pipeline, Processed};
use crate::application::sending::{DrainReport, Sender};
use crate::application::tickets::{self, TicketPolicy};
use crate::domain::Platform;
use crate::domain::Stream;
use crate::domain::clock::{Clock, Millis};
use crate::platforms::x::webhook::Delivery;
use crate::platforms::{Account, ApiError, Batch, Connector, Event, Pushed};
use crate::rules::RuleSet;
use crate::runtime::config::Config;
use crate::runtime::ownership::Ownership;
use crate::runtime::reload::SharedRules;
use crate::runtime::schedule::{Polled, Schedule};
use crate::storage::{Store, StoreError};
use arc_swap::ArcSwap;

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
        ApiError::Unauthorized | ApiError::Duplicate | ApiError::Rejected { .. } => false,
    }
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
}

/// A bot assembled from its parts, ready to poll and send.
pub struct Bot {
    store: Store,
    rules: SharedRules,
    pipeline: Pipeline,
    sender: Arc<Sender>,
    connectors: Vec<Arc<dyn Connector>>,
    accounts: HashMap<Platform, Account>,
    first_start: Millis,
    clock: Clock,
    /// Wakes the sender when new rows are queued.
    wake: Notify,
    tickets: TicketPolicy,
    bots: Vec<String>,
    ownership: Ownership,
    /// Since when each stream's polls have been failing (Unix ms); a
    /// stream that polled fine is absent.
    failing: std::sync::Mutex<HashMap<(Platform, Stream), Millis>>,
    /// How long a stream may fail before `/readyz` says so.
    failing_after: Duration,
    /// Since when the bot's database work (polls recorded, outbox rounds)
    /// has been failing.
    db_failing: std::sync::Mutex<Option<Millis>>,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot")
            .field("accounts", &self.accounts)
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
        let mut accounts = HashMap::new();
        for c in &connectors {
            let me = whoami_at_start(c.as_ref(), &clock)
                .await
                .map_err(|source| BotError::Whoami {
                    platform: c.platform(),
                    source,
                })?;
            tracing::info!(platform = %c.platform(), handle = %me.handle, "signed in");
            accounts.insert(c.platform(), me);
        }
        for c in &connectors {
            // Agents' replies (CLI, SQL) are checked against what the
            // platform allows today, not a default.
            store.set_length_limit(c.length_limit().await).await?;
        }
        let first_start = store.first_start(clock.now_ms()).await?;
        let pipeline = Pipeline::new(
            &config.limits,
            &config.protection,
            &config.tickets,
            config.answer_backlog,
            clock.clone(),
        );
        let sender = Arc::new(Sender::new(
            store.clone(),
            connectors.clone(),
            config.limits.clone(),
            clock.clone(),
        ));
        sender.prime().await?;
        Ok(Bot {
            rules: Arc::new(ArcSwap::new(rules)),
            pipeline,
            sender,
            connectors,
            accounts,
            first_start,
            clock,
            wake: Notify::new(),
            tickets: config.tickets.clone(),
            bots: config.protection.bots.clone(),
            ownership: Ownership::for_store(&store),
            store,
            failing: std::sync::Mutex::new(HashMap::new()),
            failing_after: Duration::from_secs(config.stream_failing_secs),
            db_failing: std::sync::Mutex::new(None),
        })
    }

    /// The outbox sender (tests and the demo drive it round by round).
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// The bot's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The rule set in use; the reloader swaps it.
    pub fn rules(&self) -> SharedRules {
        self.rules.clone()
    }

    /// The connectors, in configuration order.
    pub fn connectors(&self) -> &[Arc<dyn Connector>] {
        &self.connectors
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Polls one stream once and records what it brought.
    pub async fn poll_stream(
        &self,
        connector: &dyn Connector,
        stream: Stream,
    ) -> Result<(Vec<Processed>, Option<Duration>), PollError> {
        let platform = connector.platform();
        let cursor = self.store.cursor(platform, stream).await?;
        let batch = connector.poll(stream, cursor.as_deref()).await?;
        let me = &self.accounts[&platform];
        let ctx = Context {
            me,
            first_start: self.first_start,
            platform,
        };
        // The batch keeps the rules it started with, whatever reloads meanwhile.
        let rules = self.rules.load_full();
        let processed = self
            .pipeline
            .ingest(&self.store, &rules, &ctx, stream, &batch)
            .await?;
        Ok((processed, batch.next_poll))
    }

    /// The account the bot acts as on `platform` (from `whoami` at start),
    /// if it serves that platform.
    pub fn account(&self, platform: Platform) -> Option<&Account> {
        self.accounts.get(&platform)
    }

    /// Records events pushed by a platform (webhooks): the same pipeline and
    /// deduplication as polling, without a cursor.
    pub async fn ingest_events(
        &self,
        platform: Platform,
        events: Vec<Event>,
    ) -> Result<Vec<Processed>, PollError> {
        let me = &self.accounts[&platform];
        let ctx = Context {
            me,
            first_start: self.first_start,
            platform,
        };
        let mut events = events;
        crate::platforms::sort_as_written(&mut events);
        let batch = Batch {
            events,
            cursor: None,
            next_poll: None,
            skipped: Vec::new(),
        };
        let rules = self.rules.load_full();
        let processed = self
            .pipeline
            .ingest(&self.store, &rules, &ctx, Stream::Mentions, &batch)
            .await?;
        if processed.iter().any(|p| !p.duplicate) {
            self.wake.notify_one();
        }
        Ok(processed)
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

    /// Runs until `shutdown` turns true: one ingest task per platform and
    /// one sender task. Returns when all of them have stopped.
    pub async fn run(
        self: Arc<Self>,
        shutdown: watch::Receiver<bool>,
        mut webhooks: Option<mpsc::Receiver<Delivery>>,
    ) -> Result<(), BotError> {
        let bot = self;
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(mut rx) = webhooks.take() {
            let (bot, mut stop) = (bot.clone(), shutdown.clone());
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        d = rx.recv() => {
                            let Some((events, ack)) = d else { return };
                            let r = bot.ingest_events(Platform::X, events).await;
                            if let Err(e) = &r {
                                tracing::error!(error = %e, "webhook events not recorded; X or the next poll will bring them again");
                            }
                            let _ = ack.send(r.map(|_| ()).map_err(|e| e.to_string()));
                        }
                        _ = stop.changed() => {
                            if *stop.borrow() { return; }
                        }
                    }
                }
            });
        }
        for c in bot.connectors.clone() {
            let (bot, stop) = (bot.clone(), shutdown.clone());
            tasks.spawn(async move { bot.ingest_loop(c, stop).await });
        }
        {
            let (bot, stop) = (bot.clone(), shutdown.clone());
            tasks.spawn(async move { bot.send_loop(stop).await });
        }
        {
            let (bot, stop) = (bot.clone(), shutdown.clone());
            tasks.spawn(async move { bot.maintenance_loop(stop).await });
        }
        {
            // Reaches into a sender round that is already running.
            let (bot, stop) = (bot.clone(), shutdown.clone());
            tokio::spawn(async move {
                if stopped(stop).await {
                    bot.sender.stop();
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "a bot task panicked");
            }
        }
        tracing::info!("stopped; unsent replies stay queued for the next start");
        Ok(())
    }

    /// Polls the first due stream of `c`, if one is due; returns whether it
    /// polled. Tests drive the scheduler with this and a moved clock.
    pub async fn poll_due(&self, c: &dyn Connector, sched: &mut Schedule) -> bool {
        self.poll_due_counted(c, sched).await.is_some()
    }

    /// [`Bot::poll_due`], saying which stream it polled and how many new
    /// messages that poll brought.
    async fn poll_due_counted(
        &self,
        c: &dyn Connector,
        sched: &mut Schedule,
    ) -> Option<(Stream, usize)> {
        let now = self.clock.now_ms();
        let s = sched.due(now)?;
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
                    self.note_database(false);
                }
                tracing::warn!(stream = s.as_str(), error = %e, "poll failed; nothing was lost, retrying with backoff");
                Polled::Failed
            }
        };
        if !matches!(outcome, Polled::Failed) {
            self.note_database(true);
        }
        self.note_health(c.platform(), s, &outcome);
        sched.record(s, outcome, self.clock.now_ms());
        if sched.cycle_done()
            && let Some(line) = c.usage_line()
        {
            tracing::info!(platform = %c.platform(), "{line}");
        }
        Some((s, fresh))
    }

    /// Remembers whether the last write to the database worked: a database
    /// that answers `SELECT 1` but refuses writes (a SQLite file locked by
    /// another writer, a full disk) is not ready either.
    fn note_database(&self, ok: bool) {
        let mut t = self.db_failing.lock().expect("poisoned");
        match (ok, *t) {
            (true, _) => *t = None,
            (false, None) => *t = Some(self.clock.now_ms()),
            (false, Some(_)) => {}
        }
    }

    /// Since when the bot's own database work has been failing, if it is.
    pub fn database_failing_since(&self) -> Option<Millis> {
        *self.db_failing.lock().expect("poisoned")
    }

    /// Remembers since when a stream has been failing. A 429 is the
    /// platform pacing us, not a failure.
    fn note_health(&self, p: Platform, s: Stream, outcome: &Polled) {
        let mut failing = self.failing.lock().expect("poisoned");
        match outcome {
            Polled::Failed => {
                failing.entry((p, s)).or_insert(self.clock.now_ms());
            }
            _ => {
                failing.remove(&(p, s));
            }
        }
    }

    /// The streams that have kept failing for longer than
    /// `stream_failing_secs`, as `platform:stream`, for `/readyz`.
    pub fn failing_streams(&self) -> Vec<String> {
        let now = self.clock.now_ms();
        let after = self.failing_after.as_millis() as Millis;
        let mut out: Vec<String> = self
            .failing
            .lock()
            .expect("poisoned")
            .iter()
            .filter(|(_, since)| now - **since >= after)
            .map(|((p, s), _)| format!("{p}:{}", s.as_str()))
            .collect();
        out.sort();
        out
    }

    /// A schedule for `c`'s streams, all due now.
    pub fn schedule_for(&self, c: &dyn Connector) -> Schedule {
        Schedule::new(c.streams(), self.clock.now_ms(), Duration::from_secs(60))
    }

    /// Whether this instance holds `role`; sleeps a second when it does not.
    async fn wait_for_role(&self, role: &str, stop: &mut watch::Receiver<bool>) -> bool {
        match self.ownership.owns(&self.store, role).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(e) => tracing::warn!(role, error = %e, "cannot check who owns the role"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
        false
    }

    async fn ingest_loop(&self, c: Arc<dyn Connector>, mut stop: watch::Receiver<bool>) {
        let mut sched = self.schedule_for(c.as_ref());
        let role = format!("ingest:{}", c.platform());
        let (tx, mut rx) = mpsc::channel::<Pushed>(256);
        let mut push = PushState::default();
        loop {
            if *stop.borrow() {
                return;
            }
            if !self.wait_for_role(&role, &mut stop).await {
                continue;
            }
            // Only the instance that ingests holds the stream open.
            if let (Some(_), false) = (c.push_stream(), push.listening) {
                push.listening = true;
                tokio::spawn(hold_stream(
                    c.clone(),
                    tx.clone(),
                    stop.clone(),
                    self.clock.clone(),
                ));
            }
            if let Some((stream, fresh)) = self.poll_due_counted(c.as_ref(), &mut sched).await {
                push.after_poll(c.as_ref(), stream, fresh, &mut sched, self.clock.now_ms());
                continue;
            }
            let now = self.clock.now_ms();
            let next = sched.next_due().unwrap_or(now + 1000);
            let wait = Duration::from_millis((next - now).clamp(10, 60_000) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                m = rx.recv() => {
                    let Some(m) = m else { continue };
                    // Whatever else is already waiting goes in the same batch.
                    let mut pushed = vec![m];
                    while let Ok(m) = rx.try_recv() {
                        pushed.push(m);
                    }
                    self.take_pushed(c.as_ref(), pushed, &mut push, &mut sched).await;
                }
                _ = stop.changed() => {}
            }
        }
    }

    /// Records what a push stream brought and adjusts polling to the
    /// stream's health: a poll right after every connection and every drop
    /// (so the switch leaves no gap), slow safety polls while it is up.
    async fn take_pushed(
        &self,
        c: &dyn Connector,
        pushed: Vec<Pushed>,
        push: &mut PushState,
        sched: &mut Schedule,
    ) {
        let platform = c.platform();
        let mut events = Vec::new();
        for m in pushed {
            match m {
                Pushed::Event(e) => events.push(e),
                Pushed::Connected => {
                    tracing::info!(%platform, "stream connected; polling once to cover the switch, then every safety interval");
                    metrics::gauge!("helpdesk_stream_connected", "platform" => platform.as_str())
                        .set(1.0);
                    push.live = true;
                    push.trusted = true;
                    push.catch_up = true;
                    sched.poll_now(self.clock.now_ms());
                }
                Pushed::Lost(reason) => {
                    // A failed reconnection changes nothing: polling already runs.
                    if std::mem::take(&mut push.live) {
                        tracing::warn!(%platform, %reason, "stream lost; polling until it is back");
                        metrics::gauge!("helpdesk_stream_connected", "platform" => platform.as_str())
                            .set(0.0);
                        sched.poll_now(self.clock.now_ms());
                    } else {
                        tracing::debug!(%platform, %reason, "stream still down");
                    }
                }
            }
        }
        if events.is_empty() {
            return;
        }
        metrics::counter!("helpdesk_stream_events_total", "platform" => platform.as_str())
            .increment(events.len() as u64);
        if let Err(e) = self.ingest_events(platform, events).await {
            // The cursor never moved for them: the next poll brings them.
            tracing::error!(%platform, error = %e, "streamed events not recorded; polling now");
            sched.poll_now(self.clock.now_ms());
        }
    }

    async fn send_loop(&self, mut stop: watch::Receiver<bool>) {
        let mut primed = false;
        loop {
            if *stop.borrow() {
                return;
            }
            // One sender for all instances: the budgets hold across them.
            if !self.wait_for_role("send", &mut stop).await {
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
            let wait = match self.sender.drain_once().await {
                Ok(r) => {
                    self.note_database(true);
                    log_round(&r);
                    match self.sender.next_due().await {
                        Ok(Some(t)) => (t - self.clock.now_ms()).clamp(50, 5_000),
                        _ => 5_000,
                    }
                }
                Err(e) => {
                    self.note_database(false);
                    tracing::error!(error = %e, "outbox round failed; the rows stay queued");
                    5_000
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Applies the rows external tools put in `agent_actions`, and closes
    /// tickets solved long enough ago. Returns the actions applied.
    pub async fn maintain_once(&self, close: bool) -> Result<usize, StoreError> {
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

    async fn maintenance_loop(&self, mut stop: watch::Receiver<bool>) {
        let mut round: u64 = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            if !self.wait_for_role("maintenance", &mut stop).await {
                continue;
            }
            // agent_actions within 2 s: polled every 500 ms on both backends.
            if let Err(e) = self.maintain_once(round.is_multiple_of(120)).await {
                tracing::error!(error = %e, "agent actions round failed; retrying");
            }
            round += 1;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One sender round (the demo and tests).
    pub async fn drain_once(&self) -> Result<DrainReport, StoreError> {
        self.sender.drain_once().await
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

/// How a platform's push stream is doing, as the ingest loop sees it.
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
        let Some(safety) = c.push_stream() else {
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
            sched.defer(stream, now + safety.as_millis() as Millis);
        }
    }
}

/// Holds `c`'s push stream open until `stop`, reconnecting with backoff;
/// tells the ingest loop each time it is lost.
async fn hold_stream(
    c: Arc<dyn Connector>,
    tx: mpsc::Sender<Pushed>,
    stop: watch::Receiver<bool>,
    clock: Clock,
) {
    let platform = c.platform();
    let mut failures: u32 = 0;
    loop {
        let opened = std::time::Instant::now();
        let outcome = tokio::select! {
            r = c.listen(&tx) => r,
            _ = stopped(stop.clone()) => return,
        };
        if opened.elapsed() > Duration::from_secs(30) {
            failures = 0;
        }
        failures += 1;
        // 1 s, doubling to a minute while connections keep failing or
        // closing early, so a flapping server never sets off a storm of
        // reconnections and the polls that cover them.
        let backoff = Duration::from_secs((1u64 << (failures - 1).min(6)).min(60));
        let (reason, pause) = match outcome {
            Ok(()) => ("closed by the server".to_owned(), backoff),
            // No streaming here (404, not an event stream): polling does the
            // job; look again now and then in case it is switched on.
            Err(e @ ApiError::Rejected { .. }) => {
                if failures == 1 {
                    tracing::info!(%platform, error = %e, "no usable streaming API; polling only, trying again in 10 minutes");
                }
                (e.to_string(), Duration::from_secs(600))
            }
            Err(ApiError::RateLimited { reset_ms }) => (
                "rate limited".to_owned(),
                Duration::from_millis((reset_ms - clock.now_ms()).clamp(1000, 900_000) as u64),
            ),
            Err(e) => (e.to_string(), backoff),
        };
        if tx.send(Pushed::Lost(reason)).await.is_err() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped(stop.clone()) => return,
        }
    }
}

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

/// Resolves when `stop` turns true (true), or when its sender is gone (false).
pub async fn stopped(mut stop: watch::Receiver<bool>) -> bool {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return false;
        }
    }
    true
}
