//! The `agents` table: who may sign in to the console, with an Argon2id
//! password hash (never a password), and whether they still may.

use sqlx::{AnyConnection, Row as _};

use super::{Store, StoreError};
use crate::domain::AgentName;
use crate::domain::clock::Millis;

/// An agent as listed (never the hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Agent {
    /// The name.
    pub name: String,
    /// When they were disabled, if they were.
    pub disabled_at: Option<Millis>,
    /// When they were added.
    pub created_at: Millis,
}

/// Adds an agent; false when the name is taken.
pub async fn add(
    conn: &mut AnyConnection,
    name: &AgentName,
    hash: &str,
    now: Millis,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO agents (name, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name.as_str())
    .bind(hash)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets an agent's password hash (and enables them again: a new
/// password is how an account comes back); false when there is no such
/// agent.
pub async fn set_password(
    conn: &mut AnyConnection,
    name: &AgentName,
    hash: &str,
    now: Millis,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE agents SET password_hash = $1, disabled_at = NULL, updated_at = $2 WHERE name = $3",
    )
    .bind(hash)
    .bind(now)
    .bind(name.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Disables an agent; false when there is no such agent.
pub async fn disable(
    conn: &mut AnyConnection,
    name: &AgentName,
    now: Millis,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE agents SET disabled_at = COALESCE(disabled_at, $1), updated_at = $1 WHERE name = $2",
    )
    .bind(now)
    .bind(name.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether `name` is an agent who may sign in (a trusted proxy's word is
/// taken only for them).
pub async fn is_active(store: &Store, name: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT 1 FROM agents WHERE name = $1 AND disabled_at IS NULL")
        .bind(name)
        .fetch_optional(store.pool())
        .await?;
    Ok(row.is_some())
}

/// The hash of an agent who may sign in (`None`: no such agent, or
/// disabled).
pub async fn active_hash(store: &Store, name: &AgentName) -> Result<Option<String>, StoreError> {
    let row =
        sqlx::query("SELECT password_hash FROM agents WHERE name = $1 AND disabled_at IS NULL")
            .bind(name.as_str())
            .fetch_optional(store.pool())
            .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Every agent, by name.
pub async fn list(store: &Store) -> Result<Vec<Agent>, StoreError> {
    let rows = sqlx::query("SELECT name, disabled_at, created_at FROM agents ORDER BY name")
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Agent {
                name: r.try_get(0)?,
                disabled_at: r.try_get(1)?,
                created_at: r.try_get(2)?,
            })
        })
        .collect()
}
