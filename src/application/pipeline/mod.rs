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
//!
//! Per batch: every message is decided first ([`decide`](decide), pure:
//! protections, tickets, caps), then the tickets the batch opens are
//! inserted in one statement, then [`Pipeline::act`] makes each message's
//! writes (most of them as rows written together before the commit): a
//! few round trips a batch, however many tickets it opens.

mod batch;
mod decide;
mod incidents;

use std::collections::HashSet;

use sqlx::AnyConnection;
use tracing::Instrument;

use self::batch::{BatchState, OutRow, Pending};
use self::decide::{InIncident, Plan, Policy, Seen, TicketStep, action_of, stop_form};
use self::incidents::kind_of;
use crate::application::incidents::{IncidentPolicy, queue_alert};
use crate::application::tickets::TicketPolicy;
use crate::domain::clock::{Clock, Millis};
use crate::domain::hours::BusinessHours;
use crate::domain::language::{Lang, LocalizedText};
use crate::domain::limits::{Limits, Protection};
use crate::domain::states::{Action, AutoReply, TicketStatus};
use crate::domain::{MessageId, Platform, Priority, SignalName, Stream, TicketRef};
use crate::platforms::chat::AlertEvent;
use crate::platforms::{Account, Batch, Event};
use crate::rules::language::Detector;
use crate::rules::{Localized, Outcome, RuleSet, Template, Vars, Via};
use crate::storage::messages::{self, Known, NewMessage, Probe};
use crate::storage::opt_outs::OptOut;
use crate::storage::tickets::{self, Latest, NewTicket};
use crate::storage::{Backend, Store, StoreError, record_skipped, set_cursor};

/// What the pipeline needs to know about the platform account.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The brand's own account on the event's platform.
    pub me: &'a Account,
    /// When the bot first started (Unix ms).
    pub first_start: Millis,
    /// The platform the events come from.
    pub platform: Platform,
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
    /// What `messages.auto_reply` records.
    pub fn stored(&self) -> AutoReply {
        match self {
            Reply::Queued => AutoReply::Queued,
            Reply::Suppressed(_) => AutoReply::Suppressed,
            Reply::None => AutoReply::None,
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
    /// What was done (after protections).
    pub action: Action,
    /// The ticket opened or added to.
    pub ticket: Option<TicketRef>,
    /// The automatic reply.
    pub reply: Reply,
}

/// The routing and protection policy, compiled from the configuration.
#[derive(Debug, Clone)]
pub struct Pipeline {
    policy: Policy,
    tickets: TicketPolicy,
    incidents: IncidentPolicy,
    /// Each watched rule's baseline and when it was read: a rule whose
    /// usual traffic is above `min_customers` would otherwise re-read it
    /// (nine queries) in every batch, under SQLite's write lock.
    baselines: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (Millis, f64)>>>,
    clock: Clock,
}

/// An event routed, with the reply the rules ask for rendered.
struct Routed<'r> {
    decision: crate::rules::Decision<'r>,
    reply_text: String,
    /// The rule's `incident_reply`, rendered, when it has one.
    incident_text: Option<String>,
    /// The customer's language: read when the brand speaks several (see
    /// [`Pipeline::route_all`]), else the platform's tag; detection costs
    /// some 0.1 ms, more than routing.
    lang: Option<Lang>,
}

/// How an automatic text is written for one customer: in their language
/// (else `[language] default`), ending with `[replies] signature`.
#[derive(Debug, Clone, Copy)]
struct Voice<'a> {
    lang: Option<Lang>,
    default: Option<Lang>,
    signature: Option<&'a LocalizedText>,
    /// `[hours]` and the next opening, while the team is away: `{opens}`.
    closed: Option<(&'a BusinessHours, Millis)>,
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
        let policy = Policy {
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
                .collect::<HashSet<_>>(),
            cap_queue: limits.conversation_cap_queue.clone(),
            limits: limits.clone(),
            answer_backlog,
            backlog_grace_ms: protection.backlog_grace_secs as Millis * 1000,
            solved_window_ms: tickets.solved_window_ms(),
        };
        Pipeline {
            policy,
            tickets: tickets.clone(),
            incidents: IncidentPolicy::default(),
            baselines: Default::default(),
            clock,
        }
    }

    /// With `[incidents]`'s thresholds and alerts (else the defaults, and
    /// no alerts).
    pub fn with_incidents(mut self, incidents: &IncidentPolicy) -> Self {
        self.incidents = incidents.clone();
        self
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
        // Routed, and the languages read, before the transaction begins:
        // reading is the costliest step, and must not hold the database's
        // write lock.
        let now = self.clock.now_ms();
        let opens = self.tickets.hours.as_ref().and_then(|h| h.opens_after(now));
        let routed = self.route_all(rules, &batch.events, opens);
        let whole = async {
            let mut tx = store.begin().await?;
            let out = self
                .record(&mut tx, store, ctx, (&batch.events, &routed), (now, opens))
                .await?;
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
                for (e, r) in batch.events.iter().zip(&routed) {
                    let mut tx = store.begin().await?;
                    let one = (std::slice::from_ref(e), std::slice::from_ref(r));
                    out.extend(self.record(&mut tx, store, ctx, one, (now, opens)).await?);
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

    /// Routes, decides and writes `events` inside `tx`'s transaction.
    ///
    /// In three steps, so that a batch costs a few round trips whatever it
    /// holds: every message is decided first ([`Self::decide_all`], pure),
    /// then the tickets the batch opens are inserted in one statement, then
    /// each message's writes are made, most of them as rows written
    /// together before the commit.
    /// `routed`: each event's routing; `now`: the batch's one time, at
    /// which it was routed (its messages are decided and written
    /// together, and a wait for the database's lock must not make a
    /// closed-hours ack and an SLA read two clocks); `opens`: the next
    /// opening while the team is away, at `now`.
    async fn record(
        &self,
        tx: &mut AnyConnection,
        store: &Store,
        ctx: &Context<'_>,
        (events, routed): (&[Event], &[Routed<'_>]),
        (now, opens): (Millis, Option<Millis>),
    ) -> Result<Vec<Processed>, StoreError> {
        let known = self
            .prefetch(tx, store.backend(), ctx.platform, events, routed)
            .await?;
        let watched = self
            .watch(tx, store.backend(), ctx, (events, routed, &known), now)
            .await?;
        let decided = self.decide_all(ctx, (events, routed), (&known, &watched.each), (now, opens));
        let opened = self
            .open_tickets(tx, store.backend(), events, routed, &decided, now)
            .await?;
        let mut acting = Acting {
            state: BatchState::default(),
            pending: Pending::default(),
            opened: opened.into_iter(),
            now,
            opens,
            members: Vec::new(),
            backend: store.backend(),
        };
        let mut out = Vec::with_capacity(events.len());
        let each = events.iter().zip(routed).zip(&known).zip(&watched.each);
        for ((((e, r), k), w), d) in each.zip(decided) {
            out.push(
                self.process_in_span(tx, ctx, (e, r, k, *w), d, &mut acting)
                    .await?,
            );
        }
        if acting.opened.next().is_some() {
            return Err(StoreError::Inconsistent(
                "a ticket the batch opened was not used by its message",
            ));
        }
        let due_for = self.due_for();
        acting
            .pending
            .flush(tx, store.backend(), &due_for, now)
            .await?;
        if !acting.members.is_empty() {
            crate::storage::incidents::join(tx, &acting.members, now).await?;
        }
        // Announced once the message that opened it has joined it.
        for id in watched.opened {
            queue_alert(
                tx,
                store.backend(),
                (id, AlertEvent::Opened),
                None,
                &self.incidents,
                now,
            )
            .await?;
        }
        Ok(out)
    }

    /// Records the page's undecodable items and moves the stream's cursor
    /// past everything, in the transaction that recorded its events.
    async fn close_page(
        &self,
        tx: &mut AnyConnection,
        platform: Platform,
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
    async fn process_in_span<'r>(
        &self,
        conn: &mut AnyConnection,
        ctx: &Context<'_>,
        item: (&Event, &Routed<'r>, &Known, Option<InIncident>),
        decided: Option<Decided<'r>>,
        acting: &mut Acting,
    ) -> Result<Processed, StoreError> {
        let e = item.0;
        let span = tracing::info_span!(
            "message",
            platform = %e.platform,
            channel = %e.channel,
            id = %e.id,
            rule = tracing::field::Empty,
            action = tracing::field::Empty,
        );
        let p = self
            .process(conn, ctx, item, decided, acting)
            .instrument(span.clone())
            .await?;
        if !p.duplicate {
            let rule = p.rule.clone().unwrap_or_else(|| "(default)".into());
            span.record("rule", rule.as_str());
            span.record("action", p.action.as_str());
            span.in_scope(|| {
                tracing::info!(
                    ticket = ?p.ticket.map(|t| t.to_string()),
                    reply = p.reply.stored().as_str(),
                    "message routed"
                )
            });
            metrics::counter!("helpdesk_inbound_total", "platform" => e.platform.as_str(), "channel" => e.channel.as_str()).increment(1);
            metrics::counter!("helpdesk_routed_total", "rule" => rule, "action" => p.action.as_str())
                .increment(1);
        }
        Ok(p)
    }

    /// Routes every event of a batch and renders the replies the rules ask
    /// for (the same-reply check needs the text before anything is written).
    /// `opens`: the next opening while the team is away.
    fn route_all<'r>(
        &self,
        rules: &'r RuleSet,
        events: &[Event],
        opens: Option<Millis>,
    ) -> Vec<Routed<'r>> {
        let signed_by_lang = self
            .tickets
            .signature
            .as_ref()
            .is_some_and(|s| s.is_table());
        // A brand that speaks several languages has every message it may
        // answer read, so that the message, its ticket, the survey and
        // `report` know the customer's language; one that does not pays
        // nothing for it (reading costs more than routing).
        let every = self.tickets.speaks_languages() || rules.has_language_tables();
        let decisions: Vec<_> = events
            .iter()
            .map(|e| rules.route(&e.text, e.channel))
            .collect();
        let read: Vec<bool> = decisions
            .iter()
            .map(|d| {
                let incident = d.winner.as_ref().is_some_and(|w| {
                    let texts = &w.rule.incident;
                    [&texts.reply, &texts.resolved]
                        .into_iter()
                        .flatten()
                        .any(|t| t.needs_language() || signed_by_lang)
                });
                incident
                    || match d.outcome() {
                        Outcome::Reply(t, _) => t.needs_language() || signed_by_lang || every,
                        Outcome::Escalate(esc, _) => match esc.ack_for(opens.is_some()) {
                            Some(t) => t.needs_language() || signed_by_lang || every,
                            None => every,
                        },
                        Outcome::Ignore => false,
                        Outcome::None => every,
                    }
            })
            .collect();
        let langs = read_languages(events, &read);
        events
            .iter()
            .zip(decisions)
            .zip(langs)
            .map(|((e, decision), lang)| {
                let voice = self.voice(lang, opens);
                let reply_text = match decision.outcome() {
                    Outcome::Reply(t, _) => sign(render(Who::of(e), t, None, voice), voice),
                    _ => String::new(),
                };
                let incident_text = decision.winner.as_ref().and_then(|w| {
                    let t = w.rule.incident.reply.as_ref()?;
                    Some(sign(render(Who::of(e), t, None, voice), voice))
                });
                Routed {
                    decision,
                    reply_text,
                    incident_text,
                    lang,
                }
            })
            .collect()
    }

    /// When a ticket of a priority, opened at a time, is due a first
    /// response under the ticket policy.
    fn due_for(&self) -> impl Fn(Priority, Millis) -> Millis + Sync + '_ {
        |p, opened| self.tickets.first_response_due(p, opened)
    }

    /// How an automatic text is written for a customer who reads `lang`,
    /// `opens` being the next opening while the team is away.
    fn voice(&self, lang: Option<Lang>, opens: Option<Millis>) -> Voice<'_> {
        Voice {
            lang,
            default: self.tickets.default_lang,
            signature: self.tickets.signature.as_ref(),
            closed: self.tickets.hours.as_ref().zip(opens),
        }
    }

    /// Everything the decisions of a batch need from the database, in one
    /// round trip per 100 events (see [`messages::known`]). What earlier
    /// messages of the same batch change is tracked in [`BatchState`].
    async fn prefetch(
        &self,
        conn: &mut AnyConnection,
        backend: Backend,
        platform: Platform,
        events: &[Event],
        routed: &[Routed<'_>],
    ) -> Result<Vec<Known>, StoreError> {
        let window = self.policy.limits.same_reply_window_secs as Millis * 1000;
        let since = self.clock.now_ms() - window;
        let probes: Vec<Probe<'_>> = events
            .iter()
            .zip(routed)
            .map(|(e, r)| Probe {
                id: e.id.as_str(),
                customer: e.author.id.as_str(),
                conversation: e.conversation.as_str(),
                reply_text: &r.reply_text,
            })
            .collect();
        // Repeated contact counts the last 24 h, whatever the same-reply window.
        let recent = self.clock.now_ms() - decide::REPEATED_WINDOW_MS;
        messages::known(conn, backend, platform, (since, recent), &probes).await
    }

    /// What the database said, plus what this batch decided since.
    fn seen(
        &self,
        e: &Event,
        reply_text: &str,
        (known, incident): (&Known, Option<InIncident>),
        state: &BatchState,
    ) -> Seen {
        let customer = e.author.id.as_str();
        Seen {
            incident: incident.map(|i| InIncident {
                member: i.member
                    || state
                        .incident_members
                        .contains(&(i.id, customer.to_owned())),
                ..i
            }),
            opted_out: known.opted_out || state.stopped.contains(customer),
            auto_replies: known.auto_replies
                + state
                    .per_conversation
                    .get(e.conversation.as_str())
                    .copied()
                    .unwrap_or(0),
            same_text: known.same_text
                || state
                    .texts
                    .contains(&(customer.to_owned(), reply_text.to_owned())),
            latest: match state.tickets.get(customer) {
                Some(t) => t.clone(),
                None => known.latest.clone(),
            },
            // This message, the batch's earlier ones, and those before.
            repeated: known.unanswered + state.written.get(customer).copied().unwrap_or(0) + 1
                == decide::REPEATED_AFTER,
        }
    }

    /// The policy's decision on one message.
    fn decide_one<'r>(
        &self,
        ctx: &Context<'_>,
        e: &Event,
        routed: &Routed<'r>,
        seen: &Seen,
        (now, opens): (Millis, Option<Millis>),
    ) -> Plan<'r> {
        let me = (ctx.me, ctx.first_start);
        let closed = opens.is_some();
        let incident_text = routed.incident_text.as_deref();
        self.policy.decide(
            me,
            e,
            (&routed.decision, &routed.reply_text, incident_text),
            seen,
            (now, closed),
        )
    }

    /// Decides every message of the batch, in order, before anything is
    /// written (pure). `None`: a message already recorded, or met earlier
    /// in the batch.
    ///
    /// A ticket the batch opens has no id until it is inserted, after this:
    /// the later messages of its customer are decided against a
    /// provisional id (`T--1`, `T--2`, …, never written), and decided
    /// again with the real one when they are written ([`Self::process`]).
    fn decide_all<'r>(
        &self,
        ctx: &Context<'_>,
        (events, routed): (&[Event], &[Routed<'r>]),
        (known, incidents): (&[Known], &[Option<InIncident>]),
        (now, next_opening): (Millis, Option<Millis>),
    ) -> Vec<Option<Decided<'r>>> {
        let mut state = BatchState::default();
        let mut opens = 0;
        events
            .iter()
            .zip(routed)
            .zip(known.iter().zip(incidents))
            .map(|((e, r), (k, i))| {
                if k.existing || !state.seen.insert(e.id.as_str().to_owned()) {
                    return None;
                }
                let seen = self.seen(e, &r.reply_text, (k, *i), &state);
                let plan = self.decide_one(ctx, e, r, &seen, (now, next_opening));
                let ticket = match &plan.ticket {
                    TicketStep::None => None,
                    TicketStep::Join { id, .. } => Some(*id),
                    TicketStep::Open { .. } => {
                        opens += 1;
                        Some(TicketRef(-opens))
                    }
                };
                note(
                    &mut state,
                    e,
                    &plan,
                    seen.latest.clone(),
                    ticket,
                    self.voice(r.lang, next_opening),
                );
                Some(Decided { seen, plan })
            })
            .collect()
    }

    /// Inserts the tickets the batch's decisions open, in one statement
    /// (see [`tickets::open_many`]); their ids, in message order.
    async fn open_tickets(
        &self,
        conn: &mut AnyConnection,
        backend: Backend,
        events: &[Event],
        routed: &[Routed<'_>],
        decided: &[Option<Decided<'_>>],
        now: Millis,
    ) -> Result<Vec<TicketRef>, StoreError> {
        let new: Vec<NewTicket<'_>> = events
            .iter()
            .zip(routed)
            .zip(decided)
            .filter_map(|((e, r), d)| {
                let d = d.as_ref()?;
                let TicketStep::Open {
                    queue, priority, ..
                } = &d.plan.ticket
                else {
                    return None;
                };
                Some(NewTicket {
                    queue,
                    priority: *priority,
                    platform: e.platform,
                    customer_id: e.author.id.as_str(),
                    customer_handle: e.author.handle.as_str(),
                    conversation_id: e.conversation.as_str(),
                    rule_id: r.decision.rule_id().map(|id| id.as_str()),
                    note: d.plan.reason.as_deref(),
                    first_response_due: self.tickets.first_response_due(*priority, now),
                    lang: r.lang,
                })
            })
            .collect();
        if new.is_empty() {
            return Ok(Vec::new());
        }
        tickets::open_many(conn, backend, &new, now).await
    }

    /// Writes one message of the batch inside `conn`'s transaction, with
    /// the ticket ids now known; its rows join the batch's pending rows.
    async fn process<'r>(
        &self,
        conn: &mut AnyConnection,
        ctx: &Context<'_>,
        (e, routed, known, incident): (&Event, &Routed<'r>, &Known, Option<InIncident>),
        decided: Option<Decided<'r>>,
        acting: &mut Acting,
    ) -> Result<Processed, StoreError> {
        let decision = &routed.decision;
        let rule = decision.rule_id().map(|r| r.as_str().to_owned());
        let Some(d) = decided else {
            return Ok(Processed {
                id: e.id.clone(),
                duplicate: true,
                rule,
                action: action_of(decision.outcome()),
                ticket: None,
                reply: Reply::None,
            });
        };
        let seen = self.seen(e, &routed.reply_text, (known, incident), &acting.state);
        let plan = if seen == d.seen {
            d.plan
        } else {
            // It was decided on a ticket of this batch's by its provisional
            // id (or on what such a decision changed): decided again, now
            // that the id is known. The tickets are inserted already, so it
            // must open exactly what it opened then; it does, for ids are
            // not part of a decision, but a mistake here would give a
            // message the wrong ticket: the batch fails instead, and is
            // retried one message per transaction.
            let again = self.decide_one(ctx, e, routed, &seen, (acting.now, acting.opens));
            if !same_opening(&again, &d.plan) {
                return Err(StoreError::Inconsistent(
                    "a message decided again opened another ticket",
                ));
            }
            again
        };
        let ticket = match &plan.ticket {
            TicketStep::None => None,
            TicketStep::Join { id, .. } => Some(*id),
            TicketStep::Open { .. } => Some(acting.opened.next().ok_or(
                StoreError::Inconsistent("a message opened a ticket the batch did not insert"),
            )?),
        };
        let voice = self.voice(routed.lang, acting.opens);
        let to_send = note(&mut acting.state, e, &plan, seen.latest, ticket, voice);
        if let (Some(id), Some(w)) = (plan.incident, decision.winner.as_ref()) {
            let place = (e.conversation.as_str(), e.id.as_str(), e.channel);
            let customer = (e.author.id.as_str(), Who::of(e), routed.lang);
            let m = self.member(id, w.rule, customer, place, e.at);
            acting.members.push(m);
        }
        let keyword = decision.winner.as_ref().map(|w| w.keyword.written.clone());
        // A survey answer's ticket is solved, and an ignored message (a
        // protection, a stop word, a noise rule) is not to be acted on:
        // their signals are not recorded.
        let acted_on = plan.rating.is_none() && plan.action != Action::Ignore;
        let signals = signal_names(decision, seen.repeated).filter(|_| acted_on);
        if let (Some(t), Some(names)) = (ticket, &signals) {
            acting.pending.signals.push(tickets::Signal {
                ticket: t,
                names: names.clone(),
                note: signal_note(decision, seen.repeated, &e.text),
                raise: matches!(plan.ticket, TicketStep::Join { .. }),
            });
        }
        self.act(
            conn,
            e,
            (plan, ticket, to_send),
            (rule, keyword, routed.lang, signals),
            acting,
        )
        .await
    }

    /// Writes what `plan` asks for: the survey answer and a reopened
    /// ticket now, then the message, its opt-out and its reply as pending
    /// rows of the batch. (A new ticket is inserted already.)
    async fn act(
        &self,
        conn: &mut AnyConnection,
        e: &Event,
        (plan, ticket, to_send): (Plan<'_>, Option<TicketRef>, Option<(String, Via)>),
        (rule, keyword, lang, signals): (
            Option<String>,
            Option<String>,
            Option<Lang>,
            Option<String>,
        ),
        acting: &mut Acting,
    ) -> Result<Processed, StoreError> {
        let now = acting.now;
        let customer = e.author.id.as_str();
        let reopens = matches!(
            plan.ticket,
            TicketStep::Join {
                reopen: Some(_),
                ..
            }
        );
        if plan.rating.is_some() || plan.survey_answered.is_some() || reopens {
            // The signals queued so far, this message's included, are
            // written first: a ticket's history keeps the messages' order.
            let due_for = self.due_for();
            (acting.pending)
                .flush_signals(conn, acting.backend, &due_for, now)
                .await?;
        }
        if let Some((t, rating)) = plan.rating {
            tickets::rate(conn, t, rating, now).await?;
        }
        if let Some(t) = plan.survey_answered {
            tickets::survey_answered(conn, t, now).await?;
        }
        if let TicketStep::Join {
            id,
            status,
            reopen: Some(to),
        } = &plan.ticket
        {
            tickets::set_status(conn, *id, "customer", (*status, *to), None, now).await?;
        }
        let pending = &mut acting.pending;
        pending.messages.push(NewMessage {
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
            auto_reply: plan.auto_reply.stored(),
            reason: plan.reason.clone(),
            ticket,
            mentioned: (!e.mentioned.is_empty()).then(|| {
                let ids: Vec<&str> = e.mentioned.iter().map(|u| u.as_str()).collect();
                ids.join(" ")
            }),
            lang,
            signals,
        });
        if plan.stop {
            pending.opt_outs.push(OptOut {
                platform: e.platform,
                customer_id: customer.to_owned(),
                message_id: e.id.as_str().to_owned(),
                at: now,
            });
        }
        // The message joins its ticket's conversation by a trigger
        // (migration 0003), whoever inserts it.
        if let Some((text, via)) = to_send {
            pending.rows.push(reply_row(e, ticket, text, via));
        }
        Ok(Processed {
            id: e.id.clone(),
            duplicate: false,
            rule,
            action: plan.action,
            ticket,
            reply: plan.auto_reply,
        })
    }
}

/// One message of a batch decided, before its writes.
struct Decided<'r> {
    /// What it was decided on.
    seen: Seen,
    /// The decision.
    plan: Plan<'r>,
}

/// The writing of a batch's messages, in order: what the earlier ones
/// decided, their rows, the ids of the tickets the batch opened (each
/// taken by the message that opens it), and the batch's time.
struct Acting {
    state: BatchState,
    pending: Pending,
    opened: std::vec::IntoIter<TicketRef>,
    now: Millis,
    /// The next opening while the team is away, at `now`.
    opens: Option<Millis>,
    /// The customers of incidents its messages joined, written last.
    members: Vec<crate::storage::incidents::Member>,
    /// The database written to.
    backend: Backend,
}

/// Notes in `state` what `plan` changes for the batch's later messages:
/// the customer's latest ticket (`ticket`: the one the message joins or
/// opens; `latest`: the one it was decided on), their stop, the reply it
/// queues. Returns that reply, with its route.
fn note(
    state: &mut BatchState,
    e: &Event,
    plan: &Plan<'_>,
    latest: Option<Latest>,
    ticket: Option<TicketRef>,
    voice: Voice<'_>,
) -> Option<(String, Via)> {
    let customer = e.author.id.as_str();
    let mut after = latest;
    if plan.survey_answered.is_some()
        && let Some(a) = after.as_mut()
    {
        a.survey_answered = true;
    }
    let mut ack = None;
    match &plan.ticket {
        TicketStep::None => {}
        TicketStep::Join { reopen, .. } => {
            if let (Some(to), Some(a)) = (reopen, after.as_mut()) {
                a.status = *to;
                a.solved_at = None;
            }
        }
        TicketStep::Open { ack: a, .. } => {
            ack = *a;
            after = ticket.map(|id| Latest {
                id,
                status: TicketStatus::New,
                solved_at: None,
                survey_sent: false,
                survey_answered: false,
            });
        }
    }
    state.tickets.insert(customer.to_owned(), after);
    if let Some(id) = plan.incident {
        state.incident_members.insert((id, customer.to_owned()));
    }
    *state.written.entry(customer.to_owned()).or_default() += 1;
    if plan.stop {
        state.stopped.insert(customer.to_owned());
    }
    let to_send = match (&plan.reply, ack) {
        (Some((text, via)), _) => Some((text.clone(), *via)),
        (None, Some((a, via))) => Some((sign(render(Who::of(e), a, ticket, voice), voice), via)),
        (None, None) => None,
    };
    if let Some((text, _)) = &to_send {
        state.replied(customer, e.conversation.as_str(), text);
    }
    to_send
}

/// The language of each event: read from its text where `read` says so
/// (the platform's tag is the hint), else the platform's tag as is.
/// Reading costs some 50 µs a message, so a batch's reading is shared
/// among the cores; it runs before the batch's transaction begins.
fn read_languages(events: &[Event], read: &[bool]) -> Vec<Option<Lang>> {
    let one = |(e, r): (&Event, &bool)| {
        if *r {
            Detector::shared().detect(&e.text, e.lang).lang
        } else {
            e.lang
        }
    };
    let to_read = read.iter().filter(|r| **r).count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Below some 16 readings a thread costs more than it saves.
    if cores < 2 || to_read < 16 {
        return events.iter().zip(read).map(one).collect();
    }
    let chunk = events.len().div_ceil(cores);
    std::thread::scope(|scope| {
        let parts: Vec<_> = events
            .chunks(chunk)
            .zip(read.chunks(chunk))
            .map(|(es, rs)| scope.spawn(move || es.iter().zip(rs).map(one).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("reading a language does not panic"))
            .collect()
    })
}

/// The names of the signals a message carries, space-separated, as
/// stored: those of `d`, and `repeated` for repeated contact.
fn signal_names(d: &crate::rules::Decision<'_>, repeated: bool) -> Option<String> {
    let mut names: Vec<&str> = d.signals.iter().map(|h| h.signal.name.as_str()).collect();
    if repeated {
        names.push(SignalName::REPEATED);
    }
    (!names.is_empty()).then(|| names.join(" "))
}

/// The ticket's note for the signals a message carries in `text`: which
/// signal, on which words (`signal churn: "je pars chez"; signal legal:
/// "avocat"`), and repeated contact.
fn signal_note(d: &crate::rules::Decision<'_>, repeated: bool, text: &str) -> String {
    let mut parts: Vec<String> = d
        .signals
        .iter()
        .map(|h| {
            format!(
                "signal {}: \"{}\"",
                h.signal.name,
                text.get(h.span.0..h.span.1).unwrap_or(&h.keyword.written)
            )
        })
        .collect();
    if repeated {
        parts.push(format!(
            "signal {}: the {} message within 24 h with no human answer",
            SignalName::REPEATED,
            ordinal(decide::REPEATED_AFTER)
        ));
    }
    parts.join("; ")
}

/// `3` as "third": the repeated-contact note's wording.
fn ordinal(n: i64) -> String {
    match n {
        2 => "second".into(),
        3 => "third".into(),
        4 => "fourth".into(),
        n => format!("number {n}"),
    }
}

/// Whether two decisions on a message open the same ticket, or none.
fn same_opening(a: &Plan<'_>, b: &Plan<'_>) -> bool {
    match (&a.ticket, &b.ticket) {
        (TicketStep::Open { .. }, TicketStep::Open { .. }) => {
            a.ticket == b.ticket && a.reason == b.reason
        }
        (TicketStep::Open { .. }, _) | (_, TicketStep::Open { .. }) => false,
        _ => true,
    }
}

/// An automatic reply with `[replies] signature` appended: every text the
/// rules send goes through here, never an agent's.
fn sign(mut text: String, voice: Voice<'_>) -> String {
    if let Some(s) = voice.signature {
        text.push_str(s.pick(voice.lang, voice.default));
    }
    text
}

/// Whom an automatic text is written to.
#[derive(Debug, Clone, Copy)]
struct Who<'a> {
    handle: &'a str,
    name: &'a str,
    platform: Platform,
}

impl<'a> Who<'a> {
    /// The author of `e`.
    fn of(e: &'a Event) -> Self {
        Who {
            handle: e.author.handle.as_str(),
            name: &e.author.name,
            platform: e.platform,
        }
    }
}

/// A rule's reply, or the acknowledgement of a new ticket with its
/// reference, for `who`, in their language.
fn render(who: Who<'_>, text: &Localized, ticket: Option<TicketRef>, voice: Voice<'_>) -> String {
    let (template, chosen) = text.pick(voice.lang, voice.default);
    let r = ticket.map(|t| t.to_string());
    let name = customer_name(who, template);
    // The opening in the language of the text chosen, else the customer's.
    let opens = template.opens(voice.closed, (chosen, voice.lang, voice.default));
    template.render(&Vars {
        author: who.handle,
        name: &name,
        ticket: r.as_deref(),
        opens: opens.as_deref(),
    })
}

/// The outbox row of an automatic reply to `e`.
fn reply_row(e: &Event, ticket: Option<TicketRef>, text: String, via: Via) -> OutRow {
    OutRow {
        platform: e.platform,
        kind: kind_of(via, e.channel),
        ticket,
        customer_id: e.author.id.as_str().to_owned(),
        handle: e.author.handle.as_str().to_owned(),
        conversation: e.conversation.as_str().to_owned(),
        in_reply_to: e.id.as_str().to_owned(),
        text,
    }
}

/// The customer's display name as a reply may use it: inert, cut to the
/// platform's own maximum (a 2 000-character name must not make a reply
/// the platform refuses as too long).
/// Made only for a template that uses `{name}`: the routing path of every
/// message need not pay for it.
fn customer_name(who: Who<'_>, template: &Template) -> String {
    if !template.uses(crate::rules::template::Placeholder::Name) {
        return String::new();
    }
    crate::domain::inert::name(who.name, crate::domain::inert::name_max(who.platform))
}
