//! A batch's incident step, inside its transaction and before its
//! messages are decided: which messages join an open incident of their
//! rule, and the incident a message opens when its rule's distinct
//! customers within the window cross the thresholds (the decision is
//! `application::incidents::crosses`; the counts are the store's, plus
//! the batch's own messages in order, so the incident opens at the very
//! message that crosses).
//!
//! The customers who wrote in the window before that message become the
//! incident's customers at once: they got the rule's usual answer, are
//! not answered again, and get the closing notice.

use std::collections::{HashMap, HashSet};

use sqlx::AnyConnection;

use super::decide::InIncident;
use super::{Context, Pipeline, Routed, Who, render, sign};
use crate::application::incidents::{baseline, crosses};
use crate::domain::clock::Millis;
use crate::domain::language::Lang;
use crate::domain::states::TicketStatus;
use crate::domain::{Channel, IncidentRef, Platform, Priority};
use crate::platforms::{Event, ReplyKind};
use crate::rules::{Rule, Via};
use crate::storage::incidents::{self, Member, NewIncident, Open};
use crate::storage::messages::Known;
use crate::storage::{Backend, StoreError};

/// A rule's detection window as the batch walks it.
struct Window {
    /// Where it starts: `window_mins` ago, or when the rule's last
    /// incident closed, whichever is later.
    since: Millis,
    /// The messages routed to the rule in the window, from the store.
    stored: Vec<incidents::WindowRow>,
    /// The batch's messages of the rule in the window so far.
    batch: Vec<usize>,
    /// Distinct (platform, customer) in both.
    customers: HashSet<(Platform, String)>,
    /// The baseline, read once the count first reaches `min_customers`.
    baseline: Option<f64>,
}

/// What the step found: each message's incident (`None`: none), and the
/// incidents the batch opened.
pub(super) struct Watched {
    pub each: Vec<Option<InIncident>>,
    pub opened: Vec<IncidentRef>,
}

impl Pipeline {
    /// The incident step; see the module's comment.
    pub(super) async fn watch(
        &self,
        conn: &mut AnyConnection,
        backend: Backend,
        ctx: &Context<'_>,
        (events, routed, known): (&[Event], &[Routed<'_>], &[Known]),
        now: Millis,
    ) -> Result<Watched, StoreError> {
        let mut watched = Watched {
            each: vec![None; events.len()],
            opened: Vec::new(),
        };
        let mut ids = HashSet::new();
        let candidates: Vec<(usize, &Rule)> = events
            .iter()
            .zip(routed)
            .zip(known)
            .enumerate()
            .filter_map(|(i, ((e, r), k))| {
                let rule = r.decision.winner.as_ref()?.rule;
                let first = !k.existing && ids.insert(e.id.as_str());
                // What the bot never answers (its own account, reposts,
                // listed bots, the backlog, a stop word) is nobody's surge.
                let answerable = self.policy.answerable((ctx.me, ctx.first_start), e);
                (first && answerable && rule.incident.watched()).then_some((i, rule))
            })
            .collect();
        if candidates.is_empty() {
            return Ok(watched);
        }
        let mut names: Vec<&str> = candidates.iter().map(|(_, r)| r.id.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut open: HashMap<String, Open> = incidents::open_for_rules(conn, backend, &names)
            .await?
            .into_iter()
            .map(|o| (o.rule.clone(), o))
            .collect();
        let mut members: HashSet<(IncidentRef, String)> = HashSet::new();
        for o in open.values() {
            let customers: Vec<&str> = candidates
                .iter()
                .filter(|(_, r)| r.id.as_str() == o.rule)
                .map(|(i, _)| events[*i].author.id.as_str())
                .collect();
            for c in incidents::members(conn, o.id, ctx.platform, &customers).await? {
                members.insert((o.id, c));
            }
        }
        let since = now - self.incidents.window_ms();
        let mut windows: HashMap<&str, Window> = HashMap::new();
        // A message written before the window does not make a surge.
        for &(i, rule) in &candidates {
            let e = &events[i];
            let name = rule.id.as_str();
            if let Some(o) = open.get(name) {
                let member = members.contains(&(o.id, e.author.id.as_str().to_owned()));
                watched.each[i] = Some(InIncident {
                    id: o.id,
                    ticket: o.ticket,
                    status: o.ticket_status,
                    member,
                });
                continue;
            }
            if !windows.contains_key(name) {
                // What an incident closed since covered is its own.
                let since = match incidents::last_closed(conn, name).await? {
                    Some(closed) => since.max(closed),
                    None => since,
                };
                let stored = incidents::window(conn, name, since).await?;
                let customers = stored
                    .iter()
                    .map(|m| (m.platform, m.author_id.clone()))
                    .collect();
                windows.insert(
                    name,
                    Window {
                        since,
                        stored,
                        batch: Vec::new(),
                        customers,
                        baseline: None,
                    },
                );
            }
            let w = windows.get_mut(name).expect("inserted above");
            if e.at < w.since {
                continue;
            }
            w.batch.push(i);
            if !w
                .customers
                .insert((e.platform, e.author.id.as_str().to_owned()))
                || w.customers.len() < self.incidents.min_customers as usize
            {
                continue;
            }
            let usual = match w.baseline {
                Some(b) => b,
                None => *w.baseline.insert(self.baseline_of(conn, name, now).await?),
            };
            if !crosses(w.customers.len(), usual, &self.incidents) {
                continue;
            }
            let o = self
                .open_incident(conn, backend, ctx, rule, w, (events, routed, i), now)
                .await?;
            for m in &w.stored {
                members.insert((o.id, m.author_id.clone()));
            }
            for &j in &w.batch {
                members.insert((o.id, events[j].author.id.as_str().to_owned()));
            }
            watched.each[i] = Some(InIncident {
                id: o.id,
                ticket: o.ticket,
                status: o.ticket_status,
                member: false,
            });
            watched.opened.push(o.id);
            open.insert(name.to_owned(), o);
        }
        Ok(watched)
    }

    /// The baseline of `rule` at `now`, read at most once a minute (it
    /// moves with the hour of the week, not with each batch).
    async fn baseline_of(
        &self,
        conn: &mut AnyConnection,
        rule: &str,
        now: Millis,
    ) -> Result<f64, StoreError> {
        let cached = self.baselines.lock().expect("poisoned").get(rule).copied();
        if let Some((_, b)) = cached.filter(|(at, _)| (0..60_000).contains(&(now - at))) {
            return Ok(b);
        }
        let b = baseline(conn, rule, now, &self.incidents).await?;
        self.baselines
            .lock()
            .expect("poisoned")
            .insert(rule.to_owned(), (now, b));
        Ok(b)
    }

    /// Opens the incident of `rule`, crossed at message `at` of the batch,
    /// with the window's earlier customers as its customers.
    #[allow(clippy::too_many_arguments)]
    async fn open_incident(
        &self,
        conn: &mut AnyConnection,
        backend: Backend,
        ctx: &Context<'_>,
        rule: &Rule,
        w: &Window,
        (events, routed, at): (&[Event], &[Routed<'_>], usize),
        now: Millis,
    ) -> Result<Open, StoreError> {
        let first = w
            .stored
            .iter()
            .map(|m| m.written_at)
            .chain(w.batch.iter().map(|&j| events[j].at))
            .min()
            .unwrap_or(events[at].at);
        let usual = w.baseline.unwrap_or(0.0);
        let note = format!(
            "incident: {} customers wrote about rule {} within {} min (usual for this time of the week: {:.1})",
            w.customers.len(),
            rule.id,
            self.incidents.window_mins,
            usual
        );
        let new = NewIncident {
            rule: rule.id.as_str(),
            platform: ctx.platform,
            window_customers: w.customers.len() as i64,
            baseline: usual,
            first_message_at: first,
            last_message_at: events[at].at,
            due: self.tickets.first_response_due(Priority::Urgent, now),
            note: &note,
        };
        let (id, ticket) = incidents::open(conn, backend, &new, now).await?;
        let stored = w.stored.iter().map(|m| {
            let who = Who {
                handle: &m.handle,
                name: &m.name,
                platform: m.platform,
            };
            let place = (m.conversation.as_str(), m.message_id.as_str(), m.channel);
            self.member(id, rule, (&m.author_id, who, m.lang), place, m.written_at)
        });
        let batch = w.batch.iter().filter(|&&j| j != at).map(|&j| {
            let e = &events[j];
            let place = (e.conversation.as_str(), e.id.as_str(), e.channel);
            let customer = (e.author.id.as_str(), Who::of(e), routed[j].lang);
            self.member(id, rule, customer, place, e.at)
        });
        let joined: Vec<Member> = stored.chain(batch).collect();
        incidents::join(conn, &joined, now).await?;
        tracing::info!(incident = %id, rule = %rule.id, customers = w.customers.len(),
            baseline = usual, "incident opened");
        metrics::counter!("helpdesk_incidents_opened_total").increment(1);
        Ok(Open {
            id,
            rule: rule.id.as_str().to_owned(),
            ticket,
            ticket_status: TicketStatus::New,
        })
    }

    /// A customer of incident `id` with their latest message about it: the
    /// closing notice's route and text, in their language.
    pub(super) fn member(
        &self,
        id: IncidentRef,
        rule: &Rule,
        (customer, who, lang): (&str, Who<'_>, Option<Lang>),
        (conversation, message, channel): (&str, &str, Channel),
        written_at: Millis,
    ) -> Member {
        let voice = self.voice(lang, None);
        Member {
            incident: id,
            platform: who.platform,
            customer_id: customer.to_owned(),
            handle: who.handle.to_owned(),
            conversation: conversation.to_owned(),
            in_reply_to: message.to_owned(),
            kind: kind_of(rule.via, channel),
            lang,
            resolved_text: rule
                .incident
                .resolved
                .as_ref()
                .map(|t| sign(render(who, t, None, voice), voice)),
            written_at,
        }
    }
}

/// How an automatic message to a message of `channel` goes, by `via`.
pub(super) fn kind_of(via: Via, channel: Channel) -> ReplyKind {
    match (via, channel) {
        (Via::Dm, _) | (Via::Same, Channel::Dm) => ReplyKind::Dm,
        (Via::Same, _) => ReplyKind::Public,
    }
}
