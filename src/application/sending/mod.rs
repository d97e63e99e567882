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

mod budgets;
mod settle;
mod verdict;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use self::budgets::{
    Budgets, Money, platform_budgets, release_money, reserve_money, spend_money_in_doubt,
};
use self::settle::{NOT_FOUND_BELIEVED_AFTER, Settle, settle};
use self::verdict::{Facts, Verdict, verdict};
use crate::domain::clock::{Clock, Millis};
use crate::domain::limits::{Budget, Limits};
use crate::domain::states::{Direction, OutboxStatus};
use crate::domain::{Handle, MessageId, Platform, Priority, Queue, UserId};
use crate::platforms::{ApiError, Connector, Lookup, Outgoing, ReplyKind};
use crate::storage::outbox::{self, Row};
use crate::storage::tickets::{self, NewTicket};
use crate::storage::{Store, StoreError, messages, ticket_messages};

/// Rows considered per round.
const ROUND: i64 = 200;

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

/// The sender, with its budgets.
pub struct Sender {
    store: Store,
    connectors: HashMap<Platform, Arc<dyn Connector>>,
    limits: Limits,
    clock: Clock,
    budgets: ArcSwap<Budgets>,
    /// Endpoints a platform's 429 or 401 blocked, until when.
    blocked: Mutex<HashMap<(Platform, ReplyKind), Millis>>,
    stopping: AtomicBool,
    lease: Duration,
    auth_paused_until: Mutex<Option<Millis>>,
    /// Where a reply that needs review and has no ticket gets one.
    review_queue: Queue,
    /// Platforms whose money budget holds replies back now (warned once
    /// per change).
    money_held: Mutex<HashMap<Platform, bool>>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What `send_one` does after settling a row in doubt.
enum Next {
    /// Send it, knowing whether "duplicate content" would prove it went out.
    Send { duplicate_is_ours: bool },
    /// Done with this row for this round.
    Done,
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
            review_queue: limits.conversation_cap_queue.clone(),
            limits,
            auth_paused_until: Mutex::new(None),
            money_held: Mutex::new(HashMap::new()),
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
            let n = outbox::sent_since(&self.store, *p, window(*b)).await?;
            if let (Some(n), Some(g)) = (take(n, b.replies), budgets.global.get(p)) {
                let _ = g.check_n(n);
            }
        }
        let per_customer = self.limits.per_customer;
        for (p, c, n) in outbox::sent_per_customer_since(&self.store, window(per_customer)).await? {
            if let Some(n) = take(n, per_customer.replies) {
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
        outbox::next_due(&self.store).await
    }

    /// One round: recover stale leases, expire old rows, send what the
    /// budgets allow. Never sleeps; the caller decides when to call again.
    pub async fn drain_once(&self) -> Result<DrainReport, StoreError> {
        let mut report = DrainReport::default();
        self.recover(&mut report).await?;
        self.expire(&mut report).await?;
        let rows = outbox::due(&self.store, self.clock.now_ms(), ROUND).await?;
        let mut global_empty: HashMap<Platform, Millis> = HashMap::new();
        let budgets = self.budgets.load_full();
        for row in rows {
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
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
            if !row.in_doubt && !self.spend(&budgets, &row, &mut global_empty).await? {
                report.held += 1;
                continue;
            }
            // A resend after settling costs money all the same.
            let Some(money) = self.spend_money(conn.as_ref(), &row).await? else {
                report.held += 1;
                continue;
            };
            if !self.lease(row.id).await? {
                release_money(&self.store, money).await?;
                continue; // another instance took it
            }
            self.send_one(conn.as_ref(), row, money, &mut report)
                .await?;
        }
        Ok(report)
    }

    /// Takes one reply from `row`'s budgets, or postpones the row to when
    /// they allow it (false).
    ///
    /// The global budget is asked first: governor cannot give a cell back,
    /// and a customer's cell spent while the global budget is empty would
    /// starve that customer round after round. A row the customer's budget
    /// holds back is postponed to its turn, so it costs the global budget
    /// at most one cell per turn.
    async fn spend(
        &self,
        budgets: &Budgets,
        row: &Row,
        global_empty: &mut HashMap<Platform, Millis>,
    ) -> Result<bool, StoreError> {
        if let Some(g) = budgets.global.get(&row.platform)
            && let Err(not_until) = g.check()
        {
            let at = self.clock.wall_at(not_until.earliest_possible());
            global_empty.insert(row.platform, at);
            self.postpone(row.id, at, "held by the global budget")
                .await?;
            metrics::counter!("helpdesk_replies_rate_limited_total", "by" => "global").increment(1);
            return Ok(false);
        }
        let key = (row.platform, row.customer_id.clone());
        if let Err(not_until) = budgets.per_customer.check_key(&key) {
            let at = self.clock.wall_at(not_until.earliest_possible());
            self.postpone(row.id, at, "held by the per-customer budget")
                .await?;
            metrics::counter!("helpdesk_replies_rate_limited_total", "by" => "customer")
                .increment(1);
            return Ok(false);
        }
        Ok(true)
    }

    /// Reserves the reply's price on its platform's money budget, or
    /// postpones the row to when the next UTC day's budget opens (`None`):
    /// it stays queued, and expires only under `reply_max_age_secs`. The
    /// operator hears once when replies start waiting and once when they
    /// leave again.
    async fn spend_money(
        &self,
        conn: &dyn Connector,
        row: &Row,
    ) -> Result<Option<Money>, StoreError> {
        let now = self.clock.now_ms();
        let money = reserve_money(&self.store, conn, (row.kind, &row.text), now).await?;
        let held = matches!(money, Money::Held(_));
        let was = self
            .money_held
            .lock()
            .expect("poisoned")
            .insert(row.platform, held)
            .unwrap_or(false);
        if held != was {
            metrics::gauge!("helpdesk_replies_held_by_money_budget", "platform" => row.platform.as_str())
                .set(if held { 1.0 } else { 0.0 });
        }
        let Money::Held(at) = money else {
            if was {
                tracing::info!(platform = %row.platform, "the money budget pays for replies again: they leave");
            }
            return Ok(Some(money));
        };
        if !was {
            tracing::warn!(platform = %row.platform, until = at, "the money budget of the day (max_usd_per_day) cannot pay for more replies: they wait in the outbox until it can (the next UTC day, unless reads in flight give some back); escalations still open tickets");
        }
        self.postpone(row.id, at, "held by the money budget (max_usd_per_day)")
            .await?;
        metrics::counter!("helpdesk_replies_rate_limited_total", "by" => "money").increment(1);
        Ok(None)
    }

    async fn postpone(&self, id: i64, at: Millis, why: &str) -> Result<(), StoreError> {
        outbox::postpone(&self.store, id, at, why, self.clock.now_ms()).await
    }

    async fn lease(&self, id: i64) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let until = now + self.lease.as_millis() as Millis;
        outbox::lease(&self.store, id, until, now).await
    }

    /// Sends one leased row, its price reserved in `money`; gives the
    /// reservation back, or counts it as spent when the send's outcome is
    /// unknown (X may have billed it).
    async fn send_one(
        &self,
        conn: &dyn Connector,
        row: Row,
        money: Money,
        report: &mut DrainReport,
    ) -> Result<(), StoreError> {
        let (kind, text) = (row.kind, row.text.clone());
        if self.send_leased(conn, row, report).await? {
            spend_money_in_doubt(&self.store, money, (kind, &text)).await?;
        } else {
            release_money(&self.store, money).await?;
        }
        Ok(())
    }

    /// Sends one leased row; whether its outcome is unknown.
    async fn send_leased(
        &self,
        conn: &dyn Connector,
        row: Row,
        report: &mut DrainReport,
    ) -> Result<bool, StoreError> {
        let out = Outgoing {
            kind: row.kind,
            text: row.text.clone(),
            in_reply_to: MessageId::new(row.in_reply_to.clone()),
            recipient: UserId::new(row.customer_id.clone()),
            recipient_handle: Handle::new(row.customer_handle.clone()),
            idempotency_key: format!("helpdesk-outbox-{}", row.id),
            row: row.id,
            queued_at: row.created_at,
            exclude_from_thread: self.mentioned_by(&row).await?,
        };
        if let Some(why) = self.unfit_to_post(&row).await? {
            self.review(&row, &why).await?;
            report.needs_review += 1;
            return Ok(false);
        }
        // An incident's reply put back in the queue (a 429, a variation)
        // after the incident closed: its customer gets the closing notice.
        if let (Some(t), crate::domain::states::Origin::Auto, Some(_), false) =
            (row.ticket, row.origin, row.answers, row.in_doubt)
            && crate::storage::incidents::closed_with_ticket(&self.store, t).await?
        {
            let why = "the incident closed before it was sent: the customer gets the closing notice instead";
            self.end(&row, (OutboxStatus::Sending, OutboxStatus::Expired), why)
                .await?;
            report.expired += 1;
            return Ok(false);
        }
        let started = self.clock.now_ms();
        let mut duplicate_is_ours = false;
        if row.in_doubt {
            match self.settle_first(conn, &row, &out, started, report).await? {
                Next::Send {
                    duplicate_is_ours: ours,
                } => duplicate_is_ours = ours,
                Next::Done => return Ok(false),
            }
        }
        let result = conn.send(&out).await;
        let in_doubt = matches!(result, Err(ApiError::InDoubt(_)));
        self.record(&row, result, started, duplicate_is_ours, report)
            .await?;
        Ok(in_doubt)
    }

    /// Settles a row in doubt before anything is resent, and acts on all
    /// the outcomes but a resend.
    async fn settle_first(
        &self,
        conn: &dyn Connector,
        row: &Row,
        out: &Outgoing,
        started: Millis,
        report: &mut DrainReport,
    ) -> Result<Next, StoreError> {
        match self.settle(conn, row, out).await? {
            // "Duplicate content" proves this row went out only when no
            // other reply of ours has its text.
            Ok(Settle::Resend { twin }) => {
                return Ok(Next::Send {
                    duplicate_is_ours: !twin,
                });
            }
            Ok(Settle::LookAgain) => {
                // Not an attempt: the same look-up, once the platform has
                // had time to show the post.
                let last = row.doubt_last.or(row.doubt_since).unwrap_or(started);
                let at = (last + NOT_FOUND_BELIEVED_AFTER.as_millis() as Millis + 1000)
                    .max(started + 1000);
                let why =
                    "in doubt: the platform does not show it yet; looking again before any resend";
                self.requeue(row, at, why, true).await?;
                report.retried += 1;
            }
            Ok(Settle::Sent(id)) => {
                let why = "settled: found on the platform after an unknown outcome";
                self.mark_sent(row, Some(&id), Some(why)).await?;
                metrics::counter!("helpdesk_replies_total", "status" => "sent").increment(1);
                tracing::info!(outbox = row.id, platform = %row.platform, sent_id = %id, "reply in doubt found on the platform: sent");
                report.sent += 1;
            }
            Ok(Settle::Review(why)) => {
                self.review(row, why).await?;
                report.needs_review += 1;
            }
            // The look-up was refused for good (no access to the timeline,
            // say): only an agent can tell now.
            Err(e @ (ApiError::Rejected { .. } | ApiError::Duplicate)) => {
                let why = format!(
                    "the reply's outcome is unknown and the platform refused the look-up ({e}): check the conversation, then resend or drop it"
                );
                self.review(row, &why).await?;
                report.needs_review += 1;
            }
            // The look-up failed for now: the row stays in doubt.
            Err(e) => self.record(row, Err(e), started, false, report).await?,
        }
        Ok(Next::Done)
    }

    /// Asks the platform about a row in doubt: looks it up where it can,
    /// else resends only where the platform itself refuses or absorbs a
    /// second copy.
    async fn settle(
        &self,
        conn: &dyn Connector,
        row: &Row,
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
                if !outbox::claimed_by_another(&self.store, row.platform, &p.id, row.id).await? {
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
        let twin = unclaimed.is_none()
            && outbox::has_twin(
                &self.store,
                row.platform,
                &row.text,
                row.id,
                now - 24 * 3600 * 1000,
            )
            .await?;
        // A post can take a moment to show in the timeline or DM list:
        // "not found" is believed only once the attempt is old enough.
        let last = row.doubt_last.unwrap_or(since);
        let young = now - last < NOT_FOUND_BELIEVED_AFTER.as_millis() as Millis;
        Ok(Ok(settle(&lookup, unclaimed, guarded, twin, young)))
    }

    /// Acts on what the platform answered to a send (or to a look-up).
    async fn record(
        &self,
        row: &Row,
        result: Result<crate::platforms::Sent, ApiError>,
        started: Millis,
        duplicate_is_ours: bool,
        report: &mut DrainReport,
    ) -> Result<(), StoreError> {
        if matches!(result, Err(ApiError::InDoubt(_))) {
            metrics::counter!("helpdesk_replies_in_doubt_total").increment(1);
        }
        let facts = Facts {
            now: self.clock.now_ms(),
            duplicate_is_ours,
            max_attempts: self.limits.max_attempts as i64,
        };
        match verdict(row, result, facts) {
            Verdict::Sent { id, reason } => {
                self.mark_sent(row, id.as_deref(), reason).await?;
                if let Some(id) = &id {
                    metrics::counter!("helpdesk_replies_total", "status" => "sent").increment(1);
                    tracing::info!(outbox = row.id, platform = %row.platform, sent_id = %id, "reply sent");
                }
                report.sent += 1;
            }
            Verdict::InDoubt { at, why } => {
                tracing::warn!(outbox = row.id, attempt = row.attempts, error = %why, "send outcome unknown: the reply is in doubt and will be looked up before any resend");
                let why = format!("outcome unknown, to be settled before any resend: {why}");
                outbox::mark_in_doubt(
                    &self.store,
                    row.id,
                    (started, at),
                    &why,
                    self.clock.now_ms(),
                )
                .await?;
                report.retried += 1;
            }
            Verdict::Review(why) => {
                self.review(row, &why).await?;
                report.needs_review += 1;
            }
            Verdict::Vary => self.vary_or_fail(row, report).await?,
            Verdict::Fail(why) => {
                self.fail(row, &why).await?;
                report.failed += 1;
            }
            Verdict::Pause {
                kinds,
                until,
                why,
                auth,
            } => {
                self.pause(row, &kinds, until, auth);
                self.requeue(row, until, why, true).await?;
                report.held += 1;
            }
            Verdict::GoPublic => {
                tracing::info!(outbox = row.id, platform = %row.platform, "a DM cannot reach the customer: answering in the thread instead");
                outbox::requeue_public(
                    &self.store,
                    row.id,
                    "a direct message cannot reach the customer: answered in the thread instead",
                    self.clock.now_ms(),
                )
                .await?;
                report.retried += 1;
            }
            Verdict::Retry { at, why, refund } => {
                if !refund {
                    tracing::warn!(outbox = row.id, attempt = row.attempts, error = %why, "send failed; retrying later");
                }
                self.requeue(row, at, &why, refund).await?;
                report.retried += 1;
            }
        }
        Ok(())
    }

    /// Blocks the endpoints a platform's 429 or 401 closed.
    fn pause(&self, row: &Row, kinds: &[ReplyKind], until: Millis, auth: bool) {
        self.block(row.platform, kinds, until);
        if auth {
            *self.auth_paused_until.lock().expect("poisoned") = Some(until);
            tracing::error!(platform = %row.platform, "the platform refused the access token (401): sending paused, the queue is kept; fix the token");
        } else {
            metrics::counter!("helpdesk_replies_rate_limited_total", "by" => "platform")
                .increment(1);
            tracing::warn!(platform = %row.platform, kind = row.kind.as_str(), until, "platform rate limit (429): pausing this endpoint until its reset");
        }
    }

    /// After "duplicate content" for a row never in doubt: the same reply
    /// made unique to the customer, once; failed if that would not fit.
    async fn vary_or_fail(&self, row: &Row, report: &mut DrainReport) -> Result<(), StoreError> {
        match self.vary(row).await? {
            Some(text) => {
                outbox::requeue_varied(&self.store, row.id, &text, self.clock.now_ms()).await?;
                report.retried += 1;
            }
            None => {
                self.fail(
                    row,
                    "duplicate content, and a varied text would be too long",
                )
                .await?;
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
    async fn mentioned_by(&self, row: &Row) -> Result<Vec<UserId>, StoreError> {
        if row.kind != ReplyKind::Public {
            return Ok(Vec::new());
        }
        let ids = messages::mentioned_ids(&self.store, row.platform, &row.in_reply_to).await?;
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
    async fn unfit_to_post(&self, row: &Row) -> Result<Option<String>, StoreError> {
        let foreign =
            crate::domain::inert::foreign_mentions(&row.text, &row.customer_handle, row.platform);
        if !foreign.is_empty() {
            let names: Vec<String> = foreign.iter().map(|m| format!("@{m}")).collect();
            return Ok(Some(format!(
                "not sent: it would mention {} besides the customer; fix the rule's reply or the agent's text, then resend",
                names.join(", ")
            )));
        }
        let limit = match row.kind {
            ReplyKind::Dm => self.length_limit(row.platform).await?.for_dm(),
            ReplyKind::Public => self.length_limit(row.platform).await?,
        };
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

    /// A varied text for a retry after "duplicate content": the customer's
    /// handle, or the ticket reference, makes it unique to them. The
    /// handle first: an incident's ticket is shared by all its customers.
    async fn vary(&self, row: &Row) -> Result<Option<String>, StoreError> {
        let handle = format!("@{}", row.customer_handle);
        let text = match row.ticket {
            _ if !row.text.contains(&handle) => format!("{handle} {}", row.text),
            Some(t) if !row.text.contains(&t.to_string()) => format!("{} ({t})", row.text),
            _ => format!("{} (#{})", row.text, row.id),
        };
        let limit = self.length_limit(row.platform).await?;
        Ok((limit.count(&text) <= limit.max).then_some(text))
    }

    async fn mark_sent(
        &self,
        row: &Row,
        sent_id: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        // Only while this instance holds the lease: a send that outlived
        // it was taken over, and the new holder settles the row.
        if !outbox::mark_sent(&mut tx, row.id, sent_id, reason, now).await? {
            tracing::warn!(
                outbox = row.id,
                "the send outlived its lease and the row was taken over; its new holder settles it (raise limits.lease_secs)"
            );
            return Ok(());
        }
        if let Some(t) = row.ticket {
            let ids = (None, Some(row.id));
            ticket_messages::append(&mut tx, t, Direction::Out, ids, &row.text, now).await?;
            if let Some(id) = sent_id {
                tickets::last_sent(&mut tx, t, id).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn requeue(
        &self,
        row: &Row,
        at: Millis,
        why: &str,
        refund_attempt: bool,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        outbox::requeue(&self.store, row.id, at, why, refund_attempt, now).await
    }

    /// Ends a row that is in state `from` (`sending` under our lease, or
    /// `queued` for expiry) with `to`; a row that moved on meanwhile is
    /// left to whoever moved it. A row ending without being sent is told
    /// to an agent on its ticket (opened for it if it must be).
    async fn end(
        &self,
        row: &Row,
        (from, to): (OutboxStatus, OutboxStatus),
        why: &str,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        if !outbox::end(&mut tx, row.id, (from, to), why, now).await? {
            return Ok(());
        }
        metrics::counter!("helpdesk_replies_total", "status" => to.as_str()).increment(1);
        let ticket = match row.ticket {
            Some(t) => Some(t),
            // Nobody may be left wondering: a reply in doubt gets a ticket.
            None if to == OutboxStatus::NeedsReview => {
                let backend = self.store.backend();
                let t = tickets::open(&mut tx, backend, &self.review_ticket(row, now), now).await?;
                // The agent finds the reply in doubt from the ticket.
                outbox::attach_ticket(&mut tx, row.id, t).await?;
                Some(t)
            }
            None => None,
        };
        if let Some(t) = ticket {
            let note = format!("automatic reply {to}: {why} — text: {}", row.text);
            tickets::note(&mut tx, t, &note, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The ticket opened for a reply that needs review and had none.
    fn review_ticket<'r>(&'r self, row: &'r Row, now: Millis) -> NewTicket<'r> {
        NewTicket {
            queue: &self.review_queue,
            priority: Priority::Normal,
            platform: row.platform,
            customer_id: &row.customer_id,
            customer_handle: &row.customer_handle,
            conversation_id: &row.conversation_id,
            rule_id: None,
            note: None,
            first_response_due: now,
            lang: None,
        }
    }

    async fn fail(&self, row: &Row, why: &str) -> Result<(), StoreError> {
        tracing::warn!(outbox = row.id, reason = why, "reply failed");
        self.end(row, (OutboxStatus::Sending, OutboxStatus::Failed), why)
            .await
    }

    async fn review(&self, row: &Row, why: &str) -> Result<(), StoreError> {
        tracing::warn!(outbox = row.id, reason = why, "reply handed to an agent");
        self.end(row, (OutboxStatus::Sending, OutboxStatus::NeedsReview), why)
            .await
    }

    /// Queued rows older than the maximum age become expired, and their
    /// tickets say so.
    async fn expire(&self, report: &mut DrainReport) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let max_age = self.limits.reply_max_age_secs;
        let cutoff = now - max_age as Millis * 1000;
        for row in outbox::queued_before(&self.store, cutoff, ROUND).await? {
            let (to, why) = if row.in_doubt {
                // It may have gone out: never "expired", which an agent
                // could take for "never sent" and resend.
                (
                    OutboxStatus::NeedsReview,
                    format!(
                        "still in doubt after {max_age} s (limits.reply_max_age_secs): it may or may not have gone out; check the conversation"
                    ),
                )
            } else {
                (
                    OutboxStatus::Expired,
                    format!(
                        "still queued after {max_age} s (limits.reply_max_age_secs): too old to be useful"
                    ),
                )
            };
            self.end(&row, (OutboxStatus::Queued, to), &why).await?;
            match to {
                OutboxStatus::NeedsReview => report.needs_review += 1,
                _ => report.expired += 1,
            }
        }
        Ok(())
    }

    /// Rows whose lease ran out while `sending`: the bot died mid-send.
    /// Such a row is in doubt like any send whose outcome is unknown; the
    /// next attempt settles it (look-up, or a resend the platform guards).
    async fn recover(&self, report: &mut DrainReport) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        for (row, leased_at) in outbox::lease_expired(&self.store, now, ROUND).await? {
            if outbox::recover(&self.store, row.id, leased_at, now).await? {
                tracing::warn!(outbox = row.id, "interrupted send: in doubt, settling it");
                report.recovered += 1;
            }
        }
        Ok(())
    }
}
