//! PostgreSQL session-level advisory locks: the statements behind the
//! runtime's roles (`runtime::ownership`). A lock lives as long as the
//! session that took it, so it rides one dedicated connection, out of the
//! pool.

use sqlx::{AnyConnection, Row};

use super::{Store, StoreError};

/// A connection of its own, out of the pool: a lock must never ride a
/// pooled connection into someone else's hands, and dropping it must end
/// the session (and so release every lock it holds).
pub async fn session(store: &Store) -> Result<AnyConnection, StoreError> {
    Ok(store.pool().acquire().await?.detach())
}

/// Whether the session still answers (if it died, its locks died with it).
pub async fn alive(conn: &mut AnyConnection) -> bool {
    sqlx::query("SELECT 1").execute(conn).await.is_ok()
}

/// Takes the advisory lock named `name` if it is free; whether this session
/// holds it now.
pub async fn try_lock(conn: &mut AnyConnection, name: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(name)
        .fetch_one(conn)
        .await?;
    Ok(row.try_get(0)?)
}
