//! The Bluesky session kept in the database (`oauth_tokens`, platform
//! `bluesky`), so that a restart reuses it instead of calling
//! `createSession` (30 per 5 minutes, 300 a day per account), and several
//! instances share one.
//!
//! The row is sealed like X's tokens (AES-256-GCM), under a key derived
//! from the app password (PBKDF2): every instance already has the
//! password, so there is no key to hand out, and a database dump without
//! it holds nothing usable. A new app password cannot open the old row:
//! the session is then created anew, once, under the lock.
//!
//! Renewals happen under the row's lock (`SELECT … FOR UPDATE` on
//! PostgreSQL, the write lock `BEGIN IMMEDIATE` takes on SQLite); an empty
//! placeholder row is made first, so that there is a row to lock even
//! before the first session.

use std::num::NonZeroU32;

use super::{Sealed, TokenKey, instance_name, sealed_of};
use crate::domain::clock::Clock;
use crate::domain::secret::Secret;
use crate::platforms::bluesky::session::{Renew, Session, SessionError, SessionHome, Stored};
use crate::storage::{Backend, Store};

const PLATFORM: &str = "bluesky";

/// The Bluesky session in `oauth_tokens`.
#[derive(Debug, Clone)]
pub struct BlueskySession {
    store: Store,
    key: TokenKey,
    clock: Clock,
    instance: String,
}

fn db(e: impl std::fmt::Display) -> SessionError {
    SessionError::Database(e.to_string())
}

impl BlueskySession {
    /// The session of the account `identifier` in `store`, sealed under a
    /// key derived from its app password.
    pub fn new(store: Store, identifier: &str, password: &Secret, clock: Clock) -> BlueskySession {
        let mut bytes = [0u8; 32];
        let salt = format!("helpdesk bluesky session\0{identifier}");
        // Derived once per start: 100 000 rounds cost a few tens of
        // milliseconds here and as much per guess to whoever holds a dump.
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(100_000).expect("non-zero"),
            salt.as_bytes(),
            password.expose().as_bytes(),
            &mut bytes,
        );
        BlueskySession {
            store,
            key: TokenKey::from_bytes("the Bluesky app password", &bytes),
            clock,
            instance: instance_name(),
        }
    }

    /// What the row keeps: nothing when it is the placeholder or was
    /// sealed under another app password.
    fn open(&self, row: &sqlx::any::AnyRow) -> Result<Stored, SessionError> {
        let sealed = sealed_of(row).map_err(db)?;
        if sealed.key_id.is_empty() {
            return Ok(Stored::default());
        }
        match self.key.open::<Stored>(PLATFORM, &sealed) {
            Ok(s) => Ok(s),
            Err(_) => {
                tracing::warn!(
                    "the stored Bluesky session does not open with this app password (changed?); a new session will be created"
                );
                Ok(Stored::default())
            }
        }
    }

    /// The placeholder row that the lock holds before the first session.
    async fn ensure_row(&self) -> Result<(), SessionError> {
        sqlx::query(
            "INSERT INTO oauth_tokens (platform, key_id, nonce, sealed, expires_at, updated_at, refreshed_by) \
             VALUES ($1, '', '', '', NULL, $2, $3) ON CONFLICT (platform) DO NOTHING",
        )
        .bind(PLATFORM)
        .bind(self.clock.now_ms())
        .bind(&self.instance)
        .execute(self.store.pool())
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Writes `stored` into the locked row and commits.
    async fn keep(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        stored: &Stored,
    ) -> Result<(), SessionError> {
        let Sealed {
            key_id,
            nonce,
            sealed,
        } = self
            .key
            .seal(PLATFORM, stored)
            .map_err(|e| db(format!("cannot seal the session: {e}")))?;
        sqlx::query(
            "UPDATE oauth_tokens SET key_id = $2, nonce = $3, sealed = $4, expires_at = $5, \
             updated_at = $6, refreshed_by = $7 WHERE platform = $1",
        )
        .bind(PLATFORM)
        .bind(key_id)
        .bind(nonce)
        .bind(sealed)
        .bind(stored.session.as_ref().map(|s| s.access_expires_at))
        .bind(self.clock.now_ms())
        .bind(&self.instance)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }
}

#[async_trait::async_trait]
impl SessionHome for BlueskySession {
    async fn load(&self) -> Result<Option<Session>, SessionError> {
        let row = sqlx::query("SELECT key_id, nonce, sealed FROM oauth_tokens WHERE platform = $1")
            .bind(PLATFORM)
            .fetch_optional(self.store.pool())
            .await
            .map_err(db)?;
        match row {
            Some(r) => Ok(self.open(&r)?.session),
            None => Ok(None),
        }
    }

    async fn renew<'a>(&'a self, renew: Renew<'a>) -> Result<Session, SessionError> {
        self.ensure_row().await?;
        let mut tx = self.store.begin().await.map_err(db)?;
        let sql = match self.store.backend() {
            Backend::Postgres => {
                "SELECT key_id, nonce, sealed FROM oauth_tokens WHERE platform = $1 FOR UPDATE"
            }
            // BEGIN IMMEDIATE (Store::begin) already holds the write lock.
            Backend::Sqlite => "SELECT key_id, nonce, sealed FROM oauth_tokens WHERE platform = $1",
        };
        let row = sqlx::query(sql)
            .bind(PLATFORM)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let renewal = renew(self.open(&row)?).await;
        if !renewal.changed {
            tx.rollback().await.map_err(db)?;
            return renewal.outcome;
        }
        if let Err(e) = self.keep(tx, &renewal.stored).await {
            // This instance keeps working with a new session; the others,
            // and a restart, renew again (the old refresh token still works
            // for a while, or a new session is created).
            tracing::error!(error = %e, "the renewed Bluesky session could not be saved in the database");
        }
        renewal.outcome
    }
}
