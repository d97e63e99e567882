//! The `cursors` table: where each stream of each platform stopped
//! reading. Moved only in the transaction that records what was read.

use sqlx::{AnyConnection, Row};

use super::{Store, StoreError};
use crate::domain::clock::Millis;
use crate::domain::{Platform, Stream};

impl Store {
    /// Where `stream` of `platform` stopped reading.
    pub async fn cursor(
        &self,
        platform: Platform,
        stream: Stream,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT cursor FROM cursors WHERE platform = $1 AND stream = $2")
            .bind(platform.as_str())
            .bind(stream.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}

/// Moves a stream's cursor, inside the transaction that records its events,
/// so a restart continues exactly where the last commit stopped.
pub async fn set_cursor(
    conn: &mut AnyConnection,
    platform: Platform,
    stream: Stream,
    cursor: &str,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO cursors (platform, stream, cursor, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (platform, stream) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
    )
    .bind(platform.as_str())
    .bind(stream.as_str())
    .bind(cursor)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
