//! The outbox sender: the only code that sends anything to a platform.
//!
//! # The state machine
//!
//! ```text
//!            lease (CAS)           platform said 2xx
//! queued ───────────────► sending ─────────────────► sent
//!   ▲  │                     │
//!   │  │ older than max age  ├─ 429, 5xx of a call that did not act ──► queued (later)
//!   │  └──────► expired      ├─ 403 duplicate, never in doubt ──► queued with a varied text, once
//!   │                        ├─ other 4xx ──────────► failed (reason)
//!   │                        ├─ outcome unknown ────► queued, in doubt
//!   │                        └─ crash: lease runs out ──► queued, in doubt
//!   │
//!   └─ in doubt: settle before sending
//!        look-up found it (and no other row claims it) ──► sent
//!        look-up failed (5xx, cut, 429) ──► look again in ~5 s (not an attempt)
//!        not found, latest attempt under 30 s old ──► look again later
//!        not found ──► send; 403 duplicate ──► sent
//!                          (another reply of ours has the text ──► needs_review)
//!        no look-up, platform guard still holds (idempotency key) ──► send
//!        no look-up, no guard, unknown after max_attempts, or older
//!        than reply_max_age ──► needs_review
//! ```
//!
//! A row is leased (`sending`, with `lease_until`) by a compare-and-set
//! update before the HTTP call and marked `sent` with the platform's id
//! after it. A send whose outcome is unknown — the connection cut after
//! the request was written, an unreadable success answer, a 5xx from the
//! post endpoint, the bot dying between the two updates — may have posted.
//! Such a row is *in doubt* and is never resent blindly: it is first looked
//! up on the platform ([`Connector::find_sent`]: X's own timeline for a
//! public reply, the DM conversation for a DM), and resent only if the
//! look-up does not find it or, where the platform has no look-up, only
//! while the platform itself absorbs a second copy (Mastodon's
//! `Idempotency-Key`). A look-up that does not find the post is believed
//! only 30 s after the attempt (timelines lag). X's 403 "duplicate
//! content" for a row in doubt means its first copy went out, unless
//! another reply of ours has the same text: then nobody can tell, and a
//! row in doubt is never varied. A row nobody can settle becomes
//! `needs_review` and its ticket (opened if needed) tells an agent. Every
//! update after a send is fenced on `status = 'sending'`: a send that
//! outlived its lease leaves the row to the instance that recovered it.
//!
//! Budgets are governor quotas on the shared [`Clock`]: one global budget
//! per platform and one per customer. A row held back by a budget stays
//! `queued` with its next attempt at the time governor names; a row queued
//! for longer than `reply_max_age_secs` becomes `expired`. The platform's
//! own 429 blocks that platform's endpoint until its reset plus one second.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use rand::Rng;
use sqlx::Row;

use crate::application::tickets::{self, Direction, NewTicket};
use crate::domain::clock::{Clock, Millis};
use crate::domain::limits::Budget;
use crate::domain::limits::Limits;
use crate::domain::{Handle, MessageId, Platform, Priority, TicketRef, UserId};
use crate::platforms::{ApiError, Connector, Lookup, Outgoing, ReplyKind};
use crate::storage::{Backend, Store, StoreError};

type Direct = RateLimiter<NotKeyed, InMemoryState, Clock, NoOpMiddleware<Duration>>;
type Keyed = RateLimiter<
    (Platform, String),
    HashMapStateStore<(Platform, String)>,
    Clock,
    NoOpMiddleware<Duration>,
>;

/// Rows considered per round.
const ROUND: i64 = 200;
/// After a 401, how long the platform is left alone before trying again.
const AUTH_PAUSE: Duration = Duration::from_secs(60);

/// What one round of the sender did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Sent and confirmed.
    pub sent: usize,
    /// Due, but held back by a budget or a platform limit.
    pub held: usize,
    /// Failed for now, to be retried.
    pub retried: usize,
    /// Failed for good.
    pub failed: usize,
    /// Too old to send.
    pub expired: usize,
    /// Handed to an agent after a crash.
    pub needs_review: usize,
    /// Leases that ran out, recovered.
    pub recovered: usize,
}

impl DrainReport {
    /// Whether the round changed anything.
    pub fn progressed(&self) -> bool {
        self.sent + self.retried + self.failed + self.expired + self.needs_review + self.recovered
            > 0
    }
}

fn quota(b: Budget) -> Quota {
    let n = NonZeroU32::new(b.replies.max(1)).expect("max(1)");
    let period = (b.window() / n.get()).max(Duration::from_millis(1));
    Quota::with_period(period)
        .expect("a non-zero period")
        .allow_burst(n)
}

/// Each platform's budget: the configured global one, or the platform's own
/// posting limit when that is slower (Mastodon: 300 statuses per 3 hours).
fn platform_budgets(connectors: &[Arc<dyn Connector>], limits: &Limits) -> Vec<(Platform, Budget)> {
    let rate = |b: Budget| b.replies as f64 / b.per_secs.max(1) as f64;
    connectors
        .iter()
        .map(|c| {
            let b = match c.posting_budget() {
                Some(own) if rate(own) < rate(limits.global) => own,
                _ => limits.global,
            };
            (c.platform(), b)
        })
        .collect()
}

/// The in-memory budgets: one global per platform, one per customer.
struct Budgets {
    global: HashMap<Platform, Direct>,
    per_customer: Keyed,
}

impl Budgets {
    fn new(platforms: &[(Platform, Budget)], limits: &Limits, clock: &Clock) -> Budgets {
        Budgets {
            global: platforms
                .iter()
                .map(|(p, b)| (*p, RateLimiter::direct_with_clock(quota(*b), clock.clone())))
                .collect(),
            per_customer: RateLimiter::hashmap_with_clock(
                quota(limits.per_customer),
                clock.clone(),
            ),
        }
    }
}

/// The sender, with its budgets.
pub struct Sender {
    store: Store,
    connectors: HashMap<Platform, Arc<dyn Connector>>,
    limits: Limits,
    clock: Clock,
    /// The budgets; rebuilt from the database by [`Sender::prime`].
    budgets: ArcSwap<Budgets>,
    /// Endpoint blocked until (Unix ms), after a 429 or a 401.
    blocked: Mutex<HashMap<(Platform, ReplyKind), Millis>>,
    /// Set on shutdown: the round stops before its next lease.
    stopping: AtomicBool,
    /// How long a row may stay `sending` before it counts as interrupted.
    lease: Duration,
    /// After a 401: sending paused until then (for /readyz).
    auth_paused_until: Mutex<Option<Millis>>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// One outbox row, as the sender needs it.
#[derive(Debug, Clone)]
struct OutboxRow {
    id: i64,
    platform: Platform,
    kind: ReplyKind,
    ticket: Option<TicketRef>,
    customer_id: String,
    customer_handle: String,
    conversation_id: String,
    in_reply_to: String,
    text: String,
    attempts: i64,
    varied: bool,
    /// The outcome of an earlier attempt is unknown: settle before resending.
    in_doubt: bool,
    /// When the first attempt in doubt started.
    doubt_since: Option<Millis>,
    /// When the latest attempt in doubt started.
    doubt_last: Option<Millis>,
}

const ROW_COLUMNS: &str = "id, platform, kind, ticket_id, customer_id, customer_handle, \
    conversation_id, in_reply_to, text, attempts, varied, in_doubt, doubt_since, doubt_last, created_at";

fn parse_row(r: &sqlx::any::AnyRow) -> Result<OutboxRow, StoreError> {
    let platform: String = r.try_get(1)?;
    let kind: String = r.try_get(2)?;
    let bad = |what: &str, v: &str| {
        StoreError::Query(sqlx::Error::Decode(
            format!("outbox row has an unknown {what} `{v}`").into(),
        ))
    };
    Ok(OutboxRow {
        id: r.try_get(0)?,
        platform: platform.parse().map_err(|_| bad("platform", &platform))?,
        kind: ReplyKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        ticket: r.try_get::<Option<i64>, _>(3)?.map(TicketRef),
        customer_id: r.try_get(4)?,
        customer_handle: r.try_get(5)?,
        conversation_id: r.try_get(6)?,
        in_reply_to: r.try_get(7)?,
        text: r.try_get(8)?,
        attempts: r.try_get(9)?,
        varied: r.try_get::<i64, _>(10)? != 0,
        in_doubt: r.try_get::<i64, _>(11)? != 0,
        doubt_since: r.try_get::<Option<i64>, _>(12)?,
        doubt_last: r.try_get::<Option<i64>, _>(13)?,
    })
}

impl Sender {
    /// A sender over `connectors` with the configured budgets.
    pub fn new(
        store: Store,
        connectors: Vec<Arc<dyn Connector>>,
        limits: Limits,
        clock: Clock,
    ) -> Sender {
        let platforms = platform_budgets(&connectors, &limits);
        Sender {
            budgets: ArcSwap::from_pointee(Budgets::new(&platforms, &limits, &clock)),
            connectors: connectors.into_iter().map(|c| (c.platform(), c)).collect(),
            store,
            clock,
            blocked: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            lease: Duration::from_secs(limits.lease_secs.max(1)),
            limits,
            auth_paused_until: Mutex::new(None),
        }
    }

    /// Spends, from the in-memory budgets, what was sent within their
    /// windows according to the database, so the budgets hold across a
    /// restart and when another instance takes over the sender's role.
    pub async fn prime(&self) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        // Fresh budgets, then spend what the database says was sent: what
        // this process spent before is in the database too.
        let connectors: Vec<Arc<dyn Connector>> = self.connectors.values().cloned().collect();
        let platforms = platform_budgets(&connectors, &self.limits);
        let budgets = Budgets::new(&platforms, &self.limits, &self.clock);
        let window = |b: Budget| now - b.window().as_millis() as Millis;
        let take = |n: i64, cap: u32| NonZeroU32::new((n.max(0) as u32).min(cap));
        for (p, b) in &platforms {
            let n: i64 = sqlx::query(
                "SELECT COUNT(*) FROM outbox WHERE platform = $1 AND status = 'sent' AND sent_at >= $2",
            )
            .bind(p.as_str())
            .bind(window(*b))
            .fetch_one(self.store.pool())
            .await?
            .try_get(0)?;
            if let (Some(n), Some(g)) = (take(n, b.replies), budgets.global.get(p)) {
                let _ = g.check_n(n);
            }
        }
        for r in sqlx::query(
            "SELECT platform, customer_id, COUNT(*) FROM outbox WHERE status = 'sent' AND sent_at >= $1 \
             GROUP BY platform, customer_id",
        )
        .bind(window(self.limits.per_customer))
        .fetch_all(self.store.pool())
        .await?
        {
            let p: String = r.try_get(0)?;
            let c: String = r.try_get(1)?;
            let n: i64 = r.try_get(2)?;
            if let (Ok(p), Some(n)) = (p.parse::<Platform>(), take(n, self.limits.per_customer.replies)) {
                let _ = budgets.per_customer.check_key_n(&(p, c), n);
            }
        }
        self.budgets.store(Arc::new(budgets));
        Ok(())
    }

    /// Whether a platform refused our credentials recently (sending paused).
    pub fn auth_paused(&self) -> bool {
        let now = self.clock.now_ms();
        self.auth_paused_until
            .lock()
            .expect("poisoned")
            .is_some_and(|t| t > now)
    }

    /// Asks the current and later rounds to stop before their next send;
    /// the send in flight finishes and is recorded.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn blocked_until(&self, p: Platform, k: ReplyKind) -> Option<Millis> {
        let now = self.clock.now_ms();
        self.blocked
            .lock()
            .expect("poisoned")
            .get(&(p, k))
            .copied()
            .filter(|t| *t > now)
    }

    fn block(&self, p: Platform, kinds: &[ReplyKind], until: Millis) {
        let mut b = self.blocked.lock().expect("poisoned");
        for k in kinds {
            let e = b.entry((p, *k)).or_insert(until);
            *e = (*e).max(until);
        }
    }

    /// When the next queued row could be attempted (Unix ms), if any.
    pub async fn next_due(&self) -> Result<Option<Millis>, StoreError> {
        let r = sqlx::query("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'queued'")
            .fetch_one(self.store.pool())
            .await?;
        Ok(r.try_get::<Option<i64>, _>(0)?)
    }

    /// One round: recover stale leases, expire old rows, send what the
    /// budgets allow. Never sleeps; the caller decides when to call again.
    pub async fn drain_once(&self) -> Result<DrainReport, StoreError> {
        let mut report = DrainReport::default();
        self.recover(&mut report).await?;
        self.expire(&mut report).await?;
        let now = self.clock.now_ms();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROW_COLUMNS} FROM outbox WHERE status = 'queued' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT {ROUND}"
        )))
        .bind(now)
        .fetch_all(self.store.pool())
        .await?;
        let mut global_empty: HashMap<Platform, Millis> = HashMap::new();
        let budgets = self.budgets.load_full();
        for r in rows {
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            let row = parse_row(&r)?;
            let Some(conn) = self.connectors.get(&row.platform).cloned() else {
                report.held += 1;
                continue;
            };
            if self.blocked_until(row.platform, row.kind).is_some()
                || global_empty.contains_key(&row.platform)
            {
                report.held += 1;
                continue;
            }
            // Settling a reply in doubt is not a new reply: no budget.
            // The global budget is asked first: governor cannot give a cell
            // back, and a customer's cell spent while the global budget is
            // empty would starve that customer round after round. A row the
            // customer's budget holds back is postponed to its turn, so it
            // costs the global budget at most one cell per turn.
            if !row.in_doubt {
                if let Some(g) = budgets.global.get(&row.platform)
                    && let Err(not_until) = g.check()
                {
                    let at = self.clock.wall_at(not_until.earliest_possible());
                    global_empty.insert(row.platform, at);
                    self.postpone(row.id, at, "held by the global budget")
                        .await?;
                    metrics::counter!("helpdesk_replies_rate_limited_total", "by" => "global")
                        .increment(1);
                    report.held += 1;
                    continue;
                }
                let key = (row.platform, row.customer_id.clone());
                if let Err(not_until) = budgets.per_customer.check_key(&key) {
                    let at = self.clock.wall_at(not_until.earliest_possible());
                    self.postpone(row.id, at, "held by the per-customer budget")
                        .await?;
                    metrics::counter!("helpdesk_replies_rate_limited_total", "by" => "customer")
                        .increment(1);
                    report.held += 1;
                    continue;
                }
            }
            if !self.lease(row.id).await? {
                continue; // another instance took it
            }
            self.send_one(conn.as_ref(), row, &mut report).await?;
        }
        Ok(report)
    }

    async fn postpone(&self, id: i64, at: Millis, why: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1, reason = $2, updated_at = $3 \
             WHERE id = $4 AND status = 'queued'",
        )
        .bind(at)
        .bind(why)
        .bind(self.clock.now_ms())
        .bind(id)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    async fn lease(&self, id: i64) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        // PostgreSQL: skip a row another instance is claiming right now
        // rather than wait for it; the compare-and-set does the rest.
        let sql = match self.store.backend() {
            Backend::Postgres => {
                "UPDATE outbox SET status = 'sending', lease_until = $1, attempts = attempts + 1, \
                 updated_at = $2 WHERE id = (SELECT id FROM outbox WHERE id = $3 AND status = 'queued' \
                 FOR UPDATE SKIP LOCKED)"
            }
            Backend::Sqlite => {
                "UPDATE outbox SET status = 'sending', lease_until = $1, attempts = attempts + 1, \
                 updated_at = $2 WHERE id = $3 AND status = 'queued'"
            }
        };
        let done = sqlx::query(sql)
            .bind(now + self.lease.as_millis() as Millis)
            .bind(now)
            .bind(id)
            .execute(self.store.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn send_one(
        &self,
        conn: &dyn Connector,
        row: OutboxRow,
        report: &mut DrainReport,
    ) -> Result<(), StoreError> {
        let out = Outgoing {
            kind: row.kind,
            text: row.text.clone(),
            in_reply_to: MessageId::new(row.in_reply_to.clone()),
            recipient: UserId::new(row.customer_id.clone()),
            recipient_handle: Handle::new(row.customer_handle.clone()),
            idempotency_key: format!("helpdesk-outbox-{}", row.id),
            exclude_from_thread: self.mentioned_by(&row).await?,
        };
        if let Some(why) = self.unfit_to_post(&row).await? {
            self.review(&row, &why).await?;
            report.needs_review += 1;
            return Ok(());
        }
        let started = self.clock.now_ms();
        // Whether X's "duplicate content" for this send would prove that an
        // earlier attempt of this row went out.
        let mut duplicate_is_ours = false;
        if row.in_doubt {
            match self.settle(conn, &row, &out).await? {
                Ok(Settle::Resend { twin }) => duplicate_is_ours = !twin,
                Ok(Settle::LookAgain) => {
                    // Not an attempt: the same look-up, once the platform
                    // has had time to show the post.
                    let last = row.doubt_last.or(row.doubt_since).unwrap_or(started);
                    let at = (last + NOT_FOUND_BELIEVED_AFTER.as_millis() as Millis + 1000)
                        .max(started + 1000);
                    self.requeue(
                        &row,
                        at,
                        "in doubt: the platform does not show it yet; looking again before any resend",
                        true,
                    )
                    .await?;
                    report.retried += 1;
                    return Ok(());
                }
                Ok(Settle::Sent(id)) => {
                    self.mark_sent(
                        &row,
                        Some(&id),
                        Some("settled: found on the platform after an unknown outcome"),
                    )
                    .await?;
                    metrics::counter!("helpdesk_replies_total", "status" => "sent").increment(1);
                    tracing::info!(outbox = row.id, platform = %row.platform, sent_id = %id, "reply in doubt found on the platform: sent");
                    report.sent += 1;
                    return Ok(());
                }
                Ok(Settle::Review(why)) => {
                    self.review(&row, why).await?;
                    report.needs_review += 1;
                    return Ok(());
                }
                // The look-up was refused for good (no access to the
                // timeline, say): only an agent can tell now.
                Err(e @ (ApiError::Rejected { .. } | ApiError::Duplicate)) => {
                    let why = format!(
                        "the reply's outcome is unknown and the platform refused the look-up ({e}): check the conversation, then resend or drop it"
                    );
                    self.review(&row, &why).await?;
                    report.needs_review += 1;
                    return Ok(());
                }
                // The look-up failed for now: the row stays in doubt.
                Err(e) => return self.record(&row, Err(e), started, false, report).await,
            }
        }
        let result = conn.send(&out).await;
        self.record(&row, result, started, duplicate_is_ours, report)
            .await
    }

    /// Settles a row in doubt before anything is resent: looks it up on the
    /// platform where it can, else resends only where the platform itself
    /// refuses or absorbs a second copy.
    async fn settle(
        &self,
        conn: &dyn Connector,
        row: &OutboxRow,
        out: &Outgoing,
    ) -> Result<Result<Settle, ApiError>, StoreError> {
        let now = self.clock.now_ms();
        let since = row.doubt_since.unwrap_or(now);
        let lookup = match conn.find_sent(out, since).await {
            Ok(l) => l,
            Err(e) => return Ok(Err(e)),
        };
        // A post found may be another row's (an agent's reply with the
        // same text under the same message): only one no other row claims
        // settles this one.
        let mut unclaimed = None;
        if let Lookup::Found(posts) = &lookup {
            for p in posts {
                let n: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM outbox WHERE platform = $1 AND sent_id = $2 AND id <> $3",
                )
                .bind(row.platform.as_str())
                .bind(&p.id)
                .bind(row.id)
                .fetch_one(self.store.pool())
                .await?
                .try_get(0)?;
                if n == 0 {
                    unclaimed = Some(p.id.clone());
                    break;
                }
            }
        }
        let guarded = conn
            .resend_is_safe_within(row.kind)
            .is_some_and(|w| now - since < w.as_millis() as Millis);
        // X's memory of a text is not ours alone: if another reply of ours
        // has this text, a "duplicate" answer would prove nothing. (Not
        // asked when the post was found: it settles the row by itself.)
        let twin = unclaimed.is_none() && self.has_twin(row, now).await?;
        // A post can take a moment to show in the timeline or DM list:
        // "not found" is believed only once the attempt is old enough.
        let last = row.doubt_last.unwrap_or(since);
        let young = now - last < NOT_FOUND_BELIEVED_AFTER.as_millis() as Millis;
        Ok(Ok(settle(&lookup, unclaimed, guarded, twin, young)))
    }

    /// Whether another recent reply of ours has `row`'s text.
    async fn has_twin(&self, row: &OutboxRow, now: Millis) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) FROM outbox WHERE platform = $1 AND text = $2 AND id <> $3 \
             AND (status IN ('sent', 'sending') OR (status = 'queued' AND in_doubt = 1)) \
             AND updated_at > $4",
        )
        .bind(row.platform.as_str())
        .bind(&row.text)
        .bind(row.id)
        .bind(now - 24 * 3600 * 1000)
        .fetch_one(self.store.pool())
        .await?
        .try_get(0)?;
        Ok(n > 0)
    }

    /// Acts on what the platform answered to a send (or to a look-up).
    async fn record(
        &self,
        row: &OutboxRow,
        result: Result<crate::platforms::Sent, ApiError>,
        started: Millis,
        duplicate_is_ours: bool,
        report: &mut DrainReport,
    ) -> Result<(), StoreError> {
        let row = row.clone();
        let now = self.clock.now_ms();
        match result {
            Ok(sent) => {
                self.mark_sent(&row, Some(&sent.id), None).await?;
                metrics::counter!("helpdesk_replies_total", "status" => "sent").increment(1);
                tracing::info!(outbox = row.id, platform = %row.platform, sent_id = %sent.id, "reply sent");
                report.sent += 1;
            }
            Err(ApiError::Duplicate) if duplicate_is_ours => {
                // An earlier attempt's outcome was unknown and X now
                // refuses the same text, which no other reply of ours has:
                // that attempt's copy went out (a look-up can lag).
                self.mark_sent(
                    &row,
                    None,
                    Some("sent by an attempt whose outcome was unknown (X reported the text as already posted)"),
                )
                .await?;
                report.sent += 1;
            }
            Err(ApiError::InDoubt(why)) => {
                metrics::counter!("helpdesk_replies_in_doubt_total").increment(1);
                if row.attempts >= self.limits.max_attempts as i64 {
                    self.review(
                        &row,
                        &format!("the outcome stayed unknown after {} attempts ({why}); it may or may not have gone out: check the conversation, then resend or drop it", row.attempts),
                    )
                    .await?;
                    report.needs_review += 1;
                } else {
                    let at = now + backoff(row.attempts as u32).as_millis() as Millis;
                    tracing::warn!(outbox = row.id, attempt = row.attempts, error = %why, "send outcome unknown: the reply is in doubt and will be looked up before any resend");
                    self.mark_in_doubt(&row, started, at, &why).await?;
                    report.retried += 1;
                }
            }
            Err(ApiError::Duplicate) if row.in_doubt => {
                // Another reply of ours has this text: X's refusal may be
                // about that one. Varying could answer this customer twice.
                self.review(
                    &row,
                    "an earlier attempt's outcome is unknown and X refuses the text as a duplicate, which another reply of ours also has: check the conversation, then resend or drop it",
                )
                .await?;
                report.needs_review += 1;
            }
            Err(ApiError::Duplicate) if !row.varied => match self.vary(&row).await? {
                Some(text) => {
                    sqlx::query(
                        "UPDATE outbox SET status = 'queued', lease_until = NULL, text = $1, varied = 1, \
                         reason = 'varied after duplicate content', next_attempt_at = $2, updated_at = $2 \
                         WHERE id = $3 AND status = 'sending'",
                    )
                    .bind(text)
                    .bind(now)
                    .bind(row.id)
                    .execute(self.store.pool())
                    .await?;
                    report.retried += 1;
                }
                None => {
                    self.fail(
                        &row,
                        "duplicate content, and a varied text would be too long",
                    )
                    .await?;
                    report.failed += 1;
                }
            },
            Err(ApiError::Duplicate) => {
                self.fail(&row, "refused as duplicate content twice, even varied")
                    .await?;
                report.failed += 1;
            }
            Err(ApiError::RateLimited { reset_ms }) => {
                let until = reset_ms.max(now) + 1000;
                self.block(row.platform, &[row.kind], until);
                metrics::counter!("helpdesk_replies_rate_limited_total", "by" => "platform")
                    .increment(1);
                tracing::warn!(platform = %row.platform, kind = row.kind.as_str(), until, "platform rate limit (429): pausing this endpoint until its reset");
                self.requeue(&row, until, "rate limited by the platform (429)", true)
                    .await?;
                report.held += 1;
            }
            Err(ApiError::Unauthorized) => {
                let until = now + AUTH_PAUSE.as_millis() as Millis;
                *self.auth_paused_until.lock().expect("poisoned") = Some(until);
                self.block(row.platform, &[ReplyKind::Public, ReplyKind::Dm], until);
                tracing::error!(platform = %row.platform, "the platform refused the access token (401): sending paused, the queue is kept; fix the token");
                self.requeue(
                    &row,
                    until,
                    "the platform refused the access token (401)",
                    true,
                )
                .await?;
                report.held += 1;
            }
            Err(ApiError::Transient(why)) | Err(ApiError::Malformed(why)) if row.in_doubt => {
                // A look-up (a read) that failed, or a resend that never
                // left: nothing is known yet and nothing was posted. Not an
                // attempt: keep looking at a steady pace; a row still in
                // doubt past reply_max_age goes to an agent.
                let at = now + settle_retry().as_millis() as Millis;
                self.requeue(&row, at, &format!("in doubt, look-up failed: {why}"), true)
                    .await?;
                report.retried += 1;
            }
            Err(ApiError::Transient(why)) => {
                if row.attempts >= self.limits.max_attempts as i64 {
                    self.fail(
                        &row,
                        &format!("gave up after {} attempts: {why}", row.attempts),
                    )
                    .await?;
                    report.failed += 1;
                } else {
                    let at = now + backoff(row.attempts as u32).as_millis() as Millis;
                    tracing::warn!(outbox = row.id, attempt = row.attempts, error = %why, "send failed; retrying later");
                    self.requeue(&row, at, &format!("retrying: {why}"), false)
                        .await?;
                    report.retried += 1;
                }
            }
            Err(ApiError::Malformed(why)) => {
                // A 2xx we cannot read: the reply probably left. Never resend.
                self.review(&row, &format!("the platform's answer was unreadable ({why}); check whether the reply went out")).await?;
                report.needs_review += 1;
            }
            Err(e @ ApiError::Rejected { .. }) => {
                self.fail(&row, &e.to_string()).await?;
                report.failed += 1;
            }
        }
        Ok(())
    }

    /// The platform's length limit as the bot last learnt it.
    async fn length_limit(
        &self,
        platform: Platform,
    ) -> Result<crate::domain::text::LengthLimit, StoreError> {
        let mut conn = self.store.pool().acquire().await?;
        crate::storage::length_limit(&mut conn, platform).await
    }

    /// The accounts the message a public reply answers mentioned (the
    /// `messages` row of `in_reply_to`), which its thread must leave out.
    async fn mentioned_by(&self, row: &OutboxRow) -> Result<Vec<UserId>, StoreError> {
        if row.kind != ReplyKind::Public {
            return Ok(Vec::new());
        }
        let ids: Option<String> = sqlx::query(
            "SELECT mentioned_ids FROM messages WHERE platform = $1 AND platform_message_id = $2",
        )
        .bind(row.platform.as_str())
        .bind(&row.in_reply_to)
        .fetch_optional(self.store.pool())
        .await?
        .map(|r| r.try_get::<Option<String>, _>(0))
        .transpose()?
        .flatten();
        Ok(ids
            .unwrap_or_default()
            .split_whitespace()
            .map(UserId::new)
            .collect())
    }

    /// The last line of defence, on the final text of every post: why it
    /// must not go out, if it must not. The only account a reply may
    /// mention is the customer it answers (a Mastodon `direct` post is
    /// delivered to everyone it mentions), and it must fit the platform,
    /// or the customer would silently never be answered.
    async fn unfit_to_post(&self, row: &OutboxRow) -> Result<Option<String>, StoreError> {
        let foreign =
            crate::domain::inert::foreign_mentions(&row.text, &row.customer_handle, row.platform);
        if !foreign.is_empty() {
            let names: Vec<String> = foreign.iter().map(|m| format!("@{m}")).collect();
            return Ok(Some(format!(
                "not sent: it would mention {} besides the customer; fix the rule's reply or the agent's text, then resend",
                names.join(", ")
            )));
        }
        let limit = self.length_limit(row.platform).await?;
        // Mastodon puts the customer's handle in front when the text does
        // not start with it (see the connector's send).
        let handle = format!("@{}", row.customer_handle);
        let posted = match row.platform {
            Platform::Mastodon
                if !(row.text == handle || row.text.starts_with(&format!("{handle} "))) =>
            {
                format!("{handle} {}", row.text)
            }
            _ => row.text.clone(),
        };
        let n = limit.count(&posted);
        if n > limit.max {
            return Ok(Some(format!(
                "not sent: {n} characters where {} allows {}; shorten the reply, then resend",
                row.platform, limit.max
            )));
        }
        Ok(None)
    }

    /// A varied text for a retry after "duplicate content": the ticket
    /// reference, or the customer's handle, makes it unique to them.
    async fn vary(&self, row: &OutboxRow) -> Result<Option<String>, StoreError> {
        let handle = format!("@{}", row.customer_handle);
        let text = match row.ticket {
            Some(t) if !row.text.contains(&t.to_string()) => format!("{} ({t})", row.text),
            _ if !row.text.contains(&handle) => format!("{handle} {}", row.text),
            _ => format!("{} (#{})", row.text, row.id),
        };
        let limit = self.length_limit(row.platform).await?;
        Ok((limit.count(&text) <= limit.max).then_some(text))
    }

    async fn mark_sent(
        &self,
        row: &OutboxRow,
        sent_id: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        // Only while this instance holds the lease: a send that outlived
        // it was taken over, and the new holder settles the row.
        let done = sqlx::query(
            "UPDATE outbox SET status = 'sent', sent_id = $1, sent_at = $2, lease_until = NULL, \
             reason = $3, in_doubt = 0, updated_at = $2 WHERE id = $4 AND status = 'sending'",
        )
        .bind(sent_id)
        .bind(now)
        .bind(reason)
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tracing::warn!(
                outbox = row.id,
                "the send outlived its lease and the row was taken over; its new holder settles it (raise limits.lease_secs)"
            );
            return Ok(());
        }
        if let Some(t) = row.ticket {
            tickets::append(
                &mut tx,
                t,
                Direction::Out,
                None,
                Some(row.id),
                &row.text,
                now,
            )
            .await?;
            if let Some(id) = sent_id {
                sqlx::query("UPDATE tickets SET last_sent_id = $1 WHERE id = $2")
                    .bind(id)
                    .bind(t.0)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Back to `queued`, in doubt: the next attempt settles before it sends.
    async fn mark_in_doubt(
        &self,
        row: &OutboxRow,
        started: Millis,
        at: Millis,
        why: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET status = 'queued', lease_until = NULL, in_doubt = 1, \
             doubt_since = COALESCE(doubt_since, $1), doubt_last = $1, next_attempt_at = $2, \
             reason = $3, updated_at = $4 \
             WHERE id = $5 AND status = 'sending'",
        )
        .bind(started)
        .bind(at)
        .bind(format!(
            "outcome unknown, to be settled before any resend: {why}"
        ))
        .bind(self.clock.now_ms())
        .bind(row.id)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    async fn requeue(
        &self,
        row: &OutboxRow,
        at: Millis,
        why: &str,
        refund_attempt: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET status = 'queued', lease_until = NULL, next_attempt_at = $1, reason = $2, \
             attempts = attempts - $3, updated_at = $4 WHERE id = $5 AND status = 'sending'",
        )
        .bind(at)
        .bind(why)
        .bind(i64::from(refund_attempt))
        .bind(self.clock.now_ms())
        .bind(row.id)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// Ends a row that is in state `from` (`sending` under our lease, or
    /// `queued` for expiry) with `status`; a row that moved on meanwhile
    /// is left to whoever moved it.
    async fn end(
        &self,
        row: &OutboxRow,
        from: &str,
        status: &str,
        why: &str,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let done = sqlx::query(
            "UPDATE outbox SET status = $1, lease_until = NULL, reason = $2, updated_at = $3 \
             WHERE id = $4 AND status = $5",
        )
        .bind(status)
        .bind(why)
        .bind(now)
        .bind(row.id)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(());
        }
        metrics::counter!("helpdesk_replies_total", "status" => status.to_owned()).increment(1);
        let ticket = match (row.ticket, status) {
            (Some(t), _) => Some(t),
            // Nobody may be left wondering: a reply in doubt gets a ticket.
            (None, "needs_review") => Some(
                tickets::open(
                    &mut tx,
                    &NewTicket {
                        queue: &self.limits.conversation_cap_queue,
                        priority: Priority::Normal,
                        platform: row.platform,
                        customer_id: &row.customer_id,
                        customer_handle: &row.customer_handle,
                        conversation_id: &row.conversation_id,
                        rule_id: None,
                        note: None,
                        first_response_due: now,
                    },
                    now,
                )
                .await?,
            ),
            (None, _) => None,
        };
        if let Some(t) = ticket {
            let note = format!("automatic reply {status}: {why} — text: {}", row.text);
            tickets::note(&mut tx, t, &note, now).await?;
            if row.ticket.is_none() {
                // The agent finds the reply in doubt from the ticket.
                sqlx::query("UPDATE outbox SET ticket_id = $1 WHERE id = $2")
                    .bind(t.0)
                    .bind(row.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn fail(&self, row: &OutboxRow, why: &str) -> Result<(), StoreError> {
        tracing::warn!(outbox = row.id, reason = why, "reply failed");
        self.end(row, "sending", "failed", why).await
    }

    async fn review(&self, row: &OutboxRow, why: &str) -> Result<(), StoreError> {
        tracing::warn!(outbox = row.id, reason = why, "reply handed to an agent");
        self.end(row, "sending", "needs_review", why).await
    }

    /// Queued rows older than the maximum age become expired, and their
    /// tickets say so.
    async fn expire(&self, report: &mut DrainReport) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let cutoff = now - self.limits.reply_max_age_secs as Millis * 1000;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROW_COLUMNS} FROM outbox WHERE status = 'queued' AND created_at < $1 LIMIT {ROUND}"
        )))
        .bind(cutoff)
        .fetch_all(self.store.pool())
        .await?;
        for r in rows {
            let row = parse_row(&r)?;
            if row.in_doubt {
                // It may have gone out: never "expired", which an agent
                // could take for "never sent" and resend.
                let why = format!(
                    "still in doubt after {} s (limits.reply_max_age_secs): it may or may not have gone out; check the conversation",
                    self.limits.reply_max_age_secs
                );
                self.end(&row, "queued", "needs_review", &why).await?;
                report.needs_review += 1;
                continue;
            }
            let why = format!(
                "still queued after {} s (limits.reply_max_age_secs): too old to be useful",
                self.limits.reply_max_age_secs
            );
            self.end(&row, "queued", "expired", &why).await?;
            report.expired += 1;
        }
        Ok(())
    }

    /// Rows whose lease ran out while `sending`: the bot died mid-send.
    /// Such a row is in doubt like any send whose outcome is unknown; the
    /// next attempt settles it (look-up, or a resend the platform guards).
    async fn recover(&self, report: &mut DrainReport) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROW_COLUMNS}, updated_at FROM outbox WHERE status = 'sending' AND lease_until < $1 LIMIT {ROUND}"
        )))
        .bind(now)
        .fetch_all(self.store.pool())
        .await?;
        for r in rows {
            let row = parse_row(&r)?;
            let leased_at: Millis = r.try_get(15)?;
            let done = sqlx::query(
                "UPDATE outbox SET status = 'queued', lease_until = NULL, in_doubt = 1, \
                 doubt_since = COALESCE(doubt_since, $1), doubt_last = $1, \
                 reason = 'interrupted while sending: to be settled before any resend', \
                 next_attempt_at = $2, updated_at = $2 WHERE id = $3 AND status = 'sending'",
            )
            .bind(leased_at)
            .bind(now)
            .bind(row.id)
            .execute(self.store.pool())
            .await?;
            if done.rows_affected() == 1 {
                tracing::warn!(outbox = row.id, "interrupted send: in doubt, settling it");
                report.recovered += 1;
            }
        }
        Ok(())
    }
}

/// How old an attempt in doubt must be before a look-up that does not
/// find it is believed: the timeline and the DM list can lag the post.
const NOT_FOUND_BELIEVED_AFTER: Duration = Duration::from_secs(30);

/// What to do with a reply in doubt, once the platform was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settle {
    /// It went out, with this id.
    Sent(String),
    /// It did not go out, or the platform refuses a second copy: send.
    /// `twin`: another reply of ours has the same text, so a "duplicate"
    /// answer to the resend would not say whether this row went out.
    Resend {
        /// Another recent reply of ours has the same text.
        twin: bool,
    },
    /// Not found yet, but too soon to believe it: look again later.
    LookAgain,
    /// Nobody can tell: an agent decides.
    Review(&'static str),
}

/// The decision for a reply in doubt. `unclaimed`: a post the look-up
/// found that no other row claims. `guarded`: the platform refuses or
/// absorbs a second copy for long enough (Mastodon's idempotency key).
/// `twin`: another reply of ours has the same text. `young`: the attempt
/// in doubt is too recent for "not found" to be believed.
fn settle(
    lookup: &Lookup,
    unclaimed: Option<String>,
    guarded: bool,
    twin: bool,
    young: bool,
) -> Settle {
    match (lookup, unclaimed) {
        (_, Some(id)) => Settle::Sent(id),
        (Lookup::Found(_) | Lookup::NotFound, None) if young => Settle::LookAgain,
        (Lookup::Found(_) | Lookup::NotFound, None) => Settle::Resend { twin },
        // Platforms without a look-up guard a resend by the row's own
        // key (Mastodon's Idempotency-Key): another row's text is no matter.
        (Lookup::Unsupported, None) if guarded => Settle::Resend { twin },
        (Lookup::Unsupported, None) => Settle::Review(
            "the bot lost track of this reply while sending it; it may or may not have gone out and the platform cannot say: check the conversation, then resend or drop it",
        ),
    }
}

/// When to look again after a look-up failed: 5 s, ±25 %. Reads are cheap
/// and the row is waiting on them, so no exponential growth.
fn settle_retry() -> Duration {
    let jitter = rand::rng().random_range(0.75..1.25);
    Duration::from_millis((5_000.0 * jitter) as u64)
}

/// Exponential backoff with jitter: 2 s, 4 s, 8 s… up to 15 min, ±25 %.
fn backoff(attempt: u32) -> Duration {
    let base = 2_000u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let capped = base.min(15 * 60 * 1000);
    let jitter = rand::rng().random_range(0.75..1.25);
    Duration::from_millis((capped as f64 * jitter) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_in_doubt_is_settled_never_varied() {
        let sent = |id: &str| crate::platforms::Sent { id: id.into() };
        let found = Lookup::Found(vec![sent("9")]);
        let resend = |twin| Settle::Resend { twin };
        assert_eq!(
            settle(&found, Some("9".into()), false, false, false),
            Settle::Sent("9".into())
        );
        // Found, but every post is another row's: as if not found.
        assert_eq!(settle(&found, None, false, false, false), resend(false));
        assert_eq!(
            settle(&Lookup::NotFound, None, false, false, false),
            resend(false)
        );
        assert_eq!(
            settle(&Lookup::NotFound, None, false, true, false),
            resend(true)
        );
        // Too soon to believe "not found".
        assert_eq!(
            settle(&Lookup::NotFound, None, false, false, true),
            Settle::LookAgain
        );
        assert_eq!(
            settle(&Lookup::Unsupported, None, true, false, true),
            resend(false)
        );
        assert_eq!(
            settle(&Lookup::Unsupported, None, true, true, false),
            resend(true)
        );
        assert!(matches!(
            settle(&Lookup::Unsupported, None, false, false, false),
            Settle::Review(_)
        ));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(2500));
        assert!(backoff(4) >= Duration::from_millis(12_000));
        assert!(backoff(30) <= Duration::from_secs(15 * 60 * 5 / 4));
    }

    #[test]
    fn quota_allows_the_whole_budget_as_a_burst() {
        let clock = Clock::new();
        let l = RateLimiter::direct_with_clock(
            quota(Budget {
                replies: 3,
                per_secs: 3600,
            }),
            clock.clone(),
        );
        assert!((0..3).all(|_| l.check().is_ok()));
        assert!(l.check().is_err());
        clock.advance(Duration::from_secs(1200));
        assert!(l.check().is_ok());
    }
}
