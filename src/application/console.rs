//! The console's rules, apart from HTTP: signing in and out, when a
//! session is still good, when a form's CSRF token is right, and when a
//! colleague's presence on a ticket is a collision to warn about.
//!
//! The cookie holds a random token (256 bits); the database only its
//! SHA-256, so a stolen copy of the database signs no one in. A session
//! ends after `idle` without a request or `max` after sign-in, whichever
//! comes first, and with its agent's account (`agents disable`).

use crate::domain::AgentName;
use crate::domain::clock::Millis;
use crate::domain::secret::Secret;
use crate::storage::console::{self as store_console, Doing, NewSession, Presence, Session};
use crate::storage::{Store, StoreError};

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Without a request for this long, a session ends (ms).
    pub idle_ms: Millis,
    /// However busy, a session ends this long after sign-in (ms).
    pub max_ms: Millis,
}

/// A presence older than this is gone: the page says it every few seconds.
pub const PRESENCE_FRESH_MS: Millis = 20_000;

/// A session's `seen_at` is written at most this often, not at every
/// request (the idle timeout is in minutes).
const TOUCH_EVERY_MS: Millis = 60_000;

/// A signed-in session as the cookie and the forms carry it.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The cookie's value.
    pub token: Secret,
    /// The forms' token.
    pub csrf: String,
    /// The agent.
    pub agent: String,
}

/// 256 random bits, URL-safe base64 without padding (43 characters).
fn random_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh CSRF token (for the sign-in form, which has no session yet).
pub fn new_csrf() -> String {
    random_token()
}

/// SHA-256 of a token, lowercase hex: the key the database holds.
pub fn token_hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two strings are equal, in a time that does not depend on where
/// they first differ (CSRF tokens).
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether a session is still good at `now`.
pub fn alive(s: &Session, policy: SessionPolicy, now: Millis) -> bool {
    now < s.expires_at && now - s.seen_at < policy.idle_ms
}

/// Signs `name` in with `password`: the new session, or `None` when the
/// name or the password is wrong or the agent is disabled (one answer for
/// all three).
pub async fn sign_in(
    store: &Store,
    name: &AgentName,
    password: &Secret,
    policy: SessionPolicy,
    now: Millis,
) -> Result<Option<SignedIn>, StoreError> {
    if !crate::application::agents::check(store, name, password).await? {
        return Ok(None);
    }
    Ok(Some(open(store, name.as_str(), policy, now).await?))
}

/// Opens a session for an agent already known to be who they say (a
/// password checked, or a trusted proxy's header).
pub async fn open(
    store: &Store,
    agent: &str,
    policy: SessionPolicy,
    now: Millis,
) -> Result<SignedIn, StoreError> {
    let token = random_token();
    let csrf = random_token();
    let row = NewSession {
        token_hash: &token_hash(&token),
        agent,
        csrf: &csrf,
        expires_at: now + policy.max_ms,
    };
    store_console::open_session(store, &row, now).await?;
    Ok(SignedIn {
        token: Secret::new(token),
        csrf,
        agent: agent.to_owned(),
    })
}

/// The session a cookie's token opens at `now`, if it is still good; an
/// expired one is deleted on the way.
///
/// `activity`: the agent did something (not a page refreshing itself), so
/// the idle timeout starts again.
pub async fn session(
    store: &Store,
    token: &str,
    policy: SessionPolicy,
    now: Millis,
    activity: bool,
) -> Result<Option<Session>, StoreError> {
    let key = token_hash(token);
    let Some(s) = store_console::session(store, &key).await? else {
        return Ok(None);
    };
    if !alive(&s, policy, now) {
        store_console::end_session(store, &key).await?;
        return Ok(None);
    }
    if activity && now - s.seen_at >= TOUCH_EVERY_MS {
        store_console::touch_session(store, &key, now).await?;
    }
    Ok(Some(s))
}

/// Signs out.
pub async fn sign_out(store: &Store, token: &str) -> Result<(), StoreError> {
    store_console::end_session(store, &token_hash(token)).await
}

/// What the ticket page says about colleagues on the same ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collision {
    /// Who has the page open (and is not writing).
    pub viewing: Vec<String>,
    /// Who has an unsent draft in the reply box.
    pub replying: Vec<String>,
}

impl Collision {
    /// Reads the colleagues' presence as of `now`; stale ones are gone.
    pub fn of(others: &[Presence], now: Millis) -> Collision {
        let mut c = Collision::default();
        for p in others.iter().filter(|p| now - p.at < PRESENCE_FRESH_MS) {
            match p.doing {
                Doing::Viewing => c.viewing.push(p.agent.clone()),
                Doing::Replying => c.replying.push(p.agent.clone()),
            }
        }
        c
    }

    /// Whether sending a reply now needs the agent's confirmation: someone
    /// else has a draft.
    pub fn reply_needs_confirmation(&self) -> bool {
        !self.replying.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(seen_at: Millis, expires_at: Millis) -> Session {
        Session {
            agent: "alice".into(),
            csrf: "x".repeat(43),
            seen_at,
            expires_at,
        }
    }

    #[test]
    fn a_session_ends_when_idle_or_at_its_end() {
        let p = SessionPolicy {
            idle_ms: 1_000,
            max_ms: 10_000,
        };
        assert!(alive(&session(0, 10_000), p, 999));
        assert!(!alive(&session(0, 10_000), p, 1_000), "idle");
        assert!(alive(&session(9_500, 10_000), p, 9_999));
        assert!(!alive(&session(9_999, 10_000), p, 10_000), "its end");
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        let h = token_hash(&a);
        assert_eq!(h.len(), 64);
        assert_ne!(h, a);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn a_colleagues_draft_needs_confirmation_and_stale_presence_is_gone() {
        let p = |agent: &str, doing, at| Presence {
            agent: agent.into(),
            doing,
            at,
        };
        let now = 100_000;
        let c = Collision::of(
            &[
                p("bob", Doing::Viewing, now - 1_000),
                p("carla", Doing::Replying, now - 2_000),
                p("dan", Doing::Replying, now - PRESENCE_FRESH_MS),
            ],
            now,
        );
        assert_eq!(c.viewing, ["bob"]);
        assert_eq!(c.replying, ["carla"]);
        assert!(c.reply_needs_confirmation());
        let quiet = Collision::of(&[p("bob", Doing::Viewing, now)], now);
        assert!(!quiet.reply_needs_confirmation());
    }
}
