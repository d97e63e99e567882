//! X's Account Activity webhook: the way X pushes events, beside polling.
//!
//! [`WithWebhook`] is X's connector with the webhook as its listener
//! ([`Listening::Endpoint`]): it polls and sends through the X client it
//! wraps, hands the runtime the routes to serve, and passes what X
//! delivers to the bot through [`Connector::listen`], as Mastodon passes
//! its stream. The bot knows nothing of webhooks.
//!
//! The routes answer the CRC challenge and accept signed events. Events
//! are checked against `x-twitter-webhooks-signature` (HMAC-SHA256 of the
//! raw body with the consumer secret, compared in constant time by
//! `ring::hmac::verify`); a forged or missing signature gets 401 and nothing
//! is stored. Accepted events go to the same pipeline as polled ones, and
//! the endpoint answers 200 only once they are committed, so X's retry (or
//! the next poll, deduplicated by id) covers a failure; with no listener
//! attached (the bot starting or stopping) it answers 503 at once.
//!
//! A call without a well-formed signature header is refused before its
//! body is read; bodies are read (up to `http.body_limit_bytes`, which the
//! runtime's server enforces) a few at a time, so forged calls cannot fill
//! memory. Events whose `for_user_id` is not the brand's account (another
//! account subscribed to the same X app) are refused with 403 and counted
//! in `helpdesk_webhook_refused_total{reason="other_account"}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::domain::clock::Millis;
use crate::domain::limits::Budget;
use crate::domain::money::MoneyBudget;
use crate::domain::secret::Secret;
use crate::domain::text::LengthLimit;
use crate::domain::{Channel, ConversationId, Handle, MessageId, Platform, Stream, UserId};
use crate::platforms::x::config::WebhookConfig;
use crate::platforms::x::cost::SpendLedger;
use crate::platforms::{
    Account, ApiError, Author, Batch, Connector, Endpoint, Event, Listening, Lookup, Outgoing,
    Pushed, Receipt, ReplyKind, Sent,
};

/// Events from one webhook call, and where to say whether they are committed.
pub type Delivery = (Vec<Event>, Receipt);

/// How many webhook bodies are read at once: memory for forged bodies is
/// bounded by this times the body limit, whatever the number of peers.
const BODIES_AT_ONCE: usize = 8;
/// How long a webhook body may take to arrive once its slot is taken.
const BODY_DEADLINE: Duration = Duration::from_secs(5);
/// Deliveries waiting for the bot; a call beyond that waits its turn.
const DELIVERIES_QUEUED: usize = 64;

/// Where the routes hand deliveries: the listener attached now, if any.
type Sink = Arc<Mutex<Option<mpsc::Sender<Delivery>>>>;

/// What the routes share.
#[derive(Clone)]
struct Hook {
    key: ring::hmac::Key,
    /// The brand's account, known once `whoami` answered.
    me: Arc<OnceLock<UserId>>,
    reading: Arc<Semaphore>,
    sink: Sink,
}

impl Hook {
    fn new(secret: &Secret) -> Hook {
        Hook {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes()),
            me: Arc::new(OnceLock::new()),
            reading: Arc::new(Semaphore::new(BODIES_AT_ONCE)),
            sink: Arc::new(Mutex::new(None)),
        }
    }

    fn routes(&self, path: &str) -> Router {
        Router::new()
            .route(path, get(crc).post(events))
            .with_state(self.clone())
    }
}

/// `sha256=` + base64 of HMAC-SHA256(secret, message), as X signs.
pub fn signature(secret: &Secret, message: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    let tag = ring::hmac::sign(&key, message);
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    )
}

/// The webhook routes at `path` for the brand's account `me`, handing
/// every delivery to `tx`, for a caller that wires them itself (tests).
/// The bot uses [`WithWebhook`]. Serve them with
/// `runtime::serve::serve_until`, which limits bodies and connections.
pub fn router(path: &str, secret: &Secret, me: UserId, tx: mpsc::Sender<Delivery>) -> Router {
    let hook = Hook::new(secret);
    let _ = hook.me.set(me);
    *hook.sink.lock().expect("poisoned") = Some(tx);
    hook.routes(path)
}

/// X's connector with the Account Activity webhook as its listener.
///
/// Every call but `whoami`, `listening` and `listen` goes to the wrapped
/// client unchanged; a method added to [`Connector`] with a default must be
/// forwarded here too, or X loses what the client does there.
pub struct WithWebhook {
    client: Arc<dyn Connector>,
    hook: Hook,
    endpoint: Endpoint,
}

impl WithWebhook {
    /// `client` with the webhook of `config`, signed with `secret` (the
    /// app's consumer secret).
    pub fn new(client: Arc<dyn Connector>, config: &WebhookConfig, secret: &Secret) -> WithWebhook {
        let hook = Hook::new(secret);
        let endpoint = Endpoint {
            name: "webhook",
            listen: config.listen.clone(),
            routes: hook.routes(&config.path),
        };
        WithWebhook {
            client,
            hook,
            endpoint,
        }
    }
}

/// Detaches a listener from the routes when its `listen` ends, unless
/// another one has taken its place.
struct Attached<'a> {
    sink: &'a Sink,
    tx: mpsc::Sender<Delivery>,
}

impl<'a> Attached<'a> {
    fn new(sink: &'a Sink, tx: mpsc::Sender<Delivery>) -> Attached<'a> {
        *sink.lock().expect("poisoned") = Some(tx.clone());
        Attached { sink, tx }
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        let mut sink = self.sink.lock().expect("poisoned");
        if sink.as_ref().is_some_and(|s| s.same_channel(&self.tx)) {
            // Deliveries still queued drop their receipts: 503, X retries.
            *sink = None;
        }
    }
}

#[async_trait]
impl Connector for WithWebhook {
    fn platform(&self) -> Platform {
        self.client.platform()
    }
    fn streams(&self) -> Vec<Stream> {
        self.client.streams()
    }
    async fn whoami(&self) -> Result<Account, ApiError> {
        let me = self.client.whoami().await?;
        // Only events for the brand's own account are taken: others
        // subscribed to the same X app must not be answered as the brand.
        let _ = self.hook.me.set(me.id.clone());
        Ok(me)
    }
    async fn poll(&self, stream: Stream, cursor: Option<&str>) -> Result<Batch, ApiError> {
        self.client.poll(stream, cursor).await
    }
    async fn send(&self, out: &Outgoing) -> Result<Sent, ApiError> {
        self.client.send(out).await
    }
    async fn find_sent(&self, out: &Outgoing, since: Millis) -> Result<Lookup, ApiError> {
        self.client.find_sent(out, since).await
    }
    fn resend_is_safe_within(&self, kind: ReplyKind) -> Option<Duration> {
        self.client.resend_is_safe_within(kind)
    }
    async fn length_limit(&self) -> LengthLimit {
        self.client.length_limit().await
    }
    fn posting_budget(&self) -> Option<Budget> {
        self.client.posting_budget()
    }
    fn money_budget(&self, kind: ReplyKind, text: &str) -> Option<MoneyBudget> {
        self.client.money_budget(kind, text)
    }
    fn keep_spend_in(&self, ledger: Arc<dyn SpendLedger>) {
        self.client.keep_spend_in(ledger)
    }
    async fn charge_pushed(&self, events: &[Event]) {
        self.client.charge_pushed(events).await
    }
    fn usage_line(&self) -> Option<String> {
        self.client.usage_line()
    }
    fn listening(&self) -> Option<Listening> {
        Some(Listening::Endpoint(self.endpoint.clone()))
    }
    /// Attaches `tx` to the routes until `tx` closes or this future is
    /// dropped; each accepted call becomes one [`Pushed::Delivered`].
    async fn listen(&self, tx: &mpsc::Sender<Pushed>) -> Result<(), ApiError> {
        let (deliveries, mut delivered) = mpsc::channel(DELIVERIES_QUEUED);
        let _attached = Attached::new(&self.hook.sink, deliveries);
        loop {
            let (events, receipt) = tokio::select! {
                d = delivered.recv() => match d {
                    Some(d) => d,
                    None => return Ok(()),
                },
                _ = tx.closed() => return Ok(()),
            };
            // X bills what it delivered, whether or not it is new to us.
            self.client.charge_pushed(&events).await;
            if tx
                .send(Pushed::Delivered { events, receipt })
                .await
                .is_err()
            {
                return Ok(());
            }
        }
    }
}

async fn crc(State(h): State<Hook>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(token) = q.get("crc_token") else {
        return (StatusCode::BAD_REQUEST, "crc_token is missing").into_response();
    };
    let tag = ring::hmac::sign(&h.key, token.as_bytes());
    let response_token = format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    );
    axum::Json(serde_json::json!({ "response_token": response_token })).into_response()
}

fn refused(reason: &'static str) {
    metrics::counter!("helpdesk_webhook_refused_total", "reason" => reason).increment(1);
}

async fn events(State(h): State<Hook>, headers: HeaderMap, body: Body) -> Response {
    let body = match signed_body(&h, &headers, body).await {
        Ok(b) => b,
        Err(refusal) => return refusal,
    };
    let payload: Payload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "webhook body is not an Account Activity event");
            return (StatusCode::BAD_REQUEST, "not an Account Activity event").into_response();
        }
    };
    let Some(me) = h.me.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the account is not identified yet",
        )
            .into_response();
    };
    if payload.for_user_id.as_deref() != Some(me.as_str()) {
        refused("other_account");
        tracing::warn!(
            for_user_id = payload.for_user_id.as_deref().unwrap_or(""),
            "webhook event for another account than the brand's: refused (check which accounts subscribe to this X app)"
        );
        return (
            StatusCode::FORBIDDEN,
            "for_user_id is not the account this bot serves",
        )
            .into_response();
    }
    deliver(&h, payload.into_events()).await
}

/// The body of a call whose signature verifies, or the answer refusing it.
async fn signed_body(h: &Hook, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let given = headers
        .get("x-twitter-webhooks-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        // An HMAC-SHA256 is 32 bytes: anything else is not worth a slot.
        .filter(|d| d.len() == 32);
    let Some(given) = given else {
        // Refused unread: an unsigned body costs no memory.
        refused("unsigned");
        tracing::warn!("webhook call without a valid signature header: refused");
        return Err(StatusCode::UNAUTHORIZED.into_response());
    };
    let body = read_body(h, body).await?;
    if ring::hmac::verify(&h.key, &body, &given).is_err() {
        refused("forged");
        tracing::warn!("webhook call with a forged signature: refused");
        return Err(StatusCode::UNAUTHORIZED.into_response());
    }
    Ok(body)
}

/// Reads a body in one of the few reading slots, within [`BODY_DEADLINE`].
async fn read_body(h: &Hook, body: Body) -> Result<Bytes, Response> {
    let Ok(_reading) = h.reading.acquire().await else {
        return Err(StatusCode::SERVICE_UNAVAILABLE.into_response());
    };
    // X sends a body at once: a peer trickling one holds a slot for
    // seconds, not for the whole request timeout.
    let read = tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, usize::MAX));
    match read.await {
        Err(_) => {
            refused("slow");
            Err((StatusCode::REQUEST_TIMEOUT, "the body came too slowly").into_response())
        }
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            // The server's limit (or a peer that went away).
            refused("body");
            tracing::warn!(error = %crate::platforms::error_chain(&e), "webhook body not read: refused");
            Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is too large or was cut",
            )
                .into_response())
        }
    }
}

/// Hands `evs` to the attached listener; 200 once they are committed.
async fn deliver(h: &Hook, evs: Vec<Event>) -> Response {
    if evs.is_empty() {
        return StatusCode::OK.into_response();
    }
    let sink = h.sink.lock().expect("poisoned").clone();
    let Some(tx) = sink else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not taking events right now",
        )
            .into_response();
    };
    let (receipt, recorded) = oneshot::channel();
    if tx.send((evs, receipt)).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match recorded.await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The part of an Account Activity payload the bot reads.
#[derive(Debug, Deserialize)]
pub struct Payload {
    for_user_id: Option<String>,
    #[serde(default)]
    tweet_create_events: Vec<V1Tweet>,
    #[serde(default)]
    direct_message_events: Vec<V1Dm>,
    #[serde(default)]
    users: HashMap<String, V1User>,
}

#[derive(Debug, Deserialize)]
struct V1User {
    #[serde(alias = "id")]
    id_str: Option<String>,
    screen_name: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct V1Tweet {
    id_str: String,
    #[serde(default)]
    text: String,
    extended_tweet: Option<Extended>,
    created_at: Option<String>,
    in_reply_to_status_id_str: Option<String>,
    user: V1User,
    retweeted_status: Option<serde_json::Value>,
    entities: Option<V1Entities>,
    lang: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V1Entities {
    #[serde(default)]
    user_mentions: Vec<V1Mention>,
}

#[derive(Debug, Deserialize)]
struct V1Mention {
    id_str: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Extended {
    full_text: String,
}

#[derive(Debug, Deserialize)]
struct V1Dm {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    created_timestamp: Option<String>,
    message_create: Option<MessageCreate>,
}

#[derive(Debug, Deserialize)]
struct MessageCreate {
    target: Target,
    sender_id: String,
    message_data: MessageData,
}

#[derive(Debug, Deserialize)]
struct Target {
    recipient_id: String,
}

#[derive(Debug, Deserialize)]
struct MessageData {
    text: String,
}

/// v1.1's `Wed Oct 10 20:19:24 +0000 2018`.
fn v1_time(s: &str) -> Option<Millis> {
    let fmt = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute] [year]"
    );
    time::OffsetDateTime::parse(s, &fmt)
        .ok()
        .map(crate::domain::clock::to_ms)
}

fn dm_pair(a: &str, b: &str) -> String {
    let (x, y) = if a.parse::<u128>().unwrap_or(0) <= b.parse::<u128>().unwrap_or(0) {
        (a, b)
    } else {
        (b, a)
    };
    format!("{x}-{y}")
}

impl Payload {
    /// The messages in this payload, as events (the account's own DMs left out).
    pub fn into_events(self) -> Vec<Event> {
        let me = self.for_user_id.unwrap_or_default();
        let now = crate::domain::clock::to_ms(time::OffsetDateTime::now_utc());
        let users = self.users;
        let tweets = self.tweet_create_events.into_iter().map(|t| t.event(now));
        let dms = self
            .direct_message_events
            .into_iter()
            .filter_map(|d| d.event(&me, &users, now));
        tweets.chain(dms).collect()
    }
}

impl V1Tweet {
    fn event(self, now: Millis) -> Event {
        let text = self
            .extended_tweet
            .map(|e| e.full_text)
            .unwrap_or(self.text);
        let author_id = self.user.id_str.clone().unwrap_or_default();
        let mentioned = self
            .entities
            .as_ref()
            .map(|e| {
                e.user_mentions
                    .iter()
                    .filter_map(|m| m.id_str.clone().map(UserId::new))
                    .collect()
            })
            .unwrap_or_default();
        Event {
            mentioned,
            platform: Platform::X,
            channel: Channel::Mention,
            // v1.1 payloads carry no conversation id: the thread is
            // named by what the tweet answers.
            conversation: ConversationId::new(
                self.in_reply_to_status_id_str
                    .clone()
                    .unwrap_or_else(|| self.id_str.clone()),
            ),
            author: Author {
                id: UserId::new(author_id),
                handle: Handle::new(self.user.screen_name),
                name: self.user.name,
            },
            at: self.created_at.as_deref().and_then(v1_time).unwrap_or(now),
            id: MessageId::new(self.id_str),
            text,
            in_reply_to: self.in_reply_to_status_id_str.map(MessageId::new),
            is_repost: self.retweeted_status.is_some(),
            lang: self
                .lang
                .as_deref()
                .and_then(crate::domain::language::Lang::from_tag),
        }
    }
}

impl V1Dm {
    /// The DM as an event, unless it is not a message or is the account's own.
    fn event(self, me: &str, users: &HashMap<String, V1User>, now: Millis) -> Option<Event> {
        let mc = self
            .message_create
            .filter(|_| self.kind == "message_create")?;
        if mc.sender_id == me {
            return None; // the bot's own DMs come back as events too
        }
        let user = users.get(&mc.sender_id);
        Some(Event {
            mentioned: Vec::new(),
            platform: Platform::X,
            channel: Channel::Dm,
            conversation: ConversationId::new(dm_pair(&mc.sender_id, &mc.target.recipient_id)),
            author: Author {
                id: UserId::new(mc.sender_id.clone()),
                handle: Handle::new(
                    user.map(|u| u.screen_name.clone())
                        .unwrap_or_else(|| mc.sender_id.clone()),
                ),
                name: user.map(|u| u.name.clone()).unwrap_or_default(),
            },
            at: self
                .created_timestamp
                .and_then(|t| t.parse().ok())
                .unwrap_or(now),
            id: MessageId::new(self.id),
            text: mc.message_data.text,
            in_reply_to: None,
            is_repost: false,
            lang: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_hmac() {
        // Computed with Python's hmac module, as X's documentation does.
        let s = Secret::new("test-consumer-secret");
        assert_eq!(
            signature(&s, b"challenge-123"),
            "sha256=tkNEg0seEcYQ8M3405Unns/xCXZPr0AfN2Yx77Yg+c8="
        );
    }

    #[test]
    fn account_activity_payload_becomes_events() {
        let p: Payload = serde_json::from_str(
            r#"{"for_user_id":"100",
            "tweet_create_events":[{"id_str":"7","text":"@lumio help","created_at":"Wed Oct 10 20:19:24 +0000 2018",
              "in_reply_to_status_id_str":null,"user":{"id_str":"42","screen_name":"ana","name":"Ana"}}],
            "direct_message_events":[
              {"type":"message_create","id":"9","created_timestamp":"1539202867829",
               "message_create":{"target":{"recipient_id":"100"},"sender_id":"42","message_data":{"text":"hi"}}},
              {"type":"message_create","id":"10","created_timestamp":"1539202867830",
               "message_create":{"target":{"recipient_id":"42"},"sender_id":"100","message_data":{"text":"our reply"}}}],
            "users":{"42":{"id":"42","screen_name":"ana","name":"Ana"}}}"#,
        )
        .unwrap();
        let e = p.into_events();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].author.handle.as_str(), "ana");
        assert_eq!(e[0].at, 1_539_202_764_000);
        assert_eq!(e[1].channel, Channel::Dm);
        assert_eq!(e[1].conversation.as_str(), "42-100");
        assert_eq!(e[1].at, 1_539_202_867_829);
    }

    /// An X client that is only an account: the webhook's own behaviour
    /// needs no API.
    struct Account100;

    #[async_trait]
    impl Connector for Account100 {
        fn platform(&self) -> Platform {
            Platform::X
        }
        fn streams(&self) -> Vec<Stream> {
            vec![Stream::Mentions]
        }
        async fn whoami(&self) -> Result<Account, ApiError> {
            Ok(Account {
                id: UserId::new("100"),
                handle: Handle::new("lumio"),
            })
        }
        async fn poll(&self, _: Stream, _: Option<&str>) -> Result<Batch, ApiError> {
            Ok(Batch::default())
        }
        async fn send(&self, _: &Outgoing) -> Result<Sent, ApiError> {
            Err(ApiError::Unauthorized)
        }
        fn resend_is_safe_within(&self, _: ReplyKind) -> Option<Duration> {
            None
        }
    }

    async fn call(routes: &Router, secret: &Secret, body: &str) -> StatusCode {
        use tower::ServiceExt as _;
        let req = axum::http::Request::post("/webhooks/x")
            .header(
                "x-twitter-webhooks-signature",
                signature(secret, body.as_bytes()),
            )
            .body(Body::from(body.to_owned()))
            .unwrap();
        routes.clone().oneshot(req).await.unwrap().status()
    }

    const BODY: &str = r#"{"for_user_id":"100","tweet_create_events":[{"id_str":"7","text":"@lumio help",
        "user":{"id_str":"42","screen_name":"ana","name":"Ana"}}]}"#;

    fn hook() -> (Arc<WithWebhook>, Router, Secret) {
        let secret = Secret::new("test-consumer-secret");
        let config = WebhookConfig {
            listen: "127.0.0.1:0".into(),
            path: "/webhooks/x".into(),
            consumer_secret_env: "UNUSED".into(),
        };
        let hook = Arc::new(WithWebhook::new(Arc::new(Account100), &config, &secret));
        let Some(Listening::Endpoint(ep)) = hook.listening() else {
            panic!("the webhook is X's listener");
        };
        (hook, ep.routes, secret)
    }

    #[tokio::test]
    async fn nothing_is_taken_before_the_account_is_known_or_without_a_listener() {
        let (hook, routes, secret) = hook();
        assert_eq!(
            call(&routes, &secret, BODY).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        hook.whoami().await.unwrap();
        // Nobody listening (the bot starting or stopped): 503 at once.
        assert_eq!(
            call(&routes, &secret, BODY).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn deliveries_go_through_listen_and_are_answered_once_recorded() {
        let (hook, routes, secret) = hook();
        hook.whoami().await.unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let listening = {
            let hook = hook.clone();
            tokio::spawn(async move { hook.listen(&tx).await })
        };
        tokio::task::yield_now().await;
        let post = || {
            let (routes, secret) = (routes.clone(), secret.clone());
            tokio::spawn(async move { call(&routes, &secret, BODY).await })
        };
        let answered = post();
        let Some(Pushed::Delivered { events, receipt }) = rx.recv().await else {
            panic!("a delivery");
        };
        assert_eq!(events.len(), 1);
        assert!(
            !answered.is_finished(),
            "no answer before the events are recorded"
        );
        receipt.send(Ok(())).unwrap();
        assert_eq!(answered.await.unwrap(), StatusCode::OK);
        // A failed recording is a 503, so that X delivers again.
        let answered = post();
        let Some(Pushed::Delivered { receipt, .. }) = rx.recv().await else {
            panic!("a delivery");
        };
        receipt.send(Err("database down".into())).unwrap();
        assert_eq!(answered.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
        // The listener gone, the routes refuse again.
        listening.abort();
        let _ = listening.await;
        assert_eq!(
            call(&routes, &secret, BODY).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
