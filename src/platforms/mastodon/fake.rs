//! A fake Mastodon instance for the tests: a local HTTP server with the
//! endpoints the bot uses, answering what a [`Setup`] says (in the tests,
//! the Mastodon.py recordings in `../shared/fixtures/mastodon/`).
//!
//! - `GET /api/v1/accounts/verify_credentials`: [`Setup::me`].
//! - `GET /api/v2/instance`: [`Setup::instance`] (no route when `None`: an
//!   older server, whose length limit is Mastodon's default).
//! - `GET /api/v1/notifications`: the notifications newer than `min_id`,
//!   newest first, 40 at most, as Mastodon pages them; a page that is not
//!   empty carries [`Setup::page_headers`] (`link`, `x-ratelimit-*`).
//! - `GET /api/v1/statuses/:id`: [`Setup::lookup`].
//! - `POST /api/v1/statuses`: records the form and its `Idempotency-Key`,
//!   and answers [`Setup::created`] under a new id; a key seen before gives
//!   back the same status, as Mastodon does for about an hour. With
//!   [`Setup::refuse_statuses`], every status is refused with that answer.
//! - `GET /api/v1/streaming/user/notification`: a server-sent event stream
//!   the test pushes notifications into ([`FakeMastodon::stream`]), with
//!   Mastodon's first bytes and a heartbeat comment every 200 ms; the
//!   test can silence the heartbeat or refuse connections (503).
//!
//! It is the one fake of Mastodon, as [`crate::platforms::x::fake`] is the
//! one of X; the fault proxy of the tests goes in front of either. Reading
//! the recordings (YAML cassettes) is left to the tests, so that the
//! library does not depend on a YAML parser.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::body::{Bytes, Frame};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// One answer as the instance gives it: status, headers, JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Headers besides `content-type` (which is `application/json`).
    pub headers: Vec<(String, String)>,
    /// The body, as it goes on the wire.
    pub body: String,
}

impl Answer {
    /// A 200 whose body is `value`.
    pub fn json(value: &Value) -> Answer {
        Answer {
            status: 200,
            headers: Vec::new(),
            body: value.to_string(),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, self.body).into_response();
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                v.parse::<HeaderValue>(),
            ) {
                r.headers_mut().insert(k, v);
            }
        }
        r
    }
}

/// What the instance serves.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The bot's account, or the error `verify_credentials` answers.
    pub me: Answer,
    /// The instance's description (`configuration.statuses.max_characters`
    /// is the length limit); `None`: the server has no `/api/v2/instance`.
    pub instance: Option<Value>,
    /// The notifications there before the bot starts, oldest first.
    pub notifications: Vec<Value>,
    /// The headers of a page of notifications that is not empty.
    pub page_headers: Vec<(String, String)>,
    /// The status a post answers with (its `id` replaced by a new one).
    pub created: Value,
    /// When set, every post is refused with this answer.
    pub refuse_statuses: Option<Answer>,
    /// The answer to reading a status (the bot reads the one it answers,
    /// to follow its visibility).
    pub lookup: Answer,
    /// Whether the streaming endpoint accepts connections at start.
    pub streaming: bool,
}

impl Default for Setup {
    /// An account `lumio` on a server without `/api/v2/instance`, no
    /// notifications, statuses posted as public, lookups answered 404, no
    /// streaming.
    fn default() -> Self {
        Setup {
            me: Answer::json(&json!({
                "id": "1", "username": "lumio", "acct": "lumio", "display_name": "Lumio"
            })),
            instance: None,
            notifications: Vec::new(),
            page_headers: Vec::new(),
            created: json!({
                "id": "0", "created_at": "2026-11-30T08:00:00.000Z", "visibility": "public",
                "content": "", "in_reply_to_id": null, "mentions": [], "reblog": null,
                "account": {"id": "1", "username": "lumio", "acct": "lumio"}
            }),
            refuse_statuses: None,
            lookup: Answer {
                status: 404,
                headers: Vec::new(),
                body: json!({"error": "Record not found"}).to_string(),
            },
            streaming: false,
        }
    }
}

/// A status the bot asked the instance to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// Its `Idempotency-Key` header (empty when it had none).
    pub key: String,
    /// The form: `status`, `visibility`, `in_reply_to_id`…
    pub form: HashMap<String, String>,
}

#[derive(Debug)]
struct Inner {
    setup: Setup,
    /// Notifications as the server holds them, oldest first.
    notifications: Vec<Value>,
    /// Statuses created, by idempotency key.
    by_key: HashMap<String, String>,
    posts: Vec<Post>,
    polls: usize,
    connections: usize,
    /// Whether the streaming endpoint accepts connections (else 503).
    accept: bool,
    /// Whether the open stream sends its heartbeat.
    heartbeat: bool,
    /// The open stream, if any.
    stream: Option<mpsc::UnboundedSender<String>>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake instance. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeMastodon {
    addr: SocketAddr,
    shared: Shared,
    _stop: oneshot::Sender<()>,
}

impl FakeMastodon {
    /// Starts the instance on 127.0.0.1 (a free port).
    pub async fn start(setup: Setup) -> std::io::Result<FakeMastodon> {
        let instance = setup.instance.clone();
        let shared: Shared = Arc::new(Mutex::new(Inner {
            notifications: setup.notifications.clone(),
            accept: setup.streaming,
            setup,
            by_key: HashMap::new(),
            posts: Vec::new(),
            polls: 0,
            connections: 0,
            heartbeat: false,
            stream: None,
        }));
        let mut app = Router::new()
            .route(
                "/api/v1/accounts/verify_credentials",
                get(verify_credentials),
            )
            .route("/api/v1/notifications", get(notifications))
            .route("/api/v1/statuses/{id}", get(lookup))
            .route("/api/v1/statuses", post(create_status))
            .route("/api/v1/streaming/user/notification", get(streaming));
        if let Some(instance) = instance {
            app = app.route(
                "/api/v2/instance",
                get(move || async move { axum::Json(instance) }),
            );
        }
        let app = app.with_state(shared.clone());
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
        Ok(FakeMastodon {
            addr,
            shared,
            _stop: tx,
        })
    }

    /// The base URL to give the Mastodon client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock().expect("fake Mastodon state poisoned")
    }

    /// Every post the bot asked for, in order (a resend is a second one).
    pub fn posts(&self) -> Vec<Post> {
        self.lock().posts.clone()
    }

    /// How many statuses the instance made: posts with distinct keys.
    pub fn statuses(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Requests to `/api/v1/notifications` so far.
    pub fn polls(&self) -> usize {
        self.lock().polls
    }

    /// Connections the streaming endpoint accepted so far.
    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    /// A notification arrives: polls see it from now on (it is not sent on
    /// the stream; see [`FakeMastodon::stream`]).
    pub fn push(&self, notification: Value) {
        self.lock().notifications.push(notification);
    }

    /// Sends `notification` on the open stream as an `event: notification`.
    /// False when no stream is open.
    pub fn stream(&self, notification: &Value) -> bool {
        let g = self.lock();
        g.stream.as_ref().is_some_and(|tx| {
            tx.send(format!("event: notification\ndata: {notification}\n\n"))
                .is_ok()
        })
    }

    /// Whether the streaming endpoint accepts new connections (else 503).
    pub fn set_streaming(&self, accept: bool) {
        self.lock().accept = accept;
    }

    /// Whether the open stream keeps sending its heartbeat (a silent
    /// stream stays open but says nothing).
    pub fn set_heartbeat(&self, on: bool) {
        self.lock().heartbeat = on;
    }
}

async fn verify_credentials(State(s): State<Shared>) -> Answer {
    s.lock().expect("poisoned").setup.me.clone()
}

async fn lookup(State(s): State<Shared>) -> Answer {
    s.lock().expect("poisoned").setup.lookup.clone()
}

async fn notifications(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let mut g = s.lock().expect("poisoned");
    g.polls += 1;
    let id = |n: &Value| n["id"].as_str().and_then(|v| v.parse::<u64>().ok());
    let after: u64 = q.get("min_id").and_then(|v| v.parse().ok()).unwrap_or(0);
    let page: Vec<&Value> = g
        .notifications
        .iter()
        .rev()
        .filter(|n| id(n).unwrap_or(0) > after)
        .take(40)
        .collect();
    if page.is_empty() {
        return Answer::json(&json!([]));
    }
    Answer {
        status: 200,
        headers: g.setup.page_headers.clone(),
        body: serde_json::to_string(&page).expect("JSON values serialise"),
    }
}

async fn create_status(
    State(s): State<Shared>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Answer {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut g = s.lock().expect("poisoned");
    g.posts.push(Post {
        key: key.clone(),
        form,
    });
    if let Some(refusal) = &g.setup.refuse_statuses {
        return refusal.clone();
    }
    // A key seen before gives back the same status, as Mastodon does.
    let n = g.by_key.len();
    let id = g
        .by_key
        .entry(key)
        .or_insert_with(|| format!("11702058587705{n:04}"))
        .clone();
    let mut body = g.setup.created.clone();
    body["id"] = json!(id);
    Answer::json(&body)
}

async fn streaming(State(s): State<Shared>) -> Response {
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    {
        let mut g = s.lock().expect("poisoned");
        if !g.accept {
            return (StatusCode::SERVICE_UNAVAILABLE, "streaming is down").into_response();
        }
        g.connections += 1;
        g.heartbeat = true;
        g.stream = Some(tx.clone());
    }
    // Mastodon's first bytes, then a heartbeat comment while healthy.
    let _ = tx.send(":)\n".into());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let beat = s.lock().expect("poisoned").heartbeat;
            if beat && tx.send(":thump\n".into()).is_err() {
                return;
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    (
        [("content-type", "text/event-stream")],
        axum::body::Body::new(Pushed(rx)),
    )
        .into_response()
}

/// A response body made of what the test pushes, until it drops the
/// sender.
struct Pushed(mpsc::UnboundedReceiver<String>);

impl hyper::body::Body for Pushed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|s| s.map(|s| Ok(Frame::data(Bytes::from(s)))))
    }
}
