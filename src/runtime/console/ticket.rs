//! `/tickets/T-n`: one ticket's conversation and history, its actions,
//! the reply box with the platform's own character counter, saved replies
//! and colleagues' presence.
//!
//! Every action goes through [`tickets::apply`], the CLI's code: the same
//! lifecycle, the same refusals with the same words, the same event log
//! with the agent's name. A reply sent while a colleague has an unsent
//! draft on the same ticket is held once and shown back with a question.

use axum::Extension;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::auth::{Agent, StaleForm};
use super::pages::{
    ActionView, CounterFragment, CounterView, EntryView, Me, PresenceFragment, PresenceView,
    SavedView, TicketPage, TicketView, TimelineFragment, TimelineView,
};
use super::{ConsoleError, Shared};
use crate::application::console::{Collision, PRESENCE_FRESH_MS};
use crate::application::tickets::{self, Command, Entry, Summary, TicketError, transition};
use crate::domain::clock::{Millis, rfc3339};
use crate::domain::language::Lang;
use crate::domain::states::TicketStatus;
use crate::domain::{AgentName, TicketRef};
use crate::platforms::permalink;
use crate::rules::template::Vars;
use crate::storage::console::{self as store_console, Doing};
use crate::storage::{StoreError, length_limit};

/// A page shows at most this many entries of a timeline…
const ENTRIES_A_PAGE: usize = 100;
/// …and at most about this many bytes of them as HTML (their texts once
/// escaped, and the markup around each, [`ENTRY_MARKUP_BYTES`]), so that
/// with the rest of the page (the draft, the saved replies) every page
/// stays under 100 KB; earlier entries are a link away.
const TIMELINE_BYTES_A_PAGE: usize = 40_000;
/// The markup of one entry, its text aside.
const ENTRY_MARKUP_BYTES: usize = 400;
/// One text longer than this (escaped) is cut on the page (the CLI shows
/// it whole).
const TEXT_BYTES_AN_ENTRY: usize = 12_000;
/// Saved replies offered: at most this many…
const SAVED_AT_MOST: usize = 40;
/// …and at most this many bytes of their texts, escaped.
const SAVED_BYTES: usize = 16_000;

/// The verbs with a button, in the order shown, with their keys.
const ACTIONS: [(&str, &str, &str); 5] = [
    ("claim", "Claim", "c"),
    ("pending", "Pending", "p"),
    ("solve", "Solve", "s"),
    ("close", "Close", "x"),
    ("reopen", "Reopen", "o"),
];

/// The ticket a route's `{ticket}` names (`T-1042`); any other is 404.
pub struct TicketPath(TicketRef);

impl<S: Send + Sync> FromRequestParts<S> for TicketPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found())?;
        params
            .iter()
            .find(|(k, _)| k == "ticket")
            .and_then(|(_, v)| v.parse().ok())
            .map(TicketPath)
            .ok_or_else(not_found)
    }
}

/// What an agent reads when a form of theirs came from a page older than
/// their session.
const STALE: &str = "This page had expired (you signed in again since): nothing was sent. Your text is below: send it again.";

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "No such ticket: the inbox lists the ones that exist.\n",
    )
        .into_response()
}

/// What a page shows besides the ticket itself.
#[derive(Default)]
struct Extras {
    draft: String,
    dm: bool,
    note: String,
    error: Option<String>,
    confirm_over: Vec<String>,
    before: Option<usize>,
}

/// `?before=N`: the page of entries before the Nth.
#[derive(serde::Deserialize)]
pub struct PageQuery {
    before: Option<usize>,
}

/// The ticket's page; opening it marks it read and says the agent is on it.
pub async fn page(
    State(c): State<Shared>,
    Extension(me): Extension<Agent>,
    TicketPath(t): TicketPath,
    Query(q): Query<PageQuery>,
) -> Result<Response, ConsoleError> {
    let extras = Extras {
        before: q.before,
        ..Extras::default()
    };
    render(&c, &me, t, extras, StatusCode::OK).await
}

async fn render(
    c: &Shared,
    me: &Agent,
    t: TicketRef,
    x: Extras,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let now = c.clock.now_ms();
    let (summary, entries) = match tickets::show(&c.store, t, now).await {
        Ok(found) => found,
        Err(TicketError::Store(e)) => return Err(e.into()),
        Err(_) => return Ok(not_found()),
    };
    store_console::mark_read(&c.store, &me.name, t, summary.updated_at).await?;
    let doing = if x.draft.is_empty() {
        Doing::Viewing
    } else {
        Doing::Replying
    };
    store_console::be_present(&c.store, t, &me.name, doing, now).await?;
    let incident = crate::storage::incidents::of_ticket_row(&c.store, t).await?;
    let counter = counter(c, &summary, &x.draft, x.dm).await?;
    let reply = Command::Reply {
        text: String::new(),
        dm: false,
    };
    let can_reply = incident.is_none() && transition(summary.status, &reply).is_ok();
    let page = TicketPage {
        me: Me {
            name: &me.name,
            csrf: &me.csrf,
        },
        timeline: timeline(c, &summary, entries, x.before),
        presence: presence_view(c, t, &me.name, now).await?,
        counter,
        oob: false,
        draft: x.draft,
        dm: x.dm,
        error: x.error,
        confirm_over: x.confirm_over,
        saved: if can_reply {
            saved_replies(c, &summary)
        } else {
            Vec::new()
        },
        actions: actions(summary.status),
        agents: crate::storage::agents::list(&c.store)
            .await?
            .into_iter()
            .filter(|a| a.disabled_at.is_none())
            .map(|a| a.name)
            .collect(),
        assign_to: summary.assignee.clone().unwrap_or_else(|| me.name.clone()),
        note: x.note,
        can_reply,
        t: ticket_view(c, &summary, incident.map(|i| i.id.to_string())),
    };
    Ok((status, Html(askama::Template::render(&page)?)).into_response())
}

fn ticket_view(c: &Shared, s: &Summary, incident: Option<String>) -> TicketView {
    let due = s
        .first_response_due
        .filter(|_| s.first_response_at.is_none());
    TicketView {
        reference: s.reference.clone(),
        status: s.status.as_str().to_owned(),
        priority: s.priority.to_string(),
        queue: s.queue.clone(),
        platform: s.platform.to_string(),
        customer: s.customer.clone(),
        assignee: s.assignee.clone().unwrap_or_else(|| "-".into()),
        lang: s.lang.clone().unwrap_or_default(),
        due_iso: due.map(rfc3339).unwrap_or_default(),
        due_text: due.map(|d| c.when(d)).unwrap_or_default(),
        overdue: s.overdue,
        signals: s.signals.clone(),
        csat: s.csat.map(|r| format!("{r}/5")).unwrap_or_default(),
        incident: incident.map(|i| {
            format!("this is incident {i}'s ticket: its customers are answered together (`helpdesk incidents close {i}`)")
        }),
    }
}

/// The buttons the ticket's status allows.
fn actions(status: TicketStatus) -> Vec<ActionView> {
    ACTIONS
        .iter()
        .filter(|(verb, _, _)| {
            Command::from_action(verb, None).is_ok_and(|cmd| transition(status, &cmd).is_ok())
        })
        .map(|&(verb, label, key)| ActionView { verb, label, key })
        .collect()
}

/// The bytes `text` takes once escaped for HTML.
fn escaped_len(text: &str) -> usize {
    let special = text
        .bytes()
        .filter(|b| matches!(b, b'<' | b'>' | b'&' | b'"' | b'\''))
        .count();
    text.len() + special * 4
}

/// What one entry adds to a page, as HTML.
fn entry_bytes(e: &Entry) -> usize {
    let text = e.text.as_deref().map_or(0, escaped_len);
    text.min(TEXT_BYTES_AN_ENTRY) + ENTRY_MARKUP_BYTES
}

/// Where the page of entries ending before `end` starts: back from `end`,
/// at most [`ENTRIES_A_PAGE`] entries and about [`TIMELINE_BYTES_A_PAGE`]
/// of HTML, and always at least one entry.
fn page_start(entries: &[Entry], end: usize) -> usize {
    let (mut start, mut bytes) = (end, 0);
    while start > 0 && end - start < ENTRIES_A_PAGE {
        let size = entry_bytes(&entries[start - 1]);
        if bytes + size > TIMELINE_BYTES_A_PAGE && start < end {
            break;
        }
        bytes += size;
        start -= 1;
    }
    start
}

/// Where the page of entries starting at `start` ends, by the same measure.
fn page_end(entries: &[Entry], start: usize) -> usize {
    let (mut end, mut bytes) = (start, 0);
    while end < entries.len() && end - start < ENTRIES_A_PAGE {
        let size = entry_bytes(&entries[end]);
        if bytes + size > TIMELINE_BYTES_A_PAGE && end > start {
            break;
        }
        bytes += size;
        end += 1;
    }
    end
}

/// The latest page of the timeline, or the one ending before entry
/// `before` (which does not refresh itself, and links to the next).
fn timeline(c: &Shared, s: &Summary, entries: Vec<Entry>, before: Option<usize>) -> TimelineView {
    let end = before.unwrap_or(entries.len()).min(entries.len());
    let start = page_start(&entries, end);
    let reference = &s.reference;
    let later_href = (end < entries.len()).then(|| match page_end(&entries, end) {
        next if next >= entries.len() => format!("/tickets/{reference}"),
        next => format!("/tickets/{reference}?before={next}"),
    });
    let views = entries
        .into_iter()
        .skip(start)
        .take(end - start)
        .map(|e| entry_view(c, s, e))
        .collect();
    TimelineView {
        entries: views,
        earlier_href: (start > 0).then(|| format!("/tickets/{reference}?before={start}")),
        later_href,
        live_href: format!("/tickets/{reference}/live"),
        refresh_secs: c.settings.refresh_secs,
    }
}

fn entry_view(c: &Shared, s: &Summary, e: Entry) -> EntryView {
    let class = match (e.kind.as_str(), e.who.as_str()) {
        ("message", _) => "customer",
        ("sent", "agent") | ("reply", _) => "agent",
        ("sent", _) | ("survey", _) => "bot",
        ("note", _) => "note",
        _ => "event",
    };
    let change = match (&e.from, &e.to) {
        (Some(f), Some(t)) => format!(": {f} → {t}"),
        (None, Some(t)) => format!(": {t}"),
        _ => String::new(),
    };
    let link = match (e.kind.as_str(), &e.post_id) {
        ("message", Some(id)) => permalink(
            s.platform,
            c.mastodon_base.as_deref(),
            e.who.trim_start_matches('@'),
            id,
        ),
        _ => None,
    };
    EntryView {
        at_iso: rfc3339(e.at),
        at_text: c.when(e.at),
        who: e.who,
        kind: e.kind,
        class,
        text: e.text.map(cut),
        change,
        link,
    }
}

/// A text cut so that, escaped, it takes at most [`TEXT_BYTES_AN_ENTRY`],
/// on a character boundary, saying so.
fn cut(text: String) -> String {
    if escaped_len(&text) <= TEXT_BYTES_AN_ENTRY {
        return text;
    }
    let (mut end, mut size) = (0, 0);
    for (i, ch) in text.char_indices() {
        size += escaped_len(ch.encode_utf8(&mut [0; 4]));
        if size > TEXT_BYTES_AN_ENTRY {
            break;
        }
        end = i + ch.len_utf8();
    }
    format!(
        "{}… [{} more bytes: `helpdesk tickets show` prints it whole]",
        &text[..end],
        text.len() - end
    )
}

/// The rules' replies in the customer's language, filled in for them.
fn saved_replies(c: &Shared, s: &Summary) -> Vec<SavedView> {
    let rules = c.rules.load();
    let lang = s.lang.as_deref().and_then(|l| Lang::parse(l).ok());
    let vars = Vars {
        author: &s.customer,
        name: &s.customer,
        ticket: Some(&s.reference),
        opens: None,
    };
    let mut bytes = 0;
    rules
        .rules()
        .iter()
        .filter_map(|r| match &r.action {
            crate::rules::Action::Reply(text) => {
                let (template, _) = text.pick(lang, c.policy.default_lang);
                Some(SavedView {
                    rule: r.id.to_string(),
                    text: template.render(&vars),
                })
            }
            _ => None,
        })
        .take(SAVED_AT_MOST)
        .take_while(|s| {
            bytes += escaped_len(&s.text) + escaped_len(&s.rule) * 2 + 60;
            bytes <= SAVED_BYTES
        })
        .collect()
}

/// The counter for `text` as the ticket's platform counts it.
async fn counter(c: &Shared, s: &Summary, text: &str, dm: bool) -> Result<CounterView, StoreError> {
    let mut conn = c.store.pool().acquire().await?;
    let limit = length_limit(&mut conn, s.platform).await?;
    let limit = if dm { limit.for_dm() } else { limit };
    let count = limit.count(text);
    Ok(CounterView {
        count,
        max: limit.max,
        over: count > limit.max,
        platform: s.platform.to_string(),
    })
}

async fn presence_view(
    c: &Shared,
    t: TicketRef,
    me: &str,
    now: Millis,
) -> Result<PresenceView, StoreError> {
    let others = store_console::others_present(&c.store, t, me, now - PRESENCE_FRESH_MS).await?;
    let seen = Collision::of(&others, now);
    Ok(PresenceView {
        href: format!("/tickets/{t}/presence"),
        viewing: seen.viewing,
        replying: seen.replying,
    })
}

/// The part of the page that refreshes itself: the timeline.
pub async fn live(
    State(c): State<Shared>,
    Extension(me): Extension<Agent>,
    TicketPath(t): TicketPath,
) -> Result<Response, ConsoleError> {
    let now = c.clock.now_ms();
    let (summary, entries) = match tickets::show(&c.store, t, now).await {
        Ok(found) => found,
        Err(TicketError::Store(e)) => return Err(e.into()),
        Err(_) => return Ok(not_found()),
    };
    store_console::mark_read(&c.store, &me.name, t, summary.updated_at).await?;
    let fragment = TimelineFragment {
        timeline: timeline(&c, &summary, entries, None),
    };
    Ok(Html(askama::Template::render(&fragment)?).into_response())
}

/// The reply box's fields (and the saved reply picked).
#[derive(serde::Deserialize, Default)]
pub struct ReplyForm {
    #[serde(default)]
    text: String,
    #[serde(default)]
    dm: Option<String>,
    #[serde(default)]
    confirm: Option<String>,
    #[serde(default)]
    saved: Option<String>,
}

impl ReplyForm {
    fn dm(&self) -> bool {
        self.dm.as_deref().is_some_and(|v| !v.is_empty())
    }
}

/// The page says the agent is here (writing, when the reply box holds
/// text); the answer is who else is.
pub async fn presence(
    State(c): State<Shared>,
    Extension(me): Extension<Agent>,
    TicketPath(t): TicketPath,
    axum::Form(form): axum::Form<ReplyForm>,
) -> Result<Response, ConsoleError> {
    let now = c.clock.now_ms();
    let doing = if form.text.trim().is_empty() {
        Doing::Viewing
    } else {
        Doing::Replying
    };
    if crate::storage::tickets::get(&c.store, t).await?.is_none() {
        return Ok(not_found());
    }
    store_console::be_present(&c.store, t, &me.name, doing, now).await?;
    let fragment = PresenceFragment {
        presence: presence_view(&c, t, &me.name, now).await?,
    };
    Ok(Html(askama::Template::render(&fragment)?).into_response())
}

/// The counter for the draft (and the send button, disabled when over),
/// as the platform counts; also says the agent is writing.
pub async fn draft(
    State(c): State<Shared>,
    Extension(me): Extension<Agent>,
    TicketPath(t): TicketPath,
    axum::Form(form): axum::Form<ReplyForm>,
) -> Result<Response, ConsoleError> {
    let now = c.clock.now_ms();
    let Some(row) = crate::storage::tickets::get(&c.store, t).await? else {
        return Ok(not_found());
    };
    let doing = if form.text.trim().is_empty() {
        Doing::Viewing
    } else {
        Doing::Replying
    };
    store_console::be_present(&c.store, t, &me.name, doing, now).await?;
    let summary = Summary::of(row, now);
    let fragment = CounterFragment {
        counter: counter(&c, &summary, &form.text, form.dm()).await?,
        oob: true,
    };
    Ok(Html(askama::Template::render(&fragment)?).into_response())
}

/// Sends a reply, unless a colleague has an unsent draft and the agent has
/// not confirmed yet.
pub async fn reply(
    State(c): State<Shared>,
    Extension(me): Extension<Agent>,
    stale: Option<Extension<StaleForm>>,
    TicketPath(t): TicketPath,
    axum::Form(form): axum::Form<ReplyForm>,
) -> Result<Response, ConsoleError> {
    if stale.is_some() {
        let dm = form.dm();
        let extras = Extras {
            draft: form.text,
            dm,
            error: Some(STALE.into()),
            ..Extras::default()
        };
        return render(&c, &me, t, extras, StatusCode::FORBIDDEN).await;
    }
    let now = c.clock.now_ms();
    let others =
        store_console::others_present(&c.store, t, &me.name, now - PRESENCE_FRESH_MS).await?;
    let seen = Collision::of(&others, now);
    let confirmed = form.confirm.as_deref().is_some_and(|v| !v.is_empty());
    if seen.reply_needs_confirmation() && !confirmed && !form.text.trim().is_empty() {
        let dm = form.dm();
        let extras = Extras {
            draft: form.text,
            dm,
            confirm_over: seen.replying,
            ..Extras::default()
        };
        return render(&c, &me, t, extras, StatusCode::CONFLICT).await;
    }
    let dm = form.dm();
    let cmd = Command::Reply {
        text: form.text.clone(),
        dm,
    };
    let refused = Extras {
        draft: form.text,
        dm,
        ..Extras::default()
    };
    let done = apply(&c, &me, t, cmd, refused).await?;
    if done.is_ok() {
        store_console::be_present(&c.store, t, &me.name, Doing::Viewing, now).await?;
    }
    Ok(done.unwrap_or_else(|r| r))
}

/// The note's field.
#[derive(serde::Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    text: String,
}

/// An internal note.
pub async fn note(
    State(c): State<Shared>,
    Extension(me): Extension<Agent>,
    stale: Option<Extension<StaleForm>>,
    TicketPath(t): TicketPath,
    axum::Form(form): axum::Form<NoteForm>,
) -> Result<Response, ConsoleError> {
    if stale.is_some() {
        let extras = Extras {
            note: form.text,
            error: Some(STALE.into()),
            ..Extras::default()
        };
        return render(&c, &me, t, extras, StatusCode::FORBIDDEN).await;
    }
    if form.text.trim().is_empty() {
        let extras = Extras {
            error: Some("The note is empty: write it, then add it.".into()),
            ..Extras::default()
        };
        return render(&c, &me, t, extras, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let kept = Extras {
        note: form.text.clone(),
        ..Extras::default()
    };
    let done = apply(&c, &me, t, Command::Note(form.text), kept).await?;
    Ok(done.unwrap_or_else(|r| r))
}

/// The assignment's field.
#[derive(serde::Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    to: String,
}

/// Gives the ticket to an agent.
pub async fn assign(
    State(c): State<Shared>,
    Extension(me): Extension<Agent>,
    TicketPath(t): TicketPath,
    axum::Form(form): axum::Form<AssignForm>,
) -> Result<Response, ConsoleError> {
    let to = match AgentName::parse(&form.to) {
        Ok(n) => n,
        Err(e) => {
            let extras = Extras {
                error: Some(e.to_string()),
                ..Extras::default()
            };
            return render(&c, &me, t, extras, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let cmd = Command::Assign(to.as_str().to_owned());
    let done = apply(&c, &me, t, cmd, Extras::default()).await?;
    Ok(done.unwrap_or_else(|r| r))
}

/// A saved reply put in the reply box (without JavaScript; with it, the
/// page fills the box itself).
pub async fn saved(
    State(c): State<Shared>,
    Extension(me): Extension<Agent>,
    TicketPath(t): TicketPath,
    axum::Form(form): axum::Form<ReplyForm>,
) -> Result<Response, ConsoleError> {
    let Some(row) = crate::storage::tickets::get(&c.store, t).await? else {
        return Ok(not_found());
    };
    let summary = Summary::of(row, c.clock.now_ms());
    let picked = form.saved.as_deref().unwrap_or("");
    let text = saved_replies(&c, &summary)
        .into_iter()
        .find(|s| s.rule == picked)
        .map(|s| s.text)
        .unwrap_or(form.text.clone());
    let dm = form.dm();
    let extras = Extras {
        draft: text,
        dm,
        ..Extras::default()
    };
    render(&c, &me, t, extras, StatusCode::OK).await
}

/// Claim, pending, solve, close or reopen.
pub async fn act(
    State(c): State<Shared>,
    Extension(me): Extension<Agent>,
    TicketPath(t): TicketPath,
    Path(params): Path<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let verb = params
        .into_iter()
        .find(|(k, _)| k == "verb")
        .map(|(_, v)| v)
        .unwrap_or_default();
    if !ACTIONS.iter().any(|(v, _, _)| *v == verb) {
        return Ok(not_found());
    }
    let Ok(cmd) = Command::from_action(&verb, None) else {
        return Ok(not_found());
    };
    let done = apply(&c, &me, t, cmd, Extras::default()).await?;
    Ok(done.unwrap_or_else(|r| r))
}

/// Applies `cmd` as the CLI does: on success back to the ticket's page
/// (303); on a refusal the page again with the CLI's message and what the
/// agent had typed, `Err` of the outer result only when the database fails.
async fn apply(
    c: &Shared,
    me: &Agent,
    t: TicketRef,
    cmd: Command,
    mut on_refusal: Extras,
) -> Result<Result<Response, Response>, ConsoleError> {
    let now = c.clock.now_ms();
    let result = tickets::apply(
        &c.store,
        &c.policy,
        &c.protected_handles,
        t,
        &me.name,
        &cmd,
        now,
    )
    .await;
    match result {
        Ok(applied) => {
            tracing::info!(ticket = %t, agent = %me.name, action = cmd.name(),
                from = %applied.from, to = %applied.to, "console: ticket action applied");
            Ok(Ok(Redirect::to(&format!("/tickets/{t}")).into_response()))
        }
        Err(TicketError::Store(e)) => Err(e.into()),
        Err(TicketError::NotFound(_)) => Ok(Err(not_found())),
        Err(refused) => {
            let status = match refused {
                TicketError::TooLong { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::CONFLICT,
            };
            on_refusal.error = Some(refused.to_string());
            Ok(Err(render(c, me, t, on_refusal, status).await?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_follow_the_lifecycle() {
        let verbs = |s| actions(s).iter().map(|a| a.verb).collect::<Vec<_>>();
        assert_eq!(verbs(TicketStatus::New), ["claim", "pending", "solve"]);
        assert!(verbs(TicketStatus::Solved).contains(&"reopen"));
        assert!(verbs(TicketStatus::Closed).is_empty());
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let long = "é".repeat(TEXT_BYTES_AN_ENTRY);
        let shown = cut(long);
        assert!(shown.contains("more bytes"));
        assert!(shown.len() < TEXT_BYTES_AN_ENTRY + 100);
        assert_eq!(cut("short".into()), "short");
    }
}
