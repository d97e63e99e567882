//! Agents' accounts for the console: who may sign in, with what password.
//!
//! Passwords are hashed with Argon2id (the `argon2` crate's defaults, a
//! random salt each time) and only the PHC string is kept; a password is
//! never logged, stored or shown. A disabled agent cannot sign in; a new
//! password (`agents passwd`) enables them again.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::domain::AgentName;
use crate::domain::clock::Millis;
use crate::domain::secret::Secret;
use crate::storage::{Store, StoreError, agents, console};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Why an account command was refused.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The password is too weak.
    #[error(
        "the password has {0} characters: use at least {MIN_PASSWORD_CHARS} (a passphrase of a few words is easy to type)"
    )]
    TooShort(usize),
    /// The name is taken.
    #[error("agent {0} exists already: `helpdesk agents passwd {0}` changes their password")]
    Exists(String),
    /// No such agent.
    #[error("no agent {0}: `helpdesk agents list` shows them, `helpdesk agents add {0}` adds one")]
    NotFound(String),
    /// Hashing failed (the OS random source, the hash's parameters).
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The PHC string of `password`, after the length check.
pub fn hash(password: &Secret) -> Result<String, AgentError> {
    let n = password.expose().chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(AgentError::TooShort(n));
    }
    Argon2::default()
        .hash_password(password.expose().as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AgentError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (a hash that cannot be
/// read matches nothing).
pub fn verify(password: &Secret, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.expose().as_bytes(), &h)
            .is_ok()
    })
}

/// Adds agent `name` with `password`.
pub async fn add(
    store: &Store,
    name: &AgentName,
    password: &Secret,
    now: Millis,
) -> Result<(), AgentError> {
    let h = hash(password)?;
    let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
    if !agents::add(&mut conn, name, &h, now).await? {
        return Err(AgentError::Exists(name.as_str().to_owned()));
    }
    Ok(())
}

/// Sets agent `name`'s password (enabling them if they were disabled).
pub async fn set_password(
    store: &Store,
    name: &AgentName,
    password: &Secret,
    now: Millis,
) -> Result<(), AgentError> {
    let h = hash(password)?;
    let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
    if !agents::set_password(&mut conn, name, &h, now).await? {
        return Err(AgentError::NotFound(name.as_str().to_owned()));
    }
    // A new password is a fresh start: whoever held a session (a stolen
    // cookie, a forgotten tab) signs in again.
    console::end_sessions_of(&mut conn, name.as_str()).await?;
    Ok(())
}

/// Disables agent `name`: they can no longer sign in.
pub async fn disable(store: &Store, name: &AgentName, now: Millis) -> Result<(), AgentError> {
    let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
    if !agents::disable(&mut conn, name, now).await? {
        return Err(AgentError::NotFound(name.as_str().to_owned()));
    }
    // Deleted, not only hidden: a later `passwd` enables the agent again
    // and must not bring these back.
    console::end_sessions_of(&mut conn, name.as_str()).await?;
    Ok(())
}

/// Whether `name` may sign in with `password`. An unknown or disabled
/// agent costs a hash too, so the answer's time does not tell which.
pub async fn check(store: &Store, name: &AgentName, password: &Secret) -> Result<bool, StoreError> {
    // A hash of nothing anyone knows, made once, for the unknown-agent case.
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        let random: String = (0..32)
            .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
            .collect();
        hash(&Secret::new(random)).unwrap_or_default()
    });
    let (known, h) = match agents::active_hash(store, name).await? {
        Some(h) => (true, h),
        None => (false, dummy.clone()),
    };
    // Argon2 takes tens of milliseconds of a core: off the async workers
    // (the bot's loop shares them), and at most two at once, so a flood of
    // guesses queues here instead of stalling everything else.
    static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let _turn = HASHING
        .acquire()
        .await
        .expect("the hashing semaphore is never closed");
    let password = password.clone();
    let right = tokio::task::spawn_blocking(move || verify(&password, &h))
        .await
        .unwrap_or(false);
    Ok(known && right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_hashed_salted_and_verified() {
        let p = Secret::new("correct horse battery");
        let a = hash(&p).unwrap();
        let b = hash(&p).unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "a new salt each time");
        assert!(verify(&p, &a));
        assert!(!verify(&Secret::new("correct horse batterY"), &a));
        assert!(!verify(&p, "not a hash"));
        assert!(matches!(
            hash(&Secret::new("short")),
            Err(AgentError::TooShort(5))
        ));
    }
}
