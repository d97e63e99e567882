//! The one trait every social platform plugs in behind, and the domain
//! types that cross it.
//!
//! Only the modules under `platforms/` know a platform's JSON; what leaves
//! them is an [`Event`] (inbound) or a [`Sent`] / [`ApiError`] (outbound).
//! A platform reaches the bot in two ways, both through [`Connector`]: the
//! bot polls it, and, where the platform pushes, listens
//! ([`Connector::listening`]: a stream the bot holds open, or an endpoint
//! the platform calls). [`registry`] builds the connectors the
//! configuration asks for.

pub mod bluesky;
pub mod chat;
pub mod http;
pub mod json;
pub mod mastodon;
pub mod registry;
pub mod sse;
pub mod x;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Stream;

use crate::domain::clock::Millis;
use crate::domain::language::Lang;
use crate::domain::{Channel, ConversationId, Handle, MessageId, Platform as PlatformName, UserId};

/// One inbound message, whatever platform it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Which platform.
    pub platform: PlatformName,
    /// Mention, DM or search hit.
    pub channel: Channel,
    /// The platform's id of the message.
    pub id: MessageId,
    /// The thread (public) or the DM conversation it belongs to.
    pub conversation: ConversationId,
    /// Who wrote it.
    pub author: Author,
    /// Its text, as plain text.
    pub text: String,
    /// When it was written (platform time).
    pub at: Millis,
    /// The message it answers, if any.
    pub in_reply_to: Option<MessageId>,
    /// A retweet or boost: someone else's words, never answered.
    pub is_repost: bool,
    /// The accounts the message mentions, by id, where the platform says
    /// (X). X puts them in the thread of a reply unless told not to.
    pub mentioned: Vec<UserId>,
    /// The language the platform tags the message with (X `lang`,
    /// Mastodon `language`, Bluesky's first `langs`): a hint for when the
    /// text itself cannot tell, since it comes from an account's or a
    /// client's settings rather than from what the customer wrote.
    pub lang: Option<Lang>,
}

/// The author of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// Stable platform user id.
    pub id: UserId,
    /// The @handle, without `@`.
    pub handle: Handle,
    /// The display name (may be empty).
    pub name: String,
}

/// The brand's own account on a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its user id.
    pub id: UserId,
    /// Its handle.
    pub handle: Handle,
}

/// The pause that spreads `remaining` requests evenly until the window
/// resets at `reset_ms`, so the budget lasts and new messages are seen as
/// soon as it allows; an exhausted window waits for its reset plus a
/// second. Never below `min`.
pub fn spread(remaining: u64, reset_ms: Millis, now: Millis, min: Duration) -> Duration {
    let until_reset = (reset_ms - now).max(0) as u64;
    let pause = match until_reset.checked_div(remaining) {
        Some(share) => Duration::from_millis(share),
        None => Duration::from_millis(until_reset + 1000),
    };
    pause.max(min)
}

/// The result of one poll of a stream.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// New events, oldest first.
    pub events: Vec<Event>,
    /// The cursor to store once the events are recorded (`None`: unchanged).
    pub cursor: Option<String>,
    /// How long to wait before polling this stream again, from the
    /// platform's rate-limit headers, when it said.
    pub next_poll: Option<Duration>,
    /// Items of the page that could not be decoded: recorded with the
    /// events and passed over, so that one bad item never stops a stream.
    pub skipped: Vec<Skipped>,
}

/// An item of a polled page that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The platform's id of the item, when even that could not be read:
    /// `unknown`.
    pub id: String,
    /// Where decoding failed (kind, line, column), never the item's text.
    pub error: String,
}

impl Skipped {
    /// A skipped item from a serde_json error. serde's message can quote
    /// the offending value (a customer's words), so only its category and
    /// position are kept.
    pub fn from_json(id: Option<String>, e: &serde_json::Error) -> Skipped {
        Skipped {
            id: id.unwrap_or_else(|| "unknown".to_owned()),
            error: json_error_position(e),
        }
    }
}

/// A serde_json error without any of the input's text: its category and
/// where it happened.
pub fn json_error_position(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "unexpected JSON shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// An error with its causes, each said once (`error sending request:
/// connection closed before message completed`), so a log line or a
/// reason names the real cause.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = next {
        let msg = err.to_string();
        // Wrappers often repeat their source's message in their own.
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// Decodes a 2xx answer. One that cannot be read is
/// [`ApiError::Malformed`], or [`ApiError::InDoubt`] when the call may
/// have acted (`acts`): the platform did something, we cannot tell what.
/// Never quotes the body: it holds customers' messages.
pub fn decode_success<T: serde::de::DeserializeOwned>(
    body: &[u8],
    acts: bool,
) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let why = json_error_position(&e);
        if acts {
            ApiError::InDoubt(format!("a success answer that could not be read ({why})"))
        } else {
            ApiError::Malformed(why)
        }
    })
}

/// Sorts events into the order their authors wrote them, since several
/// messages often share one second. Where every id is a decimal number
/// (X's snowflakes, Mastodon's ids: both grow with time, to the
/// millisecond) the ids alone decide: a time the platform did not send is
/// only our clock at reading. Other ids go by time, then id.
pub fn sort_as_written(events: &mut [Event]) {
    fn numeric(id: &str) -> Option<(usize, &str)> {
        let digits = id.trim_start_matches('0');
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some((digits.len(), digits))
    }
    if events.iter().all(|e| numeric(e.id.as_str()).is_some()) {
        events.sort_by(|a, b| numeric(a.id.as_str()).cmp(&numeric(b.id.as_str())));
    } else {
        events.sort_by(|a, b| (a.at, a.id.as_str()).cmp(&(b.at, b.id.as_str())));
    }
}

/// How a reply leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// A public reply in the thread.
    Public,
    /// A direct message.
    Dm,
}

impl ReplyKind {
    /// The name used in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyKind::Public => "public",
            ReplyKind::Dm => "dm",
        }
    }

    /// Parses the store's name.
    pub fn parse(s: &str) -> Option<ReplyKind> {
        match s {
            "public" => Some(ReplyKind::Public),
            "dm" => Some(ReplyKind::Dm),
            _ => None,
        }
    }
}

/// One reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Public or DM.
    pub kind: ReplyKind,
    /// The text, final.
    pub text: String,
    /// The message it answers (public replies thread under it).
    pub in_reply_to: MessageId,
    /// The customer (DMs go to them).
    pub recipient: UserId,
    /// The customer's handle (Mastodon DMs must start with it to reach them).
    pub recipient_handle: Handle,
    /// A key unique to this outbox row, for platforms that deduplicate
    /// retries (Mastodon's `Idempotency-Key`).
    pub idempotency_key: String,
    /// The outbox row's id, for platforms that name the post after it
    /// (Bluesky's record key).
    pub row: i64,
    /// When the row was queued (Unix ms), for the same.
    pub queued_at: Millis,
    /// Accounts a public reply must leave out of its thread: those the
    /// customer's message mentioned (X adds them to a reply otherwise).
    pub exclude_from_thread: Vec<UserId>,
}

/// What a look-up for a reply in doubt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Posts on the platform that match the reply (same target, same
    /// text), newest first: the outbox takes one no other row claims.
    Found(Vec<Sent>),
    /// The platform shows no such reply: it did not leave.
    NotFound,
    /// This platform (or this kind of reply) cannot be looked up.
    Unsupported,
}

/// What the platform said after a successful send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The platform's id of the new post or DM.
    pub id: String,
}

/// Why a call to a platform failed, in the terms the outbox acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 429: wait until `reset` (Unix ms) before calling this endpoint again.
    #[error("rate limited by the platform until {reset_ms} (Unix ms)")]
    RateLimited {
        /// When the limit resets.
        reset_ms: Millis,
    },
    /// The platform refuses the same text twice (X's 403 duplicate content).
    #[error("the platform refused duplicate content")]
    Duplicate,
    /// The token is wrong, expired or revoked.
    #[error(
        "the platform refused the credentials (401): fix the token or app password the configuration names, then restart"
    )]
    Unauthorized,
    /// 5xx, timeout, connection reset on a call that changes nothing (a
    /// read) or that certainly did not reach the platform: worth retrying.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// A call that may have acted although its outcome is unknown: the
    /// request was written and then the connection was cut, the answer
    /// timed out or was unreadable, or a 5xx came from an endpoint that may
    /// have posted first. It must be settled (looked up, or resent where
    /// the platform refuses a second copy), never retried blindly.
    #[error("outcome unknown: {0}")]
    InDoubt(String),
    /// A direct message cannot reach the customer: their settings or a
    /// block refuse the brand, or the brand's own access has no DMs. A
    /// public answer still can.
    #[error("a direct message cannot reach the customer: {0}")]
    DmClosed(String),
    /// Any other refusal: retrying will not help.
    #[error("refused ({status}): {detail}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The platform's explanation.
        detail: String,
    },
    /// The answer could not be understood.
    #[error("malformed answer from the platform: {0}")]
    Malformed(String),
}

/// A social platform, as the bot sees it.
///
/// Implementations own their HTTP client, their JSON and their cursors'
/// meaning. They hold no state the store must survive: cursors come in and
/// go out as opaque strings.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Which platform this is.
    fn platform(&self) -> PlatformName;

    /// The streams worth polling, in priority order.
    fn streams(&self) -> Vec<Stream>;

    /// The brand's own account (also checks the credentials).
    async fn whoami(&self) -> Result<Account, ApiError>;

    /// New events of `stream` after `cursor` (all pages), oldest first.
    async fn poll(&self, stream: Stream, cursor: Option<&str>) -> Result<Batch, ApiError>;

    /// Sends one reply.
    async fn send(&self, out: &Outgoing) -> Result<Sent, ApiError>;

    /// Looks for `out` on the platform after a send whose outcome is
    /// unknown ([`ApiError::InDoubt`], or a crash mid-send) that started at
    /// `since` (Unix ms). [`Lookup::Unsupported`] when the platform offers
    /// no way to look (the outbox then relies on
    /// [`Connector::resend_is_safe_within`]).
    async fn find_sent(&self, out: &Outgoing, since: Millis) -> Result<Lookup, ApiError> {
        let _ = (out, since);
        Ok(Lookup::Unsupported)
    }

    /// How long resending exactly the same text is safe because the
    /// platform itself refuses or absorbs a second copy (X refuses
    /// duplicate posts for 24 h; Mastodon keeps idempotency keys for about
    /// an hour). `None`: a resend could post twice. The outbox relies on it
    /// alone only where [`Connector::find_sent`] is unsupported, and then
    /// as a guard keyed to the row (an idempotency key): a guard keyed to
    /// the text, like X's, proves nothing when two rows share a text, so
    /// such a platform must implement the look-up.
    fn resend_is_safe_within(&self, kind: ReplyKind) -> Option<Duration>;

    /// How long a post may be here; the rules' replies are checked against it.
    async fn length_limit(&self) -> crate::domain::text::LengthLimit {
        crate::domain::text::LengthLimit::of(self.platform())
    }

    /// The platform's own limit on posts, when it has one the bot should
    /// never reach (the sender uses it when it is slower than the global budget).
    fn posting_budget(&self) -> Option<crate::domain::limits::Budget> {
        None
    }

    /// Where the platform bills per call and a money budget is set (X's
    /// `max_usd_per_day`): what sending a `kind` reply with `text` costs
    /// and the day's cap. The sender holds a reply back with it as with
    /// [`Connector::posting_budget`]. `None`: no money budget.
    fn money_budget(
        &self,
        kind: ReplyKind,
        text: &str,
    ) -> Option<crate::domain::money::MoneyBudget> {
        let _ = (kind, text);
        None
    }

    /// Where to keep what the platform's calls cost, for a platform that
    /// bills per call: the bot hands every connector the database's ledger
    /// at start, so that instances share one day's budget. Others ignore it.
    fn keep_spend_in(&self, ledger: std::sync::Arc<dyn crate::platforms::x::cost::SpendLedger>) {
        let _ = ledger;
    }

    /// Counts what the platform bills for events it pushed (X bills
    /// Account Activity deliveries per event). Nothing by default.
    async fn charge_pushed(&self, events: &[Event]) {
        let _ = events;
    }

    /// One line on the requests spent so far, logged once per polling cycle.
    fn usage_line(&self) -> Option<String> {
        None
    }

    /// When this platform has a push stream worth holding open
    /// ([`Connector::listen`]): how often to poll while it is up, as a
    /// safety net that also keeps the cursor moving. `None`: polling only.
    /// The shorthand for [`Listening::Stream`].
    fn push_stream(&self) -> Option<Duration> {
        None
    }

    /// How this platform pushes events beside polling, which decides where
    /// the bot runs [`Connector::listen`]. `None`: polling only.
    fn listening(&self) -> Option<Listening> {
        self.push_stream()
            .map(|safety_poll| Listening::Stream { safety_poll })
    }

    /// Takes what the platform pushes and hands it to `tx`: for a stream,
    /// sends [`Pushed::Connected`] once it is established, then each event
    /// as it arrives; for an endpoint, each call's events as they are
    /// delivered. Returns `Ok` when the server closed the stream (or `tx`
    /// is closed), an error when it could not be opened or went silent. A
    /// pushed event never moves a cursor: polling stays the ledger, so a
    /// poll after every (re)connection and every drop leaves no gap, and the
    /// store drops what both brought.
    async fn listen(&self, tx: &tokio::sync::mpsc::Sender<Pushed>) -> Result<(), ApiError> {
        let _ = tx;
        Err(ApiError::Rejected {
            status: 404,
            detail: format!("{} has no push stream", self.platform()),
        })
    }
}

/// How a platform pushes events, and so where its listener runs and what
/// its connection means for polling.
#[derive(Debug, Clone)]
pub enum Listening {
    /// A stream the bot opens and holds (Mastodon's streaming API). Only
    /// the instance that polls the platform holds it (several would bring
    /// the same events several times). While it is connected, polls slow
    /// down to `safety_poll`: a safety net that also moves the cursor.
    Stream {
        /// The pause between polls while the stream is up.
        safety_poll: Duration,
    },
    /// An endpoint the platform calls (X's Account Activity webhook). Every
    /// instance serves it, since the platform may call any of them. It never
    /// says [`Pushed::Connected`]: nothing tells whether the platform
    /// delivers everything, so polling keeps its pace.
    Endpoint(Endpoint),
}

/// An HTTP endpoint through which a platform pushes events. The runtime
/// binds `listen` and serves `routes` behind its own connection, header,
/// body and time limits for as long as the bot runs; the routes hand what
/// they accept to [`Connector::listen`]. Only the runtime faces the
/// network, so every listener gets the same hardening.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Names it in logs and metrics (`helpdesk_http_connections_refused_total{endpoint}`).
    pub name: &'static str,
    /// Where to listen, such as `127.0.0.1:8443`.
    pub listen: String,
    /// What a call does.
    pub routes: axum::Router,
}

/// Where a listener learns whether the events it handed over are committed
/// (`Err`: not recorded, and why), so that a platform that waits on its
/// call (a webhook) hears success only then and its retry covers a failure.
pub type Receipt = tokio::sync::oneshot::Sender<Result<(), String>>;

/// What a platform's listener tells the bot.
#[derive(Debug)]
pub enum Pushed {
    /// The stream is open: new events arrive through it from now on.
    Connected,
    /// A new event.
    Event(Event),
    /// Events one call of the platform delivered; `receipt` hears once they
    /// are recorded (or not).
    Delivered {
        /// The events, in any order.
        events: Vec<Event>,
        /// Told the outcome.
        receipt: Receipt,
    },
    /// The stream ended, for this reason. The bot's listener says this
    /// when [`Connector::listen`] returns; connectors never send it.
    Lost(String),
}

/// The address where a post can be read on its platform, for agents: X's
/// `x.com/HANDLE/status/ID`, a Mastodon status on the brand's instance
/// (`mastodon_base`, which shows remote accounts' posts too), a Bluesky
/// post on `bsky.app` from its `at://` URI. `None` when the id is not one
/// the platform makes (a sandbox's, a DM's).
pub fn permalink(
    platform: PlatformName,
    mastodon_base: Option<&str>,
    handle: &str,
    post_id: &str,
) -> Option<String> {
    let web = |base: &str, segments: &[&str]| -> Option<String> {
        let mut url = url::Url::parse(base).ok()?;
        url.path_segments_mut().ok()?.clear().extend(segments);
        Some(url.into())
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match platform {
        PlatformName::X if digits(post_id) && !handle.is_empty() => {
            web("https://x.com", &[handle, "status", post_id])
        }
        PlatformName::Mastodon if digits(post_id) && !handle.is_empty() => {
            let base = mastodon_base?;
            web(base, &[&format!("@{handle}"), post_id])
        }
        PlatformName::Bluesky => {
            let rest = post_id.strip_prefix("at://")?;
            let mut parts = rest.split('/');
            let (repo, collection, rkey) = (parts.next()?, parts.next()?, parts.next()?);
            (collection == "app.bsky.feed.post" && parts.next().is_none())
                .then(|| web("https://bsky.app", &["profile", repo, "post", rkey]))?
        }
        _ => None,
    }
}

#[cfg(test)]
mod permalink_tests {
    use super::*;

    #[test]
    fn posts_link_to_their_platform_and_odd_ids_to_nothing() {
        assert_eq!(
            permalink(PlatformName::X, None, "tom", "1790").as_deref(),
            Some("https://x.com/tom/status/1790")
        );
        assert_eq!(
            permalink(
                PlatformName::Mastodon,
                Some("https://fosstodon.org"),
                "ana@mas.to",
                "11"
            )
            .as_deref(),
            Some("https://fosstodon.org/@ana@mas.to/11")
        );
        assert_eq!(
            permalink(
                PlatformName::Bluesky,
                None,
                "ana.bsky.social",
                "at://did:plc:abc/app.bsky.feed.post/3kx"
            )
            .as_deref(),
            Some("https://bsky.app/profile/did:plc:abc/post/3kx")
        );
        // A handle cannot leave its path segment.
        assert_eq!(
            permalink(PlatformName::X, None, "a/../b?c", "1").as_deref(),
            Some("https://x.com/a%2F..%2Fb%3Fc/status/1")
        );
        assert_eq!(permalink(PlatformName::X, None, "tom", "dm-7"), None);
        assert_eq!(permalink(PlatformName::Mastodon, None, "ana", "11"), None);
        assert_eq!(
            permalink(
                PlatformName::Bluesky,
                None,
                "a",
                "at://did/app.bsky.graph.follow/1"
            ),
            None
        );
    }
}
