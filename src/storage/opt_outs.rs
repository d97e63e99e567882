//! The `opt_outs` table: customers who asked the bot to stop answering
//! them automatically (a stop word), kept for good.

use sqlx::AnyConnection;

use super::{Backend, StoreError, dialect};
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

/// Records opt-outs, each with the row id of the message that asked, in
/// one statement per 100 (a batch's in one round trip); a customer
/// already opted out stays as first recorded (so does one who asks twice
/// in a batch: `DO NOTHING` skips the second row).
pub async fn insert(
    conn: &mut AnyConnection,
    backend: Backend,
    opt_outs: &[(i64, &OptOut)],
) -> Result<(), StoreError> {
    let anonymous = dialect::anonymous_parameters(backend);
    let size = |(_, o): &(i64, &OptOut)| dialect::text_bytes(&o.customer_id) + 3 * 12;
    for chunk in dialect::chunks(opt_outs, 100, dialect::statement_bytes(backend), 4, size) {
        let sql = format!(
            "INSERT INTO opt_outs (platform, customer_id, message_id, at) VALUES {} \
             ON CONFLICT (platform, customer_id) DO NOTHING",
            dialect::values_list(chunk.len(), 4, 0, anonymous, |p| format!(
                "({})",
                p.join(", ")
            ))
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (message, o) in chunk {
            q = q
                .bind(o.platform.as_str())
                .bind(o.customer_id.as_str())
                .bind(*message)
                .bind(o.at);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}
