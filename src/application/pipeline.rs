//! Inbound message → routing decision → one store transaction.
//!
//! For each event the pipeline records the message (once: the store's
//! unique key makes replays harmless), the decision, the ticket change and
//! the outbox row together. It never sends: only the outbox does.
//!
//! A polled batch is written in ONE transaction (group commit: SQLite
//! commits ~9 k/s, so one commit per message would cap the bot there). Each
//! message is still all-or-nothing; if the batch fails, it is retried one
//! message per transaction so a single bad message cannot hold back the
//! others, and the stream's cursor only moves once every message of the
//! batch is committed.

use std::collections::HashSet;

use sqlx::{AnyConnection, Row};
use tracing::Instrument;

use crate::application::tickets::{self, NewTicket, Status, TicketPolicy};
use crate::domain::Stream;
use crate::domain::clock::{Clock, Millis};
use crate::domain::limits::{Limits, Protection};
use crate::domain::{Channel, MessageId, Priority, Queue, TicketRef};
use crate::platforms::{Account, Batch, Event, ReplyKind};
use crate::rules::normalize::normalize;
use crate::rules::{Outcome, RuleSet, Template, Vars, Via};
use crate::storage::{Store, StoreError, record_skipped, set_cursor};

/// What the pipeline needs to know about the platform account.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The brand's own account on the event's platform.
    pub me: &'a Account,
    /// When the bot first started (Unix ms).
    pub first_start: Millis,
    /// The platform the events come from.
    pub platform: crate::domain::Platform,
}

/// What happened to the automatic reply of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Queued in the outbox.
    Queued,
    /// The rules asked for one, the protections said no.
    Suppressed(String),
    /// The rules asked for none.
    None,
}

impl Reply {
    /// The name stored in `messages.auto_reply`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reply::Queued => "queued",
            Reply::Suppressed(_) => "suppressed",
            Reply::None => "none",
        }
    }
}

/// The result of processing one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// The platform message id.
    pub id: MessageId,
    /// Already recorded: nothing was done.
    pub duplicate: bool,
    /// The winning rule.
    pub rule: Option<String>,
    /// reply, escalate, ignore or none (after protections).
    pub action: &'static str,
    /// The ticket opened or added to.
    pub ticket: Option<TicketRef>,
    /// The automatic reply.
    pub reply: Reply,
}

/// The routing and protection policy, compiled from the configuration.
#[derive(Debug, Clone)]
pub struct Pipeline {
    bots: HashSet<String>,
    stop_words: HashSet<String>,
    limits: Limits,
    cap_queue: Queue,
    answer_backlog: bool,
    backlog_grace_ms: Millis,
    tickets: TicketPolicy,
    solved_window_ms: Millis,
    clock: Clock,
}

/// Normalises a whole message or stop word for comparison: the rules'
/// normalisation (case, accents, handles and URLs masked), then
/// punctuation trimmed at both ends.
fn stop_form(s: &str) -> String {
    let n = normalize(s, true);
    n.text
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_owned()
}

impl Pipeline {
    /// Builds the policy from the `[limits]`, `[protection]` and
    /// `[tickets]` settings; `answer_backlog` answers messages written
    /// before the first start.
    pub fn new(
        limits: &Limits,
        protection: &Protection,
        tickets: &TicketPolicy,
        answer_backlog: bool,
        clock: Clock,
    ) -> Self {
        Pipeline {
            tickets: tickets.clone(),
            solved_window_ms: tickets.solved_window_ms(),
            bots: protection
                .bots
                .iter()
                .map(|b| b.trim_start_matches('@').to_lowercase())
                .collect(),
            stop_words: protection
                .stop_words
                .iter()
                .map(|w| stop_form(w))
                .filter(|w| !w.is_empty())
                .collect(),
            cap_queue: limits.conversation_cap_queue.clone(),
            limits: limits.clone(),
            answer_backlog,
            backlog_grace_ms: protection.backlog_grace_secs as Millis * 1000,
            clock,
        }
    }

    /// Records a polled batch and moves the stream's cursor, atomically.
    pub async fn ingest(
        &self,
        store: &Store,
        rules: &RuleSet,
        ctx: &Context<'_>,
        stream: Stream,
        batch: &Batch,
    ) -> Result<Vec<Processed>, StoreError> {
        let whole = async {
            let mut tx = store.begin().await?;
            let mut out = Vec::with_capacity(batch.events.len());
            let mut state = BatchState::default();
            let routed = self.route_all(rules, &batch.events);
            let pre = self
                .prefetch(&mut tx, ctx.platform, &batch.events, &routed)
                .await?;
            for ((e, r), pre) in batch.events.iter().zip(routed).zip(pre) {
                out.push(
                    self.process_in_span(&mut tx, ctx, e, r, pre, &mut state)
                        .await?,
                );
            }
            state.pending.flush(&mut tx, store.backend()).await?;
            self.close_page(&mut tx, ctx.platform, stream, batch)
                .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(out)
        };
        match whole.await {
            Ok(out) => Ok(out),
            Err(first) if batch.events.len() > 1 => {
                tracing::warn!(error = %first, "batch failed; retrying one message per transaction");
                let mut out = Vec::with_capacity(batch.events.len());
                for e in &batch.events {
                    let one = std::slice::from_ref(e);
                    let mut tx = store.begin().await?;
                    let mut state = BatchState::default();
                    let mut routed = self.route_all(rules, one);
                    let mut pre = self.prefetch(&mut tx, ctx.platform, one, &routed).await?;
                    let (r, p) = (routed.remove(0), pre.remove(0));
                    out.push(
                        self.process_in_span(&mut tx, ctx, e, r, p, &mut state)
                            .await?,
                    );
                    state.pending.flush(&mut tx, store.backend()).await?;
                    tx.commit().await?;
                }
                let mut tx = store.begin().await?;
                self.close_page(&mut tx, ctx.platform, stream, batch)
                    .await?;
                tx.commit().await?;
                Ok(out)
            }
            Err(e) => Err(e),
        }
    }

    /// Records the page's undecodable items and moves the stream's cursor
    /// past everything, in the transaction that recorded its events.
    async fn close_page(
        &self,
        tx: &mut sqlx::AnyConnection,
        platform: crate::domain::Platform,
        stream: Stream,
        batch: &Batch,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        record_skipped(tx, platform, stream, &batch.skipped, now).await?;
        if let Some(c) = &batch.cursor {
            set_cursor(tx, platform, stream, c, now).await?;
        }
        Ok(())
    }

    /// Processes one event inside its own tracing span (id, rule, action),
    /// and counts it.
    async fn process_in_span(
        &self,
        conn: &mut AnyConnection,
        ctx: &Context<'_>,
        e: &Event,
        routed: Routed<'_>,
        pre: Prefetched,
        state: &mut BatchState,
    ) -> Result<Processed, StoreError> {
        let span = tracing::info_span!(
            "message",
            platform = %e.platform,
            channel = %e.channel,
            id = %e.id,
            rule = tracing::field::Empty,
            action = tracing::field::Empty,
        );
        let p = self
            .process(conn, ctx, e, routed, pre, state)
            .instrument(span.clone())
            .await?;
        if !p.duplicate {
            let rule = p.rule.clone().unwrap_or_else(|| "(default)".into());
            span.record("rule", rule.as_str());
            span.record("action", p.action);
            span.in_scope(|| {
                tracing::info!(
                    ticket = ?p.ticket.map(|t| t.to_string()),
                    reply = p.reply.as_str(),
                    "message routed"
                )
            });
            metrics::counter!("helpdesk_inbound_total", "platform" => e.platform.as_str(), "channel" => e.channel.as_str()).increment(1);
            metrics::counter!("helpdesk_routed_total", "rule" => rule, "action" => p.action)
                .increment(1);
        }
        Ok(p)
    }

    /// Why an event must never get an automatic answer, if it must not.
    fn protected(&self, ctx: &Context<'_>, e: &Event) -> Option<&'static str> {
        if e.author.id == ctx.me.id
            || e.author
                .handle
                .as_str()
                .eq_ignore_ascii_case(ctx.me.handle.as_str())
        {
            Some("the bot's own account")
        } else if e.is_repost {
            Some("a retweet or boost")
        } else if self.bots.contains(&e.author.handle.as_str().to_lowercase()) {
            Some("an account on the bot list")
        } else if !self.answer_backlog && e.at < ctx.first_start - self.backlog_grace_ms {
            Some("written before the bot's first start")
        } else {
            None
        }
    }

    /// Routes every event of a batch and renders the replies the rules ask
    /// for (the same-reply check needs the text before anything is written).
    fn route_all<'r>(&self, rules: &'r RuleSet, events: &[Event]) -> Vec<Routed<'r>> {
        events
            .iter()
            .map(|e| {
                let decision = rules.route(&e.text, e.channel);
                let reply_text = match decision.outcome() {
                    Outcome::Reply(t, _) => t.render(&Vars {
                        author: e.author.handle.as_str(),
                        name: &customer_name(e, t),
                        ticket: None,
                    }),
                    _ => String::new(),
                };
                Routed {
                    decision,
                    reply_text,
                }
            })
            .collect()
    }

    /// Everything the decisions of a batch need from the database, in one
    /// round trip per 100 events: a duplicate, an opt-out, the
    /// conversation's automatic replies, the same reply sent lately, and the
    /// customer's latest ticket that is not closed. What earlier messages of
    /// the same batch change is tracked in [`BatchState`].
    async fn prefetch(
        &self,
        conn: &mut AnyConnection,
        platform: crate::domain::Platform,
        events: &[Event],
        routed: &[Routed<'_>],
    ) -> Result<Vec<Prefetched>, StoreError> {
        let since = self.clock.now_ms() - self.limits.same_reply_window_secs as Millis * 1000;
        let mut out = Vec::with_capacity(events.len());
        for (chunk_no, chunk) in events.chunks(100).enumerate() {
            let base = chunk_no * 100;
            let mut values = String::new();
            for i in 0..chunk.len() {
                let b = 3 + i * 5;
                if i > 0 {
                    values.push_str(", ");
                }
                values.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    b,
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4
                ));
            }
            let sql = format!(
                "WITH ev (i, mid, cust, conv, txt) AS (VALUES {values}) \
                 SELECT q.i, q.dup, q.opted, q.autos, q.same, t.id, t.status, t.solved_at, \
                        t.survey_sent_at, t.survey_answered_at \
                 FROM (SELECT ev.i, \
                   (SELECT id FROM messages WHERE platform = $1 AND platform_message_id = ev.mid) AS dup, \
                   CAST(CASE WHEN EXISTS (SELECT 1 FROM opt_outs WHERE platform = $1 \
                        AND customer_id = ev.cust) THEN 1 ELSE 0 END AS BIGINT) AS opted, \
                   (SELECT COUNT(*) FROM outbox WHERE platform = $1 AND conversation_id = ev.conv \
                        AND origin = 'auto') AS autos, \
                   CAST(CASE WHEN ev.txt <> '' AND EXISTS (SELECT 1 FROM outbox WHERE platform = $1 \
                        AND customer_id = ev.cust AND text = ev.txt AND created_at >= $2 \
                        AND status IN ('queued', 'sending', 'sent')) THEN 1 ELSE 0 END AS BIGINT) AS same, \
                   (SELECT id FROM tickets WHERE platform = $1 AND customer_id = ev.cust \
                        AND status <> 'closed' ORDER BY id DESC LIMIT 1) AS tid \
                   FROM ev) AS q LEFT JOIN tickets t ON t.id = q.tid ORDER BY q.i"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(platform.as_str())
                .bind(since);
            for (i, e) in chunk.iter().enumerate() {
                q = q
                    .bind(i as i64)
                    .bind(e.id.as_str())
                    .bind(e.author.id.as_str())
                    .bind(e.conversation.as_str())
                    .bind(routed[base + i].reply_text.as_str());
            }
            for row in q.fetch_all(&mut *conn).await? {
                out.push(Prefetched {
                    existing: row.try_get::<Option<i64>, _>(1)?.is_some(),
                    opted_out: row.try_get::<i64, _>(2)? != 0,
                    auto_replies: row.try_get(3)?,
                    same_text: row.try_get::<i64, _>(4)? != 0,
                    latest: LatestTicket::from_row(&row, 5)?,
                });
            }
        }
        Ok(out)
    }

    /// Processes one event inside `conn`'s transaction; its outbox row, if
    /// any, joins the batch's pending rows, written before the commit.
    async fn process(
        &self,
        conn: &mut AnyConnection,
        ctx: &Context<'_>,
        e: &Event,
        routed: Routed<'_>,
        pre: Prefetched,
        state: &mut BatchState,
    ) -> Result<Processed, StoreError> {
        let now = self.clock.now_ms();
        let Routed {
            decision,
            reply_text,
        } = routed;
        let outcome = decision.outcome();
        let rule = decision.rule_id().map(|r| r.as_str().to_owned());
        let keyword = decision.winner.as_ref().map(|w| w.keyword.written.clone());
        let customer = e.author.id.as_str();
        // The database as prefetched, plus what this batch did since.
        if pre.existing || !state.seen.insert(e.id.as_str().to_owned()) {
            return Ok(Processed {
                id: e.id.clone(),
                duplicate: true,
                rule,
                action: outcome.name(),
                ticket: None,
                reply: Reply::None,
            });
        }
        let opted_out = pre.opted_out || state.stopped.contains(customer);
        let auto_replies: i64 = pre.auto_replies
            + state
                .pending
                .per_conversation
                .get(e.conversation.as_str())
                .copied()
                .unwrap_or(0);
        let same_text = pre.same_text
            || state
                .pending
                .texts
                .contains(&(customer.to_owned(), reply_text.clone()));
        let capped = auto_replies >= self.limits.per_conversation as i64;
        let latest = match state.tickets.get(customer) {
            Some(t) => t.clone(),
            None => pre.latest,
        };

        let mut plan = Plan {
            action: outcome.name(),
            reason: None,
            escalate: None,
            reply: None,
            stop: false,
        };
        // The ticket this message joins, and its status then.
        let mut join: Option<(TicketRef, Status)> = None;
        let joinable = !matches!(outcome, Outcome::Ignore);
        if let Some(why) = self.protected(ctx, e) {
            // Recorded with the rule that matched, but nothing is done.
            plan.action = "ignore";
            plan.reason = Some(format!("not answered: {why}"));
        } else if self.stop_words.contains(&stop_form(&e.text)) {
            plan.action = "ignore";
            plan.reason = Some("the customer asked to stop automatic replies".into());
            plan.stop = true;
        } else if let Some(t) = latest.as_ref().filter(|t| t.status.is_active() && joinable) {
            // A customer with a ticket open talks to a human: no FAQ reply.
            plan.action = "escalate";
            plan.reason = Some(format!(
                "follow-up added to {}: no automatic reply while the ticket is {}",
                t.id, t.status
            ));
            join = Some((t.id, t.status));
        } else if let Some((t, rating)) = latest
            .as_ref()
            .filter(|t| t.awaits_survey() && e.channel == Channel::Dm)
            .map(|t| (t, survey_rating(&e.text)))
            .filter(|(_, r)| r.is_some())
        {
            let rating = rating.expect("filtered");
            record_rating(conn, t.id, rating, now).await?;
            plan.action = "ignore";
            plan.reason = Some(format!("satisfaction answer {rating}/5 for {}", t.id));
            join = Some((t.id, Status::Solved));
        } else if let Some(t) = latest.as_ref().filter(|t| {
            t.status == Status::Solved
                && joinable
                && t.solved_at
                    .is_some_and(|s| now - s <= self.solved_window_ms)
        }) {
            plan.action = "escalate";
            plan.reason = Some(format!("{} reopened: the customer wrote again", t.id));
            join = Some((t.id, t.status));
        } else {
            match outcome {
                Outcome::Reply(t, via) => {
                    if capped {
                        plan.action = "escalate";
                        plan.reason = Some(format!(
                            "{auto_replies} automatic replies in this conversation already: escalated instead"
                        ));
                        plan.escalate = Some((self.cap_queue.clone(), Priority::Normal, None, via));
                    } else if opted_out {
                        plan.reason = Some("the customer opted out of automatic replies".into());
                    } else if same_text {
                        plan.reason =
                            Some("the same reply went to this customer within 24 h".into());
                    } else {
                        plan.reply = Some((reply_text.clone(), via, t));
                    }
                }
                Outcome::Escalate(esc, via) => {
                    plan.escalate = Some((esc.queue.clone(), esc.priority, esc.ack.as_ref(), via));
                }
                Outcome::Ignore | Outcome::None => {}
            }
        }
        // What later messages of this batch must see of this customer's ticket.
        let mut after = latest.clone();
        if let Some(t) = latest
            .as_ref()
            .filter(|t| t.awaits_survey() && e.channel == Channel::Dm)
        {
            // The survey asks about the next DM only.
            survey_answered(conn, t.id, now).await?;
            if let Some(a) = after.as_mut() {
                a.survey_answered = true;
            }
        }

        // The ticket first: the message row points at it.
        let mut ticket = None;
        let mut ack: Option<(&Template, Via)> = None;
        let mut follow_up = false;
        if let Some((t, status)) = join {
            ticket = Some(t);
            follow_up = true;
            if matches!(status, Status::Pending)
                || (status == Status::Solved && plan.action != "ignore")
            {
                tickets::set_status(conn, t, "customer", status, Status::Open, now).await?;
                if let Some(a) = after.as_mut() {
                    a.status = Status::Open;
                    a.solved_at = None;
                }
            }
        } else if let Some((queue, priority, ack_t, via)) = &plan.escalate {
            let note = plan.reason.clone();
            ticket = Some(
                tickets::open(
                    conn,
                    &NewTicket {
                        queue,
                        priority: *priority,
                        platform: e.platform,
                        customer_id: e.author.id.as_str(),
                        customer_handle: e.author.handle.as_str(),
                        conversation_id: e.conversation.as_str(),
                        rule_id: rule.as_deref(),
                        note: note.as_deref(),
                        first_response_due: self.tickets.first_response_due(*priority, now),
                    },
                    now,
                )
                .await?,
            );
            after = ticket.map(|id| LatestTicket {
                id,
                status: Status::New,
                solved_at: None,
                survey_sent: false,
                survey_answered: false,
            });
            if let Some(a) = ack_t {
                if opted_out {
                    plan.reason = Some("the customer opted out of automatic replies".into());
                } else if capped {
                    plan.reason.get_or_insert_with(|| {
                        format!("{auto_replies} automatic replies in this conversation already: no acknowledgement")
                    });
                } else {
                    ack = Some((a, *via));
                }
            }
        }

        let to_send = match (&plan.reply, ack) {
            (Some((text, via, _)), _) => Some((text.clone(), *via)),
            (None, Some((a, via))) => {
                let r = ticket.map(|t| t.to_string());
                let name = customer_name(e, a);
                let v = Vars {
                    author: e.author.handle.as_str(),
                    name: &name,
                    ticket: r.as_deref(),
                };
                Some((a.render(&v), via))
            }
            (None, None) => None,
        };
        let reply = match (&to_send, &plan.reason) {
            (Some(_), _) => Reply::Queued,
            (None, Some(r)) if plan.wanted_reply(outcome) && !follow_up => {
                Reply::Suppressed(r.clone())
            }
            _ => Reply::None,
        };

        state.pending.messages.push(MsgRow {
            platform: e.platform,
            id: e.id.as_str().to_owned(),
            channel: e.channel,
            conversation: e.conversation.as_str().to_owned(),
            author_id: customer.to_owned(),
            handle: e.author.handle.as_str().to_owned(),
            name: e.author.name.clone(),
            text: e.text.clone(),
            in_reply_to: e.in_reply_to.as_ref().map(|m| m.as_str().to_owned()),
            written_at: e.at,
            received_at: now,
            rule: rule.clone(),
            keyword,
            action: plan.action,
            auto_reply: reply.as_str(),
            reason: plan.reason.clone(),
            ticket: ticket.map(|t| t.0),
            mentioned: (!e.mentioned.is_empty()).then(|| {
                let ids: Vec<&str> = e.mentioned.iter().map(|u| u.as_str()).collect();
                ids.join(" ")
            }),
        });

        state.tickets.insert(customer.to_owned(), after);
        if plan.stop {
            state.stopped.insert(customer.to_owned());
            state.pending.opt_outs.push((
                e.platform,
                customer.to_owned(),
                e.id.as_str().to_owned(),
                now,
            ));
        }
        // The message joins its ticket's conversation by a trigger
        // (migration 0003), whoever inserts it.
        if let Some((text, via)) = to_send {
            let kind = match (via, e.channel) {
                (Via::Dm, _) | (Via::Same, Channel::Dm) => ReplyKind::Dm,
                (Via::Same, _) => ReplyKind::Public,
            };
            state.pending.push(OutRow {
                platform: e.platform,
                kind,
                ticket: ticket.map(|t| t.0),
                customer_id: e.author.id.as_str().to_owned(),
                handle: e.author.handle.as_str().to_owned(),
                conversation: e.conversation.as_str().to_owned(),
                in_reply_to: e.id.as_str().to_owned(),
                text,
                at: now,
            });
        }
        Ok(Processed {
            id: e.id.clone(),
            duplicate: false,
            rule,
            action: plan.action,
            ticket,
            reply,
        })
    }
}

/// An event routed, with the reply the rules ask for rendered.
struct Routed<'r> {
    decision: crate::rules::Decision<'r>,
    reply_text: String,
}

/// What the database said about an event before its batch was written.
struct Prefetched {
    existing: bool,
    opted_out: bool,
    auto_replies: i64,
    same_text: bool,
    latest: Option<LatestTicket>,
}

/// What a batch has done so far that its later messages must see: the
/// database was read once, before the batch.
#[derive(Default)]
struct BatchState {
    pending: Pending,
    seen: HashSet<String>,
    stopped: HashSet<String>,
    tickets: std::collections::HashMap<String, Option<LatestTicket>>,
}

/// One inbound message with its decision, for the `messages` table.
struct MsgRow {
    platform: crate::domain::Platform,
    id: String,
    channel: Channel,
    conversation: String,
    author_id: String,
    handle: String,
    name: String,
    text: String,
    in_reply_to: Option<String>,
    written_at: Millis,
    received_at: Millis,
    rule: Option<String>,
    keyword: Option<String>,
    action: &'static str,
    auto_reply: &'static str,
    reason: Option<String>,
    ticket: Option<i64>,
    mentioned: Option<String>,
}

/// `($1, …, $n), ($n+1, …)`: the VALUES of a multi-row statement whose
/// rows each take `per_row` parameters, starting after `offset`.
/// `anonymous` writes `?` instead (SQLite binds those without looking each
/// parameter's name up, which costs 5 % of a batch); only for rows that use
/// each parameter once, in order.
fn values_list(
    rows: usize,
    per_row: usize,
    offset: usize,
    anonymous: bool,
    row: impl Fn(&[String]) -> String,
) -> String {
    let mut out = String::new();
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        let params: Vec<String> = (1..=per_row)
            .map(|k| {
                if anonymous {
                    "?".to_owned()
                } else {
                    format!("${}", offset + r * per_row + k)
                }
            })
            .collect();
        out.push_str(&row(&params));
    }
    out
}

/// One automatic reply for the outbox.
struct OutRow {
    platform: crate::domain::Platform,
    kind: ReplyKind,
    ticket: Option<i64>,
    customer_id: String,
    handle: String,
    conversation: String,
    in_reply_to: String,
    text: String,
    at: Millis,
}

/// A batch's outbox rows, written in one statement before its commit
/// (SQLite pays a thread round trip per statement), and what later
/// messages of the same batch must see of them.
#[derive(Default)]
pub(crate) struct Pending {
    messages: Vec<MsgRow>,
    opt_outs: Vec<(crate::domain::Platform, String, String, Millis)>,
    rows: Vec<OutRow>,
    texts: HashSet<(String, String)>,
    per_conversation: std::collections::HashMap<String, i64>,
}

impl Pending {
    fn push(&mut self, r: OutRow) {
        self.texts.insert((r.customer_id.clone(), r.text.clone()));
        *self
            .per_conversation
            .entry(r.conversation.clone())
            .or_default() += 1;
        self.rows.push(r);
    }

    /// Writes the batch's messages, opt-outs and outbox rows, a few
    /// statements for the whole batch.
    async fn flush(
        &mut self,
        conn: &mut AnyConnection,
        backend: crate::storage::Backend,
    ) -> Result<(), StoreError> {
        let anonymous = backend == crate::storage::Backend::Sqlite;
        // 17 parameters a row; 50 rows stay far under every backend's limit.
        for chunk in self.messages.chunks(50) {
            let sql = format!(
                "INSERT INTO messages (platform, platform_message_id, channel, conversation_id, author_id, \
                 author_handle, author_name, text, in_reply_to, written_at, received_at, rule_id, keyword, \
                 action, auto_reply, reason, ticket_id, mentioned_ids) VALUES {}",
                values_list(chunk.len(), 18, 0, anonymous, |p| format!(
                    "({})",
                    p.join(", ")
                ))
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for m in chunk {
                q = q
                    .bind(m.platform.as_str())
                    .bind(m.id.as_str())
                    .bind(m.channel.as_str())
                    .bind(m.conversation.as_str())
                    .bind(m.author_id.as_str())
                    .bind(m.handle.as_str())
                    .bind(m.name.as_str())
                    .bind(m.text.as_str())
                    .bind(m.in_reply_to.as_deref())
                    .bind(m.written_at)
                    .bind(m.received_at)
                    .bind(m.rule.as_deref())
                    .bind(m.keyword.as_deref())
                    .bind(m.action)
                    .bind(m.auto_reply)
                    .bind(m.reason.as_deref())
                    .bind(m.ticket)
                    .bind(m.mentioned.as_deref());
            }
            q.execute(&mut *conn).await?;
        }
        for (platform, customer, message, at) in &self.opt_outs {
            sqlx::query(
                "INSERT INTO opt_outs (platform, customer_id, message_id, at) VALUES ($1, $2, \
                 (SELECT id FROM messages WHERE platform = $1 AND platform_message_id = $3), $4) \
                 ON CONFLICT (platform, customer_id) DO NOTHING",
            )
            .bind(platform.as_str())
            .bind(customer.as_str())
            .bind(message.as_str())
            .bind(*at)
            .execute(&mut *conn)
            .await?;
        }
        // 9 parameters a row; the message id is looked up inside the statement.
        for chunk in self.rows.chunks(100) {
            let sql = format!(
                "INSERT INTO outbox (platform, kind, origin, message_id, ticket_id, customer_id, \
                 customer_handle, conversation_id, in_reply_to, text, status, created_at, \
                 next_attempt_at, updated_at) VALUES {}",
                values_list(chunk.len(), 9, 0, false, |p| format!(
                    "({0}, {1}, 'auto', (SELECT id FROM messages WHERE platform = {0} \
                     AND platform_message_id = {6}), {2}, {3}, {4}, {5}, {6}, {7}, 'queued', {8}, {8}, {8})",
                    p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]
                ))
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.platform.as_str())
                    .bind(r.kind.as_str())
                    .bind(r.ticket)
                    .bind(r.customer_id.as_str())
                    .bind(r.handle.as_str())
                    .bind(r.conversation.as_str())
                    .bind(r.in_reply_to.as_str())
                    .bind(r.text.as_str())
                    .bind(r.at);
            }
            q.execute(&mut *conn).await?;
        }
        self.messages.clear();
        self.opt_outs.clear();
        self.rows.clear();
        Ok(())
    }
}

/// What the pipeline decided to do with one message.
struct Plan<'r> {
    action: &'static str,
    reason: Option<String>,
    escalate: Option<(Queue, Priority, Option<&'r Template>, Via)>,
    reply: Option<(String, Via, &'r Template)>,
    stop: bool,
}

impl Plan<'_> {
    /// Whether the rules asked for an automatic message to the customer.
    fn wanted_reply(&self, outcome: Outcome<'_>) -> bool {
        match outcome {
            Outcome::Reply(..) => true,
            Outcome::Escalate(e, _) => e.ack.is_some(),
            Outcome::Ignore | Outcome::None => false,
        }
    }
}

/// The customer's most recent ticket that is not closed.
#[derive(Debug, Clone)]
struct LatestTicket {
    id: TicketRef,
    status: Status,
    solved_at: Option<Millis>,
    survey_sent: bool,
    survey_answered: bool,
}

impl LatestTicket {
    /// Solved, surveyed, and the survey not answered yet.
    fn awaits_survey(&self) -> bool {
        self.status == Status::Solved && self.survey_sent && !self.survey_answered
    }
}

impl LatestTicket {
    /// Reads the ticket columns starting at `at`; none when the id is NULL.
    fn from_row(r: &sqlx::any::AnyRow, at: usize) -> Result<Option<LatestTicket>, StoreError> {
        let Some(id) = r.try_get::<Option<i64>, _>(at)? else {
            return Ok(None);
        };
        let status: String = r.try_get(at + 1)?;
        Ok(Some(LatestTicket {
            id: TicketRef(id),
            status: status.parse().map_err(|e: crate::domain::UnknownName| {
                StoreError::Query(sqlx::Error::Decode(e.into()))
            })?,
            solved_at: r.try_get(at + 2)?,
            survey_sent: r.try_get::<Option<i64>, _>(at + 3)?.is_some(),
            survey_answered: r.try_get::<Option<i64>, _>(at + 4)?.is_some(),
        }))
    }
}

/// The first digit of a survey answer, when it is 1 to 5.
fn survey_rating(text: &str) -> Option<i64> {
    let d = text.chars().find(|c| c.is_ascii_digit())?;
    let n = d.to_digit(10)? as i64;
    (1..=5).contains(&n).then_some(n)
}

async fn survey_answered(
    conn: &mut AnyConnection,
    t: TicketRef,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tickets SET survey_answered_at = $1 WHERE id = $2 AND survey_answered_at IS NULL",
    )
    .bind(now)
    .bind(t.0)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn record_rating(
    conn: &mut AnyConnection,
    t: TicketRef,
    rating: i64,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET csat = $1, updated_at = $2 WHERE id = $3")
        .bind(rating)
        .bind(now)
        .bind(t.0)
        .execute(&mut *conn)
        .await?;
    let r = rating.to_string();
    tickets::event(conn, t, "customer", "csat", None, Some(&r), None, now).await
}

/// The customer's display name as a reply may use it: inert, cut to the
/// platform's own maximum (a 2 000-character name must not make a reply
/// the platform refuses as too long).
/// Made only for a template that uses `{name}`: the routing path of every
/// message need not pay for it.
fn customer_name(e: &Event, template: &Template) -> String {
    if !template.uses(crate::rules::template::Placeholder::Name) {
        return String::new();
    }
    crate::domain::inert::name(&e.author.name, crate::domain::inert::name_max(e.platform))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survey_answers_read_the_first_digit() {
        assert_eq!(survey_rating("5"), Some(5));
        assert_eq!(survey_rating("je mets 4/5, merci"), Some(4));
        assert_eq!(survey_rating("0"), None);
        assert_eq!(survey_rating("9 !"), None);
        assert_eq!(survey_rating("super"), None);
    }
}
