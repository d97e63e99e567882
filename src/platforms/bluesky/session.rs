//! The Bluesky login: an app password exchanged once for a session
//! (`com.atproto.server.createSession`), then kept alive with
//! `refreshSession`.
//!
//! `createSession` is limited to 30 calls per 5 minutes and 300 a day per
//! account, and a locked-out account cannot answer anyone, so the session
//! lives in the database ([`SessionHome`], kept by the storage layer) and a
//! restart reuses it. Every renewal (a refresh, or a new session when the
//! refresh token is gone) happens under the home's lock: with several
//! instances one renews and the others find its session. The home also
//! remembers when the bot tried to create a session, failed tries
//! included, so that the bot itself stays well under the limits
//! ([`CREATE_LIMITS`]) whatever loop it is restarted in, even with a wrong
//! app password.
//!
//! What to do is decided by [`next_step`], apart from the calls, so that
//! the decision is tested without a server.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::domain::clock::{Clock, Millis};
use crate::domain::secret::Secret;
use crate::platforms::ApiError;

/// Renew this long before the access token expires.
const RENEW_MARGIN: Duration = Duration::from_secs(300);

/// When an access token's expiry cannot be read from it: assume this
/// lifetime (the reference PDS gives two hours) and renew on `ExpiredToken`.
const ASSUMED_ACCESS_LIFETIME: Duration = Duration::from_secs(90 * 60);

/// The most sessions the bot creates per window, below Bluesky's own
/// limits (30 per 5 minutes, 300 per day) so that people signing in to the
/// brand's account by hand are never locked out by the bot.
pub const CREATE_LIMITS: [(u32, Duration); 2] = [
    (10, Duration::from_secs(5 * 60)),
    (100, Duration::from_secs(24 * 3600)),
];

/// A session, as the database keeps it (sealed).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// The account's DID.
    pub did: String,
    /// Its handle.
    pub handle: String,
    /// The bearer token of ordinary calls.
    pub access_jwt: String,
    /// The token `refreshSession` takes (single use).
    pub refresh_jwt: String,
    /// When the access token expires (Unix ms).
    pub access_expires_at: Millis,
    /// When the refresh token expires (Unix ms), when it says.
    pub refresh_expires_at: Option<Millis>,
}

/// What the home keeps, sealed: the session, if any, and when the bot
/// tried to create one over the last day (failed tries included).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stored {
    /// The session, when there is one.
    pub session: Option<Session>,
    /// When `createSession` was called (Unix ms).
    #[serde(default)]
    pub attempts: Vec<Millis>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("did", &self.did)
            .field("access_jwt", &"[redacted]")
            .field("refresh_jwt", &"[redacted]")
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

/// Why the session could not be read, renewed or kept.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The PDS refused or failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The database failed while reading or storing the session.
    #[error(
        "database error while reading or storing the Bluesky session: {0}; check database_url and that the server is up"
    )]
    Database(String),
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> ApiError {
        match e {
            SessionError::Api(e) => e,
            // The calls wait and try again, as after any temporary failure.
            SessionError::Database(why) => ApiError::Transient(format!(
                "the Bluesky session cannot be read or stored: {why}"
            )),
        }
    }
}

/// What a renewal leaves: what the home keeps from now on (written before
/// the lock goes when `changed`, even when the renewal failed: a failed
/// try to create a session counts) and the session, or why there is none.
#[derive(Debug)]
pub struct Renewal {
    /// What to keep.
    pub stored: Stored,
    /// Whether `stored` differs from what was read.
    pub changed: bool,
    /// The session to use, or why there is none.
    pub outcome: Result<Session, SessionError>,
}

/// The renewal [`SessionHome::renew`] runs under its lock, given what it
/// keeps (empty when nothing, or nothing that can be opened).
pub type Renew<'a> =
    Box<dyn FnOnce(Stored) -> Pin<Box<dyn Future<Output = Renewal> + Send + 'a>> + Send + 'a>;

/// Where the session lives: the storage layer implements it on the
/// database (sealed, one row per platform); the connector only needs this.
#[async_trait::async_trait]
pub trait SessionHome: Send + Sync {
    /// The stored session, read without a lock; `None` when there is none
    /// or it cannot be opened (sealed under another app password).
    async fn load(&self) -> Result<Option<Session>, SessionError>;

    /// Runs `renew` on what is kept under a lock that every instance on
    /// the database respects, and keeps what it leaves (when changed)
    /// before releasing it; its outcome.
    async fn renew<'a>(&'a self, renew: Renew<'a>) -> Result<Session, SessionError>;
}

/// A home in memory, for a single process that may forget its session
/// (tests, and the demo's throw-away runs).
#[derive(Debug, Default)]
pub struct MemoryHome(Mutex<Stored>);

#[async_trait::async_trait]
impl SessionHome for MemoryHome {
    async fn load(&self) -> Result<Option<Session>, SessionError> {
        Ok(self.0.lock().await.session.clone())
    }

    async fn renew<'a>(&'a self, renew: Renew<'a>) -> Result<Session, SessionError> {
        let mut slot = self.0.lock().await;
        let r = renew(slot.clone()).await;
        *slot = r.stored;
        r.outcome
    }
}

/// What a renewal should do with the stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Use the stored session as it is.
    Use,
    /// Exchange the stored refresh token.
    Refresh,
    /// Create a new session with the app password.
    Create,
    /// Creating now would pass [`CREATE_LIMITS`]: wait until then.
    Wait(Millis),
}

/// Decides a renewal. `used`: the access token this instance was using when
/// the PDS refused it (`None`: it only needs a usable session). A stored
/// session other than the refused one, and not about to expire, was renewed
/// by another instance: it is used as it is. `attempts`: when sessions were
/// last asked for.
pub fn next_step(
    stored: Option<&Session>,
    attempts: &[Millis],
    used: Option<&str>,
    now: Millis,
) -> Step {
    let margin = RENEW_MARGIN.as_millis() as Millis;
    if let Some(s) = stored {
        let fresh = s.access_expires_at > now + margin;
        if fresh && used.is_none_or(|u| u != s.access_jwt) {
            return Step::Use;
        }
        if s.refresh_expires_at.is_none_or(|e| e > now + margin) {
            return Step::Refresh;
        }
    }
    create_or_wait(attempts, now)
}

/// [`Step::Create`], unless the sessions created recently reach one of
/// [`CREATE_LIMITS`]: then [`Step::Wait`] until the oldest counted leaves
/// its window.
fn create_or_wait(created: &[Millis], now: Millis) -> Step {
    let mut until = None;
    for (max, window) in CREATE_LIMITS {
        let window = window.as_millis() as Millis;
        let mut within: Vec<Millis> = created
            .iter()
            .copied()
            .filter(|t| *t > now - window)
            .collect();
        if within.len() >= max as usize {
            within.sort_unstable();
            let free_at = within[within.len() - max as usize] + window;
            until = Some(until.map_or(free_at, |u: Millis| u.max(free_at)));
        }
    }
    match until {
        Some(t) => Step::Wait(t),
        None => Step::Create,
    }
}

/// When a JWT expires (Unix ms), from its `exp` claim. The token is not
/// verified: the PDS does that; this only schedules the renewal.
pub fn jwt_expiry(jwt: &str) -> Option<Millis> {
    #[derive(Deserialize)]
    struct Claims {
        exp: i64,
    }
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let c: Claims = serde_json::from_slice(&bytes).ok()?;
    c.exp.checked_mul(1000)
}

/// What `createSession` and `refreshSession` answer (the parts kept).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAnswer {
    /// Bearer token.
    pub access_jwt: String,
    /// Refresh token.
    pub refresh_jwt: String,
    /// The account's handle.
    pub handle: String,
    /// The account's DID.
    pub did: String,
    /// `false` for a deactivated, suspended or taken-down account.
    #[serde(default)]
    pub active: Option<bool>,
    /// Why it is not active.
    #[serde(default)]
    pub status: Option<String>,
}

impl SessionAnswer {
    /// The session to keep.
    pub fn into_session(self, now: Millis) -> Session {
        Session {
            access_expires_at: jwt_expiry(&self.access_jwt)
                .unwrap_or(now + ASSUMED_ACCESS_LIFETIME.as_millis() as Millis),
            refresh_expires_at: jwt_expiry(&self.refresh_jwt),
            did: self.did,
            handle: self.handle,
            access_jwt: self.access_jwt,
            refresh_jwt: self.refresh_jwt,
        }
    }
}

/// The calls that obtain sessions, made by the connector under the home's
/// lock.
#[async_trait::async_trait]
pub trait SessionCalls: Send + Sync {
    /// `createSession` with the app password.
    async fn create(&self) -> Result<SessionAnswer, ApiError>;
    /// `refreshSession` with `refresh_jwt`. `Err(None)`: the refresh token
    /// is expired or revoked (a new session is needed); `Err(Some)`: any
    /// other failure.
    async fn refresh(&self, refresh_jwt: &Secret) -> Result<SessionAnswer, Option<ApiError>>;
}

/// The session in use by this process: a cache of the home, renewed
/// before expiry and after the PDS refuses its token.
pub struct Sessions {
    home: Arc<dyn SessionHome>,
    clock: Clock,
    current: Mutex<Option<Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions([redacted])")
    }
}

impl Sessions {
    /// Sessions kept in `home`.
    pub fn new(home: Arc<dyn SessionHome>, clock: Clock) -> Sessions {
        Sessions {
            home,
            clock,
            current: Mutex::new(None),
        }
    }

    /// A session to call with: the one in use unless it is about to
    /// expire, else the stored one, else a renewed one.
    pub async fn get(&self, calls: &dyn SessionCalls) -> Result<Session, ApiError> {
        let now = self.clock.now_ms();
        let mut current = self.current.lock().await;
        if let Some(s) = current.as_ref()
            && next_step(Some(s), &[], None, now) == Step::Use
        {
            return Ok(s.clone());
        }
        if current.is_none()
            && let Some(s) = self.home.load().await.map_err(ApiError::from)?
            && next_step(Some(&s), &[], None, now) == Step::Use
        {
            *current = Some(s.clone());
            return Ok(s);
        }
        let s = self.renew(calls, None).await?;
        *current = Some(s.clone());
        Ok(s)
    }

    /// After the PDS refused `used` (expired or revoked): a renewed
    /// session, or the one another instance renewed meanwhile.
    pub async fn recover(&self, calls: &dyn SessionCalls, used: &str) -> Result<Session, ApiError> {
        let mut current = self.current.lock().await;
        if let Some(s) = current.as_ref()
            && s.access_jwt != used
            && next_step(Some(s), &[], None, self.clock.now_ms()) == Step::Use
        {
            // Another task of this process renewed it already.
            return Ok(s.clone());
        }
        let s = self.renew(calls, Some(used)).await?;
        *current = Some(s.clone());
        Ok(s)
    }

    /// Renews under the home's lock, as [`next_step`] decides.
    async fn renew(
        &self,
        calls: &dyn SessionCalls,
        used: Option<&str>,
    ) -> Result<Session, ApiError> {
        let clock = self.clock.clone();
        let used = used.map(str::to_owned);
        let renew: Renew<'_> = Box::new(move |mut stored: Stored| {
            Box::pin(async move {
                let now = clock.now_ms();
                let before = stored.clone();
                let session = stored.session.clone();
                let step = next_step(session.as_ref(), &stored.attempts, used.as_deref(), now);
                let outcome = match (step, session) {
                    (Step::Use, Some(s)) => Ok(s),
                    (Step::Wait(until), _) => Err(too_many_creations(until).into()),
                    (Step::Refresh, Some(s)) => {
                        match calls.refresh(&Secret::new(s.refresh_jwt)).await {
                            Ok(a) => Ok(a.into_session(now)),
                            Err(Some(e)) => Err(e.into()),
                            Err(None) => create(calls, &mut stored.attempts, now).await,
                        }
                    }
                    _ => create(calls, &mut stored.attempts, now).await,
                };
                if let Ok(s) = &outcome {
                    stored.session = Some(s.clone());
                }
                Renewal {
                    changed: stored != before,
                    stored,
                    outcome,
                }
            })
        });
        Ok(self.home.renew(renew).await?)
    }
}

/// Creates a session, unless [`CREATE_LIMITS`] say wait; the try is
/// recorded in `attempts` whatever its outcome (a wrong app password
/// retried in a loop would lock the account out just the same).
async fn create(
    calls: &dyn SessionCalls,
    attempts: &mut Vec<Millis>,
    now: Millis,
) -> Result<Session, SessionError> {
    let day = 24 * 3600 * 1000;
    attempts.retain(|t| *t > now - day);
    if let Step::Wait(until) = create_or_wait(attempts, now) {
        return Err(too_many_creations(until).into());
    }
    attempts.push(now);
    let a = calls.create().await?;
    if a.active == Some(false) {
        return Err(ApiError::Rejected {
            status: 403,
            detail: format!(
                "the Bluesky account is not active ({}): reactivate it in the app, then restart",
                a.status.as_deref().unwrap_or("no reason given")
            ),
        }
        .into());
    }
    tracing::info!("created a new Bluesky session");
    Ok(a.into_session(now))
}

fn too_many_creations(until: Millis) -> ApiError {
    tracing::warn!(
        until_ms = until,
        "the bot created Bluesky sessions too often; waiting rather than risk locking the account out"
    );
    ApiError::RateLimited { reset_ms: until }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;

    fn session(access: &str, expires: Millis, refresh_expires: Option<Millis>) -> Session {
        Session {
            did: "did:plc:brand".into(),
            handle: "brand.test".into(),
            access_jwt: access.into(),
            refresh_jwt: format!("r-{access}"),
            access_expires_at: expires,
            refresh_expires_at: refresh_expires,
        }
    }

    #[test]
    fn the_decision_uses_refreshes_or_creates() {
        let now = 1_000 * MIN;
        let fresh = session("a1", now + 60 * MIN, Some(now + 1000 * MIN));
        let expiring = session("a1", now + 2 * MIN, Some(now + 1000 * MIN));
        let dead = session("a1", now - MIN, Some(now - MIN));
        // (stored, used, step)
        let cases = [
            (None, None, Step::Create),
            (Some(&fresh), None, Step::Use),
            // Refused although fresh: revoked; refresh it.
            (Some(&fresh), Some("a1"), Step::Refresh),
            // Another instance renewed since this one used a0.
            (Some(&fresh), Some("a0"), Step::Use),
            (Some(&expiring), None, Step::Refresh),
            (Some(&expiring), Some("a0"), Step::Refresh),
            (Some(&dead), None, Step::Create),
        ];
        for (stored, used, want) in cases {
            assert_eq!(
                next_step(stored, &[], used, now),
                want,
                "{stored:?} {used:?}"
            );
        }
        // Nothing usable and ten tries in the last minutes: wait.
        let tries: Vec<Millis> = (0..10).map(|i| now - i * MIN / 2).collect();
        for stored in [None, Some(&dead)] {
            assert!(matches!(
                next_step(stored, &tries, None, now),
                Step::Wait(_)
            ));
        }
    }

    #[test]
    fn creations_stay_under_the_limits_and_say_until_when() {
        let now = 10_000 * MIN;
        let recent: Vec<Millis> = (0..10).map(|i| now - i * 20_000).collect();
        // Ten in the last five minutes: the oldest leaves at +5 min.
        assert_eq!(
            create_or_wait(&recent, now),
            Step::Wait(now - 9 * 20_000 + 5 * MIN)
        );
        assert_eq!(create_or_wait(&recent[..9], now), Step::Create);
        // A hundred over the day, spread out: wait for the day's oldest.
        let day: Vec<Millis> = (0..100).map(|i| now - 60 * MIN - i * 10 * MIN).collect();
        let oldest = now - 60 * MIN - 99 * 10 * MIN;
        assert_eq!(
            create_or_wait(&day, now),
            Step::Wait(oldest + 24 * 60 * MIN)
        );
        // Older than a day does not count.
        let old: Vec<Millis> = (0..500).map(|i| now - 25 * 60 * MIN - i).collect();
        assert_eq!(create_or_wait(&old, now), Step::Create);
    }

    #[test]
    fn expiry_comes_from_the_token() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.sig",
            b64(r#"{"typ":"at+jwt","alg":"ES256K"}"#),
            b64(r#"{"scope":"com.atproto.appPassPrivileged","sub":"did:plc:x","exp":1764500000}"#)
        );
        assert_eq!(jwt_expiry(&jwt), Some(1_764_500_000_000));
        assert_eq!(jwt_expiry("not a token"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
    }

    struct Calls {
        refresh_ok: bool,
        create_ok: bool,
    }

    fn answer(access: &str) -> SessionAnswer {
        SessionAnswer {
            access_jwt: access.into(),
            refresh_jwt: format!("r-{access}"),
            handle: "brand.test".into(),
            did: "did:plc:brand".into(),
            active: Some(true),
            status: None,
        }
    }

    #[async_trait::async_trait]
    impl SessionCalls for Calls {
        async fn create(&self) -> Result<SessionAnswer, ApiError> {
            if self.create_ok {
                Ok(answer("created"))
            } else {
                Err(ApiError::Unauthorized)
            }
        }
        async fn refresh(&self, _: &Secret) -> Result<SessionAnswer, Option<ApiError>> {
            if self.refresh_ok {
                Ok(answer("refreshed"))
            } else {
                Err(None)
            }
        }
    }

    const GOOD: Calls = Calls {
        refresh_ok: true,
        create_ok: true,
    };

    #[tokio::test]
    async fn a_revoked_refresh_token_falls_back_to_a_new_session_once() {
        let clock = Clock::new();
        let home = Arc::new(MemoryHome::default());
        let s = Sessions::new(home.clone(), clock.clone());
        let first = s.get(&GOOD).await.unwrap();
        assert_eq!(first.access_jwt, "created");
        // Refused: refresh works.
        let r = s.recover(&GOOD, "created").await.unwrap();
        assert_eq!(r.access_jwt, "refreshed");
        // Refused again and the refresh token is revoked: a new session.
        let revoked = Calls {
            refresh_ok: false,
            create_ok: true,
        };
        let c = s.recover(&revoked, "refreshed").await.unwrap();
        assert_eq!(c.access_jwt, "created");
        let kept = home.0.lock().await.clone();
        assert_eq!(kept.attempts.len(), 2, "the creations are remembered");
        assert_eq!(kept.session, Some(c));
    }

    #[tokio::test]
    async fn failed_sign_ins_count_and_stop_the_loop() {
        let clock = Clock::new();
        let home = Arc::new(MemoryHome::default());
        let wrong = Calls {
            refresh_ok: false,
            create_ok: false,
        };
        // A restart loop with a wrong app password: each start is a new
        // `Sessions` on the same home.
        let mut refused = 0;
        let mut waited = None;
        for _ in 0..50 {
            let s = Sessions::new(home.clone(), clock.clone());
            match s.get(&wrong).await {
                Err(ApiError::Unauthorized) => refused += 1,
                Err(ApiError::RateLimited { reset_ms }) => waited = Some(reset_ms),
                other => panic!("{other:?}"),
            }
            clock.advance(Duration::from_secs(5));
        }
        // 50 starts 5 s apart (250 s): ten tries, then waiting until the
        // first of them is five minutes old.
        assert_eq!(refused, 10);
        assert_eq!(home.0.lock().await.attempts.len(), 10);
        assert!(waited.is_some());
    }
}
