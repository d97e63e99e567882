//! The Bluesky (AT Protocol) client: mentions from the notifications, DMs
//! from the chat log, replies as `app.bsky.feed.post` records, a thin typed
//! reqwest client of our own over XRPC.
//!
//! - Login: an app password, exchanged for a session kept in the database
//!   ([`session`]); calls renew it before it expires and once after an
//!   `ExpiredToken`.
//! - Mentions: `app.bsky.notification.listNotifications` is newest first,
//!   so a poll pages back to the stored position (the newest notification
//!   already read) and hands the new ones over oldest first. Reasons
//!   `mention`, `reply` and `quote` are messages; the others (likes,
//!   reposts, follows) are not; the brand's own posts never are.
//! - DMs: `chat.bsky.convo.getLog` from a stored cursor, through the PDS
//!   with the `atproto-proxy` header; `logCreateMessage` entries from
//!   customers are messages.
//! - Replies: `com.atproto.repo.createRecord` under a record key made from
//!   the outbox row ([`richtext::row_tid`]): after a crash or a send in
//!   doubt, a resend cannot post twice, the PDS refuses the key. DMs go
//!   through `getConvoForMembers` and `sendMessage`, and a DM in doubt is
//!   settled by reading the conversation.
//! - Limits: `ratelimit-*` headers pace the polls; writes spend points
//!   (a create costs 3 of 5 000 an hour and 35 000 a day), and when the
//!   headers say too few are left the next send waits for the reset
//!   without calling.
//!
//! Why not `atrium-api` / `bsky-sdk`: see `ARCHITECTURE.md` (platforms).

pub mod config;
pub mod fake;
pub mod richtext;
pub mod session;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::domain::Stream;
use crate::domain::clock::{Clock, Millis, parse_rfc3339, rfc3339};
use crate::domain::limits::Budget;
use crate::domain::secret::Secret;
use crate::domain::text::LengthLimit;
use crate::domain::{Channel, ConversationId, Handle, MessageId, Platform, UserId};
use crate::platforms::bluesky::config::BlueskyConfig;
use crate::platforms::bluesky::session::{Session, SessionAnswer, SessionCalls, Sessions};
use crate::platforms::json::decode_lenient;
use crate::platforms::{
    Account, ApiError, Author, Batch, Connector, Event, Lookup, Outgoing, ReplyKind, Sent, Skipped,
};

/// Pages of notifications per poll at most (100 each): a gap larger than
/// this since the last poll is said, never silently passed over.
const MAX_PAGES: usize = 100;

/// How far back past the stored position a poll still reads. The AppView
/// sorts notifications by the earlier of a post's `createdAt` (the author's
/// own clock) and the time it indexed it, so a post from a phone whose
/// clock is behind sorts below a position already read. What is read
/// twice, the store drops.
const REREAD: Millis = 15 * 60 * 1000;

/// Pages of the chat log per poll at most.
const MAX_LOG_PAGES: usize = 50;

/// Points a `createRecord` spends.
const CREATE_POINTS: u64 = 3;

/// The posting limit: 5 000 points an hour at 3 a post; the daily 35 000
/// is held by the headers (`check_points`).
pub const POSTING_BUDGET: Budget = Budget {
    replies: (5000 / CREATE_POINTS) as u32,
    per_secs: 3600,
};

/// A resend keeps the row's record key, which the PDS refuses twice: safe
/// for as long as the row lives.
const RKEY_GUARD: Duration = Duration::from_secs(365 * 24 * 3600);

/// The collection of posts.
const POST: &str = "app.bsky.feed.post";

/// A Bluesky client for one account.
pub struct BlueskyClient {
    http: reqwest::Client,
    base: String,
    identifier: String,
    password: Secret,
    chat_proxy: String,
    dms: bool,
    langs: Vec<String>,
    clock: Clock,
    min_poll: Duration,
    default_poll: Duration,
    sessions: Sessions,
    /// What the last write's `ratelimit-*` headers said: points left and
    /// when they come back.
    write_window: Mutex<Option<(u64, Millis)>>,
    /// Calls since start, per method.
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl std::fmt::Debug for BlueskyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlueskyClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// How a call authenticates.
#[derive(Clone, Copy)]
enum Auth {
    /// No token (createSession).
    None,
    /// The session's access token.
    Access,
}

/// One XRPC call.
struct Call<'a> {
    nsid: &'static str,
    query: Vec<(&'a str, String)>,
    body: Option<Value>,
    /// Through the chat service (`atproto-proxy`).
    chat: bool,
    /// It may create something: an unknown outcome is in doubt.
    acts: bool,
}

impl<'a> Call<'a> {
    fn get(nsid: &'static str, query: Vec<(&'a str, String)>) -> Call<'a> {
        Call {
            nsid,
            query,
            body: None,
            chat: false,
            acts: false,
        }
    }

    fn post(nsid: &'static str, body: Value, acts: bool) -> Call<'a> {
        Call {
            nsid,
            query: Vec::new(),
            body: Some(body),
            chat: false,
            acts,
        }
    }

    fn via_chat(mut self) -> Call<'a> {
        self.chat = true;
        self
    }
}

impl BlueskyClient {
    /// A client for `config`, its app password, and its session kept in `sessions`.
    pub fn new(
        config: &BlueskyConfig,
        password: Secret,
        sessions: Sessions,
        clock: Clock,
    ) -> BlueskyClient {
        BlueskyClient {
            http: crate::platforms::http::http_client(),
            base: config.service.trim_end_matches('/').to_owned(),
            identifier: config
                .identifier
                .as_ref()
                .map(|i| i.as_str().to_owned())
                .unwrap_or_default(),
            password,
            chat_proxy: config.chat_proxy.clone(),
            dms: config.dms,
            langs: config.langs.clone(),
            clock,
            min_poll: Duration::from_millis(config.min_poll_interval_ms),
            default_poll: Duration::from_millis(config.poll_interval_ms),
            sessions,
            write_window: Mutex::new(None),
            calls: Mutex::new(BTreeMap::new()),
        }
    }

    /// One call, with the session's token, renewing it once when the PDS
    /// says it expired or was revoked.
    async fn xrpc<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<(T, HeaderMap), ApiError> {
        let session = self.sessions.get(self).await?;
        match self.send_call(call, Auth::Access, Some(&session)).await {
            Err(ApiError::Unauthorized) => {
                let renewed = self.sessions.recover(self, &session.access_jwt).await?;
                self.send_call(call, Auth::Access, Some(&renewed)).await
            }
            r => r,
        }
    }

    async fn send_call<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        auth: Auth,
        session: Option<&Session>,
    ) -> Result<(T, HeaderMap), ApiError> {
        *self
            .calls
            .lock()
            .expect("poisoned")
            .entry(call.nsid)
            .or_default() += 1;
        let url = format!("{}/xrpc/{}", self.base, call.nsid);
        let mut req = match &call.body {
            Some(b) => self.http.post(&url).json(b),
            None => self.http.get(&url).query(&call.query),
        };
        if let (Auth::Access, Some(s)) = (auth, session) {
            req = req.bearer_auth(&s.access_jwt);
        }
        if call.chat {
            req = req.header("atproto-proxy", &self.chat_proxy);
        }
        let r = decode(req.send().await, call.acts, self.clock.now_ms()).await;
        metrics::counter!("helpdesk_api_requests_total", "platform" => "bluesky", "endpoint" => call.nsid,
            "status" => if r.is_ok() { "ok" } else { "error" })
        .increment(1);
        r
    }

    /// The pause before the next poll, from the `ratelimit-*` headers.
    fn pace(&self, h: &HeaderMap) -> Duration {
        match window(h, self.clock.now_ms()) {
            Some((remaining, reset)) => {
                crate::platforms::spread(remaining, reset, self.clock.now_ms(), self.min_poll)
            }
            None => self.default_poll,
        }
    }

    /// Refuses a write when the last one said too few points are left,
    /// until they come back: the PDS would answer 429 anyway.
    fn check_points(&self) -> Result<(), ApiError> {
        let w = *self.write_window.lock().expect("poisoned");
        match w {
            Some((left, reset_ms)) if left < CREATE_POINTS && reset_ms > self.clock.now_ms() => {
                Err(ApiError::RateLimited { reset_ms })
            }
            _ => Ok(()),
        }
    }

    fn note_points(&self, h: &HeaderMap) {
        if let Some(w) = window(h, self.clock.now_ms()) {
            *self.write_window.lock().expect("poisoned") = Some(w);
        }
    }

    async fn poll_mentions(&self, cursor: Option<&str>) -> Result<Batch, ApiError> {
        let me = self.sessions.get(self).await?;
        let stored = cursor.and_then(Position::parse);
        let mut page_cursor: Option<String> = None;
        let mut items: Vec<Notification> = Vec::new();
        let mut skipped = Vec::new();
        // The position only moves forward, whatever the re-read brings.
        let mut newest: Option<Position> = stored.clone();
        let mut next_poll = None;
        let mut reached = stored.is_none();
        for page in 0..MAX_PAGES {
            // Every notification, not only those of accounts the brand
            // follows, whatever the account's own setting.
            let mut q = vec![
                ("limit", "100".to_owned()),
                ("priority", "false".to_owned()),
            ];
            if let Some(c) = &page_cursor {
                q.push(("cursor", c.clone()));
            }
            let (raw, h): (RawPage, _) = self
                .xrpc(&Call::get("app.bsky.notification.listNotifications", q))
                .await?;
            next_poll = Some(self.pace(&h));
            let (older_than_stored, n) =
                Self::read_page(&raw, stored.as_ref(), &mut items, &mut skipped, &mut newest);
            reached |= older_than_stored;
            // Without a stored position this is the first start: the
            // latest page is enough (older mentions are backlog).
            if reached || stored.is_none() || n == 0 || raw.cursor.is_none() {
                break;
            }
            if page + 1 == MAX_PAGES {
                tracing::warn!(
                    pages = MAX_PAGES,
                    "more Bluesky notifications since the last poll than one poll reads; the oldest of them were not read"
                );
                skipped.push(Skipped {
                    id: "unknown".into(),
                    error: format!("more than {} notifications since the last poll: the older ones were not read", MAX_PAGES * 100),
                });
            }
            page_cursor = raw.cursor.clone();
        }
        let mut events: Vec<Event> = items
            .into_iter()
            .filter_map(|n| n.into_event(&me, &self.clock))
            .collect();
        crate::platforms::sort_as_written(&mut events);
        // A first poll that finds no notification at all: every later one
        // is new, so the position is the beginning (else the next poll
        // would take only the latest page, as a first start does).
        if stored.is_none() && newest.is_none() && skipped.is_empty() {
            newest = Some(Position {
                at: 0,
                uri: String::new(),
            });
        }
        Ok(Batch {
            events,
            cursor: newest
                .map(|p| p.render())
                .filter(|c| Some(c.as_str()) != cursor),
            next_poll,
            skipped,
        })
    }

    /// Decodes one page item by item, keeping those after `stored` less
    /// [`REREAD`]. Returns whether the page reached that far back, and how
    /// many items it had.
    fn read_page(
        raw: &RawPage,
        stored: Option<&Position>,
        items: &mut Vec<Notification>,
        skipped: &mut Vec<Skipped>,
        newest: &mut Option<Position>,
    ) -> (bool, usize) {
        let mut reached = false;
        for item in &raw.notifications {
            let n = match decode_lenient::<Notification>(item.get()) {
                Ok(n) => n,
                Err(e) => {
                    skipped.push(Skipped::from_json(uri_of(item), &e));
                    continue;
                }
            };
            let Some(pos) = Position::of(&n) else {
                skipped.push(Skipped {
                    id: n.uri.clone(),
                    error: "a notification without a readable indexedAt".into(),
                });
                continue;
            };
            if stored.is_some_and(|s| pos.at <= s.at - REREAD) {
                reached = true;
                continue;
            }
            if newest.as_ref().is_none_or(|m| pos.is_after(m)) {
                *newest = Some(pos);
            }
            items.push(n);
        }
        (reached, raw.notifications.len())
    }

    async fn poll_dms(&self, cursor: Option<&str>) -> Result<Batch, ApiError> {
        let me = self.sessions.get(self).await?;
        let mut events = Vec::new();
        let mut skipped = Vec::new();
        let mut at = cursor.map(str::to_owned);
        let mut next_poll = None;
        let mut profiles: HashMap<String, (String, String)> = HashMap::new();
        for _ in 0..MAX_LOG_PAGES {
            let q = at.iter().map(|c| ("cursor", c.clone())).collect();
            let (page, h): (LogPage, _) = self
                .xrpc(&Call::get("chat.bsky.convo.getLog", q).via_chat())
                .await
                .map_err(chat_scope)?;
            next_poll = Some(self.pace(&h));
            for raw in &page.logs {
                match decode_lenient::<LogEntry>(raw.get()) {
                    Ok(entry) => {
                        if let Some(m) = entry.customer_message(&me.did) {
                            let author = self.profile(&m.sender.did, &mut profiles).await;
                            events.push(m.into_event(entry.convo_id, author, &self.clock));
                        }
                    }
                    Err(e) => skipped.push(Skipped::from_json(None, &e)),
                }
            }
            let moved = page.cursor.is_some() && page.cursor != at;
            if page.cursor.is_some() {
                at = page.cursor;
            }
            if page.logs.is_empty() || !moved {
                break;
            }
        }
        crate::platforms::sort_as_written(&mut events);
        Ok(Batch {
            events,
            cursor: at.filter(|c| Some(c.as_str()) != cursor),
            next_poll,
            skipped,
        })
    }

    /// A sender's handle and display name (`app.bsky.actor.getProfile`),
    /// once per poll; the DID stands in when the profile cannot be read.
    async fn profile(&self, did: &str, cache: &mut HashMap<String, (String, String)>) -> Author {
        if !cache.contains_key(did) {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Profile {
                handle: String,
                #[serde(default)]
                display_name: Option<String>,
            }
            let q = vec![("actor", did.to_owned())];
            let found = match self
                .xrpc::<Profile>(&Call::get("app.bsky.actor.getProfile", q))
                .await
            {
                Ok((p, _)) => (p.handle, p.display_name.unwrap_or_default()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a DM sender's profile; using their DID");
                    (did.to_owned(), String::new())
                }
            };
            cache.insert(did.to_owned(), found);
        }
        let (handle, name) = cache[did].clone();
        Author {
            id: UserId::new(did),
            handle: Handle::new(handle),
            name,
        }
    }

    /// The post `uri` as the AppView shows it (`getPosts`), if it exists.
    async fn post(&self, uri: &str) -> Result<Option<PostView>, ApiError> {
        #[derive(Deserialize)]
        struct Posts {
            posts: Vec<Box<RawValue>>,
        }
        let q = vec![("uris", uri.to_owned())];
        let (p, _): (Posts, _) = self.xrpc(&Call::get("app.bsky.feed.getPosts", q)).await?;
        Ok(p.posts
            .iter()
            .filter_map(|raw| decode_lenient::<PostView>(raw.get()).ok())
            .find(|v| v.uri == uri))
    }

    async fn send_public(&self, out: &Outgoing) -> Result<Sent, ApiError> {
        self.check_points()?;
        let me = self.sessions.get(self).await?;
        let (rkey, uri) = row_post(&me.did, out);
        let Some(parent) = self.post(out.in_reply_to.as_str()).await? else {
            return Err(ApiError::Rejected {
                status: 404,
                detail: "the post to answer no longer exists (deleted by its author?)".into(),
            });
        };
        let root = parent
            .record
            .get("reply")
            .and_then(|r| r.get("root"))
            .filter(|r| r.get("uri").is_some() && r.get("cid").is_some())
            .cloned()
            .unwrap_or_else(|| json!({"uri": parent.uri, "cid": parent.cid}));
        let mut record = json!({
            "$type": POST,
            "text": out.text,
            "createdAt": rfc3339(self.clock.now_ms()),
            "reply": {"root": root, "parent": {"uri": parent.uri, "cid": parent.cid}},
        });
        if !self.langs.is_empty() {
            record["langs"] = json!(self.langs);
        }
        let facets = richtext::facets(
            &out.text,
            out.recipient_handle.as_str(),
            out.recipient.as_str(),
        );
        if !facets.is_empty() {
            record["facets"] = Value::Array(facets);
        }
        let body = json!({
            "repo": me.did,
            "collection": POST,
            "rkey": rkey,
            "record": record,
        });
        #[derive(Deserialize)]
        struct Created {
            uri: String,
        }
        let r = self
            .xrpc::<Created>(&Call::post("com.atproto.repo.createRecord", body, true))
            .await;
        match r {
            Ok((c, h)) => {
                self.note_points(&h);
                Ok(Sent { id: c.uri })
            }
            // This row's key is taken: an earlier attempt of this very row
            // posted it.
            Err(ApiError::Rejected { detail, .. })
                if detail.to_ascii_lowercase().contains("already exist")
                    || detail.to_ascii_lowercase().contains("already a value") =>
            {
                Ok(Sent { id: uri })
            }
            Err(e) => Err(e),
        }
    }

    /// The row's post, by its record key: read from the repo on the PDS
    /// (`getRecord`, no index in between, so a post just made is there),
    /// or from the AppView (`getPosts`) where the PDS does not answer that.
    async fn find_post(&self, out: &Outgoing) -> Result<Lookup, ApiError> {
        let me = self.sessions.get(self).await?;
        let (rkey, uri) = row_post(&me.did, out);
        #[derive(Deserialize)]
        struct Record {
            uri: String,
        }
        let q = vec![
            ("repo", me.did.clone()),
            ("collection", POST.to_owned()),
            ("rkey", rkey),
        ];
        match self
            .xrpc::<Record>(&Call::get("com.atproto.repo.getRecord", q))
            .await
        {
            Ok((r, _)) => return Ok(Lookup::Found(vec![Sent { id: r.uri }])),
            Err(ApiError::Rejected { detail, .. }) if detail.starts_with("RecordNotFound") => {
                return Ok(Lookup::NotFound);
            }
            Err(e @ (ApiError::RateLimited { .. } | ApiError::Unauthorized)) => return Err(e),
            Err(e) => tracing::debug!(error = %e, "getRecord unanswered; asking the AppView"),
        }
        Ok(match self.post(&uri).await? {
            Some(p) => Lookup::Found(vec![Sent { id: p.uri }]),
            None => Lookup::NotFound,
        })
    }

    /// The brand's conversation with `did`. A customer who does not take
    /// messages from the brand is [`ApiError::DmClosed`].
    async fn convo_with(&self, did: &str) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        struct ConvoAnswer {
            convo: ConvoId,
        }
        #[derive(Deserialize)]
        struct ConvoId {
            id: String,
        }
        // Both members, the brand first: what "the given members" means
        // either way (a service that adds the caller itself dedups).
        let me = self.sessions.get(self).await?;
        let q = vec![("members", me.did), ("members", did.to_owned())];
        let (c, _): (ConvoAnswer, _) = self
            .xrpc(&Call::get("chat.bsky.convo.getConvoForMembers", q).via_chat())
            .await
            .map_err(chat_scope)?;
        Ok(c.convo.id)
    }

    async fn send_dm(&self, out: &Outgoing) -> Result<Sent, ApiError> {
        if !self.dms {
            return Err(ApiError::DmClosed(
                "direct messages are off for this account ([bluesky] dms = false)".into(),
            ));
        }
        let convo = self
            .convo_with(out.recipient.as_str())
            .await
            .map_err(scope_closes_dms)?;
        let mut message = json!({"text": out.text});
        let facets = richtext::facets(
            &out.text,
            out.recipient_handle.as_str(),
            out.recipient.as_str(),
        );
        if !facets.is_empty() {
            message["facets"] = Value::Array(facets);
        }
        let body = json!({"convoId": convo, "message": message});
        #[derive(Deserialize)]
        struct MessageView {
            id: String,
        }
        let (m, _): (MessageView, _) = self
            .xrpc(&Call::post("chat.bsky.convo.sendMessage", body, true).via_chat())
            .await
            .map_err(scope_closes_dms)?;
        Ok(Sent {
            id: format!("{convo}/{}", m.id),
        })
    }

    /// The brand's messages in the conversation with the customer that
    /// carry `out`'s text and were sent since `since`, newest first.
    async fn find_dm(&self, out: &Outgoing, since: Millis) -> Result<Lookup, ApiError> {
        let me = self.sessions.get(self).await?;
        let convo = match self.convo_with(out.recipient.as_str()).await {
            Ok(c) => c,
            // The customer closed their DMs since: whether the earlier DM
            // left cannot be read any more, and a public answer on top of
            // it could answer twice. An agent decides.
            Err(ApiError::DmClosed(why)) => {
                return Err(ApiError::Rejected {
                    status: 403,
                    detail: format!(
                        "the conversation cannot be read any more ({why}), so whether the DM left is unknown"
                    ),
                });
            }
            Err(e) => return Err(e),
        };
        #[derive(Deserialize)]
        struct Messages {
            messages: Vec<Box<RawValue>>,
        }
        let q = vec![("convoId", convo.clone()), ("limit", "100".to_owned())];
        let (page, _): (Messages, _) = self
            .xrpc(&Call::get("chat.bsky.convo.getMessages", q).via_chat())
            .await
            .map_err(chat_scope)?;
        // Clocks differ: a minute's slack before the attempt started.
        let from = since - 60_000;
        let found: Vec<Sent> = page
            .messages
            .iter()
            .filter_map(|raw| decode_lenient::<ChatMessage>(raw.get()).ok())
            .filter(|m| m.sender.did == me.did && m.text == out.text)
            .filter(|m| {
                m.sent_at
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .is_none_or(|t| t >= from)
            })
            .map(|m| Sent {
                id: format!("{convo}/{}", m.id),
            })
            .collect();
        Ok(if found.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::Found(found)
        })
    }
}

#[async_trait]
impl SessionCalls for BlueskyClient {
    async fn create(&self) -> Result<SessionAnswer, ApiError> {
        let body = json!({"identifier": self.identifier, "password": self.password.expose()});
        let call = Call::post("com.atproto.server.createSession", body, false);
        match self
            .send_call::<SessionAnswer>(&call, Auth::None, None)
            .await
        {
            Ok((a, _)) => Ok(a),
            Err(ApiError::Unauthorized) => {
                // Unauthorized, not a refusal: the sender keeps its queue
                // and the bot waits for the operator (and for the limits
                // on tries, which count this one).
                tracing::error!(
                    "Bluesky refused the identifier or the app password: check [bluesky] identifier and the app password in app_password_env (Settings → Privacy and security → App passwords)"
                );
                Err(ApiError::Unauthorized)
            }
            Err(e) => Err(e),
        }
    }

    async fn refresh(&self, refresh_jwt: &Secret) -> Result<SessionAnswer, Option<ApiError>> {
        let url = format!("{}/xrpc/com.atproto.server.refreshSession", self.base);
        *self
            .calls
            .lock()
            .expect("poisoned")
            .entry("com.atproto.server.refreshSession")
            .or_default() += 1;
        let r = self
            .http
            .post(&url)
            .bearer_auth(refresh_jwt.expose())
            .send()
            .await;
        match decode::<SessionAnswer>(r, false, self.clock.now_ms()).await {
            Ok((a, _)) => Ok(a),
            // Expired, revoked or not a refresh token: a new session is needed.
            Err(ApiError::Unauthorized) => Err(None),
            Err(e) => Err(Some(e)),
        }
    }
}

/// The record key of `out`'s post and its URI in the repo of `did`: the
/// same for every attempt of the row, so a send and its look-up agree.
fn row_post(did: &str, out: &Outgoing) -> (String, String) {
    let rkey = richtext::row_tid(out.queued_at, out.row);
    let uri = format!("at://{did}/{POST}/{rkey}");
    (rkey, uri)
}

/// Reads an answer (see [`crate::platforms::http::read_answer`]).
async fn decode<T: DeserializeOwned>(
    resp: Result<reqwest::Response, reqwest::Error>,
    acts: bool,
    now: Millis,
) -> Result<(T, HeaderMap), ApiError> {
    crate::platforms::http::read_answer(resp, acts, |status, h, body| {
        error_from(status, h, body, now)
    })
    .await
}

/// Maps an XRPC error answer (`{"error": "Name", "message": "…"}`).
pub fn error_from(status: u16, h: &HeaderMap, body: &[u8], now: Millis) -> ApiError {
    #[derive(Deserialize, Default)]
    struct XrpcError {
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let e: XrpcError = serde_json::from_slice(body).unwrap_or_default();
    let name = e.error.unwrap_or_default();
    // The PDS's messages name fields and limits, not content; cut anyway.
    let message: String = e.message.unwrap_or_default().chars().take(300).collect();
    let detail = match (name.is_empty(), message.is_empty()) {
        (true, true) => format!("a non-XRPC answer of {} bytes", body.len()),
        (false, true) => name.clone(),
        (true, false) => message.clone(),
        (false, false) => format!("{name}: {message}"),
    };
    match (status, name.as_str()) {
        (429, _) | (_, "RateLimitExceeded") => ApiError::RateLimited {
            reset_ms: window(h, now).map_or(now + 5 * 60 * 1000, |(_, reset)| reset),
        },
        (401, _) | (_, "ExpiredToken") | (_, "InvalidToken") if !message.contains("scope") => {
            ApiError::Unauthorized
        }
        (
            _,
            "MessagesDisabled"
            | "NotFollowedBySender"
            | "BlockedActor"
            | "BlockedSubject"
            | "RecipientNotFound",
        ) => ApiError::DmClosed(detail),
        (500..=599, _) => ApiError::Transient(format!("HTTP {status}: {detail}")),
        _ => ApiError::Rejected { status, detail },
    }
}

/// A chat call refused for the token's scope: the app password does not
/// allow direct messages, which only its owner can change.
fn chat_scope(e: ApiError) -> ApiError {
    match e {
        ApiError::Rejected { status, detail } if detail.contains("scope") => ApiError::Rejected {
            status,
            detail: format!(
                "{detail}: the app password does not allow direct messages; create one with \"Allow access to your direct messages\" ticked, or set [bluesky] dms = false"
            ),
        },
        e => e,
    }
}

/// A DM the brand's own access cannot send (the app password has no DM
/// permission): to the outbox it is a DM that cannot reach the customer,
/// so an FAQ answer goes public and an acknowledgement's ticket says why.
fn scope_closes_dms(e: ApiError) -> ApiError {
    match chat_scope(e) {
        ApiError::Rejected { detail, .. } if detail.contains("scope") => ApiError::DmClosed(detail),
        e => e,
    }
}

/// The longest a platform's reset is believed: a day (Bluesky's longest
/// window). A broken or hostile header further out would stop polling or
/// sending for good, or overflow the arithmetic on times.
const MAX_RESET: Millis = 24 * 3600 * 1000;

/// Points (or calls) left and when the window resets (Unix ms), from the
/// `ratelimit-remaining` and `ratelimit-reset` (epoch seconds) headers, the
/// reset at most [`MAX_RESET`] after `now`.
fn window(h: &HeaderMap, now: Millis) -> Option<(u64, Millis)> {
    let num = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    let remaining = num("ratelimit-remaining")?.max(0) as u64;
    let reset = num("ratelimit-reset")?.clamp(0, i64::MAX / 1000) * 1000;
    Some((remaining, reset.min(now + MAX_RESET)))
}

#[async_trait]
impl Connector for BlueskyClient {
    fn platform(&self) -> Platform {
        Platform::Bluesky
    }

    fn streams(&self) -> Vec<Stream> {
        if self.dms {
            vec![Stream::Mentions, Stream::Dms]
        } else {
            vec![Stream::Mentions]
        }
    }

    async fn whoami(&self) -> Result<Account, ApiError> {
        #[derive(Deserialize)]
        struct Me {
            did: String,
            handle: String,
        }
        let (me, _): (Me, _) = self
            .xrpc(&Call::get("com.atproto.server.getSession", Vec::new()))
            .await?;
        Ok(Account {
            id: UserId::new(me.did),
            handle: Handle::new(me.handle),
        })
    }

    async fn poll(&self, stream: Stream, cursor: Option<&str>) -> Result<Batch, ApiError> {
        match stream {
            Stream::Dms => self.poll_dms(cursor).await,
            Stream::Mentions | Stream::Search => self.poll_mentions(cursor).await,
        }
    }

    async fn send(&self, out: &Outgoing) -> Result<Sent, ApiError> {
        match out.kind {
            ReplyKind::Public => self.send_public(out).await,
            ReplyKind::Dm => self.send_dm(out).await,
        }
    }

    async fn find_sent(&self, out: &Outgoing, since: Millis) -> Result<Lookup, ApiError> {
        match out.kind {
            ReplyKind::Public => self.find_post(out).await,
            ReplyKind::Dm => self.find_dm(out, since).await,
        }
    }

    fn resend_is_safe_within(&self, kind: ReplyKind) -> Option<Duration> {
        match kind {
            ReplyKind::Public => Some(RKEY_GUARD),
            ReplyKind::Dm => None,
        }
    }

    async fn length_limit(&self) -> LengthLimit {
        LengthLimit::BLUESKY
    }

    fn posting_budget(&self) -> Option<Budget> {
        Some(POSTING_BUDGET)
    }

    fn usage_line(&self) -> Option<String> {
        let calls = self.calls.lock().expect("poisoned");
        if calls.is_empty() {
            return None;
        }
        let mut line = String::from("Bluesky calls since start:");
        for (nsid, n) in calls.iter() {
            line.push_str(&format!(" {nsid}={n}"));
        }
        if let Some((left, reset)) = *self.write_window.lock().expect("poisoned") {
            line.push_str(&format!(
                "; write points left {left} until {}",
                rfc3339(reset)
            ));
        }
        Some(line)
    }
}

/// What a poll makes of one answer body of `listNotifications`, item by
/// item, for the brand `did` / `handle`: for the fuzz tests
/// (`tests/it/fuzz.rs`), not an API.
#[doc(hidden)]
pub fn decode_notifications(
    body: &[u8],
    did: &str,
    handle: &str,
    clock: &Clock,
) -> Result<(Vec<Event>, Vec<Skipped>), ApiError> {
    let raw: RawPage = crate::platforms::decode_success(body, false)?;
    let me = Session {
        did: did.to_owned(),
        handle: handle.to_owned(),
        access_jwt: String::new(),
        refresh_jwt: String::new(),
        access_expires_at: 0,
        refresh_expires_at: None,
    };
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    BlueskyClient::read_page(&raw, None, &mut items, &mut skipped, &mut None);
    let events = items
        .into_iter()
        .filter_map(|n| n.into_event(&me, clock))
        .collect();
    Ok((events, skipped))
}

/// What a poll makes of one answer body of `chat.bsky.convo.getLog` for
/// the brand `did` (senders named by their DID): for the fuzz tests.
#[doc(hidden)]
pub fn decode_log(
    body: &[u8],
    did: &str,
    clock: &Clock,
) -> Result<(Vec<Event>, Vec<Skipped>), ApiError> {
    let page: LogPage = crate::platforms::decode_success(body, false)?;
    let mut events = Vec::new();
    let mut skipped = Vec::new();
    for raw in &page.logs {
        match decode_lenient::<LogEntry>(raw.get()) {
            Ok(entry) => {
                if let Some(m) = entry.customer_message(did) {
                    let author = Author {
                        id: UserId::new(m.sender.did.clone()),
                        handle: Handle::new(m.sender.did.clone()),
                        name: String::new(),
                    };
                    events.push(m.into_event(entry.convo_id, author, clock));
                }
            }
            Err(e) => skipped.push(Skipped::from_json(None, &e)),
        }
    }
    Ok((events, skipped))
}

/// A page of notifications, items still raw.
#[derive(Deserialize)]
struct RawPage {
    #[serde(default)]
    cursor: Option<String>,
    notifications: Vec<Box<RawValue>>,
}

fn uri_of(raw: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct UriOnly {
        uri: String,
    }
    decode_lenient::<UriOnly>(raw.get()).ok().map(|u| u.uri)
}

/// Where the mentions stream stands: the newest notification read, by
/// `indexedAt` then URI. Stored as `<indexedAt ms> <uri>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    at: Millis,
    uri: String,
}

impl Position {
    fn of(n: &Notification) -> Option<Position> {
        Some(Position {
            at: parse_rfc3339(&n.indexed_at)?,
            uri: n.uri.clone(),
        })
    }

    fn parse(s: &str) -> Option<Position> {
        let (at, uri) = s.split_once(' ')?;
        Some(Position {
            at: at.parse().ok()?,
            uri: uri.to_owned(),
        })
    }

    fn render(&self) -> String {
        format!("{} {}", self.at, self.uri)
    }

    /// Later than `other`; at the same millisecond, any other URI counts
    /// as later (the store drops what it already has, so nothing is lost).
    fn is_after(&self, other: &Position) -> bool {
        self.at > other.at || (self.at == other.at && self.uri != other.uri)
    }
}

/// `app.bsky.notification.listNotifications#notification`, the parts used.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    uri: String,
    #[serde(default)]
    cid: String,
    author: ProfileView,
    reason: String,
    #[serde(default)]
    record: Value,
    indexed_at: String,
}

/// `app.bsky.actor.defs#profileView`, the parts used.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileView {
    did: String,
    handle: String,
    #[serde(default)]
    display_name: Option<String>,
}

/// `app.bsky.feed.defs#postView`, the parts used.
#[derive(Debug, Deserialize)]
struct PostView {
    uri: String,
    cid: String,
    #[serde(default)]
    record: Value,
}

impl Notification {
    /// The message this notification brings, if it is one the brand
    /// answers: a mention, a reply or a quote, by someone else.
    fn into_event(self, me: &Session, clock: &Clock) -> Option<Event> {
        let _ = &self.cid;
        if !matches!(self.reason.as_str(), "mention" | "reply" | "quote")
            || self.author.did == me.did
        {
            return None;
        }
        if self.record.get("$type").and_then(Value::as_str) != Some(POST) {
            return None;
        }
        let raw_text = self
            .record
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let facets = self.record.get("facets").and_then(Value::as_array);
        let (text, mentioned) = mask_brand(raw_text, facets.map_or(&[][..], |f| &f[..]), me);
        let reply_uri = |key: &str| {
            self.record
                .get("reply")
                .and_then(|r| r.get(key))
                .and_then(|r| r.get("uri"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let indexed = parse_rfc3339(&self.indexed_at).unwrap_or_else(|| clock.now_ms());
        // The author's own clock: never later than the AppView saw it.
        let written = self
            .record
            .get("createdAt")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .map_or(indexed, |t| t.min(indexed));
        Some(Event {
            platform: Platform::Bluesky,
            channel: Channel::Mention,
            conversation: ConversationId::new(
                reply_uri("root").unwrap_or_else(|| self.uri.clone()),
            ),
            author: Author {
                id: UserId::new(self.author.did),
                handle: Handle::new(self.author.handle),
                name: self.author.display_name.unwrap_or_default(),
            },
            text,
            at: written,
            in_reply_to: reply_uri("parent").map(MessageId::new),
            is_repost: false,
            mentioned,
            lang: self
                .record
                .get("langs")
                .and_then(|l| l.get(0))
                .and_then(Value::as_str)
                .and_then(crate::domain::language::Lang::from_tag),
            id: MessageId::new(self.uri),
        })
    }
}

/// The post's text with every mention facet of the brand's DID replaced by
/// `@<brand handle>`, so the rules read the brand's own mention as a
/// handle, whatever words the facet covered; and the other accounts the
/// facets mention.
fn mask_brand(text: &str, facets: &[Value], me: &Session) -> (String, Vec<UserId>) {
    let mut brand_ranges = Vec::new();
    let mut mentioned = Vec::new();
    for f in facets {
        let start = f.pointer("/index/byteStart").and_then(Value::as_u64);
        let end = f.pointer("/index/byteEnd").and_then(Value::as_u64);
        let features = f
            .get("features")
            .and_then(Value::as_array)
            .map_or(&[][..], |v| &v[..]);
        for feat in features {
            if feat.get("$type").and_then(Value::as_str) != Some("app.bsky.richtext.facet#mention")
            {
                continue;
            }
            let Some(did) = feat.get("did").and_then(Value::as_str) else {
                continue;
            };
            if did != me.did {
                mentioned.push(UserId::new(did));
                continue;
            }
            if let (Some(s), Some(e)) = (start, end) {
                let (s, e) = (s as usize, e as usize);
                if s < e && e <= text.len() && text.is_char_boundary(s) && text.is_char_boundary(e)
                {
                    brand_ranges.push((s, e));
                }
            }
        }
    }
    brand_ranges.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for (s, e) in brand_ranges {
        if s < from {
            continue; // overlapping facets: the first wins
        }
        out.push_str(&text[from..s]);
        out.push('@');
        out.push_str(&me.handle);
        from = e;
    }
    out.push_str(&text[from..]);
    (out, mentioned)
}

/// A page of the chat log, entries still raw.
#[derive(Deserialize)]
struct LogPage {
    #[serde(default)]
    cursor: Option<String>,
    logs: Vec<Box<RawValue>>,
}

/// One entry of the chat log; only `logCreateMessage` matters.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogEntry {
    #[serde(rename = "$type", default)]
    kind: String,
    #[serde(default)]
    convo_id: String,
    #[serde(default)]
    message: Option<Value>,
}

/// `chat.bsky.convo.defs#messageView`, the parts used.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatMessage {
    id: String,
    #[serde(default)]
    text: String,
    sender: Sender,
    #[serde(default)]
    sent_at: Option<String>,
}

#[derive(Deserialize)]
struct Sender {
    did: String,
}

impl LogEntry {
    /// The message a customer sent, if this entry is one.
    fn customer_message(&self, brand: &str) -> Option<ChatMessage> {
        if self.kind != "chat.bsky.convo.defs#logCreateMessage" || self.convo_id.is_empty() {
            return None;
        }
        let m = self.message.as_ref()?;
        // A deleted message (`#deletedMessageView`) has no text to answer.
        if m.get("$type").and_then(Value::as_str) == Some("chat.bsky.convo.defs#deletedMessageView")
        {
            return None;
        }
        let m: ChatMessage = serde_json::from_value(m.clone()).ok()?;
        (m.sender.did != brand).then_some(m)
    }
}

impl ChatMessage {
    fn into_event(self, convo: String, author: Author, clock: &Clock) -> Event {
        Event {
            platform: Platform::Bluesky,
            channel: Channel::Dm,
            id: MessageId::new(format!("{convo}/{}", self.id)),
            conversation: ConversationId::new(convo),
            author,
            text: self.text,
            at: self
                .sent_at
                .as_deref()
                .and_then(parse_rfc3339)
                .unwrap_or_else(|| clock.now_ms()),
            in_reply_to: None,
            is_repost: false,
            mentioned: Vec::new(),
            lang: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Session {
        Session {
            did: "did:plc:brand".into(),
            handle: "acme.bsky.social".into(),
            access_jwt: String::new(),
            refresh_jwt: String::new(),
            access_expires_at: 0,
            refresh_expires_at: None,
        }
    }

    #[test]
    fn the_brands_mention_reads_as_its_handle() {
        let text = "hey @acme my box is dead, cc @bob.test";
        let facets = vec![
            json!({"index": {"byteStart": 4, "byteEnd": 9}, "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:brand"}]}),
            json!({"index": {"byteStart": 29, "byteEnd": 38}, "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:bob"}]}),
            // Garbage offsets are ignored, not a panic.
            json!({"index": {"byteStart": 30, "byteEnd": 9999}, "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:brand"}]}),
        ];
        let (masked, mentioned) = mask_brand(text, &facets, &me());
        assert_eq!(masked, "hey @acme.bsky.social my box is dead, cc @bob.test");
        assert_eq!(mentioned, vec![UserId::new("did:plc:bob")]);
    }

    #[test]
    fn xrpc_errors_map_onto_what_the_outbox_does() {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-remaining", "0".parse().unwrap());
        h.insert("ratelimit-reset", "1764500000".parse().unwrap());
        let body =
            |e: &str, m: &str| serde_json::to_vec(&json!({"error": e, "message": m})).unwrap();
        assert_eq!(
            error_from(
                429,
                &h,
                &body("RateLimitExceeded", "Rate Limit Exceeded"),
                1_764_499_000_000
            ),
            ApiError::RateLimited {
                reset_ms: 1_764_500_000_000
            }
        );
        // A reset absurdly far (or an overflow waiting to happen) is held
        // to a day; a garbled one falls back to five minutes.
        let mut far = HeaderMap::new();
        far.insert("ratelimit-remaining", "0".parse().unwrap());
        far.insert("ratelimit-reset", "9223372036854775807".parse().unwrap());
        assert_eq!(
            error_from(429, &far, b"{}", 1000),
            ApiError::RateLimited {
                reset_ms: 1000 + MAX_RESET
            }
        );
        far.insert("ratelimit-reset", "soon".parse().unwrap());
        assert_eq!(
            error_from(429, &far, b"{}", 1000),
            ApiError::RateLimited {
                reset_ms: 1000 + 300_000
            }
        );
        assert_eq!(
            error_from(400, &h, &body("ExpiredToken", "Token has expired"), 0),
            ApiError::Unauthorized
        );
        assert!(matches!(
            error_from(
                400,
                &h,
                &body(
                    "MessagesDisabled",
                    "recipient has disabled incoming messages"
                ),
                0
            ),
            ApiError::DmClosed(_)
        ));
        assert!(matches!(
            error_from(400, &h, &body("InvalidToken", "Bad token scope"), 0),
            ApiError::Rejected { status: 400, .. }
        ));
        assert!(matches!(
            error_from(502, &h, b"<html>", 0),
            ApiError::Transient(_)
        ));
    }

    #[test]
    fn the_posts_first_language_is_kept_as_a_hint() {
        let n = |langs: Value| -> Notification {
            serde_json::from_value(json!({"uri": "at://p", "cid": "c", "reason": "mention",
                "isRead": false, "indexedAt": "2026-11-30T12:00:00Z",
                "author": {"did": "did:plc:eve", "handle": "eve.test"},
                "record": {"$type": POST, "text": "hi", "createdAt": "2026-11-30T12:00:00Z",
                    "langs": langs}}))
            .unwrap()
        };
        let lang = |langs| n(langs).into_event(&me(), &Clock::new()).unwrap().lang;
        assert_eq!(
            lang(json!(["pt-BR", "en"])).map(|l| l.to_string()),
            Some("pt".into())
        );
        assert_eq!(lang(json!([])), None);
        assert_eq!(lang(json!("fr")), None, "not a list: no hint");
    }

    #[test]
    fn a_poll_reads_back_past_its_position_for_late_sorted_posts() {
        let n = |uri: &str, at: &str| {
            json!({"uri": uri, "cid": "c", "reason": "mention", "isRead": false, "indexedAt": at,
                "author": {"did": "did:plc:eve", "handle": "eve.test"},
                "record": {"$type": POST, "text": "hi", "createdAt": at}})
        };
        let page = json!({"notifications": [
            n("at://new", "2026-11-30T12:01:00Z"),
            // Written on a phone three minutes slow: sorted before the position.
            n("at://slow", "2026-11-30T11:58:00Z"),
            n("at://read", "2026-11-30T11:40:00Z"),
        ]});
        let raw: RawPage = serde_json::from_value(page).unwrap();
        let stored = Position {
            at: parse_rfc3339("2026-11-30T12:00:00Z").unwrap(),
            uri: "at://pos".into(),
        };
        let (mut items, mut skipped, mut newest) = (Vec::new(), Vec::new(), Some(stored.clone()));
        let (reached, n) =
            BlueskyClient::read_page(&raw, Some(&stored), &mut items, &mut skipped, &mut newest);
        let uris: Vec<&str> = items.iter().map(|i| i.uri.as_str()).collect();
        assert_eq!(uris, ["at://new", "at://slow"]);
        assert!(reached && n == 3 && skipped.is_empty());
        assert_eq!(
            newest.unwrap().uri,
            "at://new",
            "the position moves forward only"
        );
    }

    #[test]
    fn positions_order_by_time_then_differ_by_uri() {
        let a = Position::parse("1000 at://a").unwrap();
        let b = Position::parse("1000 at://b").unwrap();
        let c = Position::parse("2000 at://a").unwrap();
        assert!(c.is_after(&a) && b.is_after(&a) && !a.is_after(&a) && !a.is_after(&c));
        assert_eq!(Position::parse(&c.render()), Some(c));
        assert_eq!(Position::parse("garbage"), None);
    }
}
