//! The `bot_state` table: small facts the bot keeps about itself (when it
//! first started, each platform's length limit as last learnt).

use sqlx::{AnyConnection, Row};

use super::{Store, StoreError};
use crate::domain::Platform;
use crate::domain::clock::Millis;
use crate::domain::text::LengthLimit;

impl Store {
    /// The time of the bot's first start, recorded on the first call.
    pub async fn first_start(&self, now: Millis) -> Result<Millis, StoreError> {
        sqlx::query(
            "INSERT INTO bot_state (key, value) VALUES ('first_start', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(now.to_string())
        .execute(&self.pool)
        .await?;
        let v: String = sqlx::query("SELECT value FROM bot_state WHERE key = 'first_start'")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(v.parse().unwrap_or(now))
    }

    /// Records `limit` as its platform's length limit (see [`length_limit`]).
    pub async fn set_length_limit(&self, limit: LengthLimit) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO bot_state (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(format!("length_limit:{}", limit.platform))
        .bind(limit.max.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The length limit of `platform` as the running bot last learnt it (a
/// Mastodon instance states its own), so agents' replies written from the
/// CLI or by SQL are checked against the same limit as the rules.
pub async fn length_limit(
    conn: &mut AnyConnection,
    platform: Platform,
) -> Result<LengthLimit, StoreError> {
    let key = format!("length_limit:{platform}");
    let row = sqlx::query("SELECT value FROM bot_state WHERE key = $1")
        .bind(&key)
        .fetch_optional(conn)
        .await?;
    let stated = row
        .map(|r| r.try_get::<String, _>(0))
        .transpose()?
        .and_then(|v| v.parse().ok());
    let default = LengthLimit::of(platform);
    Ok(LengthLimit {
        max: stated.unwrap_or(default.max),
        ..default
    })
}
