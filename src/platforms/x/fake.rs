//! The sandbox: a local HTTP server that behaves like the subset of the X
//! API v2 the bot uses, fed from a traffic file.
//!
//! It answers with the JSON shapes of the real recordings in
//! `../shared/fixtures/x-api-v2/` (newest first, `meta.newest_id` /
//! `next_token`, `includes.users`, `{"meta":{"result_count":0}}` when
//! empty), sends `x-rate-limit-*` headers, answers 429 with a reset time
//! when a configured window is exhausted, and 403 "duplicate content" when
//! the same text is posted twice within 24 hours, as X does. The bot talks
//! to it through the real [`crate::platforms::x::XClient`] over real HTTP.
//!
//! Time comes from the shared [`Clock`], so tests move windows forward
//! without sleeping. The brand-keyword search returns every traffic line of
//! channel `search`, whatever the query: the traffic file already says what
//! the search found.
//!
//! It is the one fake of X, for the demo and the tests. A test can also
//! make it replay a recorded answer of X for an endpoint ([`Sandbox::replay`]:
//! the recordings of `../shared/fixtures/x-api-v2/`, a page X might send
//! one day, garbage) and read the queries the client sent
//! ([`Sandbox::queries`]); tokens, rate-limit windows and injected failures
//! still apply to a replayed endpoint. The fake Mastodon is
//! [`crate::platforms::mastodon::fake`].

// Handlers return early with a ready `Response`, axum's idiom; the size of
// the error variant does not matter for a test server.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::domain::Channel;
use crate::domain::clock::{Clock, Millis, parse_rfc3339, rfc3339};

/// One line of a traffic file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrafficLine {
    /// The message id (kept as the platform id).
    pub id: String,
    /// mention, dm or search.
    pub channel: Channel,
    /// The author's handle, with or without `@`.
    pub author: String,
    /// Their display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The text.
    pub text: String,
    /// The language X tags the post with (`lang`), if any.
    #[serde(default)]
    pub lang: Option<String>,
    /// The conversation (default: the message's own id, or the DM pair).
    #[serde(default)]
    pub conversation: Option<String>,
    /// The id of the message it answers.
    #[serde(default)]
    pub in_reply_to: Option<String>,
    /// When it arrives: seconds after the sandbox starts (a number), or the
    /// time it was written (an RFC 3339 string). Default: at start.
    #[serde(default)]
    pub at: Option<At>,
}

/// When a traffic line arrives.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum At {
    /// Seconds after the sandbox starts.
    Offset(f64),
    /// An RFC 3339 time of writing.
    Time(String),
}

/// A traffic file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// IO.
    #[error("cannot read the traffic file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a traffic entry.
    #[error(
        "{path}:{line}: {message} (each line is a JSON object {{\"id\", \"channel\", \"author\", \"text\", …}})"
    )]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads a traffic file: one JSON object per line; blank lines and lines
/// starting with `//` or `#` are skipped.
pub fn read_traffic(path: &Path) -> Result<Vec<TrafficLine>, TrafficError> {
    let p = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|source| TrafficError::Read {
        path: p.clone(),
        source,
    })?;
    parse_traffic(&src, &p)
}

/// Parses the text of a traffic file (`name` is used in errors).
pub fn parse_traffic(src: &str, name: &str) -> Result<Vec<TrafficLine>, TrafficError> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("//") || t.starts_with('#') {
            continue;
        }
        let err = |message: String| TrafficError::Line {
            path: name.to_owned(),
            line: i + 1,
            message,
        };
        let l: TrafficLine = serde_json::from_str(t).map_err(|e| err(e.to_string()))?;
        if l.id.is_empty() || l.author.trim_start_matches('@').is_empty() {
            return Err(err("`id` and `author` cannot be empty".into()));
        }
        if let Some(At::Time(s)) = &l.at
            && parse_rfc3339(s).is_none()
        {
            return Err(err(format!(
                "`at` = {s:?} is neither a number of seconds nor an RFC 3339 time"
            )));
        }
        out.push(l);
    }
    Ok(out)
}

/// A window of requests for one endpoint: `limit` per `window`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Requests allowed per window.
    pub limit: u32,
    /// The window's length.
    pub window: Duration,
}

/// Endpoints that have their own rate-limit window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /2/users/me`.
    Me,
    /// `GET /2/users/:id/mentions`.
    Mentions,
    /// `GET /2/dm_events`.
    DmEvents,
    /// `GET /2/tweets/search/recent`.
    Search,
    /// `POST /2/tweets`.
    PostTweet,
    /// `POST /2/dm_conversations/with/:id/messages`.
    PostDm,
    /// `GET /2/users/:id/tweets` (the brand's own posts).
    UserTweets,
    /// `GET /2/dm_conversations/with/:id/dm_events`.
    DmConversation,
}

/// Refresh requests the token endpoint answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    /// Granted: a new token set was issued.
    pub refreshed: u64,
    /// Refused: the refresh token was not the current one (already used).
    pub refused: u64,
}

/// How the sandbox behaves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The brand's handle.
    pub handle: String,
    /// The bearer token it accepts.
    pub token: String,
    /// Rate-limit windows (X's published ones by default).
    pub limits: HashMap<Endpoint, Window>,
    /// How long an access token from the token endpoint lives (X: 2 h).
    pub token_lifetime: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let w = |limit, secs| Window {
            limit,
            window: Duration::from_secs(secs),
        };
        SandboxConfig {
            handle: "lumio".into(),
            token: "sandbox-token".into(),
            limits: HashMap::from([
                (Endpoint::Me, w(75, 900)),
                (Endpoint::Mentions, w(450, 900)),
                (Endpoint::DmEvents, w(300, 900)),
                (Endpoint::Search, w(450, 900)),
                (Endpoint::PostTweet, w(200, 900)),
                (Endpoint::PostDm, w(200, 900)),
                (Endpoint::UserTweets, w(900, 900)),
                (Endpoint::DmConversation, w(300, 900)),
            ]),
            token_lifetime: Duration::from_secs(7200),
        }
    }
}

/// A recorded answer the sandbox gives for one endpoint instead of its own
/// (see [`Sandbox::replay`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The HTTP status.
    pub status: u16,
    /// The body, as X sent it (served as `application/json`, whatever it is).
    pub body: String,
    /// Only a first read gets it: a request for a following page
    /// (`pagination_token`) or for what came after a cursor (`since_id`)
    /// gets X's empty page, `{"meta":{"result_count":0}}`.
    pub first_page_only: bool,
}

impl Replay {
    /// `body` with `status` for every request.
    pub fn every(status: u16, body: impl Into<String>) -> Replay {
        Replay {
            status,
            body: body.into(),
            first_page_only: false,
        }
    }

    /// A timeline page: `body` (status 200) for a first read, then nothing
    /// new.
    pub fn first_page(body: impl Into<String>) -> Replay {
        Replay {
            status: 200,
            body: body.into(),
            first_page_only: true,
        }
    }
}

/// What one endpoint's success answers served, as X bills reads and
/// writes: the items of `data` (posts, DM events, the user of `users/me`,
/// a created post or DM) and the users of `includes.users`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    /// Items of `data`.
    pub items: u64,
    /// Users of `includes.users`.
    pub users: u64,
}

/// Something the bot posted, as the sandbox recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Posted {
    /// The id the sandbox gave it.
    pub id: String,
    /// `tweet` or `dm`.
    pub kind: &'static str,
    /// The text.
    pub text: String,
    /// The tweet it replies to, or the DM recipient's user id.
    pub target: String,
    /// When (Unix ms, sandbox clock).
    pub at: Millis,
    /// The accounts a public reply asked X to leave out of its thread.
    pub excluded: Vec<String>,
}

#[derive(Debug, Clone)]
struct User {
    id: String,
    username: String,
    name: String,
}

#[derive(Debug, Clone)]
struct Item {
    line: TrafficLine,
    author_id: String,
    visible_at: Millis,
    created_at: Millis,
}

#[derive(Debug, Default)]
struct WindowState {
    start: Millis,
    used: u32,
}

#[derive(Debug)]
struct Inner {
    config: SandboxConfig,
    me: User,
    users: HashMap<String, User>,
    items: Vec<Item>,
    posted: Vec<Posted>,
    windows: HashMap<Endpoint, WindowState>,
    requests: HashMap<Endpoint, u64>,
    request_log: Vec<(Endpoint, Millis, u16)>,
    inject: HashMap<Endpoint, VecDeque<u16>>,
    /// Recorded answers given instead of the sandbox's own.
    replays: HashMap<Endpoint, Replay>,
    /// The query of every request: its decoded `key=value` pairs, sorted,
    /// joined by `&`.
    queries: Vec<(Endpoint, String)>,
    next_id: u64,
    /// Access tokens accepted now (the configured one, which never
    /// expires, then issued ones with their expiry in Unix ms).
    valid_tokens: HashMap<String, Option<Millis>>,
    /// What the token endpoint did with refresh requests.
    token_counts: TokenCounts,
    /// The refresh token that works now (single-use, as on X).
    refresh_token: String,
    /// What success answers served, per endpoint.
    served: HashMap<Endpoint, Served>,
}

type Shared = Arc<(Mutex<Inner>, Clock)>;

/// A running sandbox. Dropping it stops the server.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    shared: Shared,
    _stop: oneshot::Sender<()>,
}

impl Sandbox {
    /// Starts the sandbox on 127.0.0.1 (a free port) with `traffic`.
    pub async fn start(
        traffic: Vec<TrafficLine>,
        config: SandboxConfig,
        clock: Clock,
    ) -> std::io::Result<Sandbox> {
        let start = clock.now_ms();
        let me = User {
            id: "1000000000000000001".into(),
            username: config.handle.clone(),
            name: config.handle.clone(),
        };
        let mut inner = Inner {
            config,
            me,
            users: HashMap::new(),
            items: Vec::new(),
            posted: Vec::new(),
            windows: HashMap::new(),
            requests: HashMap::new(),
            request_log: Vec::new(),
            inject: HashMap::new(),
            replays: HashMap::new(),
            queries: Vec::new(),
            next_id: 1_900_000_000_000_000_000,
            valid_tokens: HashMap::new(),
            token_counts: TokenCounts::default(),
            refresh_token: "sandbox-refresh-0".into(),
            served: HashMap::new(),
        };
        inner.valid_tokens.insert(inner.config.token.clone(), None);
        inner.add(traffic, start);
        let shared: Shared = Arc::new((Mutex::new(inner), clock));
        let app = router(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Sandbox {
            addr,
            shared,
            _stop: tx,
        })
    }

    /// The base URL to give the X client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bearer token it accepts.
    pub fn token(&self) -> String {
        self.lock().config.token.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.0.lock().expect("sandbox state poisoned")
    }

    /// Adds traffic while running (offsets count from now).
    pub fn push(&self, traffic: Vec<TrafficLine>) {
        let now = self.shared.1.now_ms();
        self.lock().add(traffic, now);
    }

    /// Stops accepting `token` (it expired or was revoked).
    pub fn revoke(&self, token: &str) {
        self.lock().valid_tokens.remove(token);
    }

    /// What the token endpoint did with refresh requests so far.
    pub fn token_counts(&self) -> TokenCounts {
        self.lock().token_counts
    }

    /// The refresh token the sandbox accepts now.
    pub fn refresh_token(&self) -> String {
        self.lock().refresh_token.clone()
    }

    /// Everything the bot posted, in order.
    pub fn posted(&self) -> Vec<Posted> {
        self.lock().posted.clone()
    }

    /// Requests served (or refused) per endpoint.
    pub fn requests(&self, e: Endpoint) -> u64 {
        self.lock().requests.get(&e).copied().unwrap_or(0)
    }

    /// Every request to `e`: (time in Unix ms, HTTP status, 200 standing
    /// for any answer that was not a 429 or an injected failure).
    pub fn request_log(&self, e: Endpoint) -> Vec<(Millis, u16)> {
        self.lock()
            .request_log
            .iter()
            .filter(|(x, _, _)| *x == e)
            .map(|(_, t, s)| (*t, *s))
            .collect()
    }

    /// The id the sandbox gave the account `handle`, if it knows it.
    pub fn user_id(&self, handle: &str) -> Option<String> {
        self.lock()
            .users
            .get(&handle.to_ascii_lowercase())
            .map(|u| u.id.clone())
    }

    /// The next requests to `e` fail with these HTTP statuses, in order.
    pub fn fail_next(&self, e: Endpoint, statuses: &[u16]) {
        self.lock()
            .inject
            .entry(e)
            .or_default()
            .extend(statuses.iter().copied());
    }

    /// From now on, requests to `e` are answered with `replay` instead of
    /// the sandbox's own answer, once the token, the rate-limit window and
    /// any injected failure have been checked as for any request. A later
    /// call replaces it.
    pub fn replay(&self, e: Endpoint, replay: Replay) {
        self.lock().replays.insert(e, replay);
    }

    /// The queries of the requests to `e` so far, in order: each as its
    /// decoded `key=value` pairs, sorted and joined by `&`.
    pub fn queries(&self, e: Endpoint) -> Vec<String> {
        self.lock()
            .queries
            .iter()
            .filter(|(x, _)| *x == e)
            .map(|(_, q)| q.clone())
            .collect()
    }

    /// Replaces the rate-limit window of `e` (resets its count).
    pub fn set_limit(&self, e: Endpoint, w: Window) {
        let mut g = self.lock();
        g.config.limits.insert(e, w);
        g.windows.remove(&e);
    }

    /// Traffic lines not visible yet.
    pub fn pending(&self) -> usize {
        let now = self.shared.1.now_ms();
        self.lock()
            .items
            .iter()
            .filter(|i| i.visible_at > now)
            .count()
    }

    /// What `e`'s success answers served so far (what X would bill).
    pub fn served(&self, e: Endpoint) -> Served {
        self.lock().served.get(&e).copied().unwrap_or_default()
    }

    /// When the last traffic line becomes visible (Unix ms).
    pub fn last_arrival(&self) -> Option<Millis> {
        self.lock().items.iter().map(|i| i.visible_at).max()
    }
}

impl Inner {
    fn user(&mut self, handle: &str, name: Option<&str>) -> String {
        let handle = handle.trim_start_matches('@');
        if handle.eq_ignore_ascii_case(&self.me.username) {
            return self.me.id.clone();
        }
        let key = handle.to_ascii_lowercase();
        let n = self.users.len() as u64;
        let u = self.users.entry(key).or_insert_with(|| User {
            id: (2_000_000_000u64 + n + 1).to_string(),
            username: handle.to_owned(),
            name: name.unwrap_or(handle).to_owned(),
        });
        u.id.clone()
    }

    fn add(&mut self, traffic: Vec<TrafficLine>, now: Millis) {
        for line in traffic {
            let author_id = self.user(&line.author, line.name.as_deref());
            // Whoever a tweet mentions is an account too.
            for handle in mentioned_handles(&line.text) {
                self.user(&handle, None);
            }
            let (visible_at, created_at) = match &line.at {
                None => (now, now),
                Some(At::Offset(s)) => {
                    let t = now + (s * 1000.0) as Millis;
                    (t, t)
                }
                Some(At::Time(s)) => (now, parse_rfc3339(s).unwrap_or(now)),
            };
            self.items.push(Item {
                line,
                author_id,
                visible_at,
                created_at,
            });
        }
        // Stable: equal arrival times keep file order.
        self.items.sort_by_key(|i| i.visible_at);
    }

    fn user_by_id(&self, id: &str) -> Option<&User> {
        if self.me.id == id {
            return Some(&self.me);
        }
        self.users.values().find(|u| u.id == id)
    }

    fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// Counts a request against its window; `Err` is the 429 to answer.
    fn admit(&mut self, e: Endpoint, now: Millis) -> Result<HeaderMap, Response> {
        *self.requests.entry(e).or_default() += 1;
        let w = self.config.limits.get(&e).copied().unwrap_or(Window {
            limit: u32::MAX,
            window: Duration::from_secs(900),
        });
        let win_ms = w.window.as_millis() as Millis;
        let st = self.windows.entry(e).or_default();
        if st.used == 0 || now >= st.start + win_ms {
            st.start = now;
            st.used = 0;
        }
        let reset_secs = (st.start + win_ms + 999) / 1000;
        let mut h = HeaderMap::new();
        h.insert("x-rate-limit-limit", HeaderValue::from(w.limit));
        h.insert("x-rate-limit-reset", HeaderValue::from(reset_secs));
        if st.used >= w.limit {
            self.request_log.push((e, now, 429));
            h.insert("x-rate-limit-remaining", HeaderValue::from(0u32));
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                h,
                Json(problem(429, "Too Many Requests", "Too Many Requests")),
            )
                .into_response());
        }
        st.used += 1;
        h.insert(
            "x-rate-limit-remaining",
            HeaderValue::from(w.limit - st.used),
        );
        let injected = self.inject.get_mut(&e).and_then(|q| q.pop_front());
        self.request_log.push((e, now, injected.unwrap_or(200)));
        if let Some(status) = injected {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let title = code.canonical_reason().unwrap_or("Error");
            return Err((code, h, Json(problem(status, title, title))).into_response());
        }
        Ok(h)
    }

    /// The `entities.mentions` of a text, as X gives them: each `@handle`
    /// that names an account, with its id.
    fn mention_entities(&self, text: &str) -> Vec<Value> {
        mentioned_handles(text)
            .into_iter()
            .filter_map(|h| {
                let u = if h.eq_ignore_ascii_case(&self.me.username) {
                    &self.me
                } else {
                    self.users.get(&h.to_ascii_lowercase())?
                };
                Some(json!({"username": u.username, "id": u.id}))
            })
            .collect()
    }

    fn tweet_json(&self, it: &Item, fields: &HashSet<String>) -> Value {
        let l = &it.line;
        let mut t = json!({
            "edit_history_tweet_ids": [l.id],
            "id": l.id,
            "text": l.text,
        });
        let o = t.as_object_mut().expect("object");
        if fields.contains("author_id") {
            o.insert("author_id".into(), json!(it.author_id));
        }
        if fields.contains("created_at") {
            o.insert("created_at".into(), json!(rfc3339(it.created_at)));
        }
        if fields.contains("lang")
            && let Some(lang) = &l.lang
        {
            o.insert("lang".into(), json!(lang));
        }
        if fields.contains("entities") {
            let mentions = self.mention_entities(&l.text);
            if !mentions.is_empty() {
                o.insert("entities".into(), json!({"mentions": mentions}));
            }
        }
        if fields.contains("conversation_id") {
            let conv = l.conversation.clone().unwrap_or_else(|| {
                // A reply belongs to the thread of what it answers.
                l.in_reply_to
                    .as_deref()
                    .and_then(|p| self.items.iter().find(|i| i.line.id == p))
                    .map(|p| p.line.conversation.clone().unwrap_or(p.line.id.clone()))
                    .unwrap_or_else(|| l.id.clone())
            });
            o.insert("conversation_id".into(), json!(conv));
        }
        if let Some(parent) = &l.in_reply_to {
            if fields.contains("referenced_tweets") {
                o.insert(
                    "referenced_tweets".into(),
                    json!([{"type": "replied_to", "id": parent}]),
                );
            }
            if fields.contains("in_reply_to_user_id") {
                let to = self
                    .items
                    .iter()
                    .find(|i| &i.line.id == parent)
                    .map(|i| i.author_id.clone())
                    .unwrap_or_else(|| self.me.id.clone());
                o.insert("in_reply_to_user_id".into(), json!(to));
            }
        }
        t
    }
}

/// The handles a text mentions (`@name`, X's 1–15 word characters).
fn mentioned_handles(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    for (i, _) in text.match_indices('@') {
        if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
            continue;
        }
        let h: String = text[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if (1..=15).contains(&h.len()) {
            out.push(h);
        }
    }
    out
}

fn problem(status: u16, title: &str, detail: &str) -> Value {
    json!({"title": title, "detail": detail, "type": "about:blank", "status": status})
}

fn router(shared: Shared) -> Router {
    // Each endpoint notes its queries and may replay a recorded answer.
    let x = |e: Endpoint, m: MethodRouter<Shared>| {
        m.layer(axum::middleware::from_fn_with_state(
            (shared.clone(), e),
            noted_or_replayed,
        ))
    };
    Router::new()
        .route("/2/users/me", x(Endpoint::Me, get(users_me)))
        .route(
            "/2/users/{id}/mentions",
            x(Endpoint::Mentions, get(mentions)),
        )
        .route("/2/tweets/search/recent", x(Endpoint::Search, get(search)))
        .route("/2/dm_events", x(Endpoint::DmEvents, get(dm_events)))
        .route(
            "/2/users/{id}/tweets",
            x(Endpoint::UserTweets, get(user_tweets)),
        )
        .route(
            "/2/dm_conversations/with/{participant}/dm_events",
            x(Endpoint::DmConversation, get(dm_conversation)),
        )
        .route("/2/tweets", x(Endpoint::PostTweet, post(create_tweet)))
        .route(
            "/2/dm_conversations/with/{participant}/messages",
            x(Endpoint::PostDm, post(create_dm)),
        )
        .route("/2/oauth2/token", post(oauth_token))
        .route("/sandbox/posted", get(posted))
        .with_state(shared)
}

/// Notes the query of a request to `e`, answers it (see [`replayed`]),
/// and tallies what a success answer served ([`Sandbox::served`]).
async fn noted_or_replayed(
    State((s, e)): State<(Shared, Endpoint)>,
    req: Request,
    next: Next,
) -> Response {
    let resp = replayed(&s, e, req, next).await;
    if !resp.status().is_success() {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        let items = match &v["data"] {
            Value::Array(a) => a.len() as u64,
            Value::Object(_) => 1,
            _ => 0,
        };
        let users = v["includes"]["users"].as_array().map_or(0, Vec::len) as u64;
        let mut g = s.0.lock().expect("sandbox state poisoned");
        let t = g.served.entry(e).or_default();
        t.items += items;
        t.users += users;
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Answers a request to `e` with the replay set for `e`, if any, else
/// passes it on to the sandbox's own handler.
async fn replayed(s: &Shared, e: Endpoint, req: Request, next: Next) -> Response {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let replay = {
        let mut g = s.0.lock().expect("sandbox state poisoned");
        let mut query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        query.sort();
        g.queries.push((e, query.join("&")));
        g.replays.get(&e).cloned()
    };
    let Some(replay) = replay else {
        return next.run(req).await;
    };
    let (_g, mut h, _) = match enter(s, req.headers(), e) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let later = pairs
        .iter()
        .any(|(k, _)| k == "pagination_token" || k == "since_id");
    if replay.first_page_only && later {
        return (h, Json(json!({"meta": {"result_count": 0}}))).into_response();
    }
    h.insert("content-type", HeaderValue::from_static("application/json"));
    let status = StatusCode::from_u16(replay.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, h, replay.body).into_response()
}

fn authorized(g: &Inner, headers: &HeaderMap, now: Millis) -> Result<(), Response> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        // An issued token stops working when it expires, as on X.
        Some(t)
            if g.valid_tokens
                .get(t)
                .is_some_and(|e| e.is_none_or(|e| now < e)) =>
        {
            Ok(())
        }
        _ => Err((
            StatusCode::UNAUTHORIZED,
            Json(problem(401, "Unauthorized", "Unauthorized")),
        )
            .into_response()),
    }
}

/// Locks the state, checks the token and the endpoint's window.
fn enter<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
    e: Endpoint,
) -> Result<(std::sync::MutexGuard<'a, Inner>, HeaderMap, Millis), Response> {
    let now = shared.1.now_ms();
    let mut g = shared.0.lock().expect("sandbox state poisoned");
    authorized(&g, headers, now)?;
    let h = g.admit(e, now)?;
    Ok((g, h, now))
}

async fn users_me(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let (g, h, _) = match enter(&s, &headers, Endpoint::Me) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = json!({"data": {"id": g.me.id, "name": g.me.name, "username": g.me.username}});
    (h, Json(body)).into_response()
}

type Params = HashMap<String, String>;

fn csv(p: &Params, key: &str) -> HashSet<String> {
    p.get(key)
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_default()
}

fn max_results(p: &Params, default: usize, lo: usize, hi: usize) -> Result<usize, Response> {
    match p.get("max_results") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err((
                StatusCode::BAD_REQUEST,
                Json(problem(
                    400,
                    "Invalid Request",
                    &format!(
                        "The `max_results` query parameter value [{v}] is not between {lo} and {hi}"
                    ),
                )),
            )
                .into_response()),
        },
    }
}

/// Pages `ids` (newest first) the way X does: `pagination_token` is an offset.
fn page<T: Clone>(all: &[T], p: &Params, size: usize) -> (Vec<T>, Option<String>) {
    let from = p
        .get("pagination_token")
        .and_then(|t| t.strip_prefix("pg"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0)
        .min(all.len());
    let to = (from + size).min(all.len());
    let next = (to < all.len()).then(|| format!("pg{to}"));
    (all[from..to].to_vec(), next)
}

fn timeline(s: &Shared, headers: &HeaderMap, p: &Params, e: Endpoint, ch: Channel) -> Response {
    let (g, h, now) = match enter(s, headers, e) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let size = match max_results(p, 10, if e == Endpoint::Search { 10 } else { 5 }, 100) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let visible: Vec<&Item> = g
        .items
        .iter()
        .filter(|i| i.line.channel == ch && i.visible_at <= now)
        .collect();
    // Everything after since_id (by arrival order), newest first.
    let after = match p.get("since_id") {
        Some(since) => match visible.iter().rposition(|i| &i.line.id == since) {
            Some(pos) => visible[pos + 1..].to_vec(),
            None => match since.parse::<u128>() {
                Ok(n) => visible
                    .iter()
                    .filter(|i| i.line.id.parse::<u128>().is_ok_and(|m| m > n))
                    .copied()
                    .collect(),
                Err(_) => visible.clone(),
            },
        },
        None => visible.clone(),
    };
    let newest_first: Vec<&Item> = after.into_iter().rev().collect();
    let (items, next) = page(&newest_first, p, size);
    if items.is_empty() {
        return (h, Json(json!({"meta": {"result_count": 0}}))).into_response();
    }
    let fields = csv(p, "tweet.fields");
    let data: Vec<Value> = items.iter().map(|i| g.tweet_json(i, &fields)).collect();
    let mut body = json!({
        "data": data,
        "meta": {
            "newest_id": items[0].line.id,
            "oldest_id": items[items.len() - 1].line.id,
            "result_count": items.len(),
        }
    });
    if let Some(n) = next {
        body["meta"]["next_token"] = json!(n);
    }
    if csv(p, "expansions").contains("author_id") {
        body["includes"] =
            json!({"users": users_json(&g, items.iter().map(|i| i.author_id.as_str()))});
    }
    (h, Json(body)).into_response()
}

fn users_json<'a>(g: &Inner, ids: impl Iterator<Item = &'a str>) -> Vec<Value> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(*id))
        .filter_map(|id| g.user_by_id(id))
        .map(|u| json!({"id": u.id, "name": u.name, "username": u.username}))
        .collect()
}

async fn mentions(
    State(s): State<Shared>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    {
        let g = s.0.lock().expect("sandbox state poisoned");
        if id != g.me.id {
            // The sandbox serves one account, as a user token would.
            return (
                StatusCode::FORBIDDEN,
                Json(problem(
                    403,
                    "Forbidden",
                    "You can only read your own mentions here",
                )),
            )
                .into_response();
        }
    }
    timeline(&s, &headers, &p, Endpoint::Mentions, Channel::Mention)
}

async fn search(State(s): State<Shared>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    if p.get("query").is_none_or(|q| q.trim().is_empty()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(problem(
                400,
                "Invalid Request",
                "The `query` query parameter can not be empty",
            )),
        )
            .into_response();
    }
    timeline(&s, &headers, &p, Endpoint::Search, Channel::Search)
}

#[derive(Clone)]
struct DmView {
    id: String,
    text: String,
    conversation: String,
    created_at: Millis,
    sender: String,
}

async fn dm_events(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let (g, h, now) = match enter(&s, &headers, Endpoint::DmEvents) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let size = match max_results(&p, 100, 1, 100) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let pair = |a: &str, b: &str| {
        let (x, y) = if a.parse::<u128>().unwrap_or(0) < b.parse::<u128>().unwrap_or(0) {
            (a, b)
        } else {
            (b, a)
        };
        format!("{x}-{y}")
    };
    // Received and sent DMs, newest first, as X lists them.
    let mut all: Vec<(Millis, DmView)> = g
        .items
        .iter()
        .filter(|i| i.line.channel == Channel::Dm && i.visible_at <= now)
        .map(|i| {
            (
                i.visible_at,
                DmView {
                    id: i.line.id.clone(),
                    text: i.line.text.clone(),
                    conversation: i
                        .line
                        .conversation
                        .clone()
                        .unwrap_or_else(|| pair(&i.author_id, &g.me.id)),
                    created_at: i.created_at,
                    sender: i.author_id.clone(),
                },
            )
        })
        .chain(g.posted.iter().filter(|x| x.kind == "dm").map(|x| {
            (
                x.at,
                DmView {
                    id: x.id.clone(),
                    text: x.text.clone(),
                    conversation: pair(&x.target, &g.me.id),
                    created_at: x.at,
                    sender: g.me.id.clone(),
                },
            )
        }))
        .collect();
    newest_first(&mut all);
    let all: Vec<DmView> = all.into_iter().map(|(_, v)| v).collect();
    dm_page(&g, h, &p, &all, size)
}

/// Newest first, as X lists DM events: by time, then by id (events in the
/// same millisecond keep the order their ids give them).
fn newest_first(all: &mut [(Millis, DmView)]) {
    let key = |(t, v): &(Millis, DmView)| (*t, v.id.len(), v.id.clone());
    all.sort_by_key(|e| std::cmp::Reverse(key(e)));
}

/// `GET /2/dm_conversations/with/:participant/dm_events`: the DMs between
/// the brand and one customer, both ways, newest first.
async fn dm_conversation(
    State(s): State<Shared>,
    UrlPath(participant): UrlPath<String>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let (g, h, now) = match enter(&s, &headers, Endpoint::DmConversation) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let size = match max_results(&p, 100, 1, 100) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let conv = format!("{}-{}", participant, g.me.id);
    let mut all: Vec<(Millis, DmView)> = g
        .items
        .iter()
        .filter(|i| {
            i.line.channel == Channel::Dm && i.visible_at <= now && i.author_id == participant
        })
        .map(|i| {
            let v = DmView {
                id: i.line.id.clone(),
                text: i.line.text.clone(),
                conversation: conv.clone(),
                created_at: i.created_at,
                sender: i.author_id.clone(),
            };
            (i.visible_at, v)
        })
        .chain(
            g.posted
                .iter()
                .filter(|x| x.kind == "dm" && x.target == participant)
                .map(|x| {
                    let v = DmView {
                        id: x.id.clone(),
                        text: x.text.clone(),
                        conversation: conv.clone(),
                        created_at: x.at,
                        sender: g.me.id.clone(),
                    };
                    (x.at, v)
                }),
        )
        .collect();
    newest_first(&mut all);
    let all: Vec<DmView> = all.into_iter().map(|(_, v)| v).collect();
    dm_page(&g, h, &p, &all, size)
}

/// `GET /2/users/:id/tweets`: the brand's own posts, newest first, from
/// `start_time` when given.
async fn user_tweets(
    State(s): State<Shared>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let (g, h, _) = match enter(&s, &headers, Endpoint::UserTweets) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if id != g.me.id {
        return bad_request("The sandbox serves the brand's own timeline only");
    }
    let size = match max_results(&p, 10, 5, 100) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let from = p
        .get("start_time")
        .and_then(|t| crate::domain::clock::parse_rfc3339(t))
        .unwrap_or(0);
    let mut mine: Vec<&Posted> = g
        .posted
        .iter()
        .filter(|x| x.kind == "tweet" && x.at >= from)
        .collect();
    mine.reverse();
    let (items, next) = page(&mine, &p, size);
    if items.is_empty() {
        return (h, Json(json!({"meta": {"result_count": 0}}))).into_response();
    }
    let fields = csv(&p, "tweet.fields");
    let data: Vec<Value> = items
        .iter()
        .map(|x| {
            let mut t = json!({"id": x.id, "text": x.text, "edit_history_tweet_ids": [x.id]});
            let o = t.as_object_mut().expect("object");
            if fields.contains("created_at") {
                o.insert("created_at".into(), json!(rfc3339(x.at)));
            }
            if fields.contains("referenced_tweets") && !x.target.is_empty() {
                o.insert(
                    "referenced_tweets".into(),
                    json!([{"type": "replied_to", "id": x.target}]),
                );
            }
            t
        })
        .collect();
    let mut body = json!({
        "data": data,
        "meta": {"newest_id": items[0].id, "oldest_id": items[items.len() - 1].id, "result_count": items.len()}
    });
    if let Some(n) = next {
        body["meta"]["next_token"] = json!(n);
    }
    (h, Json(body)).into_response()
}

/// One page of DM events as X renders them.
fn dm_page(g: &Inner, h: HeaderMap, p: &Params, all: &[DmView], size: usize) -> Response {
    let (items, next) = page(all, p, size);
    if items.is_empty() {
        return (h, Json(json!({"meta": {"result_count": 0}}))).into_response();
    }
    let fields = csv(p, "dm_event.fields");
    let data: Vec<Value> = items
        .iter()
        .map(|d| {
            let mut v = json!({"id": d.id, "text": d.text, "event_type": "MessageCreate"});
            let o = v.as_object_mut().expect("object");
            if fields.contains("dm_conversation_id") {
                o.insert("dm_conversation_id".into(), json!(d.conversation));
            }
            if fields.contains("created_at") {
                o.insert("created_at".into(), json!(rfc3339(d.created_at)));
            }
            if fields.contains("sender_id") {
                o.insert("sender_id".into(), json!(d.sender));
            }
            v
        })
        .collect();
    let mut body = json!({"data": data, "meta": {"result_count": items.len()}});
    if let Some(n) = next {
        body["meta"]["next_token"] = json!(n);
    }
    if csv(p, "expansions").contains("sender_id") {
        body["includes"] = json!({"users": users_json(g, items.iter().map(|d| d.sender.as_str()))});
    }
    (h, Json(body)).into_response()
}

fn bad_request(detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(problem(400, "Invalid Request", detail)),
    )
        .into_response()
}

async fn create_tweet(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let (mut g, h, now) = match enter(&s, &headers, Endpoint::PostTweet) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(Json(body)) = body else {
        return bad_request("The request body is not valid JSON");
    };
    let Some(text) = body.get("text").and_then(Value::as_str) else {
        return bad_request("The `text` field is required");
    };
    if crate::domain::text::LengthLimit::X.count(text) > 280 || text.trim().is_empty() {
        return (
            StatusCode::FORBIDDEN,
            Json(problem(
                403,
                "Forbidden",
                "Tweet text is empty or too long.",
            )),
        )
            .into_response();
    }
    let day = 24 * 3600 * 1000;
    if g.posted
        .iter()
        .any(|p| p.kind == "tweet" && p.text == text && now - p.at < day)
    {
        return (
            StatusCode::FORBIDDEN,
            h,
            Json(problem(
                403,
                "Forbidden",
                "You are not allowed to create a Tweet with duplicate content.",
            )),
        )
            .into_response();
    }
    let target = body
        .pointer("/reply/in_reply_to_tweet_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let excluded = body
        .pointer("/reply/exclude_reply_user_ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let id = g.fresh_id();
    g.posted.push(Posted {
        id: id.clone(),
        kind: "tweet",
        text: text.to_owned(),
        target,
        at: now,
        excluded,
    });
    let body = json!({"data": {"edit_history_tweet_ids": [id], "id": id, "text": text}});
    (StatusCode::CREATED, h, Json(body)).into_response()
}

async fn create_dm(
    State(s): State<Shared>,
    UrlPath(participant): UrlPath<String>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let (mut g, h, now) = match enter(&s, &headers, Endpoint::PostDm) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(text) = body
        .as_ref()
        .and_then(|Json(b)| b.get("text"))
        .and_then(Value::as_str)
    else {
        return bad_request("The `text` field is required");
    };
    if g.user_by_id(&participant).is_none() {
        return bad_request(&format!("Could not find user with id: [{participant}]."));
    }
    let text = text.to_owned();
    let id = g.fresh_id();
    let conv = format!("{}-{}", participant, g.me.id);
    g.posted.push(Posted {
        id: id.clone(),
        kind: "dm",
        text,
        target: participant,
        at: now,
        excluded: Vec::new(),
    });
    let body = json!({"data": {"dm_conversation_id": conv, "dm_event_id": id}});
    (StatusCode::CREATED, h, Json(body)).into_response()
}

/// The OAuth 2.0 token endpoint: `authorization_code` (the code
/// `sandbox-code` with any PKCE verifier) and `refresh_token` (single-use).
async fn oauth_token(
    State(s): State<Shared>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let mut g = s.0.lock().expect("sandbox state poisoned");
    let refused = |d: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": d})),
        )
            .into_response()
    };
    if form.get("client_id").is_none_or(|c| c.is_empty()) {
        return refused("Missing required parameter [client_id].");
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            if form.get("code").map(String::as_str) != Some("sandbox-code")
                || form.get("code_verifier").is_none_or(|v| v.len() < 43)
            {
                return refused("Value passed for the authorization code was invalid.");
            }
        }
        Some("refresh_token") => {
            if form.get("refresh_token") != Some(&g.refresh_token) {
                g.token_counts.refused += 1;
                return refused("Value passed for the token was invalid.");
            }
            g.token_counts.refreshed += 1;
        }
        _ => return refused("Invalid grant_type."),
    }
    let n = g.next_id;
    g.next_id += 1;
    let access = format!("sandbox-token-{n}");
    g.refresh_token = format!("sandbox-refresh-{n}");
    let now = s.1.now_ms();
    let lifetime = g.config.token_lifetime.as_secs();
    g.valid_tokens
        .insert(access.clone(), Some(now + lifetime as Millis * 1000));
    Json(json!({
        "token_type": "bearer",
        "expires_in": lifetime,
        "access_token": access,
        "scope": crate::platforms::x::auth::SCOPES,
        "refresh_token": g.refresh_token,
    }))
    .into_response()
}

async fn posted(State(s): State<Shared>) -> Response {
    let g = s.0.lock().expect("sandbox state poisoned");
    Json(json!({"posted": g.posted})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_lines_parse_and_errors_name_the_line() {
        let src = r#"{"id":"1","channel":"mention","author":"@ana","text":"hi"}
# comment
{"id":"2","channel":"dm","author":"bob","name":"Bob","text":"yo","at":2.5}
"#;
        let t = parse_traffic(src, "t.jsonl").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].at, Some(At::Offset(2.5)));
        let e = parse_traffic("{\"id\":\"1\"}\n", "t.jsonl").unwrap_err();
        assert!(e.to_string().starts_with("t.jsonl:1:"), "{e}");
        // The same id twice is a redelivery, as platforms do: allowed.
        let dup = "{\"id\":\"1\",\"channel\":\"dm\",\"author\":\"a\",\"text\":\"x\"}\n".repeat(2);
        assert_eq!(parse_traffic(&dup, "t").unwrap().len(), 2);
    }
}
