//! The Mastodon client: mentions by polling `/api/v1/notifications`,
//! replies with an `Idempotency-Key`, a thin typed reqwest client of our own.
//!
//! New mentions also come live through the streaming API
//! (`/api/v1/streaming/user/notification`, server-sent events with a
//! heartbeat comment every 15 s) when the instance has it; the bot keeps
//! polling as the ledger that moves the cursor (see [`Connector::listen`]).
//!
//! Only this module knows Mastodon's JSON and HTML: a status's `content` is
//! HTML and becomes plain text here (mention links into `@acct`, `<br>` and
//! paragraphs into line breaks, entities decoded); a mention whose status
//! is `direct` is a direct message; a notification whose status is null
//! (the post was deleted) is skipped.

pub mod config;
pub mod fake;

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::domain::Stream;
use crate::domain::clock::{Clock, Millis, parse_rfc3339};
use crate::domain::secret::Secret;
use crate::domain::{Channel, ConversationId, Handle, MessageId, Platform, UserId};
use crate::platforms::json::{decode_lenient, item_id};
use crate::platforms::mastodon::config::MastodonConfig;
use crate::platforms::sse::SseParser;
use crate::platforms::{
    Account, ApiError, Author, Batch, Connector, Event, Outgoing, Pushed, ReplyKind, Sent, Skipped,
};

/// Mastodon's default posting limit: 300 statuses per account per 3
/// hours (the sender holds the slower of it and `[limits] global`).
pub const POSTING_BUDGET: crate::domain::limits::Budget = crate::domain::limits::Budget {
    replies: 300,
    per_secs: 3 * 3600,
};

/// Pages per poll at most (40 notifications each).
const MAX_PAGES: usize = 20;

/// Mastodon keeps an `Idempotency-Key` for about an hour; a resend after a
/// crash is safe well inside that.
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(50 * 60);

/// A Mastodon client for one account.
pub struct MastodonClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
    clock: Clock,
    min_poll: Duration,
    default_poll: Duration,
    /// `Some(pause between safety polls)` when streaming is on.
    streaming: Option<Duration>,
    streaming_url: Option<String>,
    stream_idle: Duration,
    stream_http: reqwest::Client,
    /// What `/api/v2/instance` said, read once.
    instance: tokio::sync::OnceCell<Instance>,
}

/// The parts of `/api/v2/instance` the bot uses.
#[derive(Debug, Clone, Default, Deserialize)]
struct Instance {
    configuration: Option<InstanceConfiguration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct InstanceConfiguration {
    statuses: Option<InstanceStatuses>,
    urls: Option<InstanceUrls>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct InstanceStatuses {
    max_characters: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct InstanceUrls {
    streaming: Option<String>,
}

impl std::fmt::Debug for MastodonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MastodonClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl MastodonClient {
    /// A client for `config` with `token`.
    pub fn new(config: &MastodonConfig, token: Secret, clock: Clock) -> MastodonClient {
        MastodonClient {
            http: crate::platforms::http::http_client(),
            base: config.base_url.trim_end_matches('/').to_owned(),
            token,
            clock,
            min_poll: Duration::from_millis(config.min_poll_interval_ms),
            default_poll: Duration::from_millis(config.poll_interval_ms),
            streaming: config
                .streaming
                .then(|| Duration::from_millis(config.stream_poll_interval_ms)),
            streaming_url: config.streaming_url.clone(),
            stream_idle: Duration::from_millis(config.stream_idle_timeout_ms),
            stream_http: crate::platforms::http::streaming_http_client(),
            instance: tokio::sync::OnceCell::new(),
        }
    }

    /// The instance's description, fetched once; `None` when unreadable
    /// (asked again next time).
    async fn instance(&self) -> Option<&Instance> {
        let r = self
            .instance
            .get_or_try_init(|| async {
                self.get::<Instance>("/api/v2/instance", &[])
                    .await
                    .map(|(i, _)| i)
            })
            .await;
        match r {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the instance's description (/api/v2/instance)");
                None
            }
        }
    }

    /// Where the streaming API lives: the configuration, else what the
    /// instance says (its `ws(s)://` URL serves SSE over `http(s)://` too),
    /// else the instance itself.
    async fn streaming_base(&self) -> String {
        if let Some(u) = &self.streaming_url {
            return u.trim_end_matches('/').to_owned();
        }
        let said = self
            .instance()
            .await
            .and_then(|i| i.configuration.as_ref())
            .and_then(|c| c.urls.as_ref())
            .and_then(|u| u.streaming.clone());
        match said {
            Some(u) => {
                let u = u.trim_end_matches('/');
                if let Some(rest) = u.strip_prefix("wss://") {
                    format!("https://{rest}")
                } else if let Some(rest) = u.strip_prefix("ws://") {
                    format!("http://{rest}")
                } else {
                    u.to_owned()
                }
            }
            None => self.base.clone(),
        }
    }

    /// Reads an answer. `acts`: the call may have posted something, so an
    /// unknown outcome is [`ApiError::InDoubt`]; the `Idempotency-Key`
    /// makes the resend safe.
    async fn decode<T: DeserializeOwned>(
        &self,
        resp: Result<reqwest::Response, reqwest::Error>,
        acts: bool,
    ) -> Result<(T, HeaderMap), ApiError> {
        let now = self.clock.now_ms();
        crate::platforms::http::read_answer(resp, acts, |status, h, body| {
            error_from(status, h, body, now)
        })
        .await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(T, HeaderMap), ApiError> {
        let r = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(self.token.expose())
            .query(query)
            .send()
            .await;
        self.decode(r, false).await
    }

    /// The pause before the next poll, from `X-RateLimit-Remaining/Reset`
    /// (Reset is an ISO 8601 time here, not epoch seconds).
    fn pace(&self, h: &HeaderMap) -> Duration {
        let remaining = h
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let reset = reset_ms(h);
        let (Some(remaining), Some(reset)) = (remaining, reset) else {
            return self.default_poll;
        };
        crate::platforms::spread(remaining, reset, self.clock.now_ms(), self.min_poll)
    }
}

fn reset_ms(h: &HeaderMap) -> Option<Millis> {
    h.get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_rfc3339)
}

/// Maps Mastodon's error answers (`{"error": "…"}`, sometimes localised).
fn error_from(status: u16, h: &HeaderMap, body: &[u8], now: Millis) -> ApiError {
    #[derive(Deserialize)]
    struct Err {
        error: Option<String>,
    }
    let detail = serde_json::from_slice::<Err>(body)
        .ok()
        .and_then(|e| e.error)
        .unwrap_or_else(|| format!("a non-JSON answer of {} bytes", body.len()));
    match status {
        429 => ApiError::RateLimited {
            reset_ms: reset_ms(h).unwrap_or(now + 5 * 60 * 1000),
        },
        401 => ApiError::Unauthorized,
        500..=599 => ApiError::Transient(format!("HTTP {status}: {detail}")),
        _ => ApiError::Rejected { status, detail },
    }
}

/// The `min_id` of a `Link` header's `rel="prev"` page.
fn prev_min_id(h: &HeaderMap) -> Option<String> {
    let link = h.get("link")?.to_str().ok()?;
    link.split(',')
        .find(|part| part.contains("rel=\"prev\""))
        .and_then(|part| part.split("min_id=").nth(1))
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect()
        })
}

/// Mastodon ids are decimal strings: longer is newer, then by text.
fn newer(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

#[async_trait]
impl Connector for MastodonClient {
    fn platform(&self) -> Platform {
        Platform::Mastodon
    }

    fn streams(&self) -> Vec<Stream> {
        // Direct messages arrive as mentions with `direct` visibility.
        vec![Stream::Mentions]
    }

    async fn whoami(&self) -> Result<Account, ApiError> {
        #[derive(Deserialize)]
        struct Me {
            id: String,
            acct: String,
        }
        let (me, _): (Me, _) = self.get("/api/v1/accounts/verify_credentials", &[]).await?;
        Ok(Account {
            id: UserId::new(me.id),
            handle: Handle::new(me.acct),
        })
    }

    async fn poll(&self, _stream: Stream, cursor: Option<&str>) -> Result<Batch, ApiError> {
        let mut events = Vec::new();
        let mut skipped = Vec::new();
        let mut newest = cursor.map(str::to_owned);
        let mut next_poll = None;
        for _ in 0..MAX_PAGES {
            let mut q: Vec<(&str, &str)> = vec![("types[]", "mention"), ("limit", "40")];
            let since = newest.clone();
            if let Some(c) = since.as_deref() {
                q.push(("min_id", c));
            }
            let (raw_page, headers): (Vec<Box<RawValue>>, _) =
                self.get("/api/v1/notifications", &q).await?;
            next_poll = Some(self.pace(&headers));
            if raw_page.is_empty() {
                break;
            }
            // Item by item: one notification that cannot be decoded is
            // recorded and passed over, the cursor moves past it.
            let mut page = Vec::with_capacity(raw_page.len());
            for raw in &raw_page {
                let decoded = decode_lenient::<Notification>(raw.get());
                let id = decoded
                    .as_ref()
                    .ok()
                    .map(|n| n.id.clone())
                    .or_else(|| item_id(raw));
                if let Some(id) = &id
                    && newest.as_deref().is_none_or(|c| newer(id, c))
                {
                    newest = Some(id.clone());
                }
                match decoded {
                    Ok(n) => page.push(n),
                    Err(e) => skipped.push(Skipped::from_json(id, &e)),
                }
            }
            // A page is newest first; the bot answers in the order people wrote.
            for n in page.into_iter().rev() {
                match n.into_event(&self.clock) {
                    Some(e) => events.push(e),
                    None => {
                        tracing::debug!("notification without a status (deleted post): skipped")
                    }
                }
            }
            // Without a cursor this is the first start: the latest page is
            // enough (older mentions are backlog). With one, page forward.
            if cursor.is_none() || prev_min_id(&headers).is_none() {
                break;
            }
        }
        crate::platforms::sort_as_written(&mut events);
        Ok(Batch {
            events,
            cursor: newest.filter(|n| Some(n.as_str()) != cursor),
            next_poll,
            skipped,
        })
    }

    async fn send(&self, out: &Outgoing) -> Result<Sent, ApiError> {
        let acct = format!("@{}", out.recipient_handle.as_str());
        let visibility = match out.kind {
            ReplyKind::Dm => "direct".to_owned(),
            // A public reply keeps the visibility of what it answers.
            ReplyKind::Public => {
                #[derive(Deserialize)]
                struct Vis {
                    visibility: String,
                }
                match self
                    .get::<Vis>(
                        &format!("/api/v1/statuses/{}", out.in_reply_to.as_str()),
                        &[],
                    )
                    .await
                {
                    Ok((v, _)) => v.visibility,
                    Err(ApiError::RateLimited { reset_ms }) => {
                        return Err(ApiError::RateLimited { reset_ms });
                    }
                    Err(_) => "unlisted".to_owned(),
                }
            }
        };
        // On Mastodon a reply reaches the customer only if it names them.
        // The handle as a whole word: `@eve.x@evil.social` does not name `eve`.
        let named = out.text == acct || out.text.starts_with(&format!("{acct} "));
        let text = if named {
            out.text.clone()
        } else {
            format!("{acct} {}", out.text)
        };
        let form = [
            ("status", text.as_str()),
            ("in_reply_to_id", out.in_reply_to.as_str()),
            ("visibility", visibility.as_str()),
        ];
        let r = self
            .http
            .post(format!("{}/api/v1/statuses", self.base))
            .bearer_auth(self.token.expose())
            .header("Idempotency-Key", &out.idempotency_key)
            .form(&form)
            .send()
            .await;
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        let (c, _): (Created, _) = self.decode(r, true).await?;
        Ok(Sent { id: c.id })
    }

    fn resend_is_safe_within(&self, _kind: ReplyKind) -> Option<Duration> {
        Some(IDEMPOTENCY_WINDOW)
    }

    async fn length_limit(&self) -> crate::domain::text::LengthLimit {
        let max = self
            .instance()
            .await
            .and_then(|i| i.configuration.as_ref())
            .and_then(|c| c.statuses.as_ref())
            .and_then(|s| s.max_characters);
        if max.is_none() {
            tracing::info!("the instance states no status length; assuming 500 characters");
        }
        crate::domain::text::LengthLimit {
            platform: Platform::Mastodon,
            max: max.unwrap_or(crate::domain::text::LengthLimit::MASTODON.max),
        }
    }

    fn push_stream(&self) -> Option<Duration> {
        self.streaming
    }

    async fn listen(&self, tx: &tokio::sync::mpsc::Sender<Pushed>) -> Result<(), ApiError> {
        let url = format!(
            "{}/api/v1/streaming/user/notification",
            self.streaming_base().await
        );
        let resp = self
            .stream_http
            .get(&url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| ApiError::Transient(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(error_from(status, &headers, &body, self.clock.now_ms()));
        }
        let is_sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(ApiError::Rejected {
                status,
                detail: "the streaming endpoint did not answer with an event stream".into(),
            });
        }
        if tx.send(Pushed::Connected).await.is_err() {
            return Ok(());
        }
        let mut resp = resp;
        let mut parser = SseParser::default();
        loop {
            let chunk = tokio::time::timeout(self.stream_idle, resp.chunk())
                .await
                .map_err(|_| {
                    ApiError::Transient(format!(
                        "the stream was silent for {} s (no heartbeat)",
                        self.stream_idle.as_secs_f32()
                    ))
                })?
                .map_err(|e| ApiError::Transient(e.without_url().to_string()))?;
            let Some(chunk) = chunk else {
                return Ok(());
            };
            for ev in parser.feed(&chunk) {
                // `user/notification` sends notifications only; anything
                // else (a server that sends the whole user stream) is not ours.
                if ev.event != "notification" {
                    continue;
                }
                let n: Notification = match serde_json::from_str(&ev.data) {
                    Ok(n) => n,
                    Err(e) => {
                        // Polling brings it again, in the shape it knows.
                        tracing::warn!(error = %e, "unreadable notification on the stream: skipped, the next poll catches it");
                        continue;
                    }
                };
                match n.into_event(&self.clock) {
                    Some(e) => {
                        if tx.send(Pushed::Event(e)).await.is_err() {
                            return Ok(());
                        }
                    }
                    None => {
                        tracing::debug!("streamed notification without a mention status: skipped")
                    }
                }
            }
        }
    }

    fn posting_budget(&self) -> Option<crate::domain::limits::Budget> {
        Some(POSTING_BUDGET)
    }
}

#[derive(Debug, Deserialize)]
struct Notification {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    account: MAccount,
    status: Option<MStatus>,
}

#[derive(Debug, Deserialize)]
struct MAccount {
    id: String,
    acct: String,
    #[serde(default)]
    display_name: String,
}

#[derive(Debug, Deserialize)]
struct MStatus {
    id: String,
    created_at: Option<String>,
    in_reply_to_id: Option<String>,
    visibility: Option<String>,
    #[serde(default)]
    content: String,
    #[serde(default)]
    mentions: Vec<MMention>,
    reblog: Option<serde_json::Value>,
    language: Option<String>,
}

/// A mention in a status: its profile URL and its `acct`.
#[derive(Debug, Clone, Deserialize)]
pub struct MMention {
    /// Profile URL, as the content's link gives it.
    pub url: String,
    /// `user` on the same instance, `user@domain` elsewhere.
    pub acct: String,
}

/// What `poll` makes of one answer body of `/api/v1/notifications`, item
/// by item: for the fuzz tests (`tests/it/fuzz.rs`), not an API.
#[doc(hidden)]
pub fn decode_notifications(
    body: &[u8],
    clock: &Clock,
) -> Result<(Vec<Event>, Vec<Skipped>), ApiError> {
    let raw_page: Vec<Box<RawValue>> = crate::platforms::decode_success(body, false)?;
    let mut events = Vec::new();
    let mut skipped = Vec::new();
    for raw in &raw_page {
        match decode_lenient::<Notification>(raw.get()) {
            Ok(n) => events.extend(n.into_event(clock)),
            Err(e) => skipped.push(Skipped::from_json(item_id(raw), &e)),
        }
    }
    Ok((events, skipped))
}

impl Notification {
    fn into_event(self, clock: &Clock) -> Option<Event> {
        if self.kind != "mention" {
            return None;
        }
        let s = self.status?;
        let channel = if s.visibility.as_deref() == Some("direct") {
            Channel::Dm
        } else {
            Channel::Mention
        };
        Some(Event {
            mentioned: Vec::new(),
            platform: Platform::Mastodon,
            channel,
            conversation: ConversationId::new(
                s.in_reply_to_id.clone().unwrap_or_else(|| s.id.clone()),
            ),
            author: Author {
                id: UserId::new(self.account.id),
                handle: Handle::new(self.account.acct),
                name: self.account.display_name,
            },
            text: html_to_text(&s.content, &s.mentions),
            at: s
                .created_at
                .as_deref()
                .and_then(parse_rfc3339)
                .unwrap_or_else(|| clock.now_ms()),
            in_reply_to: s.in_reply_to_id.map(MessageId::new),
            is_repost: s.reblog.is_some(),
            lang: s
                .language
                .as_deref()
                .and_then(crate::domain::language::Lang::from_tag),
            id: MessageId::new(s.id),
        })
    }
}

/// Mastodon's status HTML as plain text: mention links become `@acct`
/// (from the status's `mentions`, so remote accounts keep their domain),
/// `<br>` a line break, paragraphs a blank line, entities decoded, every
/// other tag dropped.
pub fn html_to_text(html: &str, mentions: &[MMention]) -> String {
    let mut out = String::new();
    let mut rest = html;
    // Inside a mention link: its text is replaced by the acct.
    let mut skipping_link = false;
    while let Some(lt) = rest.find('<') {
        if !skipping_link {
            out.push_str(&decode_entities(&rest[..lt]));
        }
        let Some(gt) = rest[lt..].find('>') else {
            rest = &rest[lt..];
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        rest = &rest[lt + gt + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let closing = tag.starts_with('/');
        match (name.as_str(), closing) {
            ("br", _) => out.push('\n'),
            ("p", true) => out.push_str("\n\n"),
            ("a", false) => {
                let href = attr(tag, "href");
                if let Some(m) = href.and_then(|h| mentions.iter().find(|m| m.url == h)) {
                    out.push('@');
                    out.push_str(&m.acct);
                    skipping_link = true;
                }
            }
            ("a", true) => skipping_link = false,
            _ => {}
        }
    }
    if !skipping_link {
        out.push_str(&decode_entities(rest));
    }
    out.trim_end().to_owned()
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')?;
    Some(&tag[start..start + end])
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';').filter(|i| *i <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..semi];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_language_is_kept_as_a_hint() {
        let body = serde_json::json!([
            {"id": "1", "type": "mention", "account": {"id": "7", "acct": "ana"},
             "status": {"id": "10", "content": "<p>ok</p>", "language": "fr-CA"}},
            {"id": "2", "type": "mention", "account": {"id": "8", "acct": "bob"},
             "status": {"id": "11", "content": "<p>ok</p>", "language": null}},
        ])
        .to_string();
        let (events, skipped) = decode_notifications(body.as_bytes(), &Clock::new()).unwrap();
        assert!(skipped.is_empty());
        let langs: Vec<_> = events
            .iter()
            .map(|e| e.lang.map(|l| l.to_string()))
            .collect();
        assert_eq!(langs, [Some("fr".to_owned()), None]);
    }

    #[test]
    fn html_becomes_text() {
        let m = vec![MMention {
            url: "https://icosahedron.website/@halcy".into(),
            acct: "halcy@icosahedron.website".into(),
        }];
        let html = "<p><span class=\"h-card\"><a href=\"https://icosahedron.website/@halcy\" class=\"u-url mention\">@<span>halcy</span></a></span> hi &amp; bye<br>line&#39;s</p><p>#<span>tag</span></p>";
        assert_eq!(
            html_to_text(html, &m),
            "@halcy@icosahedron.website hi & bye\nline's\n\n#tag"
        );
    }

    #[test]
    fn ids_and_links() {
        assert!(newer("116275331587890092", "99999999999999999"));
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            "<https://m.example/api/v1/notifications?max_id=1>; rel=\"next\", <https://m.example/api/v1/notifications?min_id=550622655&types%5B%5D=mention>; rel=\"prev\""
                .parse()
                .unwrap(),
        );
        assert_eq!(prev_min_id(&h).as_deref(), Some("550622655"));
    }

    #[test]
    fn localised_errors_keep_their_words() {
        let e = error_from(
            422,
            &HeaderMap::new(),
            "{\"error\":\"バリデーションに失敗しました: Textを入力してください\"}".as_bytes(),
            0,
        );
        assert_eq!(
            e,
            ApiError::Rejected {
                status: 422,
                detail: "バリデーションに失敗しました: Textを入力してください".into()
            }
        );
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-reset",
            "2026-04-11T23:15:00.381973Z".parse().unwrap(),
        );
        assert_eq!(
            error_from(429, &h, b"{}", 0),
            ApiError::RateLimited {
                reset_ms: parse_rfc3339("2026-04-11T23:15:00.381Z").unwrap()
            }
        );
    }
}
