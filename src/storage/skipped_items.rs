//! The `skipped_items` table: items of a page that could not be decoded,
//! recorded (id and error position, never their text) and passed over.

use sqlx::AnyConnection;

use super::StoreError;
use crate::domain::clock::Millis;
use crate::domain::{Platform, Stream};
use crate::platforms::Skipped;

/// Records the items of a page that could not be decoded, in the
/// transaction that moves the cursor past them, and counts them.
pub async fn record_skipped(
    conn: &mut AnyConnection,
    platform: Platform,
    stream: Stream,
    skipped: &[Skipped],
    now: Millis,
) -> Result<(), StoreError> {
    for (n, item) in skipped.iter().enumerate() {
        // Items whose id could not be read stay apart from each other.
        let id = if item.id == "unknown" {
            format!("unknown-{now}-{n}")
        } else {
            item.id.clone()
        };
        sqlx::query(
            "INSERT INTO skipped_items (platform, stream, item_id, error, at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (platform, stream, item_id) DO NOTHING",
        )
        .bind(platform.as_str())
        .bind(stream.as_str())
        .bind(&id)
        .bind(&item.error)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        metrics::counter!("helpdesk_items_skipped_total", "platform" => platform.as_str(), "stream" => stream.as_str())
            .increment(1);
        // The id and the position of the fault, never the item's text.
        tracing::warn!(platform = %platform, stream = stream.as_str(), item = %item.id, error = %item.error,
            "an item of the page could not be decoded: recorded in skipped_items and passed over");
    }
    Ok(())
}
