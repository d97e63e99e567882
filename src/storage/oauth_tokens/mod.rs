//! OAuth 2.0 tokens kept in the database, so several instances share one
//! login (`[x] token_store = "database"`).
//!
//! X's refresh tokens are single-use: if two instances refreshed the same
//! login, the second would be refused and lose it. So a refresh happens
//! under the row's lock (`SELECT … FOR UPDATE` on PostgreSQL, the write
//! lock `BEGIN IMMEDIATE` takes on SQLite), and the instance that gets the
//! lock second finds the new tokens already there and uses them instead of
//! calling X.
//!
//! The row holds the token set sealed with AES-256-GCM (ring) under a key
//! that only the instances' environment holds: a database dump or a
//! read-only agent account never sees a usable token. Each write draws a
//! fresh random nonce, stored beside the ciphertext, and the platform name
//! is authenticated with it so a row cannot be moved to another platform.
//!
//! [`bluesky`] keeps the Bluesky session in the same table, the same way.

pub mod bluesky;

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::Row;

use crate::domain::clock::Millis;
use crate::platforms::x::auth::{AuthError, Exchange, Refreshed, SharedLogin, TokenSet};
use crate::storage::{Backend, Store};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The key that seals the tokens in the database, read from the
/// environment variable `[x] token_key_env` names.
#[derive(Clone)]
pub struct TokenKey {
    key: std::sync::Arc<LessSafeKey>,
    /// A fingerprint of the key (not the key), stored with each row so a
    /// row sealed under another key is reported as such, not as damage.
    id: String,
    /// The environment variable it came from, for error messages.
    var: String,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({}: [redacted])", self.var)
    }
}

impl TokenKey {
    /// Reads the base64 key from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<TokenKey, AuthError> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => TokenKey::from_base64(var, &v),
            _ => Err(AuthError::Key {
                var: var.to_owned(),
                problem: "is not set".into(),
            }),
        }
    }

    /// Decodes a base64 key of 32 bytes; `var` names where it came from.
    pub fn from_base64(var: &str, text: &str) -> Result<TokenKey, AuthError> {
        let bad = |problem: String| AuthError::Key {
            var: var.to_owned(),
            problem,
        };
        // Never echo the value: it is (almost) the key.
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| bad("is not base64".into()))?;
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| bad(format!("holds {} bytes, not 32", bytes.len())))?;
        Ok(TokenKey::from_bytes(var, &bytes))
    }

    /// A key from its 32 bytes; `var` names where it came from.
    pub fn from_bytes(var: &str, bytes: &[u8; 32]) -> TokenKey {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"helpdesk oauth_tokens key id\0");
        ctx.update(bytes);
        let digest = ctx.finish();
        let id = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes is an AES-256 key");
        TokenKey {
            key: std::sync::Arc::new(LessSafeKey::new(key)),
            id,
            var: var.to_owned(),
        }
    }

    fn aad(platform: &str) -> Vec<u8> {
        format!("helpdesk oauth_tokens {platform}").into_bytes()
    }

    pub(crate) fn seal<T: serde::Serialize>(
        &self,
        platform: &str,
        tokens: &T,
    ) -> Result<Sealed, AuthError> {
        let mut nonce = [0u8; NONCE_LEN];
        // A random 96-bit nonce per write: a token set is written a few
        // times a day, far from the 2^32 writes where collisions matter.
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| AuthError::Seal("the system has no randomness to offer".into()))?;
        let mut data =
            serde_json::to_vec(tokens).map_err(|e| AuthError::Seal(format!("encoding: {e}")))?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(platform)),
                &mut data,
            )
            .map_err(|_| AuthError::Seal("AES-256-GCM refused to seal".into()))?;
        Ok(Sealed {
            key_id: self.id.clone(),
            nonce: B64.encode(nonce),
            sealed: B64.encode(data),
        })
    }

    pub(crate) fn open<T: serde::de::DeserializeOwned>(
        &self,
        platform: &str,
        row: &Sealed,
    ) -> Result<T, AuthError> {
        if row.key_id != self.id {
            return Err(AuthError::WrongKey {
                var: self.var.clone(),
            });
        }
        let damaged = || AuthError::Damaged;
        let nonce: [u8; NONCE_LEN] = B64
            .decode(&row.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(damaged)?;
        let mut data = B64.decode(&row.sealed).map_err(|_| damaged())?;
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(platform)),
                &mut data,
            )
            .map_err(|_| damaged())?;
        serde_json::from_slice(plain).map_err(|_| damaged())
    }
}

/// A row's sealed columns.
pub(crate) struct Sealed {
    pub(crate) key_id: String,
    pub(crate) nonce: String,
    pub(crate) sealed: String,
}

/// One platform's login in the `oauth_tokens` table.
#[derive(Debug, Clone)]
pub struct SharedTokens {
    store: Store,
    key: TokenKey,
    platform: &'static str,
    /// Who writes, for `refreshed_by`: host and process id.
    instance: String,
}

fn db_error(e: impl std::fmt::Display) -> AuthError {
    AuthError::Database(e.to_string())
}

/// Who writes a row, for `refreshed_by`: host and process id.
pub(crate) fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}:{}", std::process::id())
}

impl SharedTokens {
    /// X's login in `store`, sealed with `key`.
    pub fn x(store: Store, key: TokenKey) -> SharedTokens {
        SharedTokens {
            store,
            key,
            platform: "x",
            instance: instance_name(),
        }
    }

    /// Stores a new login (what `helpdesk x login` obtained), replacing any.
    pub async fn save(&self, tokens: &TokenSet, now: Millis) -> Result<(), AuthError> {
        let s = self.key.seal(self.platform, tokens)?;
        sqlx::query(
            "INSERT INTO oauth_tokens (platform, key_id, nonce, sealed, expires_at, updated_at, refreshed_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (platform) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, \
             sealed = excluded.sealed, expires_at = excluded.expires_at, \
             updated_at = excluded.updated_at, refreshed_by = excluded.refreshed_by",
        )
        .bind(self.platform)
        .bind(&s.key_id)
        .bind(&s.nonce)
        .bind(&s.sealed)
        .bind(tokens.expires_at)
        .bind(now)
        .bind(format!("helpdesk x login on {}", self.instance))
        .execute(self.store.pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl SharedLogin for SharedTokens {
    /// The stored set, read without a lock (a committed refresh or nothing).
    async fn load(&self) -> Result<TokenSet, AuthError> {
        let row = sqlx::query("SELECT key_id, nonce, sealed FROM oauth_tokens WHERE platform = $1")
            .bind(self.platform)
            .fetch_optional(self.store.pool())
            .await
            .map_err(db_error)?;
        let row = row.ok_or(AuthError::NoLogin)?;
        self.key.open(self.platform, &sealed_of(&row)?)
    }

    /// Refreshes the login once across every instance.
    ///
    /// `used` is the access token this instance has been using. Under the
    /// row's lock the stored set is read again: if it is not the one this
    /// instance used and is not about to expire (`fresh_after`), another
    /// instance refreshed it first, and it is returned without calling X.
    /// With `force` unset, a stored set that is not about to expire is
    /// returned too. Otherwise `call` exchanges the stored refresh token
    /// and the new set is stored before the lock is released.
    ///
    /// On SQLite the lock is the database's write lock, so other writers
    /// wait for the token call (one short HTTP request every two hours;
    /// they queue on `busy_timeout` and retry if it runs out).
    async fn refresh<'a>(
        &'a self,
        used: &'a str,
        force: bool,
        fresh_after: Millis,
        now: Millis,
        call: Exchange<'a>,
    ) -> Result<Refreshed, AuthError> {
        let mut tx = self.store.begin().await.map_err(db_error)?;
        let sql = match self.store.backend() {
            Backend::Postgres => {
                "SELECT key_id, nonce, sealed FROM oauth_tokens WHERE platform = $1 FOR UPDATE"
            }
            // BEGIN IMMEDIATE (Store::begin) already holds the write lock.
            Backend::Sqlite => "SELECT key_id, nonce, sealed FROM oauth_tokens WHERE platform = $1",
        };
        let row = sqlx::query(sql)
            .bind(self.platform)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or(AuthError::NoLogin)?;
        let current: TokenSet = self.key.open(self.platform, &sealed_of(&row)?)?;
        let usable = current.expires_at.is_none_or(|e| e > fresh_after);
        if usable && (current.access_token != used || !force) {
            tx.rollback().await.map_err(db_error)?;
            return Ok(Refreshed::Elsewhere(current));
        }
        let Some(rt) = current.refresh_token.clone() else {
            return Err(AuthError::Refused {
                status: 401,
                detail: "the stored login has no refresh token".into(),
            });
        };
        // From here X has consumed `rt`: if this process dies before the
        // commit, the login is lost (X offers no way to replay a refresh),
        // as with the token file.
        let fresh = call(rt.clone()).await?;
        let next = TokenSet {
            refresh_token: fresh.refresh_token.or(Some(rt)),
            ..fresh
        };
        let stored = async {
            let s = self.key.seal(self.platform, &next)?;
            sqlx::query(
                "UPDATE oauth_tokens SET key_id = $2, nonce = $3, sealed = $4, expires_at = $5, \
                 updated_at = $6, refreshed_by = $7 WHERE platform = $1",
            )
            .bind(self.platform)
            .bind(&s.key_id)
            .bind(&s.nonce)
            .bind(&s.sealed)
            .bind(next.expires_at)
            .bind(now)
            .bind(&self.instance)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)
        }
        .await;
        if let Err(e) = stored {
            // This instance keeps working with the new set until it
            // expires; the others and a restart cannot.
            tracing::error!(error = %e, "the refreshed X token could not be saved in the database; the other instances and a restart will need `helpdesk x login`");
        }
        Ok(Refreshed::Here(next))
    }
}

pub(crate) fn sealed_of(row: &sqlx::any::AnyRow) -> Result<Sealed, AuthError> {
    Ok(Sealed {
        key_id: row.try_get(0).map_err(db_error)?,
        nonce: row.try_get(1).map_err(db_error)?,
        sealed: row.try_get(2).map_err(db_error)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> TokenSet {
        TokenSet {
            access_token: "AT-plain".into(),
            refresh_token: Some("RT-plain".into()),
            expires_at: Some(42),
        }
    }

    #[test]
    fn sealed_rows_open_with_their_key_only() {
        let k = TokenKey::from_bytes("K", &[1; 32]);
        let s = k.seal("x", &set()).unwrap();
        assert!(!s.sealed.contains("plain"));
        let plain = B64.decode(&s.sealed).unwrap();
        assert!(!plain.windows(5).any(|w| w == b"plain"));
        assert_eq!(
            k.open::<TokenSet>("x", &s).unwrap().access_token,
            "AT-plain"
        );
        // A fresh nonce per write.
        assert_ne!(k.seal("x", &set()).unwrap().nonce, s.nonce);
        let other = TokenKey::from_bytes("K", &[2; 32]);
        let e = other.open::<TokenSet>("x", &s).unwrap_err();
        assert!(matches!(e, AuthError::WrongKey { .. }), "{e}");
        assert!(e.to_string().contains("different key"), "{e}");
        // Same key, altered bytes or another platform: damaged.
        let mut bytes = B64.decode(&s.sealed).unwrap();
        bytes[0] ^= 1;
        let altered = Sealed {
            sealed: B64.encode(bytes),
            key_id: s.key_id.clone(),
            nonce: s.nonce.clone(),
        };
        assert!(matches!(
            k.open::<TokenSet>("x", &altered),
            Err(AuthError::Damaged)
        ));
        assert!(matches!(
            k.open::<TokenSet>("mastodon", &s),
            Err(AuthError::Damaged)
        ));
    }

    #[test]
    fn bad_keys_name_the_variable_and_how_to_make_one() {
        let e = TokenKey::from_env("HELPDESK_TEST_SURELY_UNSET_KEY").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("HELPDESK_TEST_SURELY_UNSET_KEY"), "{m}");
        assert!(m.contains("openssl rand -base64 32"), "{m}");
        let m = TokenKey::from_base64("K", "c2hvcnQ=")
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("5 bytes, not 32") && m.contains("openssl"),
            "{m}"
        );
        let m = TokenKey::from_base64("K", "not base64!")
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("not base64") && !m.contains("not base64!"),
            "{m}"
        );
        let good = B64.encode([9u8; 32]);
        let k = TokenKey::from_base64("K", &format!(" {good}\n")).unwrap();
        assert!(!format!("{k:?}").contains(&good));
    }
}
