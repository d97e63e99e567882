//! The fake Bluesky PDS: a local HTTP server that answers the XRPC methods
//! the bot uses, field for field as the lexicons of
//! `../shared/fixtures/bluesky/lexicons/` define them, within the limits
//! that `../shared/fixtures/bluesky/PROVENANCE.md` states. It is the one
//! fake of Bluesky, for the integration tests and for
//! `helpdesk demo --platform bluesky`, as [`crate::platforms::x::fake`] is
//! the one of X and [`crate::platforms::mastodon::fake`] of Mastodon.
//!
//! Every method is `GET` (a query) or `POST` (a procedure) on
//! `/xrpc/<nsid>`; every error is `{"error", "message"}`; every answer
//! carries `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset`
//! (epoch seconds) and `ratelimit-policy` (`3000;w=300`) for the limit
//! that applies (see [`PdsLimits`]); over a limit, 429
//! `RateLimitExceeded`.
//!
//! - `com.atproto.server.createSession`: the brand's handle or DID and its
//!   app password give `accessJwt`, `refreshJwt`, `handle`, `did`,
//!   `didDoc`, `active`; else 401 `AuthenticationRequired`. Limited per
//!   account (30 per 5 minutes, 300 per day).
//! - `com.atproto.server.refreshSession` (bearer: the refresh JWT): a new
//!   pair; the refresh token used is revoked (a second use: 400
//!   `ExpiredToken`), an access token is 400 `InvalidToken`.
//! - `com.atproto.server.getSession`: `handle`, `did`, `didDoc`, `active`.
//! - `com.atproto.repo.createRecord`: an `app.bsky.feed.post` in the
//!   brand's repo, validated as a PDS does (text length in graphemes and
//!   bytes, `createdAt`, `langs`, `reply` strong refs that exist, facets
//!   inside the text, a TID `rkey` not taken yet); write points per
//!   account (a create costs 3).
//! - `app.bsky.feed.getPosts`: `postView`s of the posts that exist.
//! - `app.bsky.notification.listNotifications`: newest first, `limit`,
//!   `cursor`, `reasons`; each notification visible from its arrival time
//!   on the shared clock. `app.bsky.notification.updateSeen` sets `seenAt`
//!   (and so `isRead`).
//! - `app.bsky.actor.getProfile`: a `profileViewDetailed`.
//! - `chat.bsky.convo.getLog`, `getMessages`, `getConvoForMembers`,
//!   `listConvos`, `sendMessage`: only with the header
//!   `atproto-proxy: did:web:api.bsky.chat#bsky_chat` and a session whose
//!   app password has DM access; each customer's `allowIncoming` applies.
//!
//! What the tests control: the brand ([`PdsSetup`]), customers
//! ([`FakePds::add_customer`]), their posts, interactions and DMs
//! ([`FakePds::mention`], [`FakePds::reply_to`], [`FakePds::quote`],
//! [`FakePds::notify`], [`FakePds::dm`], [`FakePds::react`], or a traffic
//! file through [`FakePds::load_traffic`]), injected failures
//! ([`FakePds::fail_next`]) and token expiry
//! ([`FakePds::expire_access_tokens`]). What they read: the brand's posts
//! and DMs as stored, calls per method, and every refusal with its reason
//! ([`FakePds::rejected`]). Time comes from the shared [`Clock`]: a test
//! moves windows and token lifetimes forward without sleeping.
//!
//! Where the fixtures are silent the fake makes a choice, and the code says
//! so where it makes it (`A choice:`).

mod chat;
mod feed;
mod ids;
mod richtext;
mod session;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use ring::hmac;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::domain::Channel;
use crate::domain::clock::{Clock, Millis, parse_rfc3339, rfc3339};
use crate::platforms::x::fake::{At, TrafficLine};

/// One rate limit: `points` per `window` (a fixed window that starts with
/// its first point, as the reference PDS's limiter does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Points allowed per window (a call costs 1, a create 3).
    pub points: u32,
    /// The window's length.
    pub window: Duration,
}

impl Limit {
    /// `points` per `secs` seconds.
    pub const fn new(points: u32, secs: u64) -> Limit {
        Limit {
            points,
            window: Duration::from_secs(secs),
        }
    }
}

/// The limits the PDS enforces; tests make them tiny to reach them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdsLimits {
    /// Every XRPC call (`global-ip`): 3 000 per 5 minutes.
    pub global: Limit,
    /// Write points per account per hour: 5 000 (a create costs 3).
    pub writes_hourly: Limit,
    /// Write points per account per day: 35 000.
    pub writes_daily: Limit,
    /// `createSession` per account per 5 minutes: 30.
    pub sessions_short: Limit,
    /// `createSession` per account per day: 300.
    pub sessions_daily: Limit,
    /// `chat.bsky.*` calls per account. The chat service's own limits are
    /// not published; this default (the PDS's global 3 000 per 5 minutes)
    /// is a guess, here so that tests can reach a chat limit at all.
    pub chat: Limit,
}

impl Default for PdsLimits {
    /// The reference PDS's limits (PROVENANCE.md), and a guess for chat.
    fn default() -> Self {
        PdsLimits {
            global: Limit::new(3000, 300),
            writes_hourly: Limit::new(5000, 3600),
            writes_daily: Limit::new(35000, 86400),
            sessions_short: Limit::new(30, 300),
            sessions_daily: Limit::new(300, 86400),
            chat: Limit::new(3000, 300),
        }
    }
}

/// The brand's account and how the PDS treats it.
#[derive(Debug, Clone)]
pub struct PdsSetup {
    /// The brand's handle (`brand.test`).
    pub handle: String,
    /// The brand's DID.
    pub did: String,
    /// The brand's display name.
    pub display_name: String,
    /// The app password `createSession` accepts.
    pub app_password: String,
    /// Whether the app password may read and send DMs: its sessions carry
    /// the scope `com.atproto.appPassPrivileged` (else
    /// `com.atproto.appPass`, which chat calls refuse).
    pub dm_access: bool,
    /// How long an access JWT lives (Bluesky: 2 hours).
    pub access_ttl: Duration,
    /// How long a refresh JWT lives (Bluesky: 90 days).
    pub refresh_ttl: Duration,
    /// The rate limits.
    pub limits: PdsLimits,
}

impl PdsSetup {
    /// The default setup for the brand `handle`, its DID made from it.
    pub fn brand(handle: &str) -> PdsSetup {
        let handle = handle.trim_start_matches('@').to_ascii_lowercase();
        PdsSetup {
            did: ids::did_for(&handle),
            handle,
            ..PdsSetup::default()
        }
    }
}

impl Default for PdsSetup {
    /// `brand.test` with DM access, Bluesky's token lifetimes and the
    /// reference PDS's limits.
    fn default() -> Self {
        PdsSetup {
            handle: "brand.test".into(),
            did: ids::did_for("brand.test"),
            display_name: "Brand".into(),
            app_password: "abcd-efgh-ijkl-mnop".into(),
            dm_access: true,
            access_ttl: Duration::from_secs(2 * 3600),
            refresh_ttl: Duration::from_secs(90 * 24 * 3600),
            limits: PdsLimits::default(),
        }
    }
}

/// Who may open a chat with an account (`chat.bsky.actor.declaration`'s
/// `allowIncoming`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowIncoming {
    /// Anyone.
    All,
    /// No one.
    None,
    /// Only accounts the customer follows. The brand counts as followed
    /// when the customer follows it.
    Following,
}

impl AllowIncoming {
    /// The lexicon's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AllowIncoming::All => "all",
            AllowIncoming::None => "none",
            AllowIncoming::Following => "following",
        }
    }
}

/// A post, by its strong reference (`com.atproto.repo.strongRef`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PostRef {
    /// `at://<did>/app.bsky.feed.post/<rkey>`.
    pub uri: String,
    /// Its CID (`bafyrei…`).
    pub cid: String,
}

/// A post the brand created through `createRecord`, as the PDS stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedPost {
    /// Its AT URI.
    pub uri: String,
    /// Its record key (a TID, the client's when it gave one).
    pub rkey: String,
    /// Its CID.
    pub cid: String,
    /// The record as the client sent it.
    pub record: Value,
}

/// A DM the brand sent through `sendMessage`.
#[derive(Debug, Clone, PartialEq)]
pub struct SentDm {
    /// The convo.
    pub convo_id: String,
    /// The customer it went to.
    pub to_did: String,
    /// The message id the service gave it.
    pub message_id: String,
    /// Its text.
    pub text: String,
    /// Its facets as sent (`Null` when none).
    pub facets: Value,
}

#[derive(Debug, Clone)]
struct Account {
    did: String,
    handle: String,
    name: String,
    allow: AllowIncoming,
    /// The rkey of the customer's follow record of the brand, if any.
    follow: Option<String>,
    created_at: Millis,
}

#[derive(Debug, Clone)]
struct Post {
    uri: String,
    cid: String,
    author: String,
    record: Value,
    indexed_at: Millis,
}

impl Post {
    fn as_ref(&self) -> PostRef {
        PostRef {
            uri: self.uri.clone(),
            cid: self.cid.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Notif {
    uri: String,
    cid: String,
    author: String,
    reason: String,
    subject: Option<String>,
    record: Value,
    indexed_at: Millis,
    seq: u64,
}

/// Something a test made happen, waiting for its arrival time.
#[derive(Debug)]
enum Arrival {
    /// A customer's post, and the notification it gives the brand.
    Post {
        post: Post,
        reason: Option<(String, Option<String>)>,
    },
    /// A like, repost or follow (its time and order set on arrival).
    Notify(Notif),
    /// A DM to the brand.
    Dm {
        from: String,
        id: String,
        text: String,
        facets: Value,
    },
    /// A reaction to a message of a convo with the brand.
    Reaction {
        from: String,
        message_id: String,
        value: String,
    },
}

#[derive(Debug)]
struct Pending {
    at: Millis,
    order: u64,
    what: Arrival,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    start: Millis,
    used: u32,
}

/// What the `ratelimit-*` headers of an answer say.
#[derive(Debug, Clone, Copy)]
struct Quota {
    limit: u32,
    remaining: u32,
    reset_ms: Millis,
    window: Duration,
}

/// An XRPC error answer.
#[derive(Debug, Clone)]
struct XrpcError {
    status: u16,
    error: String,
    message: String,
}

impl XrpcError {
    fn body(&self) -> Value {
        json!({"error": self.error, "message": self.message})
    }
}

fn err(status: u16, error: &str, message: impl Into<String>) -> XrpcError {
    XrpcError {
        status,
        error: error.to_owned(),
        message: message.into(),
    }
}

/// 400 `InvalidRequest`, the XRPC answer to input that does not fit.
fn invalid(message: impl Into<String>) -> XrpcError {
    err(400, "InvalidRequest", message)
}

fn rate_limited() -> XrpcError {
    err(429, "RateLimitExceeded", "Rate Limit Exceeded")
}

/// One request, as the handlers see it.
struct Req<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    /// The decoded query pairs (`None`: not decodable).
    query: Option<Vec<(String, String)>>,
    body: &'a [u8],
}

impl Req<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a parameter; arrays come repeated (`uris=a&uris=b`),
    /// and `uris[]=a` is taken too.
    fn params(&self, key: &str) -> Vec<&str> {
        let bracketed = format!("{key}[]");
        self.query
            .iter()
            .flatten()
            .filter(|(k, _)| k == key || *k == bracketed)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params(key).first().copied()
    }

    /// An integer parameter within `lo..=hi`, `default` when absent.
    fn int_param(&self, key: &str, default: u64, lo: u64, hi: u64) -> Result<usize, XrpcError> {
        match self.param(key) {
            None => Ok(default as usize),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(n as usize),
                _ => Err(invalid(format!(
                    "Params/{key} must be an integer from {lo} to {hi}"
                ))),
            },
        }
    }

    /// The JSON object a procedure was given.
    fn input(&self) -> Result<Value, XrpcError> {
        match serde_json::from_slice::<Value>(self.body) {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err(invalid("Input must be an object")),
            Err(_) => Err(invalid("Request body is not valid JSON")),
        }
    }
}

/// A string property of an input object.
fn str_field<'v>(input: &'v Value, key: &str) -> Result<&'v str, XrpcError> {
    match input.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(format!("Input/{key} must be a string"))),
        None => Err(invalid(format!("Input must have the property \"{key}\""))),
    }
}

type Handler = fn(&mut Inner, &Req<'_>, Millis, &mut Quota) -> Result<Value, XrpcError>;

/// The methods served: NSID, whether it is a procedure (POST), handler.
const METHODS: &[(&str, bool, Handler)] = &[
    ("com.atproto.server.createSession", true, session::create),
    ("com.atproto.server.refreshSession", true, session::refresh),
    ("com.atproto.server.getSession", false, session::get),
    ("com.atproto.repo.createRecord", true, feed::create_record),
    ("com.atproto.repo.getRecord", false, feed::get_record),
    ("app.bsky.feed.getPosts", false, feed::get_posts),
    (
        "app.bsky.notification.listNotifications",
        false,
        feed::list_notifications,
    ),
    ("app.bsky.notification.updateSeen", true, feed::update_seen),
    ("app.bsky.actor.getProfile", false, feed::get_profile),
    ("chat.bsky.convo.getLog", false, chat::get_log),
    ("chat.bsky.convo.getMessages", false, chat::get_messages),
    (
        "chat.bsky.convo.getConvoForMembers",
        false,
        chat::get_convo_for_members,
    ),
    ("chat.bsky.convo.listConvos", false, chat::list_convos),
    ("chat.bsky.convo.sendMessage", true, chat::send_message),
];

#[derive(Debug)]
struct Inner {
    setup: PdsSetup,
    base_url: String,
    /// Signs the session JWTs (a fresh key per fake).
    key: hmac::Key,
    /// Every account; the brand first.
    accounts: Vec<Account>,
    /// Posts that have arrived, in arrival order, and their index by URI.
    posts: Vec<Post>,
    by_uri: HashMap<String, usize>,
    /// The brand's posts made through createRecord.
    created: Vec<CreatedPost>,
    notifications: Vec<Notif>,
    seen_at: Option<Millis>,
    pending: Vec<Pending>,
    convos: Vec<chat::Convo>,
    /// The brand's chat log, in rev order.
    logs: Vec<Value>,
    sent_dms: Vec<SentDm>,
    tids: ids::TidClock,
    seq: u64,
    buckets: HashMap<String, Bucket>,
    sessions: session::Sessions,
    calls: HashMap<String, usize>,
    inject: HashMap<String, VecDeque<XrpcError>>,
    rejected: Vec<(String, String)>,
    /// Traffic-file ids of the posts loaded from one, for `in_reply_to`.
    traffic: HashMap<String, PostRef>,
}

type Shared = Arc<(Mutex<Inner>, Clock)>;

/// A running fake PDS. Dropping it stops the server.
#[derive(Debug)]
pub struct FakePds {
    addr: SocketAddr,
    shared: Shared,
    _stop: oneshot::Sender<()>,
}

impl FakePds {
    /// Starts the PDS on 127.0.0.1 (a free port) for the brand of `setup`,
    /// on the shared `clock`.
    pub async fn start(setup: PdsSetup, clock: Clock) -> std::io::Result<FakePds> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Inner::new(setup, format!("http://{addr}"), clock.now_ms())?;
        let shared: Shared = Arc::new((Mutex::new(inner), clock));
        let app = Router::new()
            .route("/xrpc/{nsid}", any(xrpc))
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FakePds {
            addr,
            shared,
            _stop: tx,
        })
    }

    /// The PDS's URL (`http://127.0.0.1:<port>`), to which `/xrpc/<nsid>`
    /// is appended.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The brand's DID.
    pub fn brand_did(&self) -> String {
        self.lock().setup.did.clone()
    }

    /// The brand's handle.
    pub fn brand_handle(&self) -> String {
        self.lock().setup.handle.clone()
    }

    /// The brand's app password.
    pub fn app_password(&self) -> String {
        self.lock().setup.app_password.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.0.lock().expect("fake PDS state poisoned")
    }

    /// Runs `f` on the state once what is due has arrived.
    fn with<T>(&self, f: impl FnOnce(&mut Inner, Millis) -> T) -> T {
        let now = self.shared.1.now_ms();
        let mut g = self.lock();
        g.settle(now);
        let out = f(&mut g, now);
        g.settle(now);
        out
    }

    /// Adds a customer (or updates one with this handle) and returns their
    /// DID: `did:plc:` and 24 base32 characters, the same for the same
    /// handle. `handle` is lower-cased and its `@` dropped; `allow` is
    /// their chat setting; `follows_brand` decides
    /// [`AllowIncoming::Following`] and the brand's `viewer.followedBy`.
    ///
    /// # Panics
    /// When `handle` is the brand's.
    pub fn add_customer(
        &self,
        handle: &str,
        name: &str,
        allow: AllowIncoming,
        follows_brand: bool,
    ) -> String {
        self.with(|g, now| g.add_account(handle, name, allow, follows_brand, now))
    }

    /// A customer posts `text`; when its facets mention the brand (put
    /// `@<brand handle>` in it), the brand gets a `mention` notification.
    /// An unknown author becomes a customer (allows all DMs, does not
    /// follow the brand).
    pub fn mention(&self, author_handle: &str, text: &str) -> PostRef {
        self.with(|g, now| g.customer_post(author_handle, text, Shape::Plain, now, now))
    }

    /// A customer replies to `parent` (the thread's root is the parent's
    /// root). The brand gets a `reply` notification when the parent (or
    /// the root) is the brand's, else a `mention` when the text mentions
    /// it, else none.
    ///
    /// # Panics
    /// When `parent` is not a post here.
    pub fn reply_to(&self, author_handle: &str, parent: &PostRef, text: &str) -> PostRef {
        self.with(|g, now| g.customer_post(author_handle, text, Shape::Reply(parent), now, now))
    }

    /// A customer quotes `quoted` (an `app.bsky.embed.record` embed): a
    /// `quote` notification when it is the brand's, else a `mention` when
    /// the text mentions the brand.
    ///
    /// # Panics
    /// When `quoted` is not a post here.
    pub fn quote(&self, author_handle: &str, quoted: &PostRef, text: &str) -> PostRef {
        self.with(|g, now| g.customer_post(author_handle, text, Shape::Quote(quoted), now, now))
    }

    /// A customer likes or reposts `subject` (`like`, `repost`), or follows
    /// the brand (`follow`, no subject; they then follow it): a
    /// notification of that reason with the like, repost or follow record.
    ///
    /// # Panics
    /// On another reason, or a like or repost without a subject.
    pub fn notify(&self, author_handle: &str, reason: &str, subject: Option<&PostRef>) {
        self.with(|g, now| g.interaction(author_handle, reason, subject, now));
    }

    /// A customer sends the brand a DM (the 1:1 convo is made at its first
    /// message, with a `#logBeginConvo`); returns the message id.
    pub fn dm(&self, author_handle: &str, text: &str) -> String {
        self.with(|g, now| g.customer_dm(author_handle, text, now))
    }

    /// A customer reacts to message `message_id` of their convo with the
    /// brand: a `#logAddReaction` in the brand's chat log, one of the log
    /// kinds the bot must pass over.
    pub fn react(&self, author_handle: &str, message_id: &str, value: &str) {
        self.with(|g, now| {
            let from = g.customer(author_handle, now);
            g.push(
                now,
                Arrival::Reaction {
                    from,
                    message_id: message_id.to_owned(),
                    value: value.to_owned(),
                },
            );
        });
    }

    /// A post of the brand's that exists before the test starts (customers
    /// can reply to it or quote it). Not one of [`FakePds::brand_posts`],
    /// which are the ones created through `createRecord`.
    pub fn seed_brand_post(&self, text: &str) -> PostRef {
        self.with(|g, now| g.seed_brand_post(text, now))
    }

    /// Loads an X traffic file's lines: `mention` and `search` become
    /// customer posts that mention the brand (`@<first label of the
    /// brand's handle>` is rewritten to the full handle, and a text that
    /// does not mention the brand gets `@<handle> ` in front), replies to
    /// an earlier line when `in_reply_to` names one; `dm` becomes a DM.
    /// Authors become customers (`camille_r` → `camille-r.test`). `at`
    /// decides the arrival: seconds from now, or now for a time of writing
    /// (then the record's `createdAt`).
    pub fn load_traffic(&self, lines: &[TrafficLine]) {
        self.with(|g, now| {
            for line in lines {
                g.traffic_line(line, now);
            }
        });
    }

    /// The brand's posts created through `createRecord`, in order.
    pub fn brand_posts(&self) -> Vec<CreatedPost> {
        self.lock().created.clone()
    }

    /// The DMs the brand sent, in order.
    pub fn brand_dms(&self) -> Vec<SentDm> {
        self.lock().sent_dms.clone()
    }

    /// Sessions created (successful `createSession` calls).
    pub fn session_creates(&self) -> usize {
        self.lock().sessions.created
    }

    /// Successful `refreshSession` calls.
    pub fn refreshes(&self) -> usize {
        self.lock().sessions.refreshed
    }

    /// Requests to `nsid` so far, answered or refused.
    pub fn calls(&self, nsid: &str) -> usize {
        self.lock().calls.get(nsid).copied().unwrap_or(0)
    }

    /// Every access token issued so far expires now (the next call with one
    /// gets 400 `ExpiredToken`); refresh tokens keep working.
    pub fn expire_access_tokens(&self) {
        self.lock().sessions.expire_all();
    }

    /// The next call to `nsid` is answered `status` with
    /// `{"error": error, "message": message}` (after the global rate limit
    /// counted it, before anything else). Calls queue up.
    pub fn fail_next(&self, nsid: &str, status: u16, error: &str, message: &str) {
        self.lock()
            .inject
            .entry(nsid.to_owned())
            .or_default()
            .push_back(err(status, error, message));
    }

    /// `(nsid, message)` of every 4xx the fake answered, in order: why it
    /// refused, for a test's diagnostics.
    pub fn rejected(&self) -> Vec<(String, String)> {
        self.lock().rejected.clone()
    }

    /// Posts, notifications and DMs made to arrive later that have not yet.
    pub fn pending(&self) -> usize {
        self.with(|g, _| g.pending.len())
    }

    /// When the last of them arrives (Unix ms).
    pub fn last_arrival(&self) -> Option<Millis> {
        self.lock().pending.iter().map(|p| p.at).max()
    }
}

/// What a customer's post is besides its text.
#[derive(Debug, Clone, Copy)]
enum Shape<'a> {
    Plain,
    Reply(&'a PostRef),
    Quote(&'a PostRef),
}

impl Inner {
    fn new(setup: PdsSetup, base_url: String, now: Millis) -> std::io::Result<Inner> {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| std::io::Error::other("no randomness for the session key"))?;
        let brand = Account {
            did: setup.did.clone(),
            handle: setup.handle.to_ascii_lowercase(),
            name: setup.display_name.clone(),
            allow: AllowIncoming::All,
            follow: None,
            created_at: now,
        };
        Ok(Inner {
            setup,
            base_url,
            key,
            accounts: vec![brand],
            posts: Vec::new(),
            by_uri: HashMap::new(),
            created: Vec::new(),
            notifications: Vec::new(),
            seen_at: None,
            pending: Vec::new(),
            convos: Vec::new(),
            logs: Vec::new(),
            sent_dms: Vec::new(),
            tids: ids::TidClock::new(rand::random::<u64>()),
            seq: 0,
            buckets: HashMap::new(),
            sessions: session::Sessions::default(),
            calls: HashMap::new(),
            inject: HashMap::new(),
            rejected: Vec::new(),
            traffic: HashMap::new(),
        })
    }

    fn brand(&self) -> &Account {
        &self.accounts[0]
    }

    fn account(&self, did: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.did == did)
    }

    /// The DID of a handle (with or without `@`, any case) or of a DID.
    fn resolve(&self, identifier: &str) -> Option<String> {
        let id = identifier.trim_start_matches('@').to_ascii_lowercase();
        self.accounts
            .iter()
            .find(|a| a.handle == id || a.did == identifier)
            .map(|a| a.did.clone())
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn add_account(
        &mut self,
        handle: &str,
        name: &str,
        allow: AllowIncoming,
        follows_brand: bool,
        now: Millis,
    ) -> String {
        let handle = handle.trim_start_matches('@').to_ascii_lowercase();
        assert!(
            handle != self.brand().handle,
            "{handle} is the brand's handle, not a customer's"
        );
        let follow = follows_brand.then(|| self.tids.next(now));
        if let Some(a) = self.accounts.iter_mut().find(|a| a.handle == handle) {
            a.name = name.to_owned();
            a.allow = allow;
            if follows_brand != a.follow.is_some() {
                a.follow = follow;
            }
            return a.did.clone();
        }
        let did = ids::did_for(&handle);
        self.accounts.push(Account {
            did: did.clone(),
            handle,
            name: name.to_owned(),
            allow,
            follow,
            created_at: now,
        });
        did
    }

    /// The DID of a customer, made one if unknown.
    fn customer(&mut self, handle: &str, now: Millis) -> String {
        match self.resolve(handle) {
            Some(did) => did,
            None => self.add_account(handle, handle, AllowIncoming::All, false, now),
        }
    }

    /// A post that has arrived, or one still on its way.
    fn any_post(&self, uri: &str) -> Option<&Post> {
        self.by_uri.get(uri).map(|&i| &self.posts[i]).or_else(|| {
            self.pending.iter().find_map(|p| match &p.what {
                Arrival::Post { post, .. } if post.uri == uri => Some(post),
                _ => None,
            })
        })
    }

    /// A post that has arrived.
    fn post(&self, uri: &str) -> Option<&Post> {
        self.by_uri.get(uri).map(|&i| &self.posts[i])
    }

    fn store_post(&mut self, post: Post) {
        self.by_uri.insert(post.uri.clone(), self.posts.len());
        self.posts.push(post);
    }

    fn push(&mut self, at: Millis, what: Arrival) {
        let order = self.next_seq();
        self.pending.push(Pending { at, order, what });
    }

    /// Everything due by `now` arrives, in order of arrival time.
    fn settle(&mut self, now: Millis) {
        if !self.pending.iter().any(|p| p.at <= now) {
            return;
        }
        self.pending.sort_by_key(|p| (p.at, p.order));
        let due = self.pending.iter().take_while(|p| p.at <= now).count();
        let arrived: Vec<Pending> = self.pending.drain(..due).collect();
        for p in arrived {
            self.arrive(p.at, p.what);
        }
    }

    fn arrive(&mut self, at: Millis, what: Arrival) {
        match what {
            Arrival::Post { mut post, reason } => {
                post.indexed_at = at;
                if let Some((reason, subject)) = reason {
                    let n = Notif {
                        uri: post.uri.clone(),
                        cid: post.cid.clone(),
                        author: post.author.clone(),
                        reason,
                        subject,
                        record: post.record.clone(),
                        indexed_at: at,
                        seq: self.next_seq(),
                    };
                    self.notifications.push(n);
                }
                self.store_post(post);
            }
            Arrival::Notify(mut n) => {
                n.indexed_at = at;
                n.seq = self.next_seq();
                self.notifications.push(n);
            }
            Arrival::Dm {
                from,
                id,
                text,
                facets,
            } => self.receive_dm(at, &from, id, text, facets),
            Arrival::Reaction {
                from,
                message_id,
                value,
            } => self.receive_reaction(at, &from, &message_id, value),
        }
    }

    /// The facets the app would put on `text`, mentions resolved here.
    fn facets_of(&self, text: &str) -> Vec<Value> {
        richtext::detect(text, &|h| self.resolve(h))
    }

    fn customer_post(
        &mut self,
        author: &str,
        text: &str,
        shape: Shape<'_>,
        at: Millis,
        created_at: Millis,
    ) -> PostRef {
        let author = self.customer(author, at);
        let facets = self.facets_of(text);
        let mut record = json!({
            "$type": "app.bsky.feed.post",
            "text": text,
            "createdAt": rfc3339(created_at),
        });
        if !facets.is_empty() {
            record["facets"] = json!(facets);
        }
        let brand = self.brand().did.clone();
        let mut reason = None;
        match shape {
            Shape::Plain => {}
            Shape::Reply(parent) => {
                let p = self.any_post(&parent.uri).expect("reply_to: no such post");
                let root = p.record["reply"]["root"].clone();
                let root = if root.is_object() {
                    root
                } else {
                    json!({"uri": p.uri, "cid": p.cid})
                };
                // The AppView notifies the thread's ancestors; here the parent
                // and the root (a choice: deeper ones are left out).
                let root_author = root["uri"].as_str().and_then(author_of);
                if p.author == brand {
                    reason = Some(("reply".to_owned(), Some(p.uri.clone())));
                } else if root_author == Some(brand.as_str()) {
                    reason = Some(("reply".to_owned(), root["uri"].as_str().map(str::to_owned)));
                }
                record["reply"] = json!({"root": root, "parent": {"uri": p.uri, "cid": p.cid}});
            }
            Shape::Quote(quoted) => {
                let q = self.any_post(&quoted.uri).expect("quote: no such post");
                if q.author == brand {
                    reason = Some(("quote".to_owned(), Some(q.uri.clone())));
                }
                record["embed"] = json!({"$type": "app.bsky.embed.record",
                    "record": {"uri": q.uri, "cid": q.cid}});
            }
        }
        let mentions_brand = facets
            .iter()
            .any(|f| f["features"][0]["did"] == brand.as_str());
        if reason.is_none() && mentions_brand {
            reason = Some(("mention".to_owned(), None));
        }
        let post = self.new_post(&author, record, at);
        let r = post.as_ref();
        self.push(at, Arrival::Post { post, reason });
        r
    }

    /// A post of `author` with `record`, under a new TID.
    fn new_post(&mut self, author: &str, record: Value, at: Millis) -> Post {
        let rkey = self.tids.next(at);
        Post {
            uri: format!("at://{author}/app.bsky.feed.post/{rkey}"),
            cid: ids::cid_of(record.to_string().as_bytes()),
            author: author.to_owned(),
            record,
            indexed_at: at,
        }
    }

    fn seed_brand_post(&mut self, text: &str, now: Millis) -> PostRef {
        let mut record = json!({
            "$type": "app.bsky.feed.post",
            "text": text,
            "createdAt": rfc3339(now),
        });
        let facets = self.facets_of(text);
        if !facets.is_empty() {
            record["facets"] = json!(facets);
        }
        let brand = self.brand().did.clone();
        let post = self.new_post(&brand, record, now);
        let r = post.as_ref();
        self.store_post(post);
        r
    }

    fn interaction(&mut self, author: &str, reason: &str, subject: Option<&PostRef>, now: Millis) {
        let author = self.customer(author, now);
        let (collection, record) = match reason {
            "like" | "repost" => {
                let s = subject.expect("a like or a repost needs a subject");
                let collection = format!("app.bsky.feed.{reason}");
                let record = json!({"$type": collection, "createdAt": rfc3339(now),
                    "subject": {"uri": s.uri, "cid": s.cid}});
                (collection, record)
            }
            "follow" => {
                let record = json!({"$type": "app.bsky.graph.follow", "createdAt": rfc3339(now),
                    "subject": self.brand().did});
                ("app.bsky.graph.follow".to_owned(), record)
            }
            other => {
                panic!("notify: {other:?} is not like, repost or follow (use the post helpers)")
            }
        };
        let rkey = self.tids.next(now);
        if reason == "follow"
            && let Some(a) = self.accounts.iter_mut().find(|a| a.did == author)
        {
            a.follow = Some(rkey.clone());
        }
        let n = Notif {
            uri: format!("at://{author}/{collection}/{rkey}"),
            cid: ids::cid_of(record.to_string().as_bytes()),
            author,
            reason: reason.to_owned(),
            subject: subject.map(|s| s.uri.clone()),
            record,
            indexed_at: now,
            seq: 0,
        };
        self.push(now, Arrival::Notify(n));
    }

    fn customer_dm(&mut self, author: &str, text: &str, at: Millis) -> String {
        let from = self.customer(author, at);
        let id = self.tids.next(at);
        let facets = self.facets_of(text);
        let facets = if facets.is_empty() {
            Value::Null
        } else {
            json!(facets)
        };
        self.push(
            at,
            Arrival::Dm {
                from,
                id: id.clone(),
                text: text.to_owned(),
                facets,
            },
        );
        id
    }

    fn traffic_line(&mut self, line: &TrafficLine, now: Millis) {
        let handle = bluesky_handle(&line.author);
        if self.resolve(&handle).is_none() {
            let name = line.name.clone().unwrap_or_else(|| handle.clone());
            self.add_account(&handle, &name, AllowIncoming::All, false, now);
        }
        let (at, created_at) = match &line.at {
            None => (now, now),
            Some(At::Offset(s)) => (now + (s * 1000.0) as Millis, now + (s * 1000.0) as Millis),
            Some(At::Time(t)) => (now, parse_rfc3339(t).unwrap_or(now)),
        };
        match line.channel {
            Channel::Dm => {
                self.customer_dm(&handle, &line.text, at);
            }
            Channel::Mention | Channel::Search => {
                let text = with_brand_mention(&line.text, &self.brand().handle);
                let parent = line
                    .in_reply_to
                    .as_ref()
                    .and_then(|id| self.traffic.get(id))
                    .cloned();
                let shape = parent.as_ref().map_or(Shape::Plain, Shape::Reply);
                let r = self.customer_post(&handle, &text, shape, at, created_at);
                self.traffic.insert(line.id.clone(), r);
            }
        }
    }

    /// Spends `cost` points on every limit of `spends` (all or none). `Ok`:
    /// the quota to report, the tighter one (least remaining); `Err`: the
    /// quota of a limit it would exceed.
    fn spend(
        &mut self,
        spends: &[(String, Limit)],
        cost: u32,
        now: Millis,
    ) -> Result<Quota, Quota> {
        let mut quotas = Vec::with_capacity(spends.len());
        for (key, limit) in spends {
            let win = limit.window.as_millis() as Millis;
            let b = self.buckets.entry(key.clone()).or_insert(Bucket {
                start: now,
                used: 0,
            });
            if now >= b.start + win {
                *b = Bucket {
                    start: now,
                    used: 0,
                };
            }
            let quota = Quota {
                limit: limit.points,
                remaining: limit.points.saturating_sub(b.used),
                reset_ms: b.start + win,
                window: limit.window,
            };
            if b.used.saturating_add(cost) > limit.points {
                return Err(quota);
            }
            quotas.push(quota);
        }
        for ((key, _), q) in spends.iter().zip(quotas.iter_mut()) {
            if let Some(b) = self.buckets.get_mut(key) {
                b.used += cost;
            }
            q.remaining -= cost;
        }
        quotas.into_iter().min_by_key(|q| q.remaining).ok_or(Quota {
            limit: 0,
            remaining: 0,
            reset_ms: now,
            window: Duration::ZERO,
        })
    }

    /// Answers one XRPC call: counts it, lets what is due arrive, spends
    /// the global limit, gives an injected failure if one waits, then runs
    /// the method.
    fn handle(&mut self, nsid: &str, req: &Req<'_>, now: Millis) -> (u16, Value, Quota) {
        *self.calls.entry(nsid.to_owned()).or_default() += 1;
        self.settle(now);
        let global = [("global-ip".to_owned(), self.setup.limits.global)];
        let mut quota = match self.spend(&global, 1, now) {
            Ok(q) => q,
            Err(q) => return self.refuse(nsid, rate_limited(), q),
        };
        if let Some(e) = self.inject.get_mut(nsid).and_then(VecDeque::pop_front) {
            return self.refuse(nsid, e, quota);
        }
        if req.query.is_none() {
            return self.refuse(nsid, invalid("The query string cannot be decoded"), quota);
        }
        let result = match METHODS.iter().find(|(n, _, _)| *n == nsid) {
            None => Err(err(501, "MethodNotImplemented", "Method Not Implemented")),
            // A choice: the wording of a query called with POST or the reverse.
            Some((_, procedure, _)) if (*req.method == Method::POST) != *procedure => {
                let expected = if *procedure { "POST" } else { "GET" };
                Err(invalid(format!(
                    "Incorrect HTTP method ({}) expected {expected}",
                    req.method
                )))
            }
            Some((_, _, handler)) => handler(self, req, now, &mut quota),
        };
        match result {
            Ok(body) => (200, body, quota),
            Err(e) => self.refuse(nsid, e, quota),
        }
    }

    fn refuse(&mut self, nsid: &str, e: XrpcError, quota: Quota) -> (u16, Value, Quota) {
        if (400..500).contains(&e.status) {
            self.rejected.push((nsid.to_owned(), e.message.clone()));
        }
        (e.status, e.body(), quota)
    }
}

/// The DID in an AT URI (`at://<did>/…`).
fn author_of(uri: &str) -> Option<&str> {
    uri.strip_prefix("at://")?.split('/').next()
}

/// An X handle as a Bluesky one: lower case, `_` as `-`, and `.test` when
/// it has no domain (`camille_r` → `camille-r.test`).
fn bluesky_handle(x: &str) -> String {
    let h = x
        .trim_start_matches('@')
        .to_ascii_lowercase()
        .replace('_', "-");
    if h.contains('.') {
        h
    } else {
        format!("{h}.test")
    }
}

/// `text` with a mention of the brand: an X-style `@<first label>` becomes
/// `@<handle>`; a text without either gets `@<handle> ` in front.
fn with_brand_mention(text: &str, handle: &str) -> String {
    let is_handle_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_';
    let label = handle.split('.').next().unwrap_or(handle);
    let mut out = String::with_capacity(text.len() + handle.len());
    let mut found = false;
    let mut rest = text;
    while let Some(i) = rest.find('@') {
        let word: String = rest[i + 1..]
            .chars()
            .take_while(|&c| is_handle_char(c))
            .collect();
        let word = word.trim_end_matches(['.', '-']);
        out.push_str(&rest[..=i]);
        if word.eq_ignore_ascii_case(handle) || word.eq_ignore_ascii_case(label) {
            out.push_str(handle);
            found = true;
        } else {
            out.push_str(word);
        }
        rest = &rest[i + 1 + word.len()..];
    }
    out.push_str(rest);
    if found {
        out
    } else {
        format!("@{handle} {text}")
    }
}

/// The one route: `GET|POST /xrpc/<nsid>`.
async fn xrpc(
    State(s): State<Shared>,
    Path(nsid): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let query =
        serde_urlencoded::from_str::<Vec<(String, String)>>(query.as_deref().unwrap_or("")).ok();
    let req = Req {
        method: &method,
        headers: &headers,
        query,
        body: &body,
    };
    let now = s.1.now_ms();
    let (status, body, quota) =
        s.0.lock()
            .expect("fake PDS state poisoned")
            .handle(&nsid, &req, now);
    respond(status, &body, quota)
}

/// The HTTP answer: JSON (none for a procedure without output) and the
/// rate-limit headers.
fn respond(status: u16, body: &Value, q: Quota) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = if body.is_null() {
        code.into_response()
    } else {
        (code, axum::Json(body)).into_response()
    };
    let reset_secs = (q.reset_ms + 999).div_euclid(1000);
    let policy = format!("{};w={}", q.limit, q.window.as_secs());
    let h = r.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(q.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(q.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(reset_secs));
    if let Ok(v) = HeaderValue::from_str(&policy) {
        h.insert("ratelimit-policy", v);
    }
    r
}
