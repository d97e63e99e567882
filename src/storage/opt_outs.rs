//! The `opt_outs` table: customers who asked the bot to stop answering
//! them automatically (a stop word), kept for good.

use sqlx::AnyConnection;

use super::StoreError;
use crate::domain::Platform;
use crate::domain::clock::Millis;

/// A customer's stop request, and the message that said it.
#[derive(Debug, Clone)]
pub struct OptOut {
    /// Where.
    pub platform: Platform,
    /// Who.
    pub customer_id: String,
    /// The platform's id of the message that asked.
    pub message_id: String,
    /// When.
    pub at: Millis,
}

/// Records opt-outs; a customer already opted out stays as first recorded.
/// Their messages must be written first (the row points at one).
pub async fn insert(conn: &mut AnyConnection, opt_outs: &[OptOut]) -> Result<(), StoreError> {
    for o in opt_outs {
        sqlx::query(
            "INSERT INTO opt_outs (platform, customer_id, message_id, at) VALUES ($1, $2, \
             (SELECT id FROM messages WHERE platform = $1 AND platform_message_id = $3), $4) \
             ON CONFLICT (platform, customer_id) DO NOTHING",
        )
        .bind(o.platform.as_str())
        .bind(o.customer_id.as_str())
        .bind(o.message_id.as_str())
        .bind(o.at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
