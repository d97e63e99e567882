//! The console's templates (in `templates/`, checked at compile time) and
//! the values they show, already turned into text: a template decides
//! nothing. askama escapes every value for HTML, so a customer's name or
//! message is text on the page whatever it holds.

use askama::Template;

/// `/login`.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub csrf: &'a str,
    pub error: Option<&'a str>,
    pub name: &'a str,
}

/// Who is signed in, for the page's header and its forms.
pub struct Me<'a> {
    pub name: &'a str,
    pub csrf: &'a str,
}

/// One queue in the inbox's side list.
pub struct QueueView {
    pub name: String,
    pub total: i64,
    pub unread: i64,
    pub overdue: i64,
    pub href: String,
    pub current: bool,
}

/// One ticket in the inbox.
pub struct RowView {
    pub reference: String,
    pub status: String,
    pub priority: String,
    pub queue: String,
    pub platform: String,
    pub customer: String,
    pub assignee: String,
    pub due_iso: String,
    pub due_text: String,
    pub overdue: bool,
    pub signals: Vec<String>,
    pub unread: bool,
}

/// The part of the inbox that refreshes itself.
pub struct InboxLive {
    pub queues: Vec<QueueView>,
    pub rows: Vec<RowView>,
    pub total: i64,
    pub unread: i64,
    pub page: i64,
    pub pages: i64,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
    pub live_href: String,
    pub refresh_secs: u64,
    pub heading: String,
}

/// The inbox's filters as the form shows them.
pub struct FilterView {
    pub queue: String,
    pub status: String,
    pub mine: bool,
    pub overdue: bool,
    pub queues: Vec<String>,
    pub statuses: Vec<&'static str>,
}

/// `/`.
#[derive(Template)]
#[template(path = "inbox.html")]
pub struct InboxPage<'a> {
    pub me: Me<'a>,
    pub filter: FilterView,
    pub live: InboxLive,
}

/// `/inbox/live`.
#[derive(Template)]
#[template(path = "inbox_live.html")]
pub struct InboxLiveFragment {
    pub live: InboxLive,
}

/// One entry of a ticket's timeline.
pub struct EntryView {
    pub at_iso: String,
    pub at_text: String,
    pub who: String,
    pub kind: String,
    pub class: &'static str,
    pub text: Option<String>,
    pub change: String,
    pub link: Option<String>,
}

/// A ticket's timeline, the part that refreshes itself.
pub struct TimelineView {
    pub entries: Vec<EntryView>,
    pub earlier_href: Option<String>,
    /// Set on an earlier page, which does not refresh itself.
    pub later_href: Option<String>,
    pub live_href: String,
    pub refresh_secs: u64,
}

/// The reply box's counter.
pub struct CounterView {
    pub count: usize,
    pub max: usize,
    pub over: bool,
    pub platform: String,
}

/// One saved reply: a rule's reply in the customer's language.
pub struct SavedView {
    pub rule: String,
    pub text: String,
}

/// The ticket's facts at the top of its page.
pub struct TicketView {
    pub reference: String,
    pub status: String,
    pub priority: String,
    pub queue: String,
    pub platform: String,
    pub customer: String,
    pub assignee: String,
    pub lang: String,
    pub due_iso: String,
    pub due_text: String,
    pub overdue: bool,
    pub signals: Vec<String>,
    pub csat: String,
    pub incident: Option<String>,
}

/// An action button the ticket's status allows.
pub struct ActionView {
    pub verb: &'static str,
    pub label: &'static str,
    pub key: &'static str,
}

/// `/tickets/T-n`.
#[derive(Template)]
#[template(path = "ticket.html")]
pub struct TicketPage<'a> {
    pub me: Me<'a>,
    pub t: TicketView,
    pub timeline: TimelineView,
    pub counter: CounterView,
    /// Always false here: the counter's template also serves the draft
    /// route, which swaps the send button out of band.
    pub oob: bool,
    pub draft: String,
    pub dm: bool,
    pub error: Option<String>,
    pub confirm_over: Vec<String>,
    pub presence: PresenceView,
    pub saved: Vec<SavedView>,
    pub actions: Vec<ActionView>,
    pub agents: Vec<String>,
    /// The agent the assign list starts on: the assignee, else the agent.
    pub assign_to: String,
    pub note: String,
    pub can_reply: bool,
}

/// `/tickets/T-n/live`.
#[derive(Template)]
#[template(path = "timeline.html")]
pub struct TimelineFragment {
    pub timeline: TimelineView,
}

/// Colleagues on the same ticket.
pub struct PresenceView {
    pub href: String,
    pub viewing: Vec<String>,
    pub replying: Vec<String>,
}

/// `/tickets/T-n/presence`.
#[derive(Template)]
#[template(path = "presence.html")]
pub struct PresenceFragment {
    pub presence: PresenceView,
}

/// `/tickets/T-n/draft`.
#[derive(Template)]
#[template(path = "counter.html")]
pub struct CounterFragment {
    pub counter: CounterView,
    pub oob: bool,
}
