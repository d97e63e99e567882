//! The `agent_actions` table: how external tools act on tickets (a row
//! inserted by SQL is applied by the bot within seconds, then marked
//! `done` or `refused` with its result).

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::TicketRef;
use crate::domain::clock::Millis;
use crate::domain::states::ActionStatus;

/// A row waiting to be applied. `action` stays a string: checking it is
/// the application's job, and a refusal is recorded on the row.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its row id.
    pub id: i64,
    /// The ticket.
    pub ticket: TicketRef,
    /// Who acts.
    pub agent: String,
    /// The verb as written.
    pub action: String,
    /// Its argument.
    pub argument: Option<String>,
}

/// Up to 100 rows in status `new`, oldest first.
pub async fn pending(store: &Store) -> Result<Vec<Pending>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, ticket_id, agent, action, argument FROM agent_actions \
         WHERE status = $1 ORDER BY id LIMIT 100",
    )
    .bind(ActionStatus::New.as_str())
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Pending {
                id: r.try_get(0)?,
                ticket: TicketRef(r.try_get(1)?),
                agent: r.try_get(2)?,
                action: r.try_get(3)?,
                argument: r.try_get(4)?,
            })
        })
        .collect()
}

/// Records how a row ended, unless something else handled it meanwhile.
pub async fn finish(
    store: &Store,
    id: i64,
    status: ActionStatus,
    result: &str,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE agent_actions SET status = $1, result = $2, applied_at = $3 WHERE id = $4 AND status = $5",
    )
    .bind(status.as_str())
    .bind(result)
    .bind(now)
    .bind(id)
    .bind(ActionStatus::New.as_str())
    .execute(store.pool())
    .await?;
    Ok(())
}
